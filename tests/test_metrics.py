"""Prometheus metrics: scraped from the running daemon (simulated PBX over AMI/TCP, real store, real
HTTP) and checked against the store and the PBX's own record."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from kernel.db.models import Lead, OutboxMessage
from tests.daemon_harness import (TOKEN, all_ended, attempts, daemon_settings, free_port, leads, make_pbx,
                                  moscow_day_clock, post_leads, running_daemon, wait_until)

pytestmark = pytest.mark.timeout(180)

BEHAVIOURS = {
    "+79121000001": {"outcome": "answer", "after": 1, "talk": 2},
    "+79121000002": {"outcome": "busy"},
    "+79121000003": {"outcome": "no_answer"},
    "+79121000005": {"outcome": "invalid"},
}


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(scraped, name, **labels) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


def total(scraped, name) -> float:
    return sum(v for (n, _), v in scraped.items() if n == name)


def expected_queue(db, now) -> Counter:
    """Tier and state of each dialable lead, by the rules as stated (tiers: DESIGN §3), lead by lead."""
    expected = Counter()
    for lead in leads(db):
        if lead.status not in ("new", "retry", "callback"):
            continue
        tier = ("new" if lead.status == "new" else "callback" if lead.status == "callback"
                else "follow_up" if lead.contacts_count else "second_attempt" if lead.attempts_count == 1
                else "redial")
        due_at = lead.callback_at if lead.status == "callback" else lead.next_attempt_at
        if lead.lease_expires_at and lead.lease_expires_at > now:
            state = "leased"
        elif due_at is None or due_at <= now:
            state = "due"
        else:
            state = "scheduled"
        expected[(tier, state)] += 1
    return expected


def test_given_a_run_when_metrics_are_scraped_then_they_match_the_store(db):
    async def scenario():
        pbx = make_pbx([{"pattern": n.replace("+", r"\+"), **plan} for n, plan in BEHAVIOURS.items()])
        port = await pbx.start()
        clock = moscow_day_clock()
        settings = daemon_settings(db.engine.url.render_as_string(hide_password=False), port)
        try:
            async with running_daemon(settings, db, clock) as daemon:
                url = daemon.http_url
                async with httpx.AsyncClient(timeout=10) as client:
                    during = await client.get(f"{url}/metrics")
                    assert during.status_code == 200
                    assert during.headers["content-type"].startswith("text/plain")
                    await post_leads(url, [{"phone": n, "name": "Клиент"} for n in BEHAVIOURS]
                                     + [{"phone": "+79121000001", "name": "Повтор"}, {"phone": "123"}])
                    refused = await client.post(f"{url}/leads", json={"phone": "+79121000009"},
                                                headers={"X-Dialer-Token": "wrong"})
                    assert refused.status_code == 401
                    await wait_until(lambda: any(a.originated_at for a in attempts(db)), 30, what="a call")
                    mid = samples((await client.get(f"{url}/metrics")).text)
                    await wait_until(lambda: all_ended(db, len(BEHAVIOURS)), 90, what="every attempt to end")
                    await wait_until(lambda: len(daemon.tracker.active) == 0, 10, what="tracker to drain")
                    now = clock.now()
                    final = samples((await client.get(f"{url}/metrics")).text)
                    return pbx, mid, final, now
        finally:
            await pbx.stop()

    pbx, mid, final, now = asyncio.run(scenario())
    assert value(mid, "dialer_ami_connected") == 1
    assert total(mid, "dialer_operators") == 2

    # intake, by the rule: 4 distinct valid numbers, one repeat of the first, one unparsable, one refused
    assert value(final, "dialer_leads_received_total", source="webhook", result="new") == 4
    assert value(final, "dialer_leads_received_total", source="webhook", result="duplicate") == 1
    assert value(final, "dialer_leads_received_total", source="webhook", result="invalid") == 1
    assert value(final, "dialer_leads_received_total", source="webhook", result="refused") == 1
    assert value(final, "dialer_webhook_requests_total", status="202") == 6
    assert value(final, "dialer_webhook_requests_total", status="401") == 1
    stored = leads(db)
    assert len(stored) == 6 and Counter(l.status for l in stored)["duplicate"] == 1

    rows = attempts(db)
    results = Counter(a.result for a in rows)
    for result, n in results.items():
        assert value(final, "dialer_call_results_total", result=result) == n, result
    assert total(final, "dialer_call_results_total") == len(rows) == pbx.stats().calls_placed
    assert value(final, "dialer_originates_total", outcome="sent") == sum(1 for a in rows if a.originated_at)
    assert value(final, "dialer_ami_action_duration_seconds_count", action="Originate") == len(rows)
    first = [a for a in rows if a.attempt_no == 1]
    assert value(final, "dialer_first_dial_latency_seconds_count") == len(first) == 4
    assert (value(final, "dialer_first_calls_total", sla="met")
            + value(final, "dialer_first_calls_total", sla="breached")) == 4
    assert value(final, "dialer_calls_in_progress") == 0
    connected, abandoned = results.get("connected", 0), results.get("abandoned", 0)
    assert value(final, "dialer_abandon_ratio") == (abandoned / (connected + abandoned) if connected + abandoned
                                                   else 0)

    queue = {(dict(k)["tier"], dict(k)["state"]): v for (n, k), v in final.items() if n == "dialer_queue_leads"}
    assert {k: v for k, v in queue.items() if v} == dict(expected_queue(db, now))
    with db.read() as session:
        pending = dict(session.execute(select(OutboxMessage.topic, func.count())
                                       .where(OutboxMessage.status == "pending").group_by(OutboxMessage.topic)).all())
    assert pending, "outcomes wait in the outbox (no CRM configured)"
    for topic, n in pending.items():
        assert value(final, "dialer_outbox_pending", topic=topic) == n
        assert value(final, "dialer_outbox_oldest_pending_age_seconds", topic=topic) > 0
    for (name, labels), _ in final.items():
        for key, label in labels:
            assert not label.startswith("+7") and key not in ("lead_id", "attempt_id", "phone"), (name, labels)


def test_given_a_metrics_port_when_daemon_runs_then_metrics_are_served_there_and_not_on_the_webhook(sqlite_db):
    db = sqlite_db

    async def scenario():
        pbx = make_pbx([])
        port = await pbx.start()
        metrics_port = free_port()
        settings = daemon_settings(db.engine.url.render_as_string(hide_password=False), port,
                                   **{"metrics.port": metrics_port})
        try:
            async with running_daemon(settings, db, moscow_day_clock()) as daemon:
                async with httpx.AsyncClient(timeout=10) as client:
                    on_webhook = await client.get(f"{daemon.http_url}/metrics")
                    own = await client.get(f"http://127.0.0.1:{metrics_port}/metrics")
                    return on_webhook.status_code, own.status_code, own.text
        finally:
            await pbx.stop()

    webhook_status, own_status, text = asyncio.run(scenario())
    assert webhook_status == 404 and own_status == 200
    assert value(samples(text), "dialer_ami_connected") == 1


def test_given_the_grafana_dashboard_then_every_metric_it_plots_is_one_the_daemon_exports():
    import json
    import re
    from dialer.metrics.registry import DialerMetrics
    from tests.daemon_harness import REPO
    dashboard = json.loads((REPO / "deploy/grafana/dialer.json").read_text(encoding="utf-8"))
    plotted = {re.sub(r"_(total|bucket|count|sum)$", "", name) for panel in dashboard["panels"]
               for target in panel["targets"] for name in re.findall(r"\bdialer_[a-z_]+", target["expr"])}
    metrics = DialerMetrics()
    metrics.watch_daemon(calls_in_progress=lambda: 0, operator_states=lambda: [], ami_connected=lambda: False)
    exported = {family.name for family in metrics.registry.collect()}
    store_gauges = {"dialer_queue_leads", "dialer_outbox_pending", "dialer_outbox_dead_letters",
                    "dialer_outbox_oldest_pending_age_seconds", "dialer_export_batches"}
    assert plotted - store_gauges <= exported, plotted - store_gauges - exported
    assert store_gauges <= plotted
