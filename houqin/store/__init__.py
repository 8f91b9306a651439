"""The SQL store: every state change that matters is a row here before it is acted on."""

from houqin.store.database import Database
from houqin.store.migrate import current_revision, head_revision, upgrade_database

__all__ = ["Database", "current_revision", "head_revision", "upgrade_database"]
