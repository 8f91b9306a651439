"""appliance trips and room locks: wallets.locked, room_power_events

Revision ID: 0009_appliance_locks
Revises: 0008_repair_photos
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009_appliance_locks'
down_revision: str | None = '0008_repair_photos'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('wallets') as batch:
        batch.add_column(sa.Column('locked', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table('room_power_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('room', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('step_w', sa.Float(), nullable=True),
    sa.Column('power_factor', sa.Float(), nullable=True),
    sa.Column('restore_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('by', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_room_power_events'))
    )
    with op.batch_alter_table('room_power_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_room_power_events_room'), ['room'], unique=False)
        batch_op.create_index(batch_op.f('ix_room_power_events_at'), ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('room_power_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_room_power_events_at'))
        batch_op.drop_index(batch_op.f('ix_room_power_events_room'))
    op.drop_table('room_power_events')
    with op.batch_alter_table('wallets') as batch:
        batch.drop_column('locked')
