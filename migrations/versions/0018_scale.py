"""leads: indexes for variant 2's per-attempt-count follow-ups and callbacks (issue 18)

In tier variant 2 every attempt count is a bucket; its follow-ups and callbacks were read through
(status, last_contact_at) and (status, callback_at), filtering attempts_count row by row, so a bucket
with few leads of its count scanned most of the follow-ups/callbacks of the others.

Revision ID: 0018_scale
Revises: 0003_crm
"""
from alembic import op


revision = "0018_scale"
down_revision = "0003_crm"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_leads_status_attempts_contact", "leads", ["status", "attempts_count", "last_contact_at"])
    op.create_index("ix_leads_status_attempts_callback", "leads", ["status", "attempts_count", "callback_at"])


def downgrade() -> None:
    op.drop_index("ix_leads_status_attempts_callback", table_name="leads")
    op.drop_index("ix_leads_status_attempts_contact", table_name="leads")
