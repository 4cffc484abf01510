"""Counting, from the store and from the simulated PBX's own record of calls, what a fault cost.

Nothing here reads the daemon's logs or its memory: only rows in the database and the PBX's
call log (one CallRecord per call Asterisk placed, with the ATTEMPT_ID variable it was sent).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select

from kernel.db.engine import Database
from kernel.db.models import AttemptEvent, CallAttempt, Lead

# What the daemon must record for a call the PBX ended this way (the simulator's outcome names;
# the rule: README "Outcomes" and tests/test_daemon_e2e.py BEHAVIOURS).
EXPECTED_RESULT = {"connected": "connected", "abandoned": "abandoned", "hangup": "abandoned",
                   "machine": "answering_machine", "no_answer": "no_answer", "busy": "busy",
                   "congestion": "congestion", "invalid": "invalid_number", "reject": "rejected",
                   "unavailable": "no_answer", "cancelled": "cancelled", "failed": "failed"}


@dataclass
class FaultCounts:
    pbx_calls: int = 0
    attempts: int = 0
    lost: int = 0                 # the PBX placed the call, the store has no ended attempt with its result
    unknown_known: int = 0        # stored `unknown` although the PBX knew the outcome
    wrong: int = 0                # stored a different result than the PBX's
    stuck: int = 0                # attempts still open
    double_dialed: int = 0        # two PBX calls to one lead overlapping in time
    redialed_after_connection: int = 0   # a later attempt of a lead whose earlier attempt has connected_at
    not_connected_despite_stored: int = 0   # connected_at stored, result not `connected`
    counted_not_sent: int = 0     # attempts counted (not cancelled-undialed) that never reached the PBX
    events_written_twice: int = 0   # one call event stored twice (a write replayed after it was taken)
    leads: int = 0

    def problems(self) -> dict[str, int]:
        keys = ("lost", "unknown_known", "wrong", "stuck", "double_dialed", "redialed_after_connection",
                "not_connected_despite_stored", "counted_not_sent",
                "events_written_twice")
        return {k: getattr(self, k) for k in keys if getattr(self, k)}


def _attempt_id(record) -> int | None:
    for name, value in record.variables:
        if name.lstrip("_").upper() == "ATTEMPT_ID" and value.isdigit():
            return int(value)
    return None


def count(db: Database, call_log, *, ignore_results: set[str] = frozenset({"dropped"})) -> FaultCounts:
    counts = FaultCounts()
    with db.read() as session:
        rows = {a.id: a for a in session.scalars(select(CallAttempt).order_by(CallAttempt.id))}
        counts.leads = session.scalar(select(func.count()).select_from(Lead)) or 0
        events = session.execute(select(AttemptEvent.attempt_id, AttemptEvent.at, AttemptEvent.event,
                                        AttemptEvent.to_state, AttemptEvent.detail)).all()
    counts.attempts = len(rows)
    seen = Counter((a, at, event, to, repr(detail)) for a, at, event, to, detail in events)
    counts.events_written_twice = sum(n - 1 for n in seen.values() if n > 1)
    placed: set[int] = set()
    per_lead = defaultdict(list)
    for record in call_log:
        counts.pbx_calls += 1
        attempt_id = _attempt_id(record)
        attempt = rows.get(attempt_id)
        if attempt is None:
            counts.lost += 1
            continue
        placed.add(attempt_id)
        per_lead[attempt.lead_id].append((record.started_at, record.ended_at))
        expected = EXPECTED_RESULT.get(record.result.value)
        if record.result.value in ignore_results or expected is None:
            continue
        if attempt.state != "ended":
            continue   # counted as stuck below
        if attempt.result == "unknown":
            counts.unknown_known += 1
        elif attempt.result != expected:
            counts.wrong += 1
    for attempt in rows.values():
        if attempt.state != "ended":
            counts.stuck += 1
        if attempt.connected_at is not None and attempt.state == "ended" and attempt.result != "connected":
            counts.not_connected_despite_stored += 1
        if attempt.id not in placed and attempt.state == "ended" and attempt.result != "cancelled" \
                and attempt.result != "failed":
            counts.counted_not_sent += 1
    for calls in per_lead.values():
        calls.sort()
        counts.double_dialed += sum(1 for a, b in zip(calls, calls[1:]) if b[0] < a[1])
    by_lead = defaultdict(list)
    for attempt in rows.values():
        by_lead[attempt.lead_id].append(attempt)
    for items in by_lead.values():
        connected_before = False
        for attempt in sorted(items, key=lambda a: a.id):
            if connected_before and attempt.result not in (None, "cancelled"):
                counts.redialed_after_connection += 1
            connected_before = connected_before or attempt.connected_at is not None
    return counts
