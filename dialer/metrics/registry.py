"""The metrics of one daemon process, and the hooks the daemon calls to feed them.

Names follow the Prometheus conventions: `dialer_` prefix, base units in the name (`_seconds`),
`_total` on counters. Labels are small closed sets (source, result, status, tier, state, topic,
action); never a phone number, lead id or attempt id.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Callable, Iterable, Sequence
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from dialer.metrics.store_gauges import read_snapshot

if TYPE_CHECKING:
    from kernel.clock import Clock
    from kernel.db.engine import Database
    from leads.intake import Intake, IntakeOutcome, LeadIn
    from leads.policy.claim import Claim

log = logging.getLogger("dialer.metrics")

# first call: the SLA is 15 minutes by default; buckets around it
FIRST_DIAL_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200)
AMI_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
MAX_SOURCES = 50
INTAKE_RESULTS = ("new", "duplicate", "invalid", "dnc", "refused")


class DialerMetrics:
    """One registry per process; the daemon calls the `on_*` hooks, scrapes read the rest live."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.leads_received = Counter("dialer_leads_received", "Leads received, by source and intake result "
                                      "(refused: the webhook turned the request down)", ["source", "result"],
                                      registry=r)
        self.webhook_requests = Counter("dialer_webhook_requests", "Webhook requests (POST /leads) by HTTP status",
                                        ["status"], registry=r)
        self.first_dial_latency = Histogram(
            "dialer_first_dial_latency_seconds", "From arrival (or from when dialing was allowed, after quiet "
            "hours) to the first Originate of a lead", buckets=FIRST_DIAL_BUCKETS, registry=r)
        self.first_calls = Counter("dialer_first_calls", "First Originates of leads, by whether the first-call "
                                   "deadline was met", ["sla"], registry=r)
        self.sla_at_risk = Counter("dialer_sla_at_risk_alerts", "Leads alerted as at risk of missing the "
                                   "first-call deadline", registry=r)
        self.originates = Counter("dialer_originates", "Originate actions by outcome (sent, refused, "
                                  "unconfirmed)", ["outcome"], registry=r)
        self.call_results = Counter("dialer_call_results", "Ended attempts by result", ["result"], registry=r)
        self.ami_connects = Counter("dialer_ami_connects", "AMI logins that succeeded (the first one and every "
                                    "reconnect)", registry=r)
        self.ami_action_duration = Histogram("dialer_ami_action_duration_seconds", "AMI action round trip",
                                             ["action"], buckets=AMI_BUCKETS, registry=r)
        self.store_errors = Counter("dialer_store_errors", "Writes or reads of the store that failed",
                                    ["operation"], registry=r)
        for result in INTAKE_RESULTS:
            self.leads_received.labels("webhook", result)
        for outcome in ("sent", "refused", "unconfirmed"):
            self.originates.labels(outcome)
        for sla in ("met", "breached"):
            self.first_calls.labels(sla)
        self._db: "Database | None" = None
        self._sources: set[str] = {"webhook"}
        self._minutes: dict[int, float] = {}

    # ------------------------------------------------------------------ hooks

    def observe_intake(self, intake: "Intake") -> None:
        """Count every stored lead by source and status, whatever the entry (webhook, feed, CSV)."""
        submit = intake.submit

        def counted(leads: Sequence["LeadIn"], received_at: datetime, **options) -> list["IntakeOutcome"]:
            outcomes = submit(leads, received_at, **options)
            self.on_leads(leads, outcomes)
            return outcomes

        intake.submit = counted  # type: ignore[method-assign]

    def on_leads(self, leads: Sequence["LeadIn"], outcomes: Iterable["IntakeOutcome"]) -> None:
        for lead, outcome in zip(leads, outcomes):
            if not outcome.already_stored:
                self.leads_received.labels(self._source_label(lead.source), outcome.status.value).inc()

    def _source_label(self, source: str) -> str:
        """A lead's source comes from its sender (the site form's name): the first MAX_SOURCES distinct
        ones are labels, later ones count as `other`, so a sender cannot blow up the series count."""
        source = (source or "unknown")[:64]
        if source in self._sources:
            return source
        if len(self._sources) < MAX_SOURCES:
            self._sources.add(source)
            return source
        return "other"

    def on_webhook(self, status: int) -> None:
        self.webhook_requests.labels(str(status)).inc()
        if 400 <= status < 500:
            self.leads_received.labels("webhook", "refused").inc()

    def on_originate(self, claim: "Claim", outcome: str, now: datetime) -> None:
        self.originates.labels(outcome).inc()
        if outcome != "sent" or claim.attempt_no != 1 or claim.tier != "new" or claim.deadline is None:
            return
        allowed_from = claim.deadline - timedelta(minutes=self._first_call_minutes(claim.policy_version))
        self.first_dial_latency.observe(max((now - allowed_from).total_seconds(), 0.0))
        self.first_calls.labels("met" if now <= claim.deadline else "breached").inc()

    def _first_call_minutes(self, version: int) -> float:
        """The claim's deadline is (arrival or end of quiet hours) + first_call_minutes of its policy."""
        if version not in self._minutes:
            from leads.policy.store import current_policy
            self._minutes = {version: current_policy(self._db).first_call_minutes} if self._db else {version: 15}
        return self._minutes[version]

    def on_result(self, result: str) -> None:
        self.call_results.labels(result).inc()

    def on_ami_action(self, action: str, seconds: float) -> None:
        self.ami_action_duration.labels(action).observe(seconds)

    # ------------------------------------------------------------------ live views

    def watch_daemon(self, *, calls_in_progress: Callable[[], int], operator_states: Callable[[], Iterable[str]],
                     ami_connected: Callable[[], bool]) -> None:
        Gauge("dialer_calls_in_progress", "Attempts placed and not yet ended", registry=self.registry
              ).set_function(lambda: float(calls_in_progress()))
        Gauge("dialer_ami_connected", "1 while logged in to Asterisk", registry=self.registry
              ).set_function(lambda: 1.0 if ami_connected() else 0.0)
        self.registry.register(_OperatorsCollector(operator_states))
        self.registry.register(_AbandonCollector(self.call_results))

    def watch_store(self, db: "Database", clock: "Clock", center_zone: str) -> None:
        self._db = db
        self.registry.register(_StoreCollector(db, clock, ZoneInfo(center_zone), self.store_errors))


