"""repair orders and faults

Revision ID: 0002_repairs
Revises: 0001_users
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002_repairs'
down_revision: str | None = '0001_users'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('repair_counters',
    sa.Column('day', sa.String(length=8), nullable=False),
    sa.Column('last', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_repair_counters'))
    )
    op.create_table('repair_orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=24), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('priority', sa.String(length=16), nullable=False),
    sa.Column('building', sa.String(length=128), nullable=True),
    sa.Column('floor', sa.Integer(), nullable=True),
    sa.Column('room', sa.String(length=64), nullable=True),
    sa.Column('device', sa.String(length=64), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('rule_id', sa.String(length=64), nullable=True),
    sa.Column('reporter_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('team', sa.String(length=64), nullable=True),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('escalated', sa.Boolean(), nullable=False),
    sa.Column('rating', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['assignee_id'], ['users.id'], name=op.f('fk_repair_orders_assignee_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['reporter_id'], ['users.id'], name=op.f('fk_repair_orders_reporter_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_repair_orders')),
    sa.UniqueConstraint('number', name=op.f('uq_repair_orders_number'))
    )
    with op.batch_alter_table('repair_orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_repair_orders_assignee_id'), ['assignee_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_repair_orders_building'), ['building'], unique=False)
        batch_op.create_index(batch_op.f('ix_repair_orders_category'), ['category'], unique=False)
        batch_op.create_index(batch_op.f('ix_repair_orders_device'), ['device'], unique=False)
        batch_op.create_index(batch_op.f('ix_repair_orders_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_repair_orders_team'), ['team'], unique=False)

    op.create_table('faults',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.String(length=64), nullable=False),
    sa.Column('device', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('activated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cleared_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('repair_order_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['repair_order_id'], ['repair_orders.id'], name=op.f('fk_faults_repair_order_id_repair_orders'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_faults'))
    )
    with op.batch_alter_table('faults', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_faults_device'), ['device'], unique=False)
        batch_op.create_index(batch_op.f('ix_faults_repair_order_id'), ['repair_order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_faults_state'), ['state'], unique=False)
        batch_op.create_index('uq_faults_open', ['rule_id', 'device'], unique=True, sqlite_where=sa.text("state != 'cleared'"), postgresql_where=sa.text("state != 'cleared'"))

    op.create_table('repair_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_repair_events_actor_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['order_id'], ['repair_orders.id'], name=op.f('fk_repair_events_order_id_repair_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_repair_events'))
    )
    with op.batch_alter_table('repair_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_repair_events_order_id'), ['order_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('repair_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_repair_events_order_id'))

    op.drop_table('repair_events')
    with op.batch_alter_table('faults', schema=None) as batch_op:
        batch_op.drop_index('uq_faults_open', sqlite_where=sa.text("state != 'cleared'"), postgresql_where=sa.text("state != 'cleared'"))
        batch_op.drop_index(batch_op.f('ix_faults_state'))
        batch_op.drop_index(batch_op.f('ix_faults_repair_order_id'))
        batch_op.drop_index(batch_op.f('ix_faults_device'))

    op.drop_table('faults')
    with op.batch_alter_table('repair_orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_repair_orders_team'))
        batch_op.drop_index(batch_op.f('ix_repair_orders_status'))
        batch_op.drop_index(batch_op.f('ix_repair_orders_device'))
        batch_op.drop_index(batch_op.f('ix_repair_orders_category'))
        batch_op.drop_index(batch_op.f('ix_repair_orders_building'))
        batch_op.drop_index(batch_op.f('ix_repair_orders_assignee_id'))

    op.drop_table('repair_orders')
    op.drop_table('repair_counters')
