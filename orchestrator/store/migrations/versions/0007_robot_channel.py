"""a channel per outbox row (``email`` or ``robot:NAME``) and the email a robot message goes with

Revision ID: 0007
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_message") as batch:
        batch.add_column(
            sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(), server_default="email", nullable=False)
        )
        batch.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_outbox_message_parent_id", "outbox_message", ["parent_id"], ["id"])
        batch.create_index("ix_outbox_message_parent_id", ["parent_id"], unique=False)
        batch.create_index("ix_outbox_channel_sent", ["channel", "sent_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox_message") as batch:
        batch.drop_index("ix_outbox_channel_sent")
        batch.drop_index("ix_outbox_message_parent_id")
        batch.drop_constraint("fk_outbox_message_parent_id", type_="foreignkey")
        batch.drop_column("parent_id")
        batch.drop_column("channel")
