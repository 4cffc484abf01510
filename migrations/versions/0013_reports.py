"""reports: operator groups over time, an optional topic on dispositions

Revision ID: 0013_reports
Revises: 0003_crm
"""
from alembic import op
import sqlalchemy as sa

from kernel.db.models import Id
from kernel.db.types import UTCDateTime

revision = "0013_reports"
down_revision = "0003_crm"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operator_group_members",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("operator_id", Id, sa.ForeignKey("operators.id", name="fk_operator_group_members_operator_id_operators"),
                  nullable=False),
        sa.Column("group_name", sa.String(100), nullable=False),
        sa.Column("valid_from", UTCDateTime(), nullable=False),
        sa.Column("set_by", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_operator_group_members"),
    )
    op.create_index("ix_operator_group_members_operator_from", "operator_group_members",
                    ["operator_id", "valid_from"])
    with op.batch_alter_table("dispositions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("topic", sa.String(64), nullable=True))
    # Reports by day/hour read attempts by their time, and leads by arrival with their first dial.
    op.create_index("ix_call_attempts_claimed", "call_attempts", ["claimed_at"])


def downgrade() -> None:
    op.drop_index("ix_call_attempts_claimed", table_name="call_attempts")
    with op.batch_alter_table("dispositions", schema=None) as batch_op:
        batch_op.drop_column("topic")
    op.drop_index("ix_operator_group_members_operator_from", table_name="operator_group_members")
    op.drop_table("operator_group_members")
