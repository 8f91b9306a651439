"""The campus clock has one source of truth: the inventory's ``site.timezone``. The ``timezone`` setting
(``HOUQIN_TIMEZONE``) fills in only where the inventory names none; when both name one and they differ,
houqin refuses to start rather than count usage, schedules and pages in the wrong days."""

from __future__ import annotations

from houqin.inventory.inventory import Inventory
from houqin.settings import Settings


class TimezoneConflictError(ValueError):
    """The inventory and the settings name different timezones."""


def with_site_timezone(settings: Settings, inventory: Inventory) -> Settings:
    """``settings`` with the campus's timezone; raises ``TimezoneConflictError`` on a disagreement."""
    site = inventory.site
    if "timezone" in site.model_fields_set:  # the inventory names it
        if settings.timezone not in (None, site.timezone):
            raise TimezoneConflictError(
                f"timezone: {inventory.source} says site.timezone {site.timezone!r}, the setting HOUQIN_TIMEZONE "
                f"says {settings.timezone!r}; remove the setting (the inventory is the campus's own) or make them agree"
            )
        zone = site.timezone
    else:
        zone = settings.timezone or site.timezone
    return settings if settings.timezone == zone else settings.model_copy(update={"timezone": zone})
