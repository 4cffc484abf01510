"""operator_holds: an operator is dialed for by one daemon at a time (several daemons, one Asterisk)

Revision ID: 0011_operator_holds
Revises: 0003_crm
"""
from alembic import op
import sqlalchemy as sa
import kernel.db.types


revision = "0011_operator_holds"
down_revision = "0003_crm"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operator_holds",
        sa.Column("pbx", sa.String(length=100), nullable=False),
        sa.Column("interface", sa.String(length=200), nullable=False),
        sa.Column("daemon_id", sa.String(length=200), nullable=False),
        sa.Column("attempt_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", kernel.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pbx", "interface", name=op.f("pk_operator_holds")),
    )
    op.create_index("ix_operator_holds_attempt", "operator_holds", ["attempt_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_operator_holds_attempt", table_name="operator_holds")
    op.drop_table("operator_holds")
