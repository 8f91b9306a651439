"""room policy: low-balance level, deferred cut, overload trips, room notices

Revision ID: 0006_room_policy
Revises: 0005_payments
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006_room_policy'
down_revision: str | None = '0005_payments'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('wallets') as batch:
        batch.add_column(sa.Column('low_level', sa.Integer(), server_default='0', nullable=False))
        batch.add_column(sa.Column('cut_deferred', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column('tripped_until', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('trips', sa.Integer(), server_default='0', nullable=False))
    op.create_table('room_notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('room', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('balance_fen', sa.Integer(), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_room_notices'))
    )
    with op.batch_alter_table('room_notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_room_notices_room'), ['room'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('room_notices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_room_notices_room'))
    op.drop_table('room_notices')
    with op.batch_alter_table('wallets') as batch:
        batch.drop_column('trips')
        batch.drop_column('tripped_until')
        batch.drop_column('cut_deferred')
        batch.drop_column('low_level')
