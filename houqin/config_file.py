"""YAML configuration files whose errors name the file, the line and the path of the bad value.

houqin's inventory and rule files are written by hand; a mistake must be reported where it is
(``devices.yaml:42: devices[7].unit: must be between 1 and 247, got 300``), and all mistakes at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

PathKey = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, order=True)
class ConfigIssue:
    """One mistake in a configuration file."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """A configuration file (or several) failed validation; carries every issue found."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = sorted(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


def format_path(path: Iterable[str | int]) -> str:
    """``("devices", 7, "unit")`` -> ``devices[7].unit``."""
    text = ""
    for key in path:
        if isinstance(key, int):
            text += f"[{key}]"
        else:
            text += f".{key}" if text else str(key)
    return text


@dataclass
class LocatedDocument:
    """A parsed YAML document plus the line of every mapping key and sequence item in it."""

    file: str
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)
    issues: list[ConfigIssue] = field(default_factory=list)

    def line_of(self, path: PathKey) -> int:
        """The line of ``path``, or of its nearest ancestor that the file spells out (a missing field)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 1

    def issue(self, path: PathKey, message: str) -> ConfigIssue:
        return ConfigIssue(self.file, self.line_of(path), format_path(path), message)

    def validation_issues(self, error: ValidationError, prefix: PathKey = ()) -> list[ConfigIssue]:
        """Translate a pydantic error into located issues, one per failed value."""
        issues = []
        for item in error.errors():
            path = prefix + _clean_loc(item["loc"])
            message = describe_error(item)
            # Whole-entry validators name the field they blame as "field: why"; put it in the path.
            named = _FIELD_PREFIX.match(message)
            if named:
                path = path + tuple(named.group(1).split("."))
                message = named.group(2)
            issues.append(self.issue(path, message))
        return issues


_FIELD_PREFIX = re.compile(r"^([A-Za-z_][\w\-]*(?:\.[\w\-]+)*): (.+)$", re.DOTALL)


def _clean_loc(loc: tuple[Any, ...]) -> PathKey:
    # Pydantic inserts the tag of a union member or a validator's name into the location
    # ("function-after[...]"); a person editing the file only knows the keys and indices.
    return tuple(part for part in loc if isinstance(part, int) or "[" not in str(part))


def describe_error(item: Any) -> str:
    """A pydantic error item as a sentence for the person editing the file."""
    kind = item["type"]
    message = str(item["msg"])
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind in {"value_error", "assertion_error"}:
        return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    value = item.get("input")
    if isinstance(value, str | int | float | bool) or value is None:
        return f"{message[:1].lower()}{message[1:]}, got {value!r}"
    return f"{message[:1].lower()}{message[1:]}"


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false. YAML 1.1 also reads on/off/yes/no as
    booleans, which turns a command's ``on:`` action or a Norwegian ``NO`` tag into True/False."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


# What aliases may add to a document beyond its own nodes. Anchors that share a block of defaults add a
# little; an alias bomb (each level nine aliases of the one before) adds billions from a few hundred bytes
# and would freeze the process building and indexing it.
MAX_ALIAS_EXPANSION = 100_000


class _AliasCycle(Exception):  # noqa: N818 - reads as what was found
    """An alias inside the block it names (``&a [*a]``): data that contains itself."""

    def __init__(self, line: int) -> None:
        super().__init__(f"line {line}")
        self.line = line


def _alias_expansion(root: yaml.Node) -> int:
    """How many nodes aliases add: the document's size with every alias expanded, less its own nodes.
    Counted without expanding (each node's expanded size once), so a bomb costs no more than its text.
    Raises ``_AliasCycle`` for a block that contains itself."""
    expanded: dict[int, int] = {}
    inside: set[int] = set()

    def size(node: yaml.Node) -> int:
        known = expanded.get(id(node))
        if known is not None:
            return known
        if id(node) in inside:
            raise _AliasCycle(node.start_mark.line + 1)
        inside.add(id(node))
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(key) + size(value) for key, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(item) for item in node.value)
        else:
            total = 1
        inside.discard(id(node))
        expanded[id(node)] = total
        return total

    return size(root) - len(expanded)


def load_document(path: Path, display_name: str | None = None) -> LocatedDocument:
    """Parse one YAML file; syntax errors and duplicate keys become issues, not exceptions."""
    name = display_name or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return LocatedDocument(name, None, issues=[ConfigIssue(name, 0, "", f"cannot read: {exc.strerror}")])
    except UnicodeDecodeError:
        return LocatedDocument(name, None, issues=[ConfigIssue(name, 0, "", "not UTF-8 text")])
    return parse_document(text, name)


def parse_document(text: str, name: str) -> LocatedDocument:
    """Parse YAML text named ``name`` (for messages)."""
    document = LocatedDocument(name, None)
    try:
        loader = _Yaml12Loader(text)
        try:
            node = loader.get_single_node()
            if node is not None and _alias_expansion(node) > MAX_ALIAS_EXPANSION:
                line = node.start_mark.line + 1
                message = f"aliases (*name) expand to more than {MAX_ALIAS_EXPANSION:,} values; refused"
                document.issues.append(ConfigIssue(name, line, "", message))
                return document
            if node is not None:
                _index(node, (), document)  # before constructing: that folds merge keys (<<) into the node
            document.data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except _AliasCycle as cycle:
        document.issues.append(ConfigIssue(name, cycle.line, "", "an alias (*name) inside the block it names"))
        return document
    except RecursionError:
        document.issues.append(ConfigIssue(name, 0, "", "nested too deeply"))
        return document
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = exc.problem or exc.context or "invalid YAML"
        document.issues.append(ConfigIssue(name, line, "", f"invalid YAML: {problem}"))
        return document
    except yaml.YAMLError as exc:
        document.issues.append(ConfigIssue(name, 0, "", f"invalid YAML: {exc}"))
        return document
    return document


def _index(node: yaml.Node, path: PathKey, document: LocatedDocument) -> None:
    document.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key == "<<":
                continue
            if key in seen:
                document.issues.append(
                    ConfigIssue(
                        document.file,
                        line,
                        format_path((*path, key)),
                        f"duplicate key (first given on line {seen[key]})",
                    )
                )
                continue
            seen[key] = line
            document.lines[(*path, key)] = line
            _index(value_node, (*path, key), document)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index(item, (*path, index), document)


def validate_items(
    document: LocatedDocument, section: str, model: type[M]
) -> tuple[list[tuple[int, M]], list[ConfigIssue]]:
    """Validate every item of a top-level list on its own, so one bad item hides no other's mistakes."""
    raw = document.data.get(section) if isinstance(document.data, dict) else None
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        return [], [document.issue((section,), f"must be a list, got {type(raw).__name__}")]
    good: list[tuple[int, M]] = []
    issues: list[ConfigIssue] = []
    for index, item in enumerate(raw):
        try:
            good.append((index, model.model_validate(item)))
        except ValidationError as exc:
            issues.extend(document.validation_issues(exc, (section, index)))
    return good, issues
