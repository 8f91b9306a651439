"""Load ``devices.yaml`` into an ``Inventory``, reporting every mistake with file, line and path."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from houqin.config_file import ConfigError, ConfigIssue, LocatedDocument, load_document, validate_items
from houqin.inventory.inventory import Inventory
from houqin.inventory.model import (
    SECTIONS,
    TOP_LEVEL_KEYS,
    TOPIC_PLACEHOLDER,
    Device,
    DeviceModel,
    Entry,
    Site,
    entry_key,
)
from houqin.inventory.references import check_references

PROFILE_DIR = Path(__file__).parent / "profiles"


def load_shipped_profiles() -> tuple[dict[str, DeviceModel], list[ConfigIssue]]:
    """The device profiles houqin ships, one YAML file each, referenced by name from an inventory."""
    profiles: dict[str, DeviceModel] = {}
    issues: list[ConfigIssue] = []
    for path in sorted(PROFILE_DIR.glob("*.yaml")):
        document = load_document(path, f"profiles/{path.name}")
        issues.extend(document.issues)
        if document.issues:
            continue
        try:
            profile = DeviceModel.model_validate(document.data)
        except ValidationError as exc:
            issues.extend(document.validation_issues(exc))
            continue
        profiles[profile.name] = profile
    return profiles, issues


def load_inventory(path: Path) -> Inventory:
    """Read and check an inventory file; raises ``ConfigError`` listing every issue found."""
    document = load_document(path)
    if document.issues:
        raise ConfigError(document.issues)
    return inventory_from_document(document)


def inventory_from_document(document: LocatedDocument) -> Inventory:
    shipped, issues = load_shipped_profiles()
    data = document.data
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(document.file, 1, "", "must be a mapping with site, gateways, devices, ...")])

    for key in data:
        if key not in TOP_LEVEL_KEYS:
            expected = ", ".join(sorted(TOP_LEVEL_KEYS))
            issues.append(document.issue((str(key),), f"unknown section (expected one of {expected})"))

    site: Site | None = None
    if "site" not in data:
        issues.append(document.issue(("site",), "required section is missing"))
    else:
        try:
            site = Site.model_validate(data["site"])
        except ValidationError as exc:
            issues.extend(document.validation_issues(exc, ("site",)))

    sections: dict[str, list[tuple[int, Entry]]] = {}
    declared: dict[str, set[str]] = defaultdict(set)
    for section, model in SECTIONS.items():
        good, section_issues = validate_items(document, section, model)
        sections[section] = list(good)
        issues.extend(section_issues)
        # Names of entries that failed validation still count as declared, so a typo in one
        # gateway's port does not also report every device on it as pointing at an unknown gateway.
        for raw in _raw_items(data, section):
            key = raw.get("name" if section == "models" else "id")
            if isinstance(key, str):
                declared[section].add(key)

    all_models = {**shipped, **{entry_key("models", m): m for _, m in sections["models"]}}
    sections["devices"] = [
        (index, _with_topic(document, index, device, all_models, issues)) for index, device in sections["devices"]
    ]
    issues.extend(check_references(document, sections, shipped, declared))
    if issues or site is None:
        raise ConfigError(issues)

    by_key: dict[str, dict[str, Any]] = {
        section: {entry_key(section, entry): entry for _, entry in entries} for section, entries in sections.items()
    }
    return Inventory(
        source=document.file,
        site=site,
        gateways=by_key["gateways"],
        models={**shipped, **by_key["models"]},
        devices=by_key["devices"],
        rooms=by_key["rooms"],
        zones=by_key["zones"],
        teams=by_key["teams"],
        tariffs=by_key["tariffs"],
        appliance_policies=by_key["appliance_policies"],
        buildings=by_key["buildings"],
    )


def _with_topic(
    document: LocatedDocument, index: int, device: Entry, models: dict[str, Any], issues: list[ConfigIssue]
) -> Entry:
    """The device with its topic rendered from its model's template, when it gives none of its own."""
    assert isinstance(device, Device)
    model = models.get(device.model)
    if device.topic is not None or device.gateway is not None or model is None or model.topic_template is None:
        return device
    values = {"device": device.id, "building": device.building, "floor": device.floor, "room": device.room}
    missing = [name for name in TOPIC_PLACEHOLDER.findall(model.topic_template) if values.get(name) is None]
    if missing:
        issues.append(
            document.issue(("devices", index, missing[0]), f"the topic template of model {model.name!r} needs it")
        )
        return device
    return device.model_copy(update={"topic": model.topic_template.format(**values)})


def _raw_items(data: dict[str, Any], section: str) -> list[dict[str, Any]]:
    raw = data.get(section)
    if not isinstance(raw, list):
        return []
    return [item for item in raw if isinstance(item, dict)]
