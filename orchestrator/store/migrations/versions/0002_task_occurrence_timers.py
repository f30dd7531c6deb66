"""timers per task occurrence (timer.task/occurrence/due/opens), escalations listing the late
units (notification_item.late);
a partial index on the pending items (an item leaves it when it is queued)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("timer") as batch:
        batch.add_column(sa.Column("task", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch.add_column(sa.Column("occurrence", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch.add_column(sa.Column("due", sa.Date(), nullable=True))
        batch.add_column(sa.Column("opens", sa.Date(), nullable=True))
    with op.batch_alter_table("notification_item") as batch:
        batch.add_column(sa.Column("late", sa.JSON(), nullable=True))
    op.create_index("ix_obligation_group", "obligation", ["program_id", "task", "due"], unique=False)
    op.drop_index("ix_item_due", table_name="notification_item")
    op.create_index(
        "ix_item_pending",
        "notification_item",
        ["send_at"],
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_item_pending", table_name="notification_item")
    op.create_index("ix_item_due", "notification_item", ["state", "send_at"])
    op.drop_index("ix_obligation_group", table_name="obligation")
    with op.batch_alter_table("notification_item") as batch:
        batch.drop_column("late")
    with op.batch_alter_table("timer") as batch:
        batch.drop_column("opens")
        batch.drop_column("due")
        batch.drop_column("occurrence")
        batch.drop_column("task")
