"""notifications from the event logs (repair events, room notices, daily summaries): notification_deliveries,
notification_starts

Revision ID: 0014_notification_outbox
Revises: 0013_open_stay_unique
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014_notification_outbox'
down_revision: str | None = '0013_open_stay_unique'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('notification_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('hook', sa.String(length=64), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('gave_up', sa.Boolean(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_deliveries')),
    sa.UniqueConstraint('source', 'event_id', 'hook', name=op.f('uq_notification_deliveries_source'))
    )
    # What the senders look through: the events of the last day (RETAIN in houqin/outbox.py).
    op.create_index(op.f('ix_repair_events_at'), 'repair_events', ['at'], unique=False)
    op.create_index(op.f('ix_room_notices_created_at'), 'room_notices', ['created_at'], unique=False)
    op.create_table('notification_starts',
    sa.Column('hook', sa.String(length=96), nullable=False),
    sa.Column('after_event', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('hook', name=op.f('pk_notification_starts'))
    )


def downgrade() -> None:
    op.drop_table('notification_starts')
    op.drop_index(op.f('ix_room_notices_created_at'), table_name='room_notices')
    op.drop_index(op.f('ix_repair_events_at'), table_name='repair_events')
    op.drop_table('notification_deliveries')
