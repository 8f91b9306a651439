"""dorm power night limit: wallets.night_limit_w

Revision ID: 0011_night_limit
Revises: 0010_curfew
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0011_night_limit'
down_revision: str | None = '0010_curfew'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('wallets') as batch:
        batch.add_column(sa.Column('night_limit_w', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('wallets') as batch:
        batch.drop_column('night_limit_w')