OPERATOR_STATES = ("available", "on_call", "wrap_up", "paused", "offline")


class _OperatorsCollector(Collector):
    def __init__(self, states: Callable[[], Iterable[str]]) -> None:
        self._states = states

    def collect(self):
        family = GaugeMetricFamily("dialer_operators", "Queue members by state", labels=["state"])
        counts = dict.fromkeys(OPERATOR_STATES, 0)
        for state in self._states():
            counts[state] = counts.get(state, 0) + 1
        for state, n in counts.items():
            family.add_metric([state], n)
        yield family


class _AbandonCollector(Collector):
    """Abandoned / (connected + abandoned) since this process started: customers who answered and
    found no operator, the figure a progressive dialer keeps near zero."""

    def __init__(self, results: Counter) -> None:
        self._results = results

    def collect(self):
        counts = {s.labels["result"]: s.value for m in self._results.collect() for s in m.samples
                  if s.name.endswith("_total")}
        answered = counts.get("connected", 0) + counts.get("abandoned", 0)
        yield GaugeMetricFamily("dialer_abandon_ratio", "Abandoned calls / answered calls since start",
                                value=(counts.get("abandoned", 0) / answered) if answered else 0.0)


class _StoreCollector(Collector):
    def __init__(self, db: "Database", clock: "Clock", center: ZoneInfo, errors: Counter) -> None:
        self._db, self._clock, self._center, self._errors = db, clock, center, errors

    def describe(self):
        return []   # collected on scrape only: registering must not query the store

    def collect(self):
        from leads.policy.quiet_hours import in_quiet_hours
        from leads.policy.store import current_policy
        now = self._clock.now()
        try:
            quiet = in_quiet_hours(now, self._center, current_policy(self._db))
            snapshot = read_snapshot(self._db, now, center_quiet=quiet)
        except Exception as exc:   # a scrape must answer even when the store does not
            self._errors.labels("metrics_scrape").inc()
            log.warning("metrics.store_read_failed reason=%s", type(exc).__name__)
            return
        queue = GaugeMetricFamily("dialer_queue_leads", "Dialable leads by tier and state (due, quiet_hours, "
                                  "scheduled, leased)", labels=["tier", "state"])
        for row in snapshot.queue:
            queue.add_metric([row.tier, row.state], row.leads)
        pending = GaugeMetricFamily("dialer_outbox_pending", "Outcomes waiting for delivery to the CRM",
                                    labels=["topic"])
        dead = GaugeMetricFamily("dialer_outbox_dead_letters", "Outcomes the CRM never accepted", labels=["topic"])
        oldest = GaugeMetricFamily("dialer_outbox_oldest_pending_age_seconds", "Age of the oldest undelivered "
                                   "outcome", labels=["topic"])
        for topic in snapshot.outbox:
            pending.add_metric([topic.topic], topic.pending)
            dead.add_metric([topic.topic], topic.dead)
            age = (now - topic.oldest_pending_at).total_seconds() if topic.oldest_pending_at else 0.0
            oldest.add_metric([topic.topic], max(age, 0.0))
        yield from (queue, pending, dead, oldest)
        yield GaugeMetricFamily("dialer_export_batches", "Nightly export runs that wrote outcomes",
                                value=snapshot.export_batches)
        yield GaugeMetricFamily("dialer_exported_outcomes", "Outcomes written to export files",
                                value=snapshot.exported_outcomes)


