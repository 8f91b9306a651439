"""dorm curfew: wallets.curfew

Revision ID: 0010_curfew
Revises: 0009_appliance_locks
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0010_curfew'
down_revision: str | None = '0009_appliance_locks'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('wallets') as batch:
        batch.add_column(sa.Column('curfew', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('wallets') as batch:
        batch.drop_column('curfew')
