"""several processes: gateway_leases (which collecting process polls and commands each gateway)

Revision ID: 0018_gateway_leases
Revises: 0017_circuits
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0018_gateway_leases'
down_revision: str | None = '0017_circuits'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('gateway_leases',
    sa.Column('gateway', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=32), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('gateway', name=op.f('pk_gateway_leases'))
    )


def downgrade() -> None:
    op.drop_table('gateway_leases')
