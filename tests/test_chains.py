"""Touch chains against a real SMTP server on 127.0.0.1 (aiosmtpd) over an injected clock: exactly the
planned e-mails at the planned local times (computed by hand below), stops on unsubscribe, on an order
and on DNC; "write, don't call" from the webhook field and the disposition. SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from dialer.chains.catalog import PACKAGED_CATALOG, CatalogError, load_catalog, render, SAMPLE_FIELDS
from dialer.chains.mailer import EmailSender
from dialer.chains.model import MIN_GAP
from dialer.chains.store import chain_of_lead, record_stop, tick, unsubscribe
from dialer.chains.model import StopReason
from kernel.clock import ManualClock
from kernel.db.models import CallAttempt, ConsentRecord, Disposition, Lead, OutboxMessage, TouchChain
from kernel.settings import ChainsSettings
from leads.dnc import add_to_dnc
from leads.intake import Intake, LeadIn
from tests.smtp_inbox import SmtpInbox


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def chains_settings(inbox: SmtpInbox | None = None, **overrides) -> ChainsSettings:
    values = {"smtp_host": "127.0.0.1", "smtp_port": inbox.port if inbox else 1, "from_address": "shop@domtech.example",
              "public_url": "http://127.0.0.1:9", "smtp_timeout_seconds": 5.0, "retry_base_seconds": 60.0,
              **overrides}
    return ChainsSettings(**values)


def add_closed_lead(db, closed_at: datetime, phone: str, email: str | None, *, reason: str = "unreachable",
                    timezone_name: str | None = None, last_disposition: str | None = None,
                    language: str | None = None, name: str = "Иван Петров") -> int:
    with db.write() as session:
        extra = {k: v for k, v in {"email": email, "language": language}.items() if v}
        lead = Lead(received_at=closed_at - timedelta(days=2), source="webhook", phone_raw=phone, phone_e164=phone,
                    name=name, product="Чайник", status="closed", close_reason=reason, closed_at=closed_at,
                    timezone=timezone_name, extra=extra or None, attempts_count=5, contacts_count=0)
        session.add(lead)
        session.flush()
        if last_disposition:
            attempt = CallAttempt(lead_id=lead.id, attempt_no=1, daemon_id="t", state="ended", result="connected",
                                  claimed_at=closed_at - timedelta(days=1), connected_at=closed_at - timedelta(days=1))
            session.add(attempt)
            session.flush()
            session.add(Disposition(attempt_id=attempt.id, lead_id=lead.id, kind=last_disposition,
                                    recorded_by="cli:test", created_at=closed_at - timedelta(days=1)))
        return lead.id


# ---------------------------------------------------------------- the catalog

def test_shipped_catalog_has_four_offers_in_two_languages_and_renders():
    catalog = load_catalog(PACKAGED_CATALOG)
    variants = {(t.variant, t.language) for t in catalog.templates.values()}
    assert variants == {(v, lang) for v in ("gift", "bonus", "discount", "free_delivery") for lang in ("ru", "en")}
    rendered = render(catalog.template("offer-gift", "ru"), {**SAMPLE_FIELDS, "name": None})
    assert rendered.body.startswith("Здравствуйте!")          # no name: no hole, no "None"
    assert SAMPLE_FIELDS["unsubscribe_url"] in rendered.body
    for chain in catalog.chains:
        gaps = [step.delay for step in chain.steps[1:]]
        assert all(gap >= MIN_GAP for gap in gaps) and 2 <= len(chain.steps) <= 4


def _copy_catalog(tmp_path: Path) -> Path:
    import shutil
    target = tmp_path / "catalog"
    shutil.copytree(PACKAGED_CATALOG, target)
    return target


def test_a_chain_two_days_apart_a_template_with_an_unknown_field_and_no_unsubscribe_are_refused(tmp_path):
    folder = _copy_catalog(tmp_path)
    chains = yaml.safe_load((folder / "chains.yaml").read_text(encoding="utf-8"))
    chains["chains"][0]["steps"][1]["delay_days"] = 2
    chains["chains"][1]["stops"] = ["order"]
    (folder / "chains.yaml").write_text(yaml.safe_dump(chains, allow_unicode=True), encoding="utf-8")
    gift = folder / "templates" / "ru" / "offer-gift.yaml"
    gift.write_text(gift.read_text(encoding="utf-8").replace("{{ product }}", "{{ prodcut }}")
                    .replace("{{ unsubscribe_url }}", ""), encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        load_catalog(folder)
    problems = "\n".join(caught.value.problems)
    assert "chain unreached: step 2: delay 2 days after the previous e-mail; at least 3 days" in problems
    assert "chain write-instead: stops must include unsubscribe" in problems
    assert "chain write-instead: stops must include dnc" in problems
    assert "ru/offer-gift.yaml: body uses unknown fields prodcut" in problems
    assert "ru/offer-gift.yaml: the body must contain {{ unsubscribe_url }}" in problems


# ---------------------------------------------------------------- a chain over days, a real SMTP server

def test_chains_send_exactly_the_planned_emails_at_the_planned_local_times_and_stop(db):
    clock = ManualClock(utc(2026, 12, 7, 8, 0))
    catalog = load_catalog(PACKAGED_CATALOG)
    with SmtpInbox(clock.now) as inbox:
        settings = chains_settings(inbox)
        sender = EmailSender(db, settings, clock, random.Random(1))
        intake = Intake(db)
        leads: dict[str, int] = {}
        tokens: dict[str, str] = {}

        def events(now: datetime) -> None:
            if now == utc(2026, 12, 7, 8, 0):
                with db.write() as session:   # C's number is on the DNC list before C enters a chain
                    add_to_dnc(session, "+79130000003", reason="test", added_by="cli:test", now=now)
                with db.write() as session:   # E0: an older open lead of E's customer, ordered later
                    session.add(Lead(received_at=utc(2026, 12, 6, 9, 0), source="webhook", phone_raw="+79130000005",
                                     phone_e164="+79130000005", name="Ольга", status="retry", attempts_count=1,
                                     contacts_count=0))
            if now == utc(2026, 12, 7, 9, 0):
                leads["B"] = add_closed_lead(db, now, "+74951234567", "b@example.com", language="en", name="Boris")
                leads["C"] = add_closed_lead(db, now, "+79130000003", "c@example.com")
                leads["D"] = add_closed_lead(db, now, "+79130000004", "d@example.com", timezone_name="Europe/Moscow")
                leads["E"] = add_closed_lead(db, now, "+79130000005", "e@example.com", timezone_name="Europe/Moscow",
                                             last_disposition="no_decision")
            if now == utc(2026, 12, 7, 19, 0):   # 00:00 in Yekaterinburg: "write to me, do not call"
                [outcome] = intake.submit([LeadIn(phone="+7 912 000-00-01", name="Анна", product="Пылесос",
                                                  timezone="Asia/Yekaterinburg", source="webhook",
                                                  extra={"email": "anna@example.ru", "write_instead": True})], now)
                assert (outcome.status.value, outcome.reason) == ("closed", "write_instead")
                leads["A"] = outcome.lead_id
            if now == utc(2026, 12, 9, 9, 0):
                with db.write() as session:
                    add_to_dnc(session, "+79130000004", reason="asked on the phone", added_by="cli:test", now=now)
            if now == utc(2026, 12, 11, 9, 0):   # B clicks the link of an e-mail already received
                token = tokens["B"]
                done = unsubscribe(db, token, now, ip="203.0.113.7", user_agent="Thunderbird")
                assert done.lead_id == leads["B"] and not done.already
            if now == utc(2026, 12, 12, 9, 0):
                with db.write() as session:   # E's customer ordered through the older lead E0
                    older = session.scalar(select(Lead).where(Lead.phone_e164 == "+79130000005",
                                                              Lead.status == "retry"))
                    older.status, older.close_reason, older.closed_at = "closed", "confirmed", now

        while clock.now() <= utc(2026, 12, 24, 12, 0):
            events(clock.now())
            tick(db, catalog, settings, clock.now())
            sender.send_due()
            for got in inbox.received:
                url = got.message["List-Unsubscribe"].strip().strip("<>")
                for key, lead_id in leads.items():
                    if got.rcpt == (f"{key.lower()}@example.com",):
                        tokens.setdefault(key, url.rsplit("/", 1)[1])
            clock.advance(timedelta(hours=1))

        received = [(got.rcpt[0], got.at) for got in inbox.received]

    # By hand. Window 10:00-20:00 local. A enters at 00:00 Yekaterinburg (UTC+5) on Dec 8: first at
    # 10:00 there (05:00 UTC), then +3, +5, +7 days, each at 10:00 local. B, D, E enter at 12:00 Moscow
    # (09:00 UTC), inside the window: at once, then +3 days, +4 days. B unsubscribes on Dec 11 (after 2),
    # D's number goes on DNC on Dec 9 (after 1), E's customer orders on Dec 12 (after 2). C: on DNC, never.
    expected = sorted([
        ("anna@example.ru", utc(2026, 12, 8, 5)), ("anna@example.ru", utc(2026, 12, 11, 5)),
        ("anna@example.ru", utc(2026, 12, 16, 5)), ("anna@example.ru", utc(2026, 12, 23, 5)),
        ("b@example.com", utc(2026, 12, 7, 9)), ("b@example.com", utc(2026, 12, 10, 9)),
        ("d@example.com", utc(2026, 12, 7, 9)),
        ("e@example.com", utc(2026, 12, 7, 9)), ("e@example.com", utc(2026, 12, 10, 9)),
    ], key=lambda r: (r[1], r[0]))
    assert sorted(received, key=lambda r: (r[1], r[0])) == expected

    anna = [got for got in inbox.received if got.rcpt == ("anna@example.ru",)]
    assert [got.message["X-Dialer-Template"].split("#")[0] for got in anna] == [
        "offer-free-delivery.v1.ru", "offer-gift.v1.ru", "offer-bonus.v1.ru", "offer-discount.v1.ru"]
    first = anna[0].message
    assert first["Subject"] == "Пишем, как вы просили: бесплатная доставка в «ДомТехника»"
    assert parsedate_to_datetime(first["Date"]) == utc(2026, 12, 8, 5)
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = first["List-Unsubscribe"].strip("<>")
    assert link.startswith("http://127.0.0.1:9/unsubscribe/") and link in anna[0].body
    assert anna[0].body.startswith("Здравствуйте, Анна!")
    boris = [got for got in inbox.received if got.rcpt == ("b@example.com",)]
    assert boris[0].message["Subject"] == "Boris, a gift with your order at ДомТехника"
    assert len({got.message["Message-ID"] for got in inbox.received}) == len(inbox.received) == 9

    states = {key: chain_of_lead(db, lead_id) for key, lead_id in leads.items() if key != "C"}
    assert {key: (s["status"], s["stop_reason"]) for key, s in states.items()} == {
        "A": ("done", None), "B": ("stopped", "unsubscribe"), "D": ("stopped", "dnc"), "E": ("stopped", "order")}
    assert states["E"]["entry"] == "thinking" and states["B"]["entry"] == "exhausted"
    assert chain_of_lead(db, leads["C"])["status"] == "skipped"
    with db.read() as session:
        outbox = dict(session.execute(select(OutboxMessage.status, func.count()).where(OutboxMessage.topic == "email")
                                      .group_by(OutboxMessage.status)).tuples().all())
        consent = session.scalars(select(ConsentRecord).order_by(ConsentRecord.id)).all()
    assert outbox == {"sent": 9}
    assert [(c.channel, c.source, c.phone_e164, c.email, c.granted, c.ip, c.user_agent) for c in consent] == [
        ("call", "dnc", "+79130000003", None, False, None, None),
        ("call", "dnc", "+79130000004", None, False, None, None),
        ("email", "unsubscribe_link", "+74951234567", "b@example.com", False, "203.0.113.7", "Thunderbird")]


def test_an_email_the_server_refuses_is_retried_once_it_comes_back_and_sent_once(db):
    clock = ManualClock(utc(2026, 12, 7, 9, 0))
    catalog = load_catalog(PACKAGED_CATALOG)
    with SmtpInbox(clock.now) as inbox:
        settings = chains_settings(inbox, max_failures=3)
        sender = EmailSender(db, settings, clock, random.Random(1))
        lead_id = add_closed_lead(db, clock.now(), "+79130000011", "z@example.com")
        tick(db, catalog, settings, clock.now())
        inbox.refuse = True
        assert sender.send_due().retrying == 1
        clock.advance(timedelta(minutes=2))    # the first retry is due after 60 s +-20%
        inbox.refuse = False
        assert sender.send_due().sent == 1
        assert sender.send_due().tried == 0
        assert len(inbox.received) == 1
        # a chain stopped by hand (the customer replied) queues nothing more
        record_stop(db, lead_id, StopReason.REPLY, clock.now())
        clock.advance(timedelta(days=5))
        tick(db, catalog, settings, clock.now())
        assert sender.send_due().tried == 0
    assert chain_of_lead(db, lead_id)["stop_reason"] == "reply"


def test_no_smtp_server_the_email_becomes_a_dead_letter_after_max_failures(db):
    clock = ManualClock(utc(2026, 12, 7, 9, 0))
    catalog = load_catalog(PACKAGED_CATALOG)
    settings = chains_settings(None, max_failures=2, smtp_port=_closed_port())
    sender = EmailSender(db, settings, clock, random.Random(1))
    add_closed_lead(db, clock.now(), "+79130000012", "y@example.com")
    tick(db, catalog, settings, clock.now())
    assert sender.send_due().retrying == 1
    clock.advance(timedelta(hours=1))
    assert sender.send_due().dead == 1
    with db.read() as session:
        row = session.scalar(select(OutboxMessage).where(OutboxMessage.topic == "email"))
    assert row.status == "dead" and row.failures == 2 and "Connection" in row.last_error


def _closed_port() -> int:
    from tests.smtp_inbox import free_port
    return free_port()


def test_a_lead_without_email_or_unsubscribed_earlier_is_skipped_with_the_reason(db):
    clock = ManualClock(utc(2026, 12, 7, 9, 0))
    catalog = load_catalog(PACKAGED_CATALOG)
    settings = chains_settings(None)
    no_email = add_closed_lead(db, clock.now(), "+79130000021", None)
    with db.write() as session:
        session.add(ConsentRecord(phone_e164="+79130000022", email=None, channel="email", granted=False,
                                  source="unsubscribe_link", recorded_by="test", at=clock.now() - timedelta(days=30)))
    unsubscribed = add_closed_lead(db, clock.now(), "+79130000022", "x@example.com")
    tick(db, catalog, settings, clock.now())
    assert chain_of_lead(db, no_email)["stop_reason"] == ("no e-mail address on the lead or on another lead of the "
                                                        "number (field 'email')")
    assert chain_of_lead(db, unsubscribed)["stop_reason"] == "the customer unsubscribed from e-mails earlier"


def test_the_email_left_on_a_duplicate_request_reaches_the_chain_of_the_first_lead(db):
    clock = ManualClock(utc(2026, 12, 7, 9, 0))
    intake = Intake(db)
    [first] = intake.submit([LeadIn(phone="+79130000031", name="Анна", source="site")], clock.now())
    [again] = intake.submit([LeadIn(phone="+79130000031", source="site",
                                    extra={"email": "anna@example.ru", "contact_by": "email", "language": "en"})],
                            clock.now() + timedelta(minutes=5))
    assert again.status.value == "duplicate"
    tick(db, load_catalog(PACKAGED_CATALOG), chains_settings(None), clock.now() + timedelta(minutes=6))
    run = chain_of_lead(db, first.lead_id)
    assert (run["entry"], run["status"], run["email"], run["language"]) == (
        "write_instead", "active", "anna@example.ru", "en")
