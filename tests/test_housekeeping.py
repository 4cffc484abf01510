"""Housekeeping: `dialer prune` deletes exactly what the retention rules say, and `--dry-run` nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select

from dialer.housekeeping.prune import prune
from dialer.housekeeping.rules import cutoffs, export_file_is_old
from kernel.db.models import AttemptEvent, CallAttempt, Lead, OutboxMessage
from kernel.settings import load_settings

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def _store(db):
    """Rows of every kind, old and recent; returns the ids that must survive a prune (90/180 days)."""
    with db.write() as session:
        lead = Lead(received_at=NOW - 400 * DAY, source="webhook", status="closed", phone_e164="+79120000001")
        session.add(lead)
        session.flush()
        attempts = {}
        for name, ended in (("old", NOW - 200 * DAY), ("recent", NOW - 10 * DAY), ("open", None)):
            attempt = CallAttempt(lead_id=lead.id, attempt_no=len(attempts) + 1, daemon_id="d", state="ended" if ended
                                  else "dialing", claimed_at=(ended or NOW) - timedelta(minutes=1), ended_at=ended)
            session.add(attempt)
            session.flush()
            attempts[name] = attempt.id
            for event in ("claimed", "originated", "hangup"):
                session.add(AttemptEvent(attempt_id=attempt.id, at=attempt.claimed_at, event=event, to_state="x"))
        outbox = {}
        for name, status, sent_days, batch in (("sent_exported_old", "sent", 100, 1), ("sent_not_exported_old", "sent", 100, None),
                                               ("sent_exported_recent", "sent", 30, 2), ("pending_old", "pending", None, None),
                                               ("dead_old", "dead", None, None)):
            message = OutboxMessage(topic="outcome", lead_id=lead.id, idempotency_key=name, payload={"k": "v"},
                                    status=status, next_try_at=NOW - 200 * DAY, created_at=NOW - 200 * DAY,
                                    sent_at=NOW - sent_days * DAY if sent_days else None, export_batch=batch)
            session.add(message)
            session.flush()
            outbox[name] = message.id
    return attempts, outbox


def _files(folder):
    folder.mkdir()
    names = {"outcomes-2025-10-01_0200-b000001.csv": "old", "outcomes-2026-11-20_0200-b000002.jsonl": "recent",
             "notes.txt": "other", "outcomes-2020-01-01_0200-b000003.csv.bak": "other"}
    for name in names:
        (folder / name).write_text("outcome;1\n", encoding="utf-8")
    return names


def test_given_old_and_recent_rows_when_pruned_then_exactly_the_old_delivered_ones_go(db, tmp_path):
    attempts, outbox = _store(db)
    names = _files(tmp_path / "exports")
    settings = load_settings(env={}, overrides={"export.directory": str(tmp_path / "exports")})

    dry = prune(db, settings, NOW, dry_run=True)
    # by hand: 1 outbox row (sent, exported, 100 > 90 days); 3 events of the attempt ended 200 > 180 days ago;
    # 1 file dated 2025-10-01 (> 365 days before 2026-11-24)
    assert (dry.sent_outbox_rows, dry.attempt_event_rows, dry.export_files) == (
        1, 3, ["outcomes-2025-10-01_0200-b000001.csv"])
    with db.read() as session:
        assert len(session.scalars(select(OutboxMessage.id)).all()) == 5
        assert len(session.scalars(select(AttemptEvent.id)).all()) == 9
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == sorted(names)

    done = prune(db, settings, NOW, dry_run=False)
    assert (done.sent_outbox_rows, done.attempt_event_rows, len(done.export_files)) == (1, 3, 1)
    with db.read() as session:
        left = set(session.scalars(select(OutboxMessage.idempotency_key)))
        events_of = {a: len(session.scalars(select(AttemptEvent.id).where(AttemptEvent.attempt_id == a)).all())
                     for a in attempts.values()}
        kept_attempts = len(session.scalars(select(CallAttempt.id)).all())
    assert left == {"sent_not_exported_old", "sent_exported_recent", "pending_old", "dead_old"}
    assert events_of == {attempts["old"]: 0, attempts["recent"]: 3, attempts["open"]: 3}
    assert kept_attempts == 3, "the attempts and their results stay; only their event log goes"
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == sorted(n for n, k in names.items() if k != "old")
    assert prune(db, settings, NOW, dry_run=False).sent_outbox_rows == 0   # idempotent


def test_given_zero_days_then_that_kind_is_kept_forever(db, tmp_path):
    _store(db)
    settings = load_settings(env={}, overrides={"retention.sent_outbox_days": 0, "retention.attempt_events_days": 0,
                                                "retention.export_files_days": 0,
                                                "export.directory": str(tmp_path / "none")})
    report = prune(db, settings, NOW, dry_run=False)
    assert (report.sent_outbox_rows, report.attempt_event_rows, report.export_files) == (0, 0, [])


def test_cutoff_rules():
    cut = cutoffs(NOW, sent_outbox_days=90, attempt_events_days=0, export_files_days=1)
    assert cut.sent_outbox_before == NOW - 90 * DAY and cut.attempt_events_before is None
    zone = ZoneInfo("Europe/Moscow")
    assert export_file_is_old("outcomes-2026-11-23_0200-b000001.csv", zone, cut.export_files_before)   # 02:00 MSK
    assert not export_file_is_old("outcomes-2026-11-23_1300-b000001.csv", zone, cut.export_files_before)
    assert not export_file_is_old("outcomes-2026-11-23_0200-b000001.csv.tmp", zone, cut.export_files_before)


def test_dialer_prune_dry_run_on_the_command_line(run_dialer):
    assert run_dialer("init").returncode == 0
    result = run_dialer("prune", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dry run" in result.stdout and "would delete" in result.stdout and "kept forever" not in result.stdout
