"""outbox: export batch of each outcome (exactly-once nightly export)

Revision ID: 0003_crm
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = "0003_crm"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("export_batch", sa.Integer(), nullable=True))
        batch_op.create_index("ix_outbox_export", ["export_batch", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_export")
        batch_op.drop_column("export_batch")
