"""reports: what the remaining KPIs need recorded as it happens

- call_attempts.dial_allowed_at: the moment this call's promptness is measured from (first call: when quiet
  hours of the center and of the customer first allowed dialing; callback: the promised time);
- leads.first_dial_allowed_at, leads.first_contact_attempt_no: the same facts of the lead's first dial and
  first conversation, kept on the lead as the results are written, so that a report reads the leads alone
  (filled here from the attempts already stored);
- dispositions.script_id / script_version: the script the operator worked from (the `script` breakdown);
- operator_presence: each change of an operator between working (in the queue, not paused), paused and
  offline, as the daemon learns it from Asterisk (hours worked, occupancy).

Revision ID: 0021_kpis
Revises: 0003_crm
"""
from alembic import op
import sqlalchemy as sa

from kernel.db.models import Id
from kernel.db.types import UTCDateTime

revision = "0021_kpis"
down_revision = "0003_crm"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("call_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dial_allowed_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_dial_allowed_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("first_contact_attempt_no", sa.Integer(), nullable=True))
    op.execute("UPDATE leads SET first_contact_attempt_no = (SELECT min(a.attempt_no) FROM call_attempts a "
               "WHERE a.lead_id = leads.id AND (a.result = 'connected' OR a.connected_at IS NOT NULL)) "
               "WHERE contacts_count > 0 OR EXISTS (SELECT 1 FROM call_attempts a WHERE a.lead_id = leads.id "
               "AND (a.result = 'connected' OR a.connected_at IS NOT NULL))")
    with op.batch_alter_table("dispositions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("script_id", sa.String(100), nullable=True))
        batch_op.add_column(sa.Column("script_version", sa.Integer(), nullable=True))
    op.create_table(
        "operator_presence",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("interface", sa.String(100), nullable=False),
        sa.Column("pbx", sa.String(100), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_operator_presence"),
    )
    op.create_index("ix_operator_presence_interface_at", "operator_presence", ["interface", "at"])


def downgrade() -> None:
    op.drop_index("ix_operator_presence_interface_at", table_name="operator_presence")
    op.drop_table("operator_presence")
    with op.batch_alter_table("dispositions", schema=None) as batch_op:
        batch_op.drop_column("script_version")
        batch_op.drop_column("script_id")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_column("first_contact_attempt_no")
        batch_op.drop_column("first_dial_allowed_at")
    with op.batch_alter_table("call_attempts", schema=None) as batch_op:
        batch_op.drop_column("dial_allowed_at")
