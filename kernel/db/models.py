"""The schema of the whole product. It only ever changes through a migration in migrations/."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, ForeignKey, Index, Integer, MetaData, Numeric, String,
                        Text, UniqueConstraint, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kernel.db.types import UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL, but INTEGER on SQLite so the id is the rowid alias and autoincrements.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[str]: JSON()}


# The claim's follow-ups (retries after a conversation) and callbacks; the claim writes these constants
# into its SQL (leads/policy/candidates.py) so that the planners can use the partial indexes.
FOLLOW_UPS = "status = 'retry' AND contacts_count > 0"
CALLBACKS = "status = 'callback'"


class Lead(Base):
    __tablename__ = "leads"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(64))
    source_item_id: Mapped[str | None] = mapped_column(String(200))  # the feed's own id, for exactly-once

    phone_raw: Mapped[str | None] = mapped_column(String(100))
    phone_e164: Mapped[str | None] = mapped_column(String(20))
    phone_ext: Mapped[str | None] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(String(200))
    order_number: Mapped[str | None] = mapped_column(String(100))
    product: Mapped[str | None] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(Text)
    preferred_time: Mapped[str | None] = mapped_column(String(100))
    timezone: Mapped[str | None] = mapped_column(String(64))   # explicit IANA zone from the lead
    region: Mapped[str | None] = mapped_column(String(100))
    extra: Mapped[dict[str, Any] | None]

    status: Mapped[str] = mapped_column(String(16))
    invalid_reason: Mapped[str | None] = mapped_column(String(64))
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"))
    close_reason: Mapped[str | None] = mapped_column(String(32))
    closed_at: Mapped[datetime | None]

    # Dialing state the policy reads; kept on the lead so selection is one indexed query.
    attempts_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    contacts_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    first_dialed_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_contact_at: Mapped[datetime | None]
    last_result: Mapped[str | None] = mapped_column(String(32))
    next_attempt_at: Mapped[datetime | None]      # not before: retry delay or cadence
    callback_at: Mapped[datetime | None]
    callback_operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    sla_alerted_at: Mapped[datetime | None]
    # reports (issue 13): kept as the results are written, so a report reads the leads alone
    first_dial_allowed_at: Mapped[datetime | None]        # the first dial's call_attempts.dial_allowed_at
    first_contact_attempt_no: Mapped[int | None] = mapped_column(Integer)   # the attempt that first connected

    __table_args__ = (
        Index("ix_leads_phone_received", "phone_e164", "received_at"),
        Index("ix_leads_status_next", "status", "next_attempt_at"),
        Index("ix_leads_lease", "lease_expires_at"),
        # The claim's candidate queries (leads/policy/candidates.py), one per kind of lead:
        Index("ix_leads_status_received", "status", "received_at"),                    # new, by arrival
        Index("ix_leads_status_attempts_next", "status", "attempts_count", "next_attempt_at"),  # retries
        Index("ix_leads_status_callback", "status", "callback_at"),                    # callbacks due
        Index("ix_leads_status_contact", "status", "last_contact_at"),                 # follow-ups by cadence
        # variant 2, one bucket per attempt count (migration 0018_scale):
        Index("ix_leads_follow_ups", "attempts_count", "last_contact_at", "id",
              postgresql_where=text(FOLLOW_UPS), sqlite_where=text(FOLLOW_UPS)),
        Index("ix_leads_callbacks", "attempts_count", "callback_at", "id",
              postgresql_where=text(CALLBACKS), sqlite_where=text(CALLBACKS)),
        UniqueConstraint("source", "source_item_id", name="uq_leads_source_item"),
    )


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    interface: Mapped[str] = mapped_column(String(100), unique=True)  # queue member, e.g. PJSIP/op1
    extension: Mapped[str | None] = mapped_column(String(32))
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)     # products / tags
    level: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default="unknown", server_default="unknown")
    state_changed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class CallAttempt(Base):
    __tablename__ = "call_attempts"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    attempt_no: Mapped[int] = mapped_column(Integer)
    tier: Mapped[str | None] = mapped_column(String(32))
    daemon_id: Mapped[str] = mapped_column(String(100))
    pbx: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16), index=True)
    result: Mapped[str | None] = mapped_column(String(32))

    # Correlation with Asterisk: ActionID and ChannelId are ours; Uniqueid restarts with Asterisk.
    action_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    channel_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    uniqueid: Mapped[str | None] = mapped_column(String(100))
    channel: Mapped[str | None] = mapped_column(String(200))
    dialed_number: Mapped[str | None] = mapped_column(String(32))

    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    operator_interface: Mapped[str | None] = mapped_column(String(100))
    originate_reason: Mapped[int | None] = mapped_column(Integer)
    hangup_cause: Mapped[int | None] = mapped_column(Integer)
    hangup_cause_txt: Mapped[str | None] = mapped_column(String(100))
    tech_cause: Mapped[str | None] = mapped_column(String(32))
    dial_status: Mapped[str | None] = mapped_column(String(32))
    recording_ref: Mapped[str | None] = mapped_column(String(300))
    caller_id: Mapped[str | None] = mapped_column(String(32))   # the number shown to the customer (issue 19)

    claimed_at: Mapped[datetime]
    originated_at: Mapped[datetime | None]
    ringing_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    connected_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    wrapup_until: Mapped[datetime | None]
    # reports (issue 13): first call: when quiet hours first allowed it; callback: the promised time
    dial_allowed_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_call_attempts_lead_no", "lead_id", "attempt_no"),
        Index("ix_call_attempts_operator_claimed", "operator_id", "claimed_at"),   # calls per operator today
        Index("ix_call_attempts_claimed", "claimed_at"),   # reports (issue 13): attempts in a period
    )


class AttemptEvent(Base):
    """Each state transition of an attempt: state -> event -> new state, with the event's time."""

    __tablename__ = "attempt_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("call_attempts.id"), index=True)
    at: Mapped[datetime]
    event: Mapped[str] = mapped_column(String(64))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    detail: Mapped[dict[str, Any] | None]


