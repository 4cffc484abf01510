"""alerts: the rule table (who gets which alert, by which channel) and which rule took which alert

Revision ID: 0020_alerts
Revises: 0003_crm
"""
from alembic import op
import sqlalchemy as sa

from kernel.db.types import UTCDateTime

revision = "0020_alerts"
down_revision = "0003_crm"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(500), nullable=False),
        sa.Column("min_amount", sa.Numeric(14, 2)),
        sa.Column("above_percent", sa.Float()),
        sa.Column("group_seconds", sa.Integer(), nullable=False, server_default="300"),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default="1"),
        sa.Column("last_notice_at", UTCDateTime(timezone=True)),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_rules"),
    )
    op.create_table(
        "alert_dispatch",
        sa.Column("alert_id", Id, sa.ForeignKey("outbox.id", name="fk_alert_dispatch_alert_id_outbox"),
                  nullable=False),
        sa.Column("rule_id", Id, sa.ForeignKey("alert_rules.id", name="fk_alert_dispatch_rule_id_alert_rules"),
                  nullable=False),
        sa.Column("notice_id", Id, sa.ForeignKey("outbox.id", name="fk_alert_dispatch_notice_id_outbox"),
                  nullable=False),
        sa.PrimaryKeyConstraint("alert_id", "rule_id", name="pk_alert_dispatch"),
    )
    op.create_index("ix_alert_dispatch_rule_id", "alert_dispatch", ["rule_id"])
    op.create_index("ix_outbox_topic_status", "outbox", ["topic", "status"])


def downgrade() -> None:
    op.drop_index("ix_outbox_topic_status", "outbox")
    op.drop_table("alert_dispatch")
    op.drop_table("alert_rules")
