"""program.notify_from: no unit is told of a date before it (existing programs: NULL, no limit —
they were notified of everything when they started, as before)

Revision ID: 0004
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("program") as batch:
        batch.add_column(sa.Column("notify_from", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("program") as batch:
        batch.drop_column("notify_from")
