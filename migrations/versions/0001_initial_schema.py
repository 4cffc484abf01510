"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 22:45:01.906447
"""
from alembic import op
import sqlalchemy as sa
import kernel.db.types


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cursors',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', kernel.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_cursors'))
    )
    op.create_table('dnc',
    sa.Column('phone_e164', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('added_by', sa.String(length=100), nullable=False),
    sa.Column('added_at', kernel.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('phone_e164', name=op.f('pk_dnc'))
    )
    op.create_table('operators',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('interface', sa.String(length=100), nullable=False),
    sa.Column('extension', sa.String(length=32), nullable=True),
    sa.Column('skills', sa.JSON(), nullable=False),
    sa.Column('level', sa.Integer(), server_default='1', nullable=False),
    sa.Column('active', sa.Boolean(), server_default='1', nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=True),
    sa.Column('state', sa.String(length=16), server_default='unknown', nullable=False),
    sa.Column('state_changed_at', kernel.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', kernel.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_operators')),
    sa.UniqueConstraint('interface', name=op.f('uq_operators_interface'))
    )
    op.create_table('policy_versions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('created_at', kernel.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('values', sa.JSON(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_policy_versions'))
    )
    op.create_table('leads',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('received_at', kernel.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('source_item_id', sa.String(length=200), nullable=True),
    sa.Column('phone_raw', sa.String(length=100), nullable=True),
    sa.Column('phone_e164', sa.String(length=20), nullable=True),
    sa.Column('phone_ext', sa.String(length=20), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('order_number', sa.String(length=100), nullable=True),
    sa.Column('product', sa.String(length=200), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('preferred_time', sa.String(length=100), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('region', sa.String(length=100), nullable=True),
    sa.Column('extra', sa.JSON(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('invalid_reason', sa.String(length=64), nullable=True),
    sa.Column('duplicate_of_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('close_reason', sa.String(length=32), nullable=True),
    sa.Column('closed_at', kernel.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('contacts_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('first_dialed_at', kernel.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_attempt_at', kernel.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_contact_at', kernel.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_result', sa.String(length=32), nullable=True),
    sa.Column('next_attempt_at', kernel.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('callback_at', kernel.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('callback_operator_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('lease_owner', sa.String(length=100), nullable=True),
    sa.Column('lease_expires_at', kernel.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sla_alerted_at', kernel.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['callback_operator_id'], ['operators.id'], name=op.f('fk_leads_callback_operator_id_operators')),
    sa.ForeignKeyConstraint(['duplicate_of_id'], ['leads.id'], name=op.f('fk_leads_duplicate_of_id_leads')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_leads')),
    sa.UniqueConstraint('source', 'source_item_id', name='uq_leads_source_item')
    )
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.create_index('ix_leads_lease', ['lease_expires_at'], unique=False)
        batch_op.create_index('ix_leads_phone_received', ['phone_e164', 'received_at'], unique=False)
        batch_op.create_index('ix_leads_status_next', ['status', 'next_attempt_at'], unique=False)

    op.create_table('policy_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('version_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('old_value', sa.JSON(), nullable=True),
    sa.Column('new_value', sa.JSON(), nullable=True),
    sa.Column('changed_by', sa.String(length=100), nullable=False),
    sa.Column('changed_at', kernel.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['policy_versions.id'], name=op.f('fk_policy_changes_version_id_policy_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_policy_changes'))
    )
    with op.batch_alter_table('policy_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_policy_changes_version_id'), ['version_id'], unique=False)

    op.create_table('call_attempts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('lead_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('attempt_no', sa.Integer(), nullable=False),
    sa.Column('tier', sa.String(length=32), nullable=True),
    sa.Column('daemon_id', sa.String(length=100), nullable=False),
    sa.Column('pbx', sa.String(length=100), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('result', sa.String(length=32), nullable=True),
    sa.Column('action_id', sa.String(length=100), nullable=True),
    sa.Column('channel_id', sa.String(length=100), nullable=True),
    sa.Column('uniqueid', sa.String(length=100), nullable=True),
    sa.Column('channel', sa.String(length=200), nullable=True),
    sa.Column('dialed_number', sa.String(length=32), nullable=True),
    sa.Column('operator_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('operator_interface', sa.String(length=100), nullable=True),
    sa.Column('originate_reason', sa.Integer(), nullable=True),
    sa.Column('hangup_cause', sa.Integer(), nullable=True),
    sa.Column('hangup_cause_txt', sa.String(length=100), nullable=True),
    sa.Column('tech_cause', sa.String(length=32), nullable=True),
    sa.Column('dial_status', sa.String(length=32), nullable=True),
    sa.Column('recording_ref', sa.String(length=300), nullable=True),
    sa.Column('claimed_at', kernel.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('originated_at', kernel.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ringing_at', kernel.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('answered_at', kernel.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('connected_at', kernel.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', kernel.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('wrapup_until', kernel.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_call_attempts_lead_id_leads')),
    sa.ForeignKeyConstraint(['operator_id'], ['operators.id'], name=op.f('fk_call_attempts_operator_id_operators')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_attempts')),
    sa.UniqueConstraint('action_id', name=op.f('uq_call_attempts_action_id')),
    sa.UniqueConstraint('channel_id', name=op.f('uq_call_attempts_channel_id'))
    )
    with op.batch_alter_table('call_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_call_attempts_lead_id'), ['lead_id'], unique=False)
        batch_op.create_index('ix_call_attempts_lead_no', ['lead_id', 'attempt_no'], unique=False)
        batch_op.create_index(batch_op.f('ix_call_attempts_state'), ['state'], unique=False)

    op.create_table('attempt_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('attempt_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', kernel.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('from_state', sa.String(length=16), nullable=True),
    sa.Column('to_state', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['attempt_id'], ['call_attempts.id'], name=op.f('fk_attempt_events_attempt_id_call_attempts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attempt_events'))
    )
    with op.batch_alter_table('attempt_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attempt_events_attempt_id'), ['attempt_id'], unique=False)

    op.create_table('dispositions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('attempt_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('lead_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('operator_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('callback_at', kernel.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('custom_fields', sa.JSON(), nullable=True),
    sa.Column('recorded_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', kernel.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['attempt_id'], ['call_attempts.id'], name=op.f('fk_dispositions_attempt_id_call_attempts')),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_dispositions_lead_id_leads')),
    sa.ForeignKeyConstraint(['operator_id'], ['operators.id'], name=op.f('fk_dispositions_operator_id_operators')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispositions')),
    sa.UniqueConstraint('attempt_id', name=op.f('uq_dispositions_attempt_id'))
    )
    with op.batch_alter_table('dispositions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dispositions_lead_id'), ['lead_id'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('lead_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('attempt_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('idempotency_key', sa.String(length=100), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('failures', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_try_at', kernel.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', kernel.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', kernel.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['attempt_id'], ['call_attempts.id'], name=op.f('fk_outbox_attempt_id_call_attempts')),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_outbox_lead_id_leads')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_outbox_idempotency_key'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_lead', ['lead_id', 'id'], unique=False)
        batch_op.create_index('ix_outbox_status_next', ['status', 'next_try_at'], unique=False)

    op.create_table('script_gaps',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('script_id', sa.String(length=100), nullable=False),
    sa.Column('script_version', sa.Integer(), nullable=False),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('lead_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('attempt_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('operator_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', kernel.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['attempt_id'], ['call_attempts.id'], name=op.f('fk_script_gaps_attempt_id_call_attempts')),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_script_gaps_lead_id_leads')),
    sa.ForeignKeyConstraint(['operator_id'], ['operators.id'], name=op.f('fk_script_gaps_operator_id_operators')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_script_gaps'))
    )
    with op.batch_alter_table('script_gaps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_script_gaps_script_id'), ['script_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('script_gaps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_script_gaps_script_id'))

    op.drop_table('script_gaps')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_status_next')
        batch_op.drop_index('ix_outbox_lead')

    op.drop_table('outbox')
    with op.batch_alter_table('dispositions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dispositions_lead_id'))

    op.drop_table('dispositions')
    with op.batch_alter_table('attempt_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attempt_events_attempt_id'))

    op.drop_table('attempt_events')
    with op.batch_alter_table('call_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_call_attempts_state'))
        batch_op.drop_index('ix_call_attempts_lead_no')
        batch_op.drop_index(batch_op.f('ix_call_attempts_lead_id'))

    op.drop_table('call_attempts')
    with op.batch_alter_table('policy_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_policy_changes_version_id'))

    op.drop_table('policy_changes')
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_index('ix_leads_status_next')
        batch_op.drop_index('ix_leads_phone_received')
        batch_op.drop_index('ix_leads_lease')

    op.drop_table('leads')
    op.drop_table('policy_versions')
    op.drop_table('operators')
    op.drop_table('dnc')
    op.drop_table('cursors')
