"""leads: indexes for variant 2's per-attempt-count follow-ups and callbacks (issue 18)

In tier variant 2 every attempt count is a bucket. Its follow-ups were read through
(status, last_contact_at) or (status, attempts_count, next_attempt_at), its callbacks through
(status, callback_at), filtering row by row: at 1M leads a claim without new leads cost the server
~28 ms of CPU. The follow-ups get a partial index (only retries after a conversation, a few percent
of the table), the callbacks another (the claim writes these constants into its SQL so that the
planners can use them). Both are partial: a lead that is neither costs no index entry when stored.
PostgreSQL also gets statistics of status, attempts_count and contacts_count together: counted as
independent, the follow-ups and callbacks of one attempt count were underestimated 10-100 times, and
the planner read all of them and sorted them (700 rows at 1M leads) instead of walking the index.

Revision ID: 0018_scale
Revises: 0003_crm
"""
from alembic import op
import sqlalchemy as sa


revision = "0018_scale"
down_revision = "0003_crm"
branch_labels = None
depends_on = None

FOLLOW_UPS = "status = 'retry' AND contacts_count > 0"
CALLBACKS = "status = 'callback'"


def upgrade() -> None:
    op.create_index("ix_leads_follow_ups", "leads", ["attempts_count", "last_contact_at", "id"],
                    postgresql_where=sa.text(FOLLOW_UPS), sqlite_where=sa.text(FOLLOW_UPS))
    op.create_index("ix_leads_callbacks", "leads", ["attempts_count", "callback_at", "id"],
                    postgresql_where=sa.text(CALLBACKS), sqlite_where=sa.text(CALLBACKS))
    if op.get_context().dialect.name == "postgresql":
        op.execute("CREATE STATISTICS st_leads_status_counts (mcv, dependencies) "
                   "ON status, attempts_count, contacts_count FROM leads")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP STATISTICS IF EXISTS st_leads_status_counts")
    op.drop_index("ix_leads_callbacks", table_name="leads")
    op.drop_index("ix_leads_follow_ups", table_name="leads")
