"""an indicator value may say "not applicable" (indicator_value.not_applicable, value NULL)

Revision ID: 0006
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("indicator_value") as batch:
        batch.add_column(sa.Column("not_applicable", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.alter_column("value", existing_type=sa.Float(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM indicator_value WHERE not_applicable")
    with op.batch_alter_table("indicator_value") as batch:
        batch.alter_column("value", existing_type=sa.Float(), nullable=False)
        batch.drop_column("not_applicable")
