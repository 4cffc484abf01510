"""The promised call time: what the site tells the customer right after the request (issue 19).

Computed by the rules that dial (why.evaluate, why.dialable_from): a lead dialable now is promised its
first-call deadline ("within 15 minutes"); one that is not (quiet hours in the center or at the
customer's) is promised the first moment the policy allows ("tomorrow after 10:00, your time").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from leads.lead import CloseReason, LeadStatus
from leads.policy.facts import LeadFacts
from leads.policy.values import Policy
from leads.policy.why import Rule, dialable_from, evaluate
from leads.policy.zones import ZoneSource

LANGUAGES = ("ru", "en")
_MONTHS_RU = ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября",
              "ноября", "декабря")
_CALLING_NOW = {Rule.IN_PROGRESS, Rule.LEASED}


@dataclass(frozen=True)
class Promise:
    expected_call_at: datetime | None
    sentence: str | None


def language_of(requested: str | None) -> str:
    """'ru' or 'en' from a lead's `language` field or an Accept-Language header; Russian by default."""
    for part in (requested or "").replace(";", ",").split(","):
        code = part.strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return "ru"


def promise(lead: LeadFacts, now: datetime, policy: Policy, center: ZoneInfo, language: str) -> Promise:
    en = language == "en"
    if lead.status == LeadStatus.CLOSED and lead.close_reason == CloseReason.WRITE_INSTEAD:
        return Promise(None, "We will not call you: we will write to you by e-mail." if en
                       else "Мы не будем звонить: напишем вам на электронную почту.")
    verdict = evaluate(lead, now, policy, center)
    if verdict.dialable or {block.rule for block in verdict.blocks} <= _CALLING_NOW:
        at = verdict.deadline if verdict.deadline is not None and verdict.deadline > now else now
        minutes = max(1, math.ceil((at - now).total_seconds() / 60))
        if en:
            return Promise(at, f"We will call you within {minutes} minute{'s' if minutes != 1 else ''}.")
        return Promise(at, f"Мы перезвоним вам в течение {minutes} {_minutes_ru(minutes)}.")
    start = dialable_from(lead, now, policy, center)
    if start is None:
        return Promise(None, None)
    zones = verdict.zones
    own = zones.source in (ZoneSource.LEAD, ZoneSource.NUMBER) and len(zones.zones) == 1
    zone = zones.zones[0] if own else center
    local, today = start.astimezone(zone), now.astimezone(zone).date()
    days = (local.date() - today).days
    clock = f"{local:%H:%M}"
    if en:
        day = "today" if days == 0 else "tomorrow" if days == 1 else f"on {local.day} {local:%B}"
        whose = "your time" if own else f"{'Moscow' if zone.key == 'Europe/Moscow' else zone.key} time"
        return Promise(start, f"We will call you {day} after {clock}, {whose}.")
    day = "сегодня" if days == 0 else "завтра" if days == 1 else f"{local.day} {_MONTHS_RU[local.month - 1]}"
    whose = "по вашему времени" if own else ("по московскому времени" if zone.key == "Europe/Moscow"
                                             else f"по времени {zone.key}")
    return Promise(start, f"Мы перезвоним вам {day} после {clock} {whose}.")


def _minutes_ru(n: int) -> str:
    if n % 10 == 1 and n % 100 != 11:
        return "минуты"
    return "минут"



@dataclass(frozen=True)
class Asked:
    """One answered lead: what the intake said, and what the promise needs from the request."""

    lead_id: int
    status: str
    reason: str | None
    duplicate_of: int | None
    phone_e164: str | None
    timezone: str | None
    language: str


class PolicyCache:
    """The stored policy, read at most every `seconds`: a promise need not cost a query per request."""

    def __init__(self, seconds: float = 5.0) -> None:
        self.seconds = seconds
        self._policy: Policy | None = None
        self._read_at: float = float("-inf")

    def fresh(self) -> bool:
        import time
        return self._policy is not None and time.monotonic() - self._read_at <= self.seconds

    def get(self, session_factory) -> Policy:
        import time
        from leads.policy.store import current_policy
        if not self.fresh():
            with session_factory() as session:
                self._policy = current_policy(session)
            self._read_at = time.monotonic()
        return self._policy


def promised_calls(db, asked: list[Asked], now: datetime, center_zone: str,
                   policies: PolicyCache | None = None) -> list[Promise]:
    """One promise per answered lead. A new lead's facts are known from the request (nothing is read but
    the policy, cached); a duplicate is promised its earlier lead's call, read from the store."""
    from kernel.db.models import Lead
    from leads.policy.candidates import read_leads
    from leads.policy.results import zone
    center = zone(center_zone)
    policy = (policies or PolicyCache(0)).get(db.read)
    earlier_ids = sorted({a.duplicate_of for a in asked if a.status == LeadStatus.DUPLICATE and a.duplicate_of})
    earlier: dict[int, LeadFacts] = {}
    if earlier_ids:
        with db.read() as session:
            earlier = {f.id: f for f in read_leads(session, [Lead.__table__.c.id.in_(earlier_ids)])}
    promises = []
    for a in asked:
        if a.status == LeadStatus.NEW:
            facts = LeadFacts(id=a.lead_id, status=a.status, received_at=now, phone_e164=a.phone_e164,
                              timezone=a.timezone)
        elif a.status == LeadStatus.CLOSED:
            facts = LeadFacts(id=a.lead_id, status=a.status, received_at=now, phone_e164=a.phone_e164,
                              close_reason=a.reason)
        else:
            facts = earlier.get(a.duplicate_of) if a.status == LeadStatus.DUPLICATE else None
        promises.append(promise(facts, now, policy, center, a.language) if facts else Promise(None, None))
    return promises
