"""moving in: opening_allowances (the month's free allowance used in the previous system)

Revision ID: 0015_opening_allowance
Revises: 0014_notification_outbox
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0015_opening_allowance'
down_revision: str | None = '0014_notification_outbox'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('opening_allowances',
    sa.Column('room', sa.String(length=64), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('free_used_kwh', sa.Float(), nullable=False),
    sa.Column('source', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('room', name=op.f('pk_opening_allowances'))
    )


def downgrade() -> None:
    op.drop_table('opening_allowances')
