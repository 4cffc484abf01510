"""touch chains: e-mail chains, the e-mails they queued, the consent ledger, the caller ID of each attempt

Revision ID: 0019_touch
Revises: 0003_crm
"""
from alembic import op
import sqlalchemy as sa

from kernel.db.types import UTCDateTime

revision = "0019_touch"
down_revision = "0003_crm"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "touch_chains",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("lead_id", Id, sa.ForeignKey("leads.id", name="fk_touch_chains_lead_id_leads"), nullable=False),
        sa.Column("phone_e164", sa.String(20)),
        sa.Column("email", sa.String(320)),
        sa.Column("chain_id", sa.String(100), nullable=False),
        sa.Column("chain_version", sa.Integer(), nullable=False),
        sa.Column("entry", sa.String(32), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("zones", sa.String(300), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stop_reason", sa.String(200)),
        sa.Column("steps_sent", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_send_at", UTCDateTime(timezone=True)),
        sa.Column("last_planned_at", UTCDateTime(timezone=True)),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", UTCDateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_touch_chains"),
        sa.UniqueConstraint("lead_id", name="uq_touch_chains_lead_id"),
        sa.UniqueConstraint("token", name="uq_touch_chains_token"),
    )
    op.create_index("ix_touch_chains_phone_e164", "touch_chains", ["phone_e164"])
    op.create_index("ix_touch_chains_email", "touch_chains", ["email"])
    op.create_index("ix_touch_chains_status_next", "touch_chains", ["status", "next_send_at"])
    op.create_table(
        "touch_emails",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("chain_run_id", Id, sa.ForeignKey("touch_chains.id",
                                                    name="fk_touch_emails_chain_run_id_touch_chains"),
                  nullable=False),
        sa.Column("lead_id", Id, sa.ForeignKey("leads.id", name="fk_touch_emails_lead_id_leads"), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("template", sa.String(200), nullable=False),
        sa.Column("to_address", sa.String(320), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("planned_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("queued_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("outbox_id", Id, sa.ForeignKey("outbox.id", name="fk_touch_emails_outbox_id_outbox")),
        sa.PrimaryKeyConstraint("id", name="pk_touch_emails"),
        sa.UniqueConstraint("chain_run_id", "step", name="uq_touch_emails_run_step"),
    )
    op.create_index("ix_touch_emails_chain_run_id", "touch_emails", ["chain_run_id"])
    op.create_index("ix_touch_emails_lead_id", "touch_emails", ["lead_id"])
    op.create_table(
        "consents",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("phone_e164", sa.String(20)),
        sa.Column("email", sa.String(320)),
        sa.Column("lead_id", Id, sa.ForeignKey("leads.id", name="fk_consents_lead_id_leads")),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(64)),
        sa.Column("form_id", sa.String(200)),
        sa.Column("consent_text", sa.Text()),
        sa.Column("ip", sa.String(64)),
        sa.Column("user_agent", sa.String(500)),
        sa.Column("recorded_by", sa.String(100), nullable=False),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_consents"),
    )
    op.create_index("ix_consents_phone_e164", "consents", ["phone_e164"])
    op.create_index("ix_consents_email", "consents", ["email"])
    op.create_index("ix_consents_lead_id", "consents", ["lead_id"])
    with op.batch_alter_table("call_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("caller_id", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_attempts", schema=None) as batch_op:
        batch_op.drop_column("caller_id")
    op.drop_table("consents")
    op.drop_table("touch_emails")
    op.drop_table("touch_chains")
