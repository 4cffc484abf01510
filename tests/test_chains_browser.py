"""The unsubscribe link of a real chain e-mail, in a real headless Chromium against the real HTTP app:
lead posted to the webhook with 'write, don't call', e-mail delivered to an SMTP server on 127.0.0.1,
the link opened and the button clicked; the chain stops and the consent ledger records it. A mail
client's RFC 8058 one-click POST works too; an unknown link answers 404 with a page, never a 5xx."""

from __future__ import annotations

import random
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from dialer.chains.catalog import PACKAGED_CATALOG, load_catalog
from dialer.chains.mailer import EmailSender
from dialer.chains.store import chain_of_lead, tick
from dialer.chains.web import unsubscribe_router
from dialer.web.app import create_app
from dialer.web.server import ServerThread
from kernel.clock import ManualClock
from kernel.db.models import ConsentRecord, OutboxMessage
from kernel.settings import ChainsSettings, IntakeSettings, Settings
from leads.intake import Intake
from tests.conftest import moscow
from tests.console_harness import launch_chromium
from tests.smtp_inbox import SmtpInbox

pytestmark = pytest.mark.timeout(180)
TOKEN = "webhook-token-1234"


def test_an_unsubscribe_link_from_a_delivered_email_works_in_chromium(sqlite_db):
    db = sqlite_db
    clock = ManualClock(moscow(2026, 12, 7, 12, 0))
    catalog = load_catalog(PACKAGED_CATALOG)
    app = create_app(Settings(intake=IntakeSettings(token=TOKEN)), db, Intake(db), clock,
                     routers=[unsubscribe_router(db, clock)])
    with SmtpInbox() as inbox, ServerThread(app) as server, launch_chromium() as browser:
        settings = ChainsSettings(smtp_host="127.0.0.1", smtp_port=inbox.port, public_url=server.url)
        leads = []
        for phone, email, language in (("+79124440001", "anna@example.ru", "ru"),
                                       ("+79124440002", "mark@example.com", "en")):
            answer = httpx.post(f"{server.url}/leads", headers={"X-Dialer-Token": TOKEN}, timeout=30,
                                json={"phone": phone, "name": "Анна", "email": email, "write_instead": True,
                                      "language": language, "timezone": "Europe/Moscow"})
            assert answer.status_code == 202, answer.text
            assert answer.json()["status"] == "closed" and answer.json()["reason"] == "write_instead"
            leads.append(answer.json()["lead_id"])
        tick(db, catalog, settings, clock.now())
        EmailSender(db, settings, clock, random.Random(1)).send_due()
        mails = {got.rcpt[0]: got for got in inbox.wait_for(2)}
        link = mails["anna@example.ru"].message["List-Unsubscribe"].strip().strip("<>")
        assert link.startswith(f"{server.url}/unsubscribe/") and link in mails["anna@example.ru"].body

        page = browser.new_page()
        page.goto(link)
        assert page.inner_text("h1") == "Отписка от писем"
        assert chain_of_lead(db, leads[0])["status"] == "active"    # opening the link alone changes nothing
        page.click("#unsubscribe")
        page.wait_for_selector("#result")
        assert page.inner_text("#result") == "Готово: мы больше не будем присылать вам письма."
        page.goto(link)
        page.click("#unsubscribe")
        assert page.wait_for_selector("#result").inner_text() == "Вы уже отписаны: писем больше не будет."
        page.goto(f"{server.url}/unsubscribe/no-such-token")
        assert "не найдена" in page.inner_text("#result")

        # a mail client's one-click (RFC 8058): POST to the header's URL with List-Unsubscribe=One-Click
        other = mails["mark@example.com"].message["List-Unsubscribe"].strip().strip("<>")
        answer = httpx.post(other, data={"List-Unsubscribe": "One-Click"}, timeout=30)
        assert answer.status_code == 200 and "we will not send you any more e-mails" in answer.text
        assert httpx.post(f"{server.url}/unsubscribe/x", timeout=30).status_code == 404

        clock.advance(timedelta(days=4))
        tick(db, catalog, settings, clock.now())
        EmailSender(db, settings, clock, random.Random(1)).send_due()
        assert len(inbox.received) == 2                               # nothing after the unsubscribes

    assert [chain_of_lead(db, lead)["stop_reason"] for lead in leads] == ["unsubscribe", "unsubscribe"]
    with db.read() as session:
        consents = session.scalars(select(ConsentRecord).order_by(ConsentRecord.id)).all()
        email_rows = session.scalars(select(OutboxMessage.status).where(OutboxMessage.topic == "email")).all()
    assert [(c.email, c.granted, c.ip) for c in consents] == [("anna@example.ru", False, "127.0.0.1"),
                                                              ("mark@example.com", False, "127.0.0.1")]
    assert "Chrome" in consents[0].user_agent and consents[1].user_agent.startswith("python-httpx")
    assert email_rows == ["sent", "sent"]


def test_the_daemon_runs_the_chains_and_serves_the_unsubscribe_page(sqlite_db):
    """The real daemon (simulated PBX over AMI): a write-instead lead from the webhook gets its first
    e-mail from the daemon's own chain loop, and the daemon answers the e-mail's one-click POST."""
    import asyncio
    from tests.daemon_harness import daemon_settings, make_pbx, moscow_day_clock, post_leads, running_daemon

    db = sqlite_db
    with SmtpInbox() as inbox:
        async def scenario():
            pbx = make_pbx([])
            port = await pbx.start()
            settings = daemon_settings(str(db.engine.url), port, **{
                "chains.smtp_host": "127.0.0.1", "chains.smtp_port": inbox.port, "chains.poll_seconds": 0.1,
                "chains.public_url": "http://placeholder.invalid"})
            try:
                async with running_daemon(settings, db, moscow_day_clock()) as daemon:
                    [answer] = await post_leads(daemon.http_url, [{"phone": "+79124440009", "email": "d@example.ru",
                                                                   "write_instead": "да"}])
                    assert answer["reason"] == "write_instead"
                    [mail] = await asyncio.to_thread(inbox.wait_for, 1, 30)
                    link = mail.message["List-Unsubscribe"].strip().strip("<>")
                    # the link names the public address; the daemon here listens on a free port
                    local = link.replace("http://placeholder.invalid", daemon.http_url)
                    async with httpx.AsyncClient(timeout=10) as client:
                        response = await client.post(local, data={"List-Unsubscribe": "One-Click"})
                    assert response.status_code == 200 and "Готово" in response.text
                    return answer["lead_id"]
            finally:
                await pbx.stop()

        lead_id = asyncio.run(scenario())
    assert chain_of_lead(db, lead_id)["stop_reason"] == "unsubscribe"
