"""policy: indexes for the claim's candidate queries and for operators' calls today

Revision ID: 0002_policy
Revises: 0001
"""
from alembic import op


revision = "0002_policy"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_leads_status_received", "leads", ["status", "received_at"], unique=False)
    op.create_index("ix_leads_status_attempts_next", "leads", ["status", "attempts_count", "next_attempt_at"],
                    unique=False)
    op.create_index("ix_leads_status_callback", "leads", ["status", "callback_at"], unique=False)
    op.create_index("ix_leads_status_contact", "leads", ["status", "last_contact_at"], unique=False)
    op.create_index("ix_call_attempts_operator_claimed", "call_attempts", ["operator_id", "claimed_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_call_attempts_operator_claimed", table_name="call_attempts")
    op.drop_index("ix_leads_status_contact", table_name="leads")
    op.drop_index("ix_leads_status_callback", table_name="leads")
    op.drop_index("ix_leads_status_attempts_next", table_name="leads")
    op.drop_index("ix_leads_status_received", table_name="leads")
