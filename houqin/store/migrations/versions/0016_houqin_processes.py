"""several processes: houqin_processes (who runs on this database, with what files, last heard of when)

Revision ID: 0016_houqin_processes
Revises: 0015_opening_allowance
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0016_houqin_processes'
down_revision: str | None = '0015_opening_allowance'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('houqin_processes',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('roles', sa.String(length=255), nullable=False),
    sa.Column('files', sa.Text(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_houqin_processes'))
    )
    with op.batch_alter_table('houqin_processes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_houqin_processes_seen_at'), ['seen_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('houqin_processes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_houqin_processes_seen_at'))
    op.drop_table('houqin_processes')
