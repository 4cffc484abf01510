"""The JSON feed poller against a real HTTP server on 127.0.0.1, storing into SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import select

from kernel.clock import ManualClock
from kernel.db.engine import Database
from kernel.db.models import Lead
from kernel.errors import SettingsError
from kernel.settings import FeedSettings
from leads.intake import Intake
from leads.sources.feed import FeedPoller, HttpFeed, PollReport, read_cursor, retry_delay, write_cursor
from tests.conftest import utc
from tests.daemon_harness import daemon_settings, make_pbx, moscow_day_clock, running_daemon, wait_until

START = utc(2026, 11, 23, 7, 0)


@dataclass
class Answer:
    status: int = 200
    body: Any = None           # JSON-encoded unless bytes
    delay: float = 0.0


class FeedServer:
    """A real HTTP server that answers GET /feed?cursor=X from `pages[X]` (None: no cursor sent)."""

    def __init__(self) -> None:
        self.pages: dict[str | None, Answer] = {}
        self.requests: list[str | None] = []
        self.authorizations: list[str | None] = []
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                cursor = query["cursor"][0] if "cursor" in query else None
                feed.requests.append(cursor)
                feed.authorizations.append(self.headers.get("Authorization"))
                answer = feed.pages.get(cursor, Answer(404, {"error": "no such cursor"}))
                time.sleep(answer.delay)
                body = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the poller gave up waiting (timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/feed"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def page(self, cursor: str | None, items: list, next_cursor: Any = None) -> None:
        self.pages[cursor] = Answer(200, {"items": items, "next_cursor": next_cursor})


@pytest.fixture
def feed_server():
    server = FeedServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def feed_settings(url: str, **changes: Any) -> FeedSettings:
    values = {"name": "shop", "url": url, "interval_seconds": 0.05, "timeout_seconds": 2.0,
              "field_map": {"tel": "phone", "fio": "name"}}
    return FeedSettings(**{**values, **changes})


def poll_once(settings: FeedSettings, db: Database, clock: ManualClock | None = None) -> PollReport:
    async def go() -> PollReport:
        async with HttpFeed(settings) as source:
            return await FeedPoller(settings, source, Intake(db), db, clock or ManualClock(START)).poll_once()
    return asyncio.run(go())


def leads_of(db: Database) -> list[Lead]:
    with db.read() as session:
        return list(session.scalars(select(Lead).order_by(Lead.id)))


def item(item_id: Any, phone: str, **fields: Any) -> dict[str, Any]:
    return {"id": item_id, "tel": phone, **fields}


# ---------------------------------------------------------------- pages and cursor

def test_given_three_pages_when_polled_then_every_item_stored_and_cursor_at_the_last(db, feed_server):
    feed_server.page(None, [item(1, "8 (912) 345-67-89", fio="Анна Петрова", comment="Перезвоните вечером"),
                            item("2", "нет телефона")], next_cursor="c1")
    feed_server.page("c1", [item(3, "+7 912 345 67 80", order_number=77, utm="яндекс")], next_cursor="c2")
    feed_server.page("c2", [], next_cursor=None)

    report = poll_once(feed_settings(feed_server.url), db)

    assert report.error is None, report.error
    assert feed_server.requests == [None, "c1", "c2"]
    assert (report.pages, report.stored, report.cursor_after) == (3, {"new": 2, "invalid": 1}, "c2")
    assert read_cursor(db, "feed:shop") == "c2"
    leads = leads_of(db)
    assert [(lead.source, lead.source_item_id, lead.status) for lead in leads] == [
        ("feed:shop", "1", "new"), ("feed:shop", "2", "invalid"), ("feed:shop", "3", "new")]
    assert (leads[0].phone_e164, leads[0].name, leads[0].comment) == (
        "+79123456789", "Анна Петрова", "Перезвоните вечером")
    assert leads[0].received_at == START
    assert (leads[2].order_number, leads[2].extra) == ("77", {"utm": "яндекс"})


def test_given_a_stored_cursor_when_the_poller_restarts_then_it_resumes_from_it(db, feed_server):
    feed_server.page(None, [item(1, "+79123456789")], next_cursor="c1")
    feed_server.page("c1", [], next_cursor=None)
    poll_once(feed_settings(feed_server.url), db)

    feed_server.page("c1", [item(2, "+79123456780")], next_cursor="c2")
    feed_server.page("c2", [], next_cursor=None)
    restarted = Database(db.url)  # a new process: new engine, only the database remembers
    try:
        report = poll_once(feed_settings(feed_server.url), restarted)
    finally:
        restarted.dispose()

    assert feed_server.requests == [None, "c1", "c1", "c2"]
    assert report.cursor_before == "c1" and report.cursor_after == "c2" and report.stored == {"new": 1}
    assert [lead.source_item_id for lead in leads_of(db)] == ["1", "2"]


def test_the_same_item_served_twice_is_stored_once(db, feed_server):
    feed_server.page(None, [item("a", "+79123456789"), item("a", "+79123456789")], next_cursor="c1")
    feed_server.page("c1", [item("a", "+79123456789"), item("b", "+79123456780")], next_cursor=None)

    first = poll_once(feed_settings(feed_server.url), db)
    again = poll_once(feed_settings(feed_server.url), db)  # next_cursor was null: the last page is read again

    assert first.stored == {"new": 2} and first.already_stored == 2
    assert again.stored == {} and again.already_stored == 2
    assert [lead.source_item_id for lead in leads_of(db)] == ["a", "b"]


def test_the_cursor_is_sent_exactly_and_the_feed_token_as_bearer(sqlite_db, feed_server):
    cursor = "2026-11-23T10:00:00+03:00&id=д 5"
    write_cursor(sqlite_db, "feed:shop", cursor, START)
    feed_server.page(cursor, [item(1, "+79123456789")], next_cursor=None)

    report = poll_once(feed_settings(feed_server.url, token="feed-secret"), sqlite_db)

    assert report.error is None and report.stored == {"new": 1}
    assert feed_server.requests == [cursor]
    assert feed_server.authorizations == ["Bearer feed-secret"]


# ---------------------------------------------------------------- failures change nothing

def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/feed"


FAILURES = [
    pytest.param(Answer(500, {"error": "boom"}), "answered HTTP 500", id="http-500"),
    pytest.param(Answer(403, {"error": "forbidden"}), "answered HTTP 403", id="http-403"),
    pytest.param(Answer(200, {"items": [item(9, "+79123456789")]}, delay=1.0), "did not answer within",
                 id="timeout"),
    pytest.param(Answer(200, b"<html>Service Unavailable</html>"), "is not JSON", id="not-json"),
    pytest.param(Answer(200, [item(9, "+79123456789")]), "not a JSON object", id="page-is-a-list"),
    pytest.param(Answer(200, {"next_cursor": "c9"}), "no 'items' list", id="missing-items"),
    pytest.param(Answer(200, {"items": {"id": 1}}), "no 'items' list", id="items-not-a-list"),
    pytest.param(Answer(200, {"items": [], "next_cursor": {"page": 2}}), "'next_cursor' must be",
                 id="bad-next-cursor"),
]


@pytest.mark.parametrize("answer, message", FAILURES)
def test_given_a_bad_answer_then_a_clear_error_and_nothing_changes(db, feed_server, answer, message):
    write_cursor(db, "feed:shop", "c0", START)
    feed_server.pages["c0"] = answer

    report = poll_once(feed_settings(feed_server.url, timeout_seconds=0.3), db)

    assert report.error is not None and message in report.error and "feed shop" in report.error
    assert report.stored == {} and report.cursor_after == "c0"
    assert read_cursor(db, "feed:shop") == "c0"
    assert leads_of(db) == []


def test_given_the_feed_is_down_then_a_clear_error_and_nothing_changes(sqlite_db):
    report = poll_once(feed_settings(closed_port_url()), sqlite_db)
    assert "cannot be reached" in report.error
    assert read_cursor(sqlite_db, "feed:shop") is None and leads_of(sqlite_db) == []


@pytest.mark.parametrize("bad, message", [
    pytest.param({"tel": "+79123456780"}, "has no 'id'", id="item-without-id"),
    pytest.param({"id": "", "tel": "+79123456780"}, "has no 'id'", id="empty-id"),
    pytest.param("+79123456780", "not a JSON object", id="item-not-an-object"),
    pytest.param({"id": 5, "tel": ["+79123456780"]}, "phone must be", id="phone-as-list"),
    pytest.param({"id": 5, "fio": "Без телефона"}, "phone is required", id="no-phone-field"),
])
def test_given_a_malformed_item_then_good_items_stored_and_cursor_stays_until_fixed(db, feed_server, bad,
                                                                                     message):
    feed_server.page(None, [item(1, "+79123456789"), bad, item(2, "+79123456781")], next_cursor="c1")
    feed_server.page("c1", [item(3, "+79123456782")], next_cursor=None)
    settings = feed_settings(feed_server.url)

    first = poll_once(settings, db)
    second = poll_once(settings, db)

    assert message in first.error and "[1]" in first.error and "cursor stays" in first.error
    assert (first.stored, first.malformed_items, first.cursor_after) == ({"new": 2}, 1, None)
    assert (second.stored, second.already_stored, second.malformed_items) == ({}, 2, 1)
    assert read_cursor(db, "feed:shop") is None
    assert feed_server.requests == [None, None]
    assert [lead.source_item_id for lead in leads_of(db)] == ["1", "2"]

    feed_server.page(None, [item(1, "+79123456789"), item(4, "+79123456783"), item(2, "+79123456781")],
                     next_cursor="c1")
    fixed = poll_once(settings, db)
    assert fixed.error is None and fixed.stored == {"new": 2} and fixed.cursor_after == "c1"
    assert [lead.source_item_id for lead in leads_of(db)] == ["1", "2", "4", "3"]


def test_a_field_map_to_an_unknown_lead_field_is_refused(sqlite_db, feed_server):
    settings = feed_settings(feed_server.url, field_map={"tel": "telephone"})
    with pytest.raises(SettingsError, match="telephone"):
        FeedPoller(settings, HttpFeed(settings), Intake(sqlite_db), sqlite_db, ManualClock(START))


# ---------------------------------------------------------------- the loop

def test_retry_delay_doubles_after_each_failure_up_to_the_cap():
    assert [retry_delay(30, n) for n in range(5)] == [30, 60, 120, 240, 300]
    assert retry_delay(600, 3) == 600
    assert retry_delay(0.05, 2) == pytest.approx(0.2)


def test_run_keeps_polling_until_stopped_and_picks_up_new_items(sqlite_db, feed_server):
    feed_server.page(None, [item(1, "+79123456789")], next_cursor=None)
    settings = feed_settings(feed_server.url)
    clock = ManualClock(START)

    async def go() -> None:
        stop = asyncio.Event()
        async with HttpFeed(settings) as source:
            task = asyncio.create_task(FeedPoller(settings, source, Intake(sqlite_db), sqlite_db, clock).run(stop))
            await wait_for_leads(1)
            clock.advance(timedelta(minutes=1))
            feed_server.page(None, [item(1, "+79123456789"), item(2, "+79123456780")], next_cursor=None)
            await wait_for_leads(2)
            stop.set()
            await asyncio.wait_for(task, 5)

    async def wait_for_leads(count: int) -> None:
        for _ in range(200):
            if len(await asyncio.to_thread(leads_of, sqlite_db)) >= count:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"fewer than {count} leads after 4 s")

    asyncio.run(go())
    leads = leads_of(sqlite_db)
    assert [lead.source_item_id for lead in leads] == ["1", "2"]
    assert leads[1].received_at == START + timedelta(minutes=1)


# ---------------------------------------------------------------- `dialer feeds`

@pytest.fixture
def run_cli(cli_in_process):
    """`dialer ...` in this process (cli.main, exit code and output), the root logger restored afterwards."""
    return cli_in_process


def test_cli_feeds_poll_once_prints_counts_and_exits_1_when_a_feed_fails(tmp_path, feed_server, run_cli,
                                                                         monkeypatch):
    config = tmp_path / "dialer.toml"
    config.write_text(f"""
