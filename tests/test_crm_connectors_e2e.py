"""End to end: `dialer run` (a subprocess) with the simulated PBX and the RetailCRM contract stub.

An order in the CRM becomes a lead, is dialed, gets a disposition; its outcome reaches the order exactly
once although the CRM is down when the outcome is written and the daemon is killed (SIGKILL) meanwhile.
"""

from __future__ import annotations

import signal
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from dialer.dispositions import record_disposition
from kernel.db.engine import Database
from kernel.db.migrate import upgrade
from kernel.db.models import Lead, OutboxMessage
from leads.disposition import DispositionInput
from tests.crm_stubs.retailcrm import RetailCrmStub
from tests.daemon_harness import (TOKEN, PbxThread, attempts, free_port, make_pbx, start_daemon_process,
                                  stop_process, wait_http)

pytestmark = pytest.mark.timeout(240)


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _outcome(db: Database) -> OutboxMessage | None:
    with db.read() as session:
        return session.scalar(select(OutboxMessage).where(OutboxMessage.topic == "outcome"))


def test_retailcrm_order_is_called_and_its_outcome_lands_once_across_an_outage_and_a_kill(tmp_path):
    url = f"sqlite:///{tmp_path / 'dialer.db'}"
    db = Database(url)
    upgrade(db)
    crm = RetailCrmStub(api_key="key-e2e").start()
    crm.add_order(9001, number="9001A", phone="+79128000001", first="Мария", last="Котова")
    crm.add_order(9002, status="complete", phone="+79128000002")     # not to confirm: never dialed
    config = tmp_path / "dialer.toml"
    config.write_text(f'''
[retailcrm]
url = "{crm.url}"
api_key = "key-e2e"
sites = "shop"
statuses = "new"
interval_seconds = 0.5
[retailcrm.status_map]
confirmed = "client-confirmed"
''', encoding="utf-8")
    env = {"DIALER_CONFIG": str(config), "DIALER_DB_URL": url, "DIALER_AMI_SECRET": "dialer-secret",
           "DIALER_INTAKE_TOKEN": TOKEN, "DIALER_DAEMON_ID": "proc-daemon", "DIALER_DIAL_NUMBER_FORMAT": "e164",
           "DIALER_AMI_RECONNECT_MIN_SECONDS": "0.05", "DIALER_CRM_RETRY_BASE_SECONDS": "0.5",
           "DIALER_CRM_RETRY_MAX_SECONDS": "1", "DIALER_CRM_POLL_SECONDS": "0.2", "DIALER_LOG_LEVEL": "INFO"}
    pbx = make_pbx([{"pattern": r"\+79128.*", "outcome": "answer", "after": 1, "talk": 5}], speed=10)
    try:
        with PbxThread(pbx) as sim:
            env["DIALER_AMI_PORT"] = str(sim.port)
            port = free_port()
            first = start_daemon_process(env, port)
            try:
                wait_http(f"http://127.0.0.1:{port}", first)
                _wait(lambda: attempts(db) and attempts(db)[0].connected_at is not None, 60,
                      "the order's customer to be connected to an operator")
                crm.stop()                                           # the CRM goes down
                attempt = attempts(db)[0]
                # the daemon runs on a simulated clock (harness): the disposition is written in its time
                record_disposition(db, attempt.id, DispositionInput("confirmed", amount="1990"),
                                   now=attempt.connected_at + timedelta(seconds=1), center_zone="Europe/Moscow", recorded_by="Анна")
                _wait(lambda: (_outcome(db) is not None and _outcome(db).failures >= 1), 60,
                      "a failed delivery while the CRM is down")
            finally:
                first.kill()                                         # no goodbye
                first.communicate()
            crm.start()                                              # the CRM comes back (same port)
            second = start_daemon_process(env, port)
            try:
                wait_http(f"http://127.0.0.1:{port}", second)
                _wait(lambda: _outcome(db).status == "sent", 60, "the outcome to be delivered")
            finally:
                code, output = stop_process(second, signal.SIGTERM)
        assert code == 0, output[-3000:]
        with db.read() as session:
            leads = session.execute(select(Lead.source, Lead.source_item_id, Lead.order_number)).all()
        assert [tuple(lead) for lead in leads] == [("feed:retailcrm", "9001", "9001A")]
        assert len(attempts(db)) == 1 and pbx.stats().calls_placed == 1
        assert len(crm.edits) == 1 and crm.edits[0]["ref"] == "9001"
        order = crm.orders[9001]
        assert order["status"] == "client-confirmed" and order["managerComment"].count("outcome-") == 1
        assert crm.orders[9002]["managerComment"] == ""
    finally:
        crm.stop()
        db.dispose()


