"""wallets, ledger and meter billing

Revision ID: 0004_ledger
Revises: 0003_commands
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004_ledger'
down_revision: str | None = '0003_commands'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('billing_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('room', sa.String(length=64), nullable=False),
    sa.Column('meter', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('before_kwh', sa.Float(), nullable=True),
    sa.Column('after_kwh', sa.Float(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_events'))
    )
    with op.batch_alter_table('billing_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_billing_events_room'), ['room'], unique=False)

    op.create_table('ledger_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('room', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('amount_fen', sa.Integer(), nullable=False),
    sa.Column('balance_after_fen', sa.Integer(), nullable=False),
    sa.Column('kwh', sa.Float(), nullable=True),
    sa.Column('cause', sa.String(length=255), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('key', sa.String(length=160), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entries')),
    sa.UniqueConstraint('key', name=op.f('uq_ledger_entries_key'))
    )
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_entries_room'), ['room'], unique=False)

    op.create_table('meter_billing',
    sa.Column('meter', sa.String(length=64), nullable=False),
    sa.Column('room', sa.String(length=64), nullable=False),
    sa.Column('last_ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_kwh', sa.Float(), nullable=False),
    sa.Column('carry_micro_fen', sa.Integer(), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('free_used_kwh', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('meter', name=op.f('pk_meter_billing'))
    )
    op.create_table('wallets',
    sa.Column('room', sa.String(length=64), nullable=False),
    sa.Column('balance_fen', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('room', name=op.f('pk_wallets'))
    )


def downgrade() -> None:
    op.drop_table('wallets')
    op.drop_table('meter_billing')
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_entries_room'))

    op.drop_table('ledger_entries')
    with op.batch_alter_table('billing_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_events_room'))

    op.drop_table('billing_events')