class OperatorGroupMember(Base):
    """reports (issue 13): an operator's team from valid_from on, until the operator's next row."""

    __tablename__ = "operator_group_members"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    group_name: Mapped[str] = mapped_column(String(100))
    valid_from: Mapped[datetime]
    set_by: Mapped[str] = mapped_column(String(100))

    __table_args__ = (Index("ix_operator_group_members_operator_from", "operator_id", "valid_from"),)


class Disposition(Base):
    __tablename__ = "dispositions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("call_attempts.id"), unique=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    kind: Mapped[str] = mapped_column(String(32))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    callback_at: Mapped[datetime | None]
    comment: Mapped[str | None] = mapped_column(Text)
    topic: Mapped[str | None] = mapped_column(String(64))   # reports (issue 13): from settings.reports.topics
    script_id: Mapped[str | None] = mapped_column(String(100))   # the script the operator worked from
    script_version: Mapped[int | None] = mapped_column(Integer)
    custom_fields: Mapped[dict[str, Any] | None]
    recorded_by: Mapped[str] = mapped_column(String(100))  # operator name, "cli:<user>", "wrapup-timeout"
    created_at: Mapped[datetime]


class DncEntry(Base):
    __tablename__ = "dnc"

    phone_e164: Mapped[str] = mapped_column(String(20), primary_key=True)
    reason: Mapped[str | None] = mapped_column(Text)
    added_by: Mapped[str] = mapped_column(String(100))
    added_at: Mapped[datetime]


class PolicyVersion(Base):
    __tablename__ = "policy_versions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))
    values: Mapped[dict[str, Any]]
    comment: Mapped[str | None] = mapped_column(Text)


class PolicyChange(Base):
    """Audit: who changed which policy key, when, from what to what."""

    __tablename__ = "policy_changes"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("policy_versions.id"), index=True)
    key: Mapped[str] = mapped_column(String(100))
    old_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    new_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    changed_by: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime]


