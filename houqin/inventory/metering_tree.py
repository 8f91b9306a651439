"""Whole-file checks of energy classification and the metering tree: a code fits the meter's kind, a
parent is a meter of the same category, and following parents never comes back to where it started."""

from __future__ import annotations

from collections.abc import Callable

from houqin.inventory.devices import Device, DeviceModel
from houqin.inventory.energy import category_of, metered_category

Report = Callable[[tuple[str | int, ...], str], None]


def check_metering_tree(devices: list[tuple[int, Device]], models: dict[str, DeviceModel], report: Report) -> None:
    by_id = {device.id: device for _, device in devices}

    def metered(model: DeviceModel) -> str | None:
        return metered_category(model.kind, model.measured_fields())

    def category(device: Device) -> str | None:
        model = models.get(device.model)
        kind_category = metered(model) if model is not None else None
        if kind_category is None:
            return None
        return category_of(device.energy_code) if device.energy_code else kind_category

    for index, device in devices:
        model = models.get(device.model)
        if model is None:
            continue  # reported on the device
        kind_category = metered(model)
        if device.energy_code is not None:
            if kind_category is None:
                report(("devices", index, "energy_code"), f"a {model.name} device meters no energy: no code")
            elif category_of(device.energy_code) != kind_category:
                report(("devices", index, "energy_code"), f"{device.energy_code} is not a code for {model.kind} "
                                                          f"(those start {kind_category[:2]})")  # fmt: skip
        if device.parent is None:
            continue
        parent = by_id.get(device.parent)
        if parent is None:
            report(("devices", index, "parent"), f"unknown device {device.parent!r}")
        elif category(parent) is None:
            report(("devices", index, "parent"), f"{device.parent!r} is not a meter")
        elif kind_category is None:
            report(("devices", index, "parent"), f"a {model.name} device meters no energy: no parent")
        elif category(parent) != category(device):
            report(("devices", index, "parent"), f"{device.parent!r} meters {category(parent)}, "
                                                 f"{device.id!r} meters {category(device)}")  # fmt: skip
    # A cycle is reported once, on the device listed first in it.
    reported: set[str] = set()
    for index, device in devices:
        path, at = [device.id], by_id.get(device.parent) if device.parent else None
        while at is not None and at.id not in path:
            path.append(at.id)
            at = by_id.get(at.parent) if at.parent else None
        if at is not None and at.id == device.id and not reported & set(path):
            reported |= set(path)
            report(("devices", index, "parent"), "the metering tree goes round: " + " -> ".join([*path, device.id]))
