"""schedules: calendar, schedules, overrides, emergency broadcasts, firings, lease; command arguments

Revision ID: 0007_schedules
Revises: 0006_room_policy
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007_schedules'
down_revision: str | None = '0006_room_policy'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('calendar_days',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('day_type', sa.String(length=32), nullable=False),
    sa.Column('follows', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_calendar_days'))
    )
    op.create_table('calendar_terms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('start', sa.Date(), nullable=False),
    sa.Column('end', sa.Date(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_terms')),
    sa.UniqueConstraint('name', name=op.f('uq_calendar_terms_name'))
    )
    op.create_table('emergency_broadcasts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('zones', sa.JSON(), nullable=False),
    sa.Column('programme', sa.String(length=64), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('requested_by', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_by', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_emergency_broadcasts'))
    )
    op.create_table('schedule_firings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=160), nullable=False),
    sa.Column('zone', sa.String(length=64), nullable=False),
    sa.Column('cause', sa.String(length=96), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedule_firings')),
    sa.UniqueConstraint('key', name=op.f('uq_schedule_firings_key'))
    )
    with op.batch_alter_table('schedule_firings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schedule_firings_due_at'), ['due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_schedule_firings_zone'), ['zone'], unique=False)

    op.create_table('scheduler_lease',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fired_through', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_scheduler_lease'))
    )
    op.create_table('schedules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('zone', sa.String(length=64), nullable=False),
    sa.Column('day_types', sa.JSON(), nullable=False),
    sa.Column('entries', sa.JSON(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedules')),
    sa.UniqueConstraint('name', name=op.f('uq_schedules_name'))
    )
    with op.batch_alter_table('schedules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schedules_zone'), ['zone'], unique=False)

    op.create_table('zone_overrides',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('zone', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('level', sa.Integer(), nullable=True),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('requested_by', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_by', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_zone_overrides'))
    )
    with op.batch_alter_table('zone_overrides', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_zone_overrides_zone'), ['zone'], unique=False)

    with op.batch_alter_table('device_commands', schema=None) as batch_op:
        batch_op.add_column(sa.Column('arguments', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('correlation_id', sa.String(length=36), server_default='', nullable=False))
        batch_op.add_column(sa.Column('deadline', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('zone', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_device_commands_zone'), ['zone'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('device_commands', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_commands_zone'))
        batch_op.drop_column('zone')
        batch_op.drop_column('sent_at')
        batch_op.drop_column('deadline')
        batch_op.drop_column('correlation_id')
        batch_op.drop_column('arguments')

    with op.batch_alter_table('zone_overrides', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_zone_overrides_zone'))

    op.drop_table('zone_overrides')
    with op.batch_alter_table('schedules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_schedules_zone'))

    op.drop_table('schedules')
    op.drop_table('scheduler_lease')
    with op.batch_alter_table('schedule_firings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_schedule_firings_zone'))
        batch_op.drop_index(batch_op.f('ix_schedule_firings_due_at'))

    op.drop_table('schedule_firings')
    op.drop_table('emergency_broadcasts')
    op.drop_table('calendar_terms')
    op.drop_table('calendar_days')
