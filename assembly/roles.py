"""What one houqin process does: every role by default, or a subset of them."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class ProcessRole(StrEnum):
    API = "api"  # the HTTP API and the web pages
    COLLECT = "collect"  # links, pollers, the pipeline, telemetry storage, command dispatchers
    RULES = "rules"  # the rules engine, the repair clock
    BILLING = "billing"  # metering, the power policy's sweep, overload trips
    SCHEDULER = "scheduler"  # lighting and broadcast schedules


ALL_ROLES: frozenset[ProcessRole] = frozenset(ProcessRole)


class UnknownRoleError(ValueError):
    pass


def parse_roles(names: Iterable[str]) -> frozenset[ProcessRole]:
    """Roles from their names (``api``, ``collect``…; comma-separated parts allowed); an unknown name is an
    error that lists the valid ones."""
    roles: set[ProcessRole] = set()
    for part in names:
        for name in filter(None, (piece.strip().lower() for piece in part.split(","))):
            try:
                roles.add(ProcessRole(name))
            except ValueError:
                valid = ", ".join(role.value for role in ProcessRole)
                raise UnknownRoleError(f"unknown role {name!r}: the roles are {valid}") from None
    if not roles:
        raise UnknownRoleError("no role given")
    return frozenset(roles)