class OutboxMessage(Base):
    """Transactional outbox: written with the outcome, delivered to the CRM afterwards."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(64))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"))
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("call_attempts.id"))
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))   # pending, sent, dead
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_try_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    # Nightly export: the export run that took this outcome (NULL: not exported yet). Stamped in one
    # transaction per run, so an outcome committed late (PostgreSQL ids commit out of order) is simply
    # taken by the next run: nothing skipped, nothing twice.
    export_batch: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_outbox_status_next", "status", "next_try_at"),
        Index("ix_outbox_lead", "lead_id", "id"),
        Index("ix_outbox_export", "export_batch", "id"),
        Index("ix_outbox_topic_status", "topic", "status"),   # alerts (issue 14)
    )


class Cursor(Base):
    """Named positions that must survive a restart: feed cursors, export watermarks."""

    __tablename__ = "cursors"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class OperatorPresence(Base):
    """reports (issue 13): an operator became working (in the queue, not paused), paused or offline at `at`.

    A state lasts until the operator's next row; the daemon writes a row only when the state changes.
    """

    __tablename__ = "operator_presence"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    interface: Mapped[str] = mapped_column(String(100))
    pbx: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]

    __table_args__ = (Index("ix_operator_presence_interface_at", "interface", "at"),)


class ScriptGap(Base):
    """An operator's flag: the customer asked something the script does not cover."""

    __tablename__ = "script_gaps"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    script_id: Mapped[str] = mapped_column(String(100), index=True)
    script_version: Mapped[int] = mapped_column(Integer)
    question: Mapped[str] = mapped_column(Text)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"))
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("call_attempts.id"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    created_at: Mapped[datetime]


class OperatorHold(Base):
    """faults (issue 11): an operator held by one daemon for a call it is placing (one Asterisk, N daemons)."""

    __tablename__ = "operator_holds"

    pbx: Mapped[str] = mapped_column(String(100), primary_key=True)
    interface: Mapped[str] = mapped_column(String(200), primary_key=True)
    daemon_id: Mapped[str] = mapped_column(String(200))
    attempt_id: Mapped[int] = mapped_column(Integer, index=False)
    expires_at: Mapped[datetime]

    __table_args__ = (Index("ix_operator_holds_attempt", "attempt_id"),)


# ---------------------------------------------------------------- touch chains, consent ledger (issue 19)

class TouchChain(Base):
    """One lead's run through an e-mail chain (dialer/chains)."""

    __tablename__ = "touch_chains"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), unique=True)
    phone_e164: Mapped[str | None] = mapped_column(String(20), index=True)
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    chain_id: Mapped[str] = mapped_column(String(100))
    chain_version: Mapped[int] = mapped_column(Integer)
    entry: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8))
    zones: Mapped[str] = mapped_column(String(300))          # the customer's zones, comma separated
    status: Mapped[str] = mapped_column(String(16))          # active, done, stopped, skipped
    stop_reason: Mapped[str | None] = mapped_column(String(200))
    steps_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_send_at: Mapped[datetime | None]
    last_planned_at: Mapped[datetime | None]
    token: Mapped[str] = mapped_column(String(64), unique=True)   # the unsubscribe link's secret
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_touch_chains_status_next", "status", "next_send_at"),)


class TouchEmail(Base):
    """Each e-mail a chain queued: which template version, to whom, planned when; outbox_id delivers it."""

    __tablename__ = "touch_emails"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    chain_run_id: Mapped[int] = mapped_column(ForeignKey("touch_chains.id"), index=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    template: Mapped[str] = mapped_column(String(200))      # id.vN.lang#digest
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    planned_at: Mapped[datetime]
    queued_at: Mapped[datetime]
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))

    __table_args__ = (UniqueConstraint("chain_run_id", "step", name="uq_touch_emails_run_step"),)


class ConsentRecord(Base):
    """The consent ledger: where a permission to contact came from, or when it was withdrawn."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    phone_e164: Mapped[str | None] = mapped_column(String(20), index=True)
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))         # call, email
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str | None] = mapped_column(String(64))
    form_id: Mapped[str | None] = mapped_column(String(200))
    consent_text: Mapped[str | None] = mapped_column(Text)   # the text the customer agreed to, or its version
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    recorded_by: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime]


# ---------------------------------------------------------------- alerts (issue 14)

class AlertRule(Base):
    """Who gets which alert by which channel: policy data, changed with `dialer alerts rules`."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(16))          # email, telegram, webhook
    recipient: Mapped[str] = mapped_column(String(500))       # address, chat id, URL
    min_amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))   # large_order: from this sum on
    above_percent: Mapped[float | None]                       # abandon_rate_above: the threshold
    group_seconds: Mapped[int] = mapped_column(Integer, default=300, server_default="300")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    last_notice_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class AlertDispatch(Base):
    """An alert taken into a notice by a rule: once per (alert, rule), so never sent twice."""

    __tablename__ = "alert_dispatch"

    alert_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"), primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id"), primary_key=True, index=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"))
