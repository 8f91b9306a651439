"""shared rooms: room_stays (who lived on which bed, from when to when)

Revision ID: 0012_room_stays
Revises: 0011_night_limit
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0012_room_stays'
down_revision: str | None = '0011_night_limit'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('room_stays',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('room', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('bed', sa.Integer(), nullable=False),
    sa.Column('moved_in', sa.Date(), nullable=False),
    sa.Column('moved_out', sa.Date(), nullable=True),
    sa.Column('moved_in_by', sa.String(length=64), nullable=False),
    sa.Column('moved_out_by', sa.String(length=64), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_room_stays_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_room_stays'))
    )
    with op.batch_alter_table('room_stays', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_room_stays_room'), ['room'], unique=False)
        batch_op.create_index(batch_op.f('ix_room_stays_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('room_stays', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_room_stays_user_id'))
        batch_op.drop_index(batch_op.f('ix_room_stays_room'))
    op.drop_table('room_stays')
