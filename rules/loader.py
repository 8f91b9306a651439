"""Reading rule files: the shipped ``rules/default.yaml`` and a site's own, checked like the inventory.

Each rule is validated on its own (``file:line: rules[3].condition.for: ...``), then against the
inventory: rule ids are unique across files (a site file may replace a shipped rule by reusing its id
with ``replace: true`` at the top of the file), the repair category of a rule that watches devices must
be owned by a team, and a rule whose selector picks devices none of which reports the condition's fields
is an error, not a rule that silently never fires. A rule that selects no device of the site (the shipped
lighting rules on a campus of meters) is inactive: ``inactive_rules`` names them, nothing refuses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from houqin.config_file import ConfigError, ConfigIssue, LocatedDocument, load_document, validate_items
from houqin.inventory import Inventory
from houqin.inventory.model import Device
from rules.conditions import fields_of
from rules.model import Balance, Rule, Selector

DEFAULT_RULES = Path(__file__).parent / "default.yaml"


def rule_files(site_files: Sequence[Path], extra: Sequence[Path] = ()) -> list[Path]:
    """The rule files a site runs, in the order they are read: the shipped rules first."""
    return [DEFAULT_RULES, *site_files, *extra]


def selects(selector: Selector, device: Device, inventory: Inventory) -> bool:
    model = inventory.model_of(device)
    if selector.kinds and model.kind not in selector.kinds:
        return False
    if selector.models and device.model not in selector.models:
        return False
    if selector.devices and device.id not in selector.devices:
        return False
    if selector.buildings and device.building not in selector.buildings:
        return False
    if any(device.tags.get(key) != value for key, value in selector.tags.items()):
        return False
    return not selector.has_fields or set(selector.has_fields) <= model.measured_fields().keys()


def applies(rule: Rule, device: Device, inventory: Inventory) -> bool:
    """The rule watches the device: selected, enabled, and the device reports what the condition reads."""
    if not (rule.enabled and device.enabled and selects(rule.select, device, inventory)):
        return False
    if isinstance(rule.condition, Balance) and not any(
        other.parent == device.id for other in inventory.devices.values()
    ):
        return False  # a meter with no sub-meters has nothing to balance (the rule is inactive, not wrong)
    return reports(rule, device, inventory)


def reports(rule: Rule, device: Device, inventory: Inventory) -> bool:
    """The device reports every field the rule's condition reads."""
    return fields_of(rule) <= inventory.model_of(device).measured_fields().keys()


def load_rules(files: Sequence[Path], inventory: Inventory) -> list[Rule]:
    """Every rule of ``files`` (the shipped defaults first, then the site's); raises ``ConfigError``
    with every issue of every file."""
    rules: dict[str, Rule] = {}
    origin: dict[str, str] = {}
    issues: list[ConfigIssue] = []
    for path in files:
        document = load_document(path)
        if document.issues:
            issues.extend(document.issues)
            continue
        data = document.data if isinstance(document.data, dict) else {}
        if not isinstance(document.data, dict) or "rules" not in data:
            issues.append(ConfigIssue(document.file, 1, "", "must be a mapping with a rules list"))
            continue
        unknown = set(data) - {"rules", "replace"}
        for key in sorted(unknown, key=str):
            issues.append(document.issue((str(key),), "unknown section (expected rules, replace)"))
        replace = data.get("replace") is True
        good, item_issues = validate_items(document, "rules", Rule)
        issues.extend(item_issues)
        for index, rule in good:
            if rule.id in rules and not replace:
                message = (f"rule {rule.id!r} is already defined in {origin[rule.id]} "
                           "(start the file with replace: true to override)")  # fmt: skip
                issues.append(document.issue(("rules", index, "id"), message))
                continue
            issues.extend(_check(document, index, rule, inventory, shipped=path == DEFAULT_RULES))
            rules[rule.id] = rule
            origin[rule.id] = f"{document.file}:{document.line_of(('rules', index))}"
    if issues:
        raise ConfigError(issues)
    return list(rules.values())


def inactive_rules(rules: Sequence[Rule], inventory: Inventory) -> list[Rule]:
    """The rules that watch no device of this site: they load, and never fire."""
    devices = list(inventory.devices.values())
    return [rule for rule in rules if not any(applies(rule, device, inventory) for device in devices)]


def _check(document: LocatedDocument, index: int, rule: Rule, inventory: Inventory, shipped: bool) -> list[ConfigIssue]:
    issues = []
    selected = [device for device in inventory.devices.values() if selects(rule.select, device, inventory)]
    watched = [device for device in selected if applies(rule, device, inventory)]
    # Only a rule that selects devices opens orders, so only that one needs a team to own them.
    has_team = any(rule.repair.category in team.categories for team in inventory.teams.values())
    if selected and inventory.teams and not has_team:
        owned = sorted({category for team in inventory.teams.values() for category in team.categories})
        message = f"no team owns {rule.repair.category!r} (teams own {', '.join(owned)})"
        issues.append(document.issue(("rules", index, "repair", "category"), message))
    for name in rule.select.models:
        if name not in inventory.models:
            issues.append(document.issue(("rules", index, "select", "models"), f"unknown model {name!r}"))
    for name in rule.select.devices:
        if name not in inventory.devices:
            issues.append(document.issue(("rules", index, "select", "devices"), f"unknown device {name!r}"))
    needed = fields_of(rule)
    if selected and needed and not any(reports(rule, device, inventory) for device in selected):
        models = sorted({device.model for device in selected})
        issues.append(document.issue(("rules", index, "condition"),
                                     f"none of the selected devices ({', '.join(models)}) reports "
                                     f"{', '.join(sorted(needed))}"))  # fmt: skip
    # The shipped rules load on every campus; one without room relays simply has nothing for them to cut
    # (the engine says so if a fault asks). A site's own rule asking for it is a mistake worth stopping.
    if "cut_relay" in rule.actions and not shipped:
        rooms = [inventory.rooms.get(device.room or "") for device in watched]
        if watched and not any(room is not None and inventory.switches(room) for room in rooms):
            message = "cut_relay: none of the devices it watches is in a room with a relay houqin can command"
            issues.append(document.issue(("rules", index, "actions"), message))
    return issues
