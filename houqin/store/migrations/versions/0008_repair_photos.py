"""repair photos

Revision ID: 0008_repair_photos
Revises: 0007_schedules
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008_repair_photos'
down_revision: str | None = '0007_schedules'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('repair_photos',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('uploaded_by', sa.String(length=64), nullable=False),
    sa.Column('content_type', sa.String(length=32), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['repair_orders.id'], name=op.f('fk_repair_photos_order_id_repair_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_repair_photos'))
    )
    op.create_index(op.f('ix_repair_photos_order_id'), 'repair_photos', ['order_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_repair_photos_order_id'), table_name='repair_photos')
    op.drop_table('repair_photos')
