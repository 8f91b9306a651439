"""circuits: room_allowances (free allowance per room and tariff pool), ledger_entries.circuit, wider keys

Revision ID: 0017_circuits
Revises: 0016_houqin_processes
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0017_circuits'
down_revision: str | None = '0016_houqin_processes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('room_allowances',
    sa.Column('room', sa.String(length=64), nullable=False),
    sa.Column('pool', sa.String(length=64), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('used_kwh', sa.Float(), nullable=False),
    sa.Column('last_month', sa.String(length=7), nullable=True),
    sa.Column('last_used_kwh', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('room', 'pool', name=op.f('pk_room_allowances'))
    )
    # The allowance each room used this month moves from its meter's billing row (the latest, should the
    # room have had its meter replaced) to the room's own pool; an imported allowance not yet billed too.
    op.execute("""
        INSERT INTO room_allowances (room, pool, month, used_kwh, last_month, last_used_kwh)
        SELECT b.room, '', b.month, b.free_used_kwh, NULL, 0.0 FROM meter_billing b
        WHERE b.last_ts = (SELECT MAX(o.last_ts) FROM meter_billing o WHERE o.room = b.room)
        AND b.meter = (SELECT MIN(o.meter) FROM meter_billing o WHERE o.room = b.room AND o.last_ts = b.last_ts)
    """)
    op.execute("""
        INSERT INTO room_allowances (room, pool, month, used_kwh, last_month, last_used_kwh)
        SELECT a.room, '', a.month, a.free_used_kwh, NULL, 0.0 FROM opening_allowances a
        WHERE NOT EXISTS (SELECT 1 FROM room_allowances r WHERE r.room = a.room)
    """)
    with op.batch_alter_table('meter_billing', schema=None) as batch_op:
        batch_op.drop_column('free_used_kwh')
        batch_op.alter_column('meter', existing_type=sa.String(length=64), type_=sa.String(length=160),
                              existing_nullable=False)
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('circuit', sa.String(length=64), nullable=True))
        batch_op.alter_column('key', existing_type=sa.String(length=160), type_=sa.String(length=255),
                              existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_column('circuit')
        batch_op.alter_column('key', existing_type=sa.String(length=255), type_=sa.String(length=160),
                              existing_nullable=False)
    with op.batch_alter_table('meter_billing', schema=None) as batch_op:
        batch_op.alter_column('meter', existing_type=sa.String(length=160), type_=sa.String(length=64),
                              existing_nullable=False)
        batch_op.add_column(sa.Column('free_used_kwh', sa.Float(), nullable=False, server_default='0'))
    op.execute("""
        UPDATE meter_billing SET free_used_kwh = COALESCE((SELECT r.used_kwh FROM room_allowances r
        WHERE r.room = meter_billing.room AND r.pool = '' AND r.month = meter_billing.month), 0)
    """)
    op.drop_table('room_allowances')
