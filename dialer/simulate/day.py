"""One simulated day: the product's intake, policy, claim and result recording on a real temporary
SQLite store, driven by a discrete-event loop on a virtual clock (kernel.clock.ManualClock).

The loop never sleeps: it jumps from one event to the next (a lead arrives, a customer answers, a call
ends, an operator finishes wrap-up, a shift changes, a retry falls due, the hopper is refilled), so a
day costs only the CPU of its events. The PBX side (ringing, answers, operators) is modelled here with
customers.py; every decision the product makes is the product's own code:

- intake: leads.intake.Intake.submit (normalization, DNC, dedup, invalid and fake numbers);
- the next call: leads.policy.claim.claim_next(now=virtual now) over the store, with the free operators
  (tiers, deadlines, quiet hours of the center and of the lead's zone, retry delays, operator choice);
- the call's life and result: dialer.attempts.store_updates with the tracker's AttemptUpdate rows (the
  daemon's own writer: attempt events, timestamps, wrap-up, the retry / close rule, the CRM outbox),
  the result from dialer.ami.results.decide; lease renewal: leads.policy.results.renew_leases.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import time as walltime
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import event as sa_event, func, insert, select, update

from dialer.attempts import store_updates
from dialer.dispositions import record_disposition
from dialer.calls.tracker import AttemptUpdate
from dialer.pbx_sim.scenarios import Outcome
from dialer.simulate.customers import Behaviour, Call, draw_call, facts_of, result_of
from dialer.simulate.inputs import Arrival, Staffing
from dialer.reports.budget import NEAR_SHARE   # the policy's abandon budget and its margin, as the report shows
from dialer.simulate.pacing import PredictivePacer
from dialer.simulate.strategies import Chooser, Pacing, Strategy
from kernel.clock import ManualClock
from kernel.db.engine import Database
from kernel.db.migrate import upgrade
from kernel.db.models import CallAttempt, Lead
from leads.attempt import AttemptState, CallResult, DispositionKind
from leads.disposition import DispositionInput
from leads.intake import Intake
from leads.lead import DIALABLE_STATUSES, LeadStatus
from leads.operators import add_operator
from leads.policy.claim import claim_next
from leads.policy.quiet_hours import first_allowed
from leads.policy.results import renew_leases
from leads.policy.store import seed_policy
from leads.policy.zones import lead_zones

log = logging.getLogger("dialer.simulate")

DAEMON_ID = "simulate"
RENEW_EVERY = timedelta(seconds=60)
PACE_EVERY = timedelta(seconds=1)
ORDER_AMOUNT = "2500"   # a confirmed order's amount (RUB): the simulator counts orders, not money
_DIALABLE = [s.value for s in DIALABLE_STATUSES]


@dataclass(frozen=True)
class DayPlan:
    day: date
    center_zone: str
    arrivals: tuple[Arrival, ...]
    staffing: Staffing
    behaviour: Behaviour = field(default_factory=Behaviour)
    closes: time = time(22, 0)           # no new call after this (calls in progress finish)
    seed: int = 1
    idle_poll_seconds: int = 300         # safety poll: with nothing dialable, ask the claim again after this at most
    days: int = 1                        # consecutive days from `day` on one store (retries carry over)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.center_zone)

    @property
    def dates(self) -> list[date]:
        return [self.day + timedelta(days=k) for k in range(self.days)]

    @property
    def end(self) -> datetime:
        """The close of the last day: no call starts after it, nor after the close of each day."""
        return datetime.combine(self.dates[-1], self.closes, self.zone)

    def closed(self, moment: datetime) -> bool:
        return moment >= self.end or moment.astimezone(self.zone).time() >= self.closes

    @property
    def start(self) -> datetime:
        first_shift = min((datetime.combine(self.day, s.start, self.zone) for s in self.staffing.shifts),
                          default=self.end)
        return min([first_shift, *(a.at for a in self.arrivals[:1])])


@dataclass(frozen=True)
class LeadRow:
    id: int
    intake_status: str
    received_at: datetime
    due_from: datetime | None        # when the lead could first be dialed (quiet hours of its zones)
    first_dialed_at: datetime | None
    status: str
    close_reason: str | None = None


@dataclass(frozen=True)
class AttemptRow:
    lead_id: int
    attempt_no: int
    claimed_at: datetime
    answered_at: datetime | None
    connected_at: datetime | None
    ended_at: datetime | None
    result: str | None
    operator_interface: str | None


@dataclass(frozen=True)
class DayRecord:
    """What the store holds at the end of the day, read back (the KPIs are computed from it)."""

    strategy: str
    pacing: str
    leads: tuple[LeadRow, ...]
    attempts: tuple[AttemptRow, ...]
    operator_hours: float
    first_call_minutes: int
    wall_seconds: float
    events: int
    claims: int
    day_end: datetime
    dial_ratio_max: float = 1.0
    staffing: Staffing | None = None
    center_zone: str = "Europe/Moscow"
    days: int = 1


@dataclass
class _Live:
    """A call in progress."""

    attempt_id: int
    lead_id: int
    attempt_no: int
    started: datetime
    call: Call
    operator: str | None               # held from the claim (progressive) or taken at the answer (predictive)
    answered_at: datetime | None = None
    connected_at: datetime | None = None
    waiting_since: datetime | None = None


class SimulatedDay:
    """The event loop of one day under one strategy (one temporary store)."""

    def __init__(self, plan: DayPlan, strategy: Strategy, folder: Path) -> None:
        self.plan, self.strategy = plan, strategy
        self.zone = plan.zone
        self.clock = ManualClock(plan.start)
        path = Path(folder) / f"{_slug(strategy.name)}.db"
        path.unlink(missing_ok=True)
        self.db = Database(f"sqlite:///{path}")
        sa_event.listen(self.db.engine, "connect", _scratch_pragmas)
        self.queue: list[tuple[datetime, int, str, Any]] = []
        self.seq = itertools.count()
        self.operators = [f"PJSIP/sim{i}" for i in range(1, plan.staffing.most + 1)]
        self.busy: dict[str, int | str] = {}            # operator -> attempt id, or "wrapup"
        self.wrapping_since: dict[str, datetime] = {}
        self.wrapping: dict[str, _Live] = {}             # operator -> the conversation being wrapped up
        self.live: dict[int, _Live] = {}
        self.waiting: list[int] = []                      # answered calls waiting for an operator (predictive)
        self.on_duty = 0
        self.wake_at: datetime | None = None
        self.idle_until: datetime | None = None          # the claim found nothing; nothing can change before
        self.unlocked = 0                                 # ... except these leads made due since (arrivals)
        self.zones: dict[int, tuple[ZoneInfo, ...]] = {}  # lead id -> the zones whose quiet hours apply
        self.hopper: list[int] = []
        self.renewing = False
        self.pace_at: datetime | None = None             # predictive: the next look at the calls ringing
        self.intake_status: dict[int, str] = {}
        self.events = self.claims = 0
        b = plan.behaviour
        self.pacer = (PredictivePacer(b.patience, budget=strategy.policy.abandon_budget_percent / 100.0,
                                      guard=NEAR_SHARE, ring_timeout=strategy.policy.ring_timeout_seconds,
                                      prior_talk=sum(b.talk) / 2, prior_wrapup=sum(b.wrapup) / 2)
                      if strategy.pacing is Pacing.PREDICTIVE else None)

    # ------------------------------------------------------------------ running

    def run(self) -> DayRecord:
        started = walltime.perf_counter()
        upgrade(self.db)
        now = self.clock.now()
        with self.db.write() as session:
            seed_policy(session, now, by="simulate", values=self.strategy.policy.values())
        for i, interface in enumerate(self.operators, start=1):
            add_operator(self.db, name=f"Operator {i}", interface=interface, now=now)
        self.intake = Intake(self.db)
        for arrival in self.plan.arrivals:
            if arrival.at < self.plan.end:
                self._at(arrival.at, "arrive", arrival)
        for day in self.plan.dates:
            for moment in self.plan.staffing.changes(day, self.zone):
                self._at(max(moment, now), "shift", None)
            if day != self.plan.day and self.pacer is not None:
                self._at(datetime.combine(day, time(0), self.zone), "new_day", None)
        if self.strategy.chooser is Chooser.HOPPER:
            self._at(_next_grid(now, self.strategy.hopper_seconds), "refill", None)
        while self.queue:
            at, _, kind, payload = heapq.heappop(self.queue)
            self.clock.set(max(at, self.clock.now()))
            self.events += 1
            getattr(self, f"_on_{kind}")(self.clock.now(), payload)
        record = self._record(walltime.perf_counter() - started)
        self.db.dispose()
        return record

    def _at(self, when: datetime, kind: str, payload: Any) -> None:
        heapq.heappush(self.queue, (when, next(self.seq), kind, payload))

    # ------------------------------------------------------------------ events

    def _on_arrive(self, now: datetime, arrival: Arrival) -> None:
        outcome, = self.intake.submit([arrival.lead], arrival.at)
        if not outcome.already_stored:
            self.intake_status[outcome.lead_id] = outcome.status.value
        if outcome.status is LeadStatus.NEW:
            self.unlocked += 1
            self._dial(now)

    def _on_shift(self, now: datetime, _: Any) -> None:
        self.on_duty = 0 if self.plan.closed(now) else self.plan.staffing.on_duty(now, self.zone)
        self.idle_until, self.unlocked = None, 0
        self._dial(now)

    def _on_wake(self, now: datetime, _: Any) -> None:
        if self.wake_at is not None and now >= self.wake_at:
            self.wake_at = None
        self._dial(now)

    def _on_refill(self, now: datetime, _: Any) -> None:
        step = timedelta(seconds=self.strategy.hopper_seconds)
        if self.plan.closed(now) and now < self.plan.end:     # overnight: the next refill when a shift opens
            opens = [m for d in self.plan.dates for m in self.plan.staffing.changes(d, self.zone)
                     if m > now and self.plan.staffing.on_duty(m, self.zone) > 0]
            if opens:
                self._at(_next_grid(min(opens) - step, self.strategy.hopper_seconds), "refill", None)
            return
        self.hopper = self._hopper_leads(now)
        if now < self.plan.end:
            self._at(now + step, "refill", None)
        self._dial(now)

    def _on_new_day(self, now: datetime, _: Any) -> None:
        self.pacer.new_day()

    def _on_pace(self, now: datetime, _: Any) -> None:
        self.pace_at = None
        self._dial(now)

    def _on_renew(self, now: datetime, _: Any) -> None:
        with self.db.write() as session:
            renew_leases(session, DAEMON_ID, now)
        self.renewing = bool(self.live)
        if self.renewing:
            self._at(now + RENEW_EVERY, "renew", None)

    def _on_answer(self, now: datetime, attempt_id: int) -> None:
        live = self.live[attempt_id]
        live.answered_at = now
        if live.operator is None:                       # predictive: the first free operator takes it
            operator = self._free_operator(now)
            if operator is None:
                live.waiting_since = now
                self.waiting.append(attempt_id)
                self._at(now + timedelta(seconds=self.plan.behaviour.patience), "give_up", attempt_id)
                return
            self._take(live, operator)
        self._connect(now, live)

    def _on_give_up(self, now: datetime, attempt_id: int) -> None:
        if attempt_id in self.waiting:                  # no operator within the patience: the message, hang up
            self.waiting.remove(attempt_id)
            self._end(now, self.live[attempt_id], connected=False)

    def _on_end(self, now: datetime, attempt_id: int) -> None:
        live = self.live.get(attempt_id)
        if live is not None:
            self._end(now, live, connected=live.connected_at is not None)

    def _on_free(self, now: datetime, operator: str) -> None:
        if self.busy.get(operator) == "wrapup":
            del self.busy[operator]
        done = self.wrapping.pop(operator, None)
        if done is not None:
            self._dispose(now, done)
        self._hand_waiting(now)
        self._dial(now)

    # ------------------------------------------------------------------ calls

    def _connect(self, now: datetime, live: _Live) -> None:
        live.connected_at = now + timedelta(seconds=live.call.operator_ring)
        self._at(live.connected_at + timedelta(seconds=live.call.talk), "end", live.attempt_id)

    def _dispose(self, now: datetime, live: _Live) -> None:
        """The operator records the outcome at the end of wrap-up (the product's disposition rules)."""
        kind = live.call.disposition
        amount = callback_at = None
        if kind is DispositionKind.CONFIRMED:
            amount = ORDER_AMOUNT
        elif kind is DispositionKind.CALLBACK:
            with self.db.read() as session:
                own = session.scalar(select(Lead.timezone).where(Lead.id == live.lead_id))
            zones = (self.zone, *((ZoneInfo(own),) if own else ()))
            wanted = now + timedelta(hours=self.plan.behaviour.callback_after_hours)
            callback_at = first_allowed(wanted, zones, self.strategy.policy) or wanted
        record_disposition(self.db, live.attempt_id, DispositionInput(kind.value, amount=amount,
                                                                       callback_at=callback_at),
                           now=now, center_zone=self.plan.center_zone, recorded_by="simulate")
        if self.idle_until is not None and self._due_again(live.lead_id, now):
            self.unlocked += 1

    def _take(self, live: _Live, operator: str) -> None:
        live.operator = operator
        self.busy[operator] = live.attempt_id

    def _hand_waiting(self, now: datetime) -> None:
        while self.waiting:
            operator = self._free_operator(now)
            if operator is None:
                return
            live = self.live[self.waiting.pop(0)]
            self._take(live, operator)
            self._connect(now, live)

    def _end(self, now: datetime, live: _Live, *, connected: bool) -> None:
        del self.live[live.attempt_id]
        result = result_of(live.call.outcome, connected=connected)
        wrapup = live.call.wrapup if connected else 0.0
        store_updates(self.db, self._updates(live, now, result, connected), center_zone=self.plan.center_zone,
                      wrapup_limit_seconds=wrapup, now=now)
        if self.idle_until is not None and self._due_again(live.lead_id, now):
            self.unlocked += 1                           # a retry delay of 0: the lead is dialable at once
        if self.pacer is not None:
            self.pacer.dialed((live.answered_at - live.started).total_seconds() if live.answered_at else None)
            if live.answered_at is not None:
                self.pacer.answered(now, abandoned=result is CallResult.ABANDONED)
        if live.operator is not None:
            if connected:
                self.busy[live.operator] = "wrapup"
                self.wrapping_since[live.operator] = now
                self.wrapping[live.operator] = live
                if self.pacer is not None:
                    self.pacer.talked((now - live.connected_at).total_seconds(), wrapup)
                self._at(now + timedelta(seconds=wrapup), "free", live.operator)
            else:
                self.busy.pop(live.operator, None)
        self._dial(now)

    def _updates(self, live: _Live, end: datetime, result: CallResult, connected: bool) -> list[AttemptUpdate]:
        """The tracker's rows for this call, as the daemon writes them (timestamps of each event)."""
        facts = facts_of(live.call.outcome, connected=connected)
        rows = [(AttemptState.CLAIMED, "OriginateSent", AttemptState.ORIGINATED, live.started, {})]
        if live.call.outcome in (Outcome.ANSWER, Outcome.NO_ANSWER, Outcome.REJECT, Outcome.UNAVAILABLE,
                                 Outcome.HANGUP, Outcome.MACHINE):
            rows.append((AttemptState.ORIGINATED, "Newstate", AttemptState.RINGING, live.started, {}))
        last = rows[-1][2]
        if live.answered_at is not None:
            rows.append((last, "OriginateResponse", AttemptState.ANSWERED, live.answered_at, {}))
            last = AttemptState.ANSWERED
        if connected and live.connected_at is not None:
            rows.append((last, "AgentConnect", AttemptState.CONNECTED, live.connected_at,
                         {"operator_interface": live.operator}))
            last = AttemptState.CONNECTED
        ended = AttemptUpdate(live.attempt_id, "Hangup", last, AttemptState.ENDED, end,
                              {"hangup_cause": facts.hangup_cause, "tech_cause": facts.tech_cause,
                               "dial_status": facts.dial_status, "originate_reason": facts.originate_reason},
                              result, "simulated")
        return [AttemptUpdate(live.attempt_id, event, before, after, at, fields)
                for before, event, after, at, fields in rows] + [ended]

    # ------------------------------------------------------------------ dialing

    def _free_operator(self, now: datetime) -> str | None:
        free = self._free(now)
        return free[0] if free else None

    def _free(self, now: datetime) -> list[str]:
        return [o for o in self.operators[:self.on_duty] if o not in self.busy]

    def _due_again(self, lead_id: int, now: datetime) -> bool:
        with self.db.read() as session:
            row = session.execute(select(Lead.status, Lead.next_attempt_at).where(Lead.id == lead_id)).one()
        return row.status in _DIALABLE and (row.next_attempt_at is None or _aware(row.next_attempt_at) <= now)

    def _dial(self, now: datetime) -> None:
        """Place the calls the pacing asks for, each chosen by the strategy's chooser.

        After a claim found nothing, the loop does not ask again before its wake-up time (see _sleep)
        unless a shift changed, and then only once for each lead made due since (an arrival, a result
        with a retry delay of 0): nothing else can make a lead dialable, and an empty claim reads the
        whole waiting queue.
        """
        if self.on_duty == 0 or self.plan.closed(now):
            return
        if self.idle_until is not None and now >= self.idle_until:
            self.idle_until, self.unlocked = None, 0
        while True:
            free = self._free(now)
            if self.pacer is None:
                wanted = len(free)
            else:
                wanted = self.pacer.calls_to_place(now, free=len(free) - len(self.waiting),
                                                   soon=self._soon_free(now), ringing=self._ringing(now))
            if wanted <= 0:
                self._pace_later(now)
                return
            if self.idle_until is not None:
                if self.unlocked <= 0:
                    return
                self.unlocked -= 1
            started = self._start_one(now, free if self.pacer is None else None)
            if not started:
                self._sleep(now)
                return

    def _pace_later(self, now: datetime) -> None:
        """Predictive: look again in a second while calls ring (the pacer's view changes as they ring on,
        as the daemon's dial loop looks every second)."""
        if self.pacer is not None and self.pace_at is None and any(l.answered_at is None for l in self.live.values()):
            self.pace_at = now + PACE_EVERY
            self._at(self.pace_at, "pace", None)

    def _start_one(self, now: datetime, free: list[str] | None) -> bool:
        if self.strategy.chooser is Chooser.HOPPER:
            picked = self._from_hopper(now, free)
        else:
            claim = claim_next(self.db, daemon_id=DAEMON_ID, now=now, center_zone=self.plan.center_zone,
                               operators=free)
            picked = None if claim is None else (claim.attempt_id, claim.lead_id, claim.attempt_no,
                                                 claim.operator_interface or (free[0] if free else None),
                                                 claim.ring_timeout_seconds)
        if picked is None:
            return False
        self.claims += 1
        attempt_id, lead_id, attempt_no, operator, ring_timeout = picked
        rng = random.Random(f"{self.plan.seed}:{lead_id}:{attempt_no}")   # the same customer in every strategy
        call = draw_call(self.plan.behaviour, rng, hour=now.astimezone(self.zone).hour, attempt_no=attempt_no,
                         ring_timeout=ring_timeout)
        live = _Live(attempt_id, lead_id, attempt_no, now, call, None)
        self.live[attempt_id] = live
        if free is not None and operator is not None:
            self._take(live, operator)                  # progressive: the operator is held while it rings
        if call.outcome is Outcome.ANSWER:
            self._at(now + timedelta(seconds=call.after), "answer", attempt_id)
        else:
            self._at(now + timedelta(seconds=call.after), "end", attempt_id)
        if not self.renewing:
            self.renewing = True
            self._at(now + RENEW_EVERY, "renew", None)
        return True

    def _sleep(self, now: datetime) -> None:
        """Nothing dialable now: ask the claim again only when something can have changed.

        A call ending, an operator freed, a lead arriving or a shift starting asks at once (their
        events); otherwise a lead becomes dialable when its next_attempt_at passes or when quiet hours
        end in its zones, so the loop wakes at the earliest of those, with a safety poll every
        `idle_poll_seconds` for any rule that waits on something else.
        """
        if self.strategy.chooser is Chooser.HOPPER:
            return                                       # the next refill wakes it
        policy = self.strategy.policy
        candidates = [_next_grid(now, self.plan.idle_poll_seconds)]
        with self.db.read() as session:
            due = session.scalar(select(func.min(Lead.next_attempt_at)).where(
                Lead.status.in_(_DIALABLE), Lead.lease_owner.is_(None), Lead.next_attempt_at > now))
            waiting = session.execute(select(Lead.id, Lead.phone_e164, Lead.timezone, Lead.region).where(
                Lead.status.in_(_DIALABLE), Lead.lease_owner.is_(None),
                Lead.next_attempt_at.is_(None) | (Lead.next_attempt_at <= now))).all()
        if due is not None:
            candidates.append(_aware(due))
        for row in waiting:
            allowed = first_allowed(now, self._zones_of(row), policy)
            if allowed is not None and allowed > now:
                candidates.append(allowed)
        wake = min(candidates)
        self.idle_until, self.unlocked = wake, 0
        if self.wake_at is None or wake < self.wake_at or self.wake_at <= now:
            self.wake_at = wake
            self._at(wake, "wake", None)

    def _zones_of(self, row: Any) -> tuple[ZoneInfo, ...]:
        zones = self.zones.get(row.id)
        if zones is None:
            found = lead_zones(row.timezone, row.phone_e164, self.strategy.policy.unknown_zone_rule, row.region)
            zones = self.zones[row.id] = (self.zone, *found.zones)
        return zones

    def _soon_free(self, now: datetime) -> list[float]:
        """Seconds until each busy operator is predicted free (from the talk and wrap-up so far)."""
        soon = []
        for operator, what in self.busy.items():
            if operator not in self.operators[:self.on_duty]:
                continue
            if what == "wrapup":
                wrapped = (now - self.wrapping_since[operator]).total_seconds()
                soon.append(self.pacer.free_in(wrapped=wrapped))
                continue
            live = self.live.get(what)
            if live is not None and live.connected_at is not None and live.connected_at <= now:
                soon.append(self.pacer.free_in(talked=(now - live.connected_at).total_seconds()))
        return soon

    def _ringing(self, now: datetime) -> list[float]:
        return [(now - live.started).total_seconds() for live in self.live.values() if live.answered_at is None]

    # ------------------------------------------------------------------ the hopper baseline

    def _hopper_leads(self, now: datetime) -> list[int]:
        """Leads due now and outside quiet hours in every zone, in arrival order (the hopper's refill)."""
        policy, in_progress = self.strategy.policy, {live.lead_id for live in self.live.values()}
        with self.db.read() as session:
            rows = session.execute(select(Lead.id, Lead.phone_e164, Lead.timezone, Lead.region).where(
                Lead.status.in_(_DIALABLE), Lead.lease_owner.is_(None),
                (Lead.next_attempt_at.is_(None)) | (Lead.next_attempt_at <= now))
                .order_by(Lead.received_at, Lead.id)).all()
        due = []
        for row in rows:
            if row.id not in in_progress and first_allowed(now, self._zones_of(row), policy) == now:
                due.append(row.id)
        return due

    def _from_hopper(self, now: datetime, free: list[str] | None):
        while self.hopper:
            lead_id = self.hopper.pop(0)
            with self.db.write() as session:
                lead = session.execute(select(Lead.id, Lead.status, Lead.attempts_count, Lead.lease_owner)
                                       .where(Lead.id == lead_id)).one()
                if lead.status not in _DIALABLE or lead.lease_owner is not None:
                    continue
                operator = free[0] if free else None
                attempt_id = session.execute(insert(CallAttempt.__table__).returning(CallAttempt.__table__.c.id),
                                             {"lead_id": lead_id, "attempt_no": lead.attempts_count + 1,
                                              "tier": "hopper", "daemon_id": DAEMON_ID,
                                              "state": AttemptState.CLAIMED.value, "claimed_at": now,
                                              "operator_interface": operator}).scalar_one()
                session.execute(update(Lead).where(Lead.id == lead_id).values(
                    lease_owner=DAEMON_ID, lease_expires_at=now + self.strategy.policy.lease))
            return attempt_id, lead_id, lead.attempts_count + 1, operator, self.strategy.policy.ring_timeout_seconds
        return None

    # ------------------------------------------------------------------ the record

    def _record(self, wall: float) -> DayRecord:
        policy = self.strategy.policy
        with self.db.read() as session:
            leads = session.execute(select(Lead.id, Lead.received_at, Lead.first_dialed_at, Lead.status,
                                           Lead.phone_e164, Lead.timezone, Lead.region, Lead.close_reason)
                                    .order_by(Lead.id)).all()
            attempts = session.execute(select(
                CallAttempt.lead_id, CallAttempt.attempt_no, CallAttempt.claimed_at, CallAttempt.answered_at,
                CallAttempt.connected_at, CallAttempt.ended_at, CallAttempt.result,
                CallAttempt.operator_interface).order_by(CallAttempt.id)).all()
        lead_rows = []
        for row in leads:
            received = _aware(row.received_at)
            zones = lead_zones(row.timezone, row.phone_e164, policy.unknown_zone_rule, row.region).zones
            lead_rows.append(LeadRow(row.id, self.intake_status.get(row.id, row.status), received,
                                     first_allowed(received, (self.zone, *zones), policy),
                                     _aware(row.first_dialed_at), row.status, row.close_reason))
        attempt_rows = tuple(AttemptRow(a.lead_id, a.attempt_no, _aware(a.claimed_at), _aware(a.answered_at),
                                        _aware(a.connected_at), _aware(a.ended_at), a.result, a.operator_interface)
                             for a in attempts)
        return DayRecord(self.strategy.name, self.strategy.pacing.value, tuple(lead_rows), attempt_rows,
                         self.plan.staffing.operator_hours() * self.plan.days, policy.first_call_minutes, wall,
                         self.events,
                         self.claims, self.plan.end, self.pacer.max_ratio if self.pacer is not None else 1.0,
                         self.plan.staffing, self.plan.center_zone, self.plan.days)


def simulate(plan: DayPlan, strategies: Sequence[Strategy], folder: Path,
             progress: Callable[[DayRecord], None] | None = None) -> list[DayRecord]:
    """The same day under each strategy, one after the other (each on its own temporary store)."""
    records = []
    for strategy in strategies:
        record = SimulatedDay(plan, strategy, folder).run()
        records.append(record)
        if progress is not None:
            progress(record)
    return records


def _scratch_pragmas(dbapi_connection, _record) -> None:
    # A throw-away store: no fsync, nothing to survive a crash (the product's own stores keep theirs).
    dbapi_connection.execute("PRAGMA synchronous=OFF")


def _next_grid(now: datetime, seconds: int) -> datetime:
    """The next multiple of `seconds` after `now` (UTC epoch), so polls land on whole minutes."""
    epoch = now.timestamp()
    step = max(1, seconds)
    return datetime.fromtimestamp((int(epoch // step) + 1) * step, tz=timezone.utc)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name)[:60] or "strategy"
