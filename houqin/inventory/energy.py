"""Energy classification (分类分项) as China's campus and public-building energy-monitoring guidelines
define it, and the buildings' areas and occupants that intensities are worked out from.

A code is five characters: the category in the first two digits (01 electricity, 02 water, 03 gas, 04
central heating, 05 central cooling, 06 other) and, for electricity, the sub-item in the third (A lighting
and sockets, B air conditioning, C power, D special) with an optional second level in the fourth (01A10
lighting and sockets proper, 01A20 corridors and emergency lighting, 01B10 the chiller plant, ...). A
meter without a code is counted under its kind's category.
"""

from __future__ import annotations

import re
from collections.abc import Container
from typing import Annotated

from pydantic import AfterValidator, Field

from houqin.inventory.entries import Entry, _between

CATEGORY_NAMES = {"01000": "electricity", "02000": "water", "03000": "gas", "04000": "central heating",
                  "05000": "central cooling", "06000": "other"}  # fmt: skip
SUB_ITEM_NAMES = {"01A00": "lighting and sockets", "01B00": "air conditioning", "01C00": "power",
                  "01D00": "special"}  # fmt: skip
# The category a meter of each kind is counted under when it carries no code.
KIND_CATEGORY = {"electricity": "01000", "water": "02000", "gas": "03000", "heat": "04000"}
# What each category is measured in, and the field of a meter's reading that counts it up.
UNITS = {"01000": "kWh", "02000": "m³", "03000": "m³", "04000": "kWh", "05000": "kWh", "06000": ""}
CUMULATIVE_FIELD = {"electricity": "energy", "water": "total", "gas": "total", "heat": "heat_energy"}

_CODE = re.compile(r"^(0[1-6])([0A-D])([0-9])0$")


def _energy_code(value: str) -> str:
    match = _CODE.match(value)
    if match is None:
        raise ValueError(f"an energy code is five characters like 01A00 (lighting and sockets) or 02000 (water), "
                         f"got {value!r}")  # fmt: skip
    category, item, level = match.groups()
    if item == "0" and level != "0":
        raise ValueError(f"{value!r}: a second level needs a sub-item letter (01A10, not 01010)")
    if item != "0" and category != "01":
        raise ValueError(f"{value!r}: only electricity (01) has sub-items A-D")
    return value


EnergyCode = Annotated[str, AfterValidator(_energy_code)]


def category_of(code: str) -> str:
    return code[:2] + "000"


def sub_item_of(code: str) -> str:
    """The first-level sub-item (01A00), or the category itself for a code without one."""
    return code[:3] + "00"


class Building(Entry):
    """A building's gross floor area and occupants: what energy per m² and per person is worked out from."""

    id: str = Field(min_length=1, max_length=64)
    name: str = ""
    floor_area_m2: Annotated[float, _between(1, 10_000_000)] | None = None
    occupants: Annotated[int, _between(0, 1_000_000)] | None = None


def metered_category(kind: str, measured: Container[str]) -> str | None:
    """The category a device of ``kind`` counts under if it measures its kind's cumulative field (a relay
    module is an electricity device that meters nothing); None otherwise."""
    field = CUMULATIVE_FIELD.get(kind)
    return KIND_CATEGORY.get(kind) if field is not None and field in measured else None
