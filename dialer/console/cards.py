"""The call card an operator sees when a call reaches them: the lead, its earlier calls and
dispositions, and the call script for this contact with the lead's details filled in.

Read from the store in one read transaction (blocking: the console runs it in a worker thread).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import phonenumbers
from sqlalchemy import and_, exists, or_, select

from kernel.clock import require_aware
from kernel.db.engine import Database
from kernel.db.models import CallAttempt, Disposition, Lead, Operator
from kernel.errors import NotFound
from leads.attempt import AttemptState, CallResult
from scripts_catalog import (Catalog, CatalogInvalid, LeadFacts, NoScript, RenderedScript, load_catalog, render,
                             select_for_lead)
from scripts_catalog.loader import catalog_files

log = logging.getLogger("dialer.console.cards")


@dataclass(frozen=True)
class DispositionSummary:
    kind: str
    amount: Decimal | None
    currency: str | None
    callback_at: datetime | None
    comment: str | None
    recorded_by: str
    created_at: datetime


@dataclass(frozen=True)
class PastCall:
    attempt_id: int
    attempt_no: int
    at: datetime
    result: str                      # a CallResult value, or the state of a call still in progress
    operator: str | None
    disposition: DispositionSummary | None


@dataclass(frozen=True)
class ScriptChoice:
    script: RenderedScript | None
    reason: str = ""
    problem: str | None = None       # why there is no script (catalog invalid, none fits)
    words: str = ""                  # the reason, or the problem, in Russian: what the operator reads


@dataclass(frozen=True)
class CallCard:
    attempt_id: int
    lead_id: int
    operator_id: int | None
    operator_interface: str | None
    state: str
    connected_at: datetime | None
    ended_at: datetime | None
    name: str | None
    phone: str                       # as the operator reads it: +7 912 345-67-89
    order_number: str | None
    product: str | None
    source: str
    received_at: datetime
    comment: str | None
    preferred_time: str | None
    region: str | None
    timezone: str | None
    extra: dict[str, Any] = field(default_factory=dict)
    contact_number: int = 1
    history: tuple[PastCall, ...] = ()
    disposition: DispositionSummary | None = None
    script: ScriptChoice = ScriptChoice(None)
    customer_zones: tuple[str, ...] = ()   # the zone(s) whose quiet hours apply to the lead (issue 12)
    zone_source: str | None = None         # where they come from, in the operator's words


def owns_call(call_operator_id: int | None, call_interface: str | None, operator_id: int | None,
              interface: str | None) -> bool:
    """Is a call (taken by operator `call_operator_id` on phone `call_interface`) this operator's?

    By operator id; a call whose phone was not registered to any operator when it connected belongs to
    the operator who has that phone.
    """
    if call_operator_id is not None:
        return operator_id is not None and call_operator_id == operator_id
    return interface is not None and call_interface == interface


class ScriptBook:
    """The scripts catalog as the console uses it: read on first use and again when a file changes.

    A catalog with errors gives no script and the problem in words (the call card still shows the lead).
    """

    def __init__(self, directory: str | Path, language: str) -> None:
        self.directory = Path(directory)
        self.language = language
        self._lock = threading.Lock()
        self._signature: tuple | None = None
        self._catalog: Catalog | None = None
        self._problem: str | None = None

    def catalog(self) -> tuple[Catalog | None, str | None]:
        with self._lock:
            signature = self._files_signature()
            if signature != self._signature:
                try:
                    self._catalog, self._problem = load_catalog(self.directory), None
                except CatalogInvalid as exc:
                    self._catalog, self._problem = None, f"the scripts catalog has errors: {exc}"
                    log.error("console.catalog_invalid directory=%s: %s", self.directory, exc)
                except OSError as exc:
                    self._catalog, self._problem = None, f"the scripts catalog cannot be read: {exc}"
                self._signature = signature
            return self._catalog, self._problem

    def _files_signature(self) -> tuple:
        try:
            return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in catalog_files(self.directory))
        except OSError:
            return ()

    def choose(self, facts: LeadFacts, contact: int) -> ScriptChoice:
        catalog, problem = self.catalog()
        if catalog is None:
            return ScriptChoice(None, problem=problem,
                                words="каталог сценариев сейчас не читается; сообщите руководителю смены")
        try:
            choice = select_for_lead(catalog, facts, self.language, contact=contact)
        except NoScript as exc:
            return ScriptChoice(None, problem=str(exc), words="для этой заявки в каталоге нет сценария, даже "
                                                              "сценария по умолчанию; сообщите руководителю смены")
        return ScriptChoice(render(choice.script, facts), choice.reason, words=choice.words)


def display_phone(e164: str | None, raw: str | None) -> str:
    if e164:
        try:
            return phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        except phonenumbers.NumberParseException:
            return e164
    return raw or "—"


def _was_connected():
    return or_(CallAttempt.connected_at.is_not(None), CallAttempt.result == CallResult.CONNECTED.value)


def _summary(d: Disposition | None) -> DispositionSummary | None:
    if d is None:
        return None
    return DispositionSummary(d.kind, d.amount, d.currency, d.callback_at, d.comment, d.recorded_by, d.created_at)


def load_call_card(db: Database, attempt_id: int, scripts: ScriptBook, operator_name: str | None = None
                   ) -> CallCard:
    """The card of one call attempt. NotFound for an unknown attempt."""
    with db.read() as session:
        attempt = session.get(CallAttempt, attempt_id)
        if attempt is None:
            raise NotFound(f"no call attempt with id {attempt_id}")
        lead = session.get(Lead, attempt.lead_id)
        rows = session.execute(
            select(CallAttempt, Operator.name, Disposition)
            .outerjoin(Operator, Operator.id == CallAttempt.operator_id)
            .outerjoin(Disposition, Disposition.attempt_id == CallAttempt.id)
            .where(CallAttempt.lead_id == lead.id)
            .order_by(CallAttempt.attempt_no, CallAttempt.id)).all()
        history = tuple(PastCall(a.id, a.attempt_no, a.claimed_at, a.result or a.state, name, _summary(d))
                        for a, name, d in rows if a.id != attempt.id)
        this = next((d for a, _, d in rows if a.id == attempt.id), None)
        earlier_contacts = sum(1 for a, _, _ in rows if a.id < attempt.id
                               and (a.connected_at is not None or a.result == CallResult.CONNECTED.value))
        facts = LeadFacts(lead_id=lead.id, name=lead.name, product=lead.product, order_number=lead.order_number,
                          comment=lead.comment, preferred_time=lead.preferred_time, region=lead.region,
                          source=lead.source, extra=dict(lead.extra or {}), contacts_count=earlier_contacts,
                          operator_name=operator_name)
        card = dict(attempt_id=attempt.id, lead_id=lead.id, operator_id=attempt.operator_id,
                    operator_interface=attempt.operator_interface, state=attempt.state,
                    connected_at=attempt.connected_at, ended_at=attempt.ended_at, name=lead.name,
                    phone=display_phone(lead.phone_e164, lead.phone_raw), order_number=lead.order_number,
                    product=lead.product, source=lead.source, received_at=lead.received_at, comment=lead.comment,
                    preferred_time=lead.preferred_time, region=lead.region, timezone=lead.timezone,
                    extra=dict(lead.extra or {}), contact_number=facts.contact_number, history=history,
                    disposition=_summary(this), **_customer_zone(lead))
    return CallCard(**card, script=scripts.choose(facts, facts.contact_number))


_ZONE_SOURCE_WORDS = {"lead": "указан в заявке", "region": "по региону из заявки", "registry": "по плану нумерации",
                      "number": "по номеру"}


def _customer_zone(lead: Lead) -> dict[str, Any]:
    from leads.policy.zones import lead_zones
    zones = lead_zones(lead.timezone, lead.phone_e164, "center", lead.region)
    if not zones.known:
        return {"customer_zones": (), "zone_source": "неизвестен"}
    return {"customer_zones": zones.names, "zone_source": _ZONE_SOURCE_WORDS.get(zones.source, zones.source)}


def open_call_of(db: Database, operator_id: int, interface: str | None, now: datetime) -> int | None:
    """The operator's call that still waits for their disposition (in progress or in wrap-up), if any."""
    require_aware(now)
    disposed = exists().where(Disposition.attempt_id == CallAttempt.id)
    mine = CallAttempt.operator_id == operator_id
    if interface:
        mine = or_(mine, and_(CallAttempt.operator_id.is_(None), CallAttempt.operator_interface == interface))
    still_open = or_(CallAttempt.state != AttemptState.ENDED.value, CallAttempt.wrapup_until > now)
    with db.read() as session:
        return session.scalar(select(CallAttempt.id).where(mine, _was_connected(), still_open, ~disposed)
                              .order_by(CallAttempt.connected_at.desc(), CallAttempt.id.desc()).limit(1))


def call_owner(db: Database, attempt_id: int) -> tuple[int | None, str | None]:
    """(operator id, operator interface) of a call attempt; NotFound for an unknown one."""
    with db.read() as session:
        row = session.execute(select(CallAttempt.operator_id, CallAttempt.operator_interface)
                              .where(CallAttempt.id == attempt_id)).first()
    if row is None:
        raise NotFound(f"no call attempt with id {attempt_id}")
    return row.operator_id, row.operator_interface
