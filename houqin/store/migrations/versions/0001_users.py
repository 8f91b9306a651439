"""users and their rooms

Revision ID: 0001_users
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_users"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("team", sa.String(length=64), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "user_rooms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_rooms_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_rooms")),
        sa.UniqueConstraint("user_id", "room_id", name=op.f("uq_user_rooms_user_id")),
    )
    op.create_index(op.f("ix_user_rooms_user_id"), "user_rooms", ["user_id"], unique=False)
    op.create_index(op.f("ix_user_rooms_room_id"), "user_rooms", ["room_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_user_rooms_room_id"), table_name="user_rooms")
    op.drop_index(op.f("ix_user_rooms_user_id"), table_name="user_rooms")
    op.drop_table("user_rooms")
    op.drop_table("users")