[[feeds]]
name = "shop"
url = "{feed_server.url}"
field_map = {{ tel = "phone" }}

[[feeds]]
name = "down"
url = "{closed_port_url()}"
""", encoding="utf-8")
    feed_server.page(None, [item(1, "+79123456789"), item(2, "мусор")], next_cursor="c1")
    feed_server.page("c1", [], next_cursor=None)
    monkeypatch.setenv("DIALER_DB_URL", f"sqlite:///{tmp_path / 'dialer.db'}")
    monkeypatch.setenv("DIALER_CONFIG", str(config))

    code, _, err = run_cli("feeds", "poll", "--once")
    assert code == 1 and "dialer init" in err
    assert run_cli("init")[0] == 0
    code, out, err = run_cli("feeds", "poll", "--once", "--format", "json")

    assert code == 1 and "down" in err
    reports = {r["feed"]: r for r in json.loads(out)}
    assert (reports["shop"]["new"], reports["shop"]["invalid"], reports["shop"]["cursor_after"]) == (1, 1, "c1")
    assert "cannot be reached" in reports["down"]["error"]
    assert run_cli("feeds", "poll", "--once", "--name", "nope")[0] == 2

    assert run_cli("feeds", "set-cursor", "shop", "c0")[0] == 0
    code, out, _ = run_cli("feeds", "list", "--format", "json")
    listed = {r["name"]: r for r in json.loads(out)}
    assert listed["shop"]["cursor"] == "c0" and listed["down"]["cursor"] is None


def test_the_daemon_polls_a_configured_feed_and_stores_its_leads(sqlite_db, feed_server):
    """A [[feeds]] entry in the daemon's settings is polled over HTTP by `dialer run` itself."""
    feed_server.page(None, [{"id": "a1", "tel": "+79125550101", "fio": "Пётр"},
                            {"id": "a2", "tel": "8 912 555-01-02", "fio": "Ольга"}], next_cursor="c1")
    feed_server.page("c1", [], next_cursor="c1")

    async def scenario() -> list[Lead]:
        pbx = make_pbx([{"pattern": r"\+7912555.*", "outcome": "busy"}])
        port = await pbx.start()
        settings = daemon_settings(sqlite_db.engine.url.render_as_string(hide_password=False), port)
        settings = dataclasses.replace(settings, feeds=(feed_settings(feed_server.url),))
        try:
            async with running_daemon(settings, sqlite_db, moscow_day_clock()) as daemon:
                await wait_until(lambda: len(leads_of(sqlite_db)) >= 2, 30, what="both feed leads stored")
                assert daemon.failure is None
        finally:
            await pbx.stop()
        return leads_of(sqlite_db)

    stored = asyncio.run(scenario())
    assert sorted(lead.phone_e164 for lead in stored) == ["+79125550101", "+79125550102"]
    assert {lead.source for lead in stored} == {"feed:shop"}
    assert None in feed_server.requests and "c1" in feed_server.requests
