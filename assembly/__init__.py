"""The composition root: houqin's object graph, built once for every entry point (``houqin run``,
``houqin demo``, the API alone, the tests' campuses), whole or as the subset that a set of roles needs.

It is the one package that imports ``collectors``, ``rules``, ``api`` and ``grafana`` together; the core
(``houqin``) imports none of them, and they import each other never.
"""

from assembly.graph import Houqin, assemble
from assembly.roles import ALL_ROLES, ProcessRole, parse_roles

__all__ = ["ALL_ROLES", "Houqin", "ProcessRole", "assemble", "parse_roles"]
