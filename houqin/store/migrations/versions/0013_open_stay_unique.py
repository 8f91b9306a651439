"""shared rooms: at most one open stay per bed and per student (partial unique indexes)

Revision ID: 0013_open_stay_unique
Revises: 0012_room_stays
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0013_open_stay_unique'
down_revision: str | None = '0012_room_stays'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = sa.text("moved_out IS NULL")


def upgrade() -> None:
    op.create_index("uq_room_stays_open_bed", "room_stays", ["room", "bed"], unique=True,
                    sqlite_where=_OPEN, postgresql_where=_OPEN)
    op.create_index("uq_room_stays_open_user", "room_stays", ["user_id"], unique=True,
                    sqlite_where=_OPEN, postgresql_where=_OPEN)


def downgrade() -> None:
    op.drop_index("uq_room_stays_open_user", table_name="room_stays")
    op.drop_index("uq_room_stays_open_bed", table_name="room_stays")