def test_bitrix24_lead_is_called_and_its_outcome_lands_once_across_an_outage_and_a_kill(tmp_path):
    from tests.crm_stubs.bitrix24 import Bitrix24Stub
    url = f"sqlite:///{tmp_path / 'dialer.db'}"
    db = Database(url)
    upgrade(db)
    crm = Bitrix24Stub(secret="e2e").start()
    crm.add_lead(501, phone="+79128000501", name="Мария", UF_CRM_ORDER="Z-501")
    crm.add_lead(502, phone="+79128000502", status="JUNK")               # not to call
    config = tmp_path / "dialer.toml"
    config.write_text(f'''
[bitrix24]
webhook_url = "{crm.url}"
order_field = "UF_CRM_ORDER"
interval_seconds = 0.5
[bitrix24.status_map]
confirmed = "CONVERTED"
''', encoding="utf-8")
    env = {"DIALER_CONFIG": str(config), "DIALER_DB_URL": url, "DIALER_AMI_SECRET": "dialer-secret",
           "DIALER_INTAKE_TOKEN": TOKEN, "DIALER_DAEMON_ID": "proc-daemon", "DIALER_DIAL_NUMBER_FORMAT": "e164",
           "DIALER_AMI_RECONNECT_MIN_SECONDS": "0.05", "DIALER_CRM_RETRY_BASE_SECONDS": "0.5",
           "DIALER_CRM_RETRY_MAX_SECONDS": "1", "DIALER_CRM_POLL_SECONDS": "0.2", "DIALER_LOG_LEVEL": "INFO"}
    pbx = make_pbx([{"pattern": r"\+79128.*", "outcome": "answer", "after": 1, "talk": 5}], speed=10)
    try:
        with PbxThread(pbx) as sim:
            env["DIALER_AMI_PORT"] = str(sim.port)
            port = free_port()
            first = start_daemon_process(env, port)
            try:
                wait_http(f"http://127.0.0.1:{port}", first)
                _wait(lambda: attempts(db) and attempts(db)[0].connected_at is not None, 60,
                      "the lead's customer to be connected to an operator")
                crm.stop()
                attempt = attempts(db)[0]
                record_disposition(db, attempt.id, DispositionInput("confirmed", amount="1990"),
                                   now=attempt.connected_at + timedelta(seconds=1), center_zone="Europe/Moscow",
                                   recorded_by="Анна")
                _wait(lambda: (_outcome(db) is not None and _outcome(db).failures >= 1), 60,
                      "a failed delivery while the portal is down")
            finally:
                first.kill()
                first.communicate()
            crm.start()
            second = start_daemon_process(env, port)
            try:
                wait_http(f"http://127.0.0.1:{port}", second)
                _wait(lambda: _outcome(db).status == "sent", 60, "the outcome to be delivered")
            finally:
                code, output = stop_process(second, signal.SIGTERM)
        assert code == 0, output[-3000:]
        with db.read() as session:
            leads = session.execute(select(Lead.source, Lead.source_item_id, Lead.order_number)).all()
        assert [tuple(lead) for lead in leads] == [("feed:bitrix24", "501", "Z-501")]
        assert len(attempts(db)) == 1 and pbx.stats().calls_placed == 1
        assert crm.leads[501]["STATUS_ID"] == "CONVERTED" and crm.leads[501]["OPPORTUNITY"] == "1990.00"
        assert len(crm.comments) == 1 and len(crm.updates) == 1 and len(crm.calls_registered) == 1
        assert crm.leads[502]["STATUS_ID"] == "JUNK" and all(c["ENTITY_ID"] == "501" for c in crm.comments)
    finally:
        crm.stop()
        db.dispose()
