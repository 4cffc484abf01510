"""Pull source: poll a JSON HTTP feed with a cursor (settings `[[feeds]]`).

One poll: GET `url?<cursor_param>=<cursor>` (no cursor on the very first poll), read the page
`{"items": [...], "next_cursor": ...}`, store the items through Intake.submit with source
`feed:<name>` and the item's id as source_item_id, then store `next_cursor` in the `cursors` table
(name `feed:<name>`), and go on with the next page until `next_cursor` is null or unchanged.

Order of writes: the page's leads first, then the cursor. A crash in between re-fetches the page after
the restart; the item ids make that harmless (an item already stored is never stored again).

A page that cannot be read (HTTP error, timeout, not JSON, no items list) changes nothing and is
reported. A page with some malformed items (not an object, no id, wrong field types): its good items
are stored, each bad item is reported, and the cursor does NOT move past the page. Every later poll
re-reads that page (storing nothing twice) and reports the bad items again, until the feed fixes them
or someone moves the cursor on deliberately (`dialer feeds set-cursor`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from kernel.clock import Clock
from kernel.db.engine import Database
from kernel.db.models import Cursor
from kernel.errors import DialerError, SettingsError
from kernel.settings import FeedSettings
from leads.intake import FIELD_LIMITS, LEAD_FIELDS, Intake, IntakeOutcome, LeadIn
from leads.sources.json_lead import ALIASES, MalformedLead, lead_from_json

log = logging.getLogger("leads.feed")

MAX_PAGES_PER_POLL = 100
MAX_BACKOFF_SECONDS = 300.0


class FeedError(DialerError):
    """The feed did not give a usable page."""


class FeedUnreachable(FeedError):
    """The feed could not be reached (connection refused, timeout)."""


class FeedHttpError(FeedError):
    """The feed answered with an HTTP error."""


class MalformedPage(FeedError):
    """The feed's page is not what a feed page must be."""


@dataclass(frozen=True)
class FeedPage:
    items: tuple[Any, ...]
    next_cursor: str | None


@dataclass
class PollReport:
    """What one poll of one feed did."""

    feed: str
    cursor_before: str | None = None
    cursor_after: str | None = None
    pages: int = 0
    stored: dict[str, int] = field(default_factory=dict)  # by intake status: new, duplicate, dnc, invalid
    already_stored: int = 0
    malformed_items: int = 0
    error: str | None = None

    def add(self, outcomes: list[IntakeOutcome]) -> None:
        for outcome in outcomes:
            if outcome.already_stored:
                self.already_stored += 1
            else:
                self.stored[outcome.status.value] = self.stored.get(outcome.status.value, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {"feed": self.feed, "pages": self.pages, "stored": sum(self.stored.values()), **self.stored,
                "already_stored": self.already_stored, "malformed_items": self.malformed_items,
                "cursor_before": self.cursor_before, "cursor_after": self.cursor_after, "error": self.error}


class PageSource(Protocol):
    """Where pages come from: `HttpFeed` for real."""

    async def fetch(self, cursor: str | None) -> FeedPage: ...


def parse_page(payload: Any, settings: FeedSettings) -> FeedPage:
    """A decoded JSON page as a FeedPage, or MalformedPage saying what is wrong with it."""
    if not isinstance(payload, dict):
        raise MalformedPage(f"feed {settings.name}: the page is not a JSON object")
    items = payload.get(settings.items_key)
    if not isinstance(items, list):
        raise MalformedPage(f"feed {settings.name}: the page has no '{settings.items_key}' list")
    cursor = payload.get(settings.next_cursor_key)
    if cursor is not None and (isinstance(cursor, bool) or not isinstance(cursor, (str, int))):
        raise MalformedPage(f"feed {settings.name}: '{settings.next_cursor_key}' must be a string, a number "
                            f"or null, got {json.dumps(cursor)[:100]}")
    return FeedPage(tuple(items), None if cursor is None else str(cursor))


def read_item(item: Any, settings: FeedSettings) -> LeadIn:
    """One feed item as a lead (fields renamed by field_map), or MalformedLead."""
    if not isinstance(item, dict):
        raise MalformedLead([f"the item is not a JSON object: {json.dumps(item, ensure_ascii=False)[:100]}"])
    item_id = item.get(settings.id_key)
    if isinstance(item_id, bool) or not isinstance(item_id, (str, int)) or item_id == "":
        raise MalformedLead([f"the item has no '{settings.id_key}' (a non-empty string or number)"])
    if len(str(item_id)) > FIELD_LIMITS["source_item_id"]:
        raise MalformedLead([f"the item's id is longer than {FIELD_LIMITS['source_item_id']} characters"])
    fields = {settings.field_map.get(key, key): value for key, value in item.items() if key != settings.id_key}
    try:
        return lead_from_json(fields, fixed_source=source_name(settings), source_item_id=str(item_id))
    except MalformedLead as exc:
        raise MalformedLead([f"item {item_id!r}: {problem}" for problem in exc.problems]) from None


def source_name(settings: FeedSettings) -> str:
    return f"feed:{settings.name}"


def check_feed_settings(settings: FeedSettings) -> None:
    """Refuse a feed without a URL, whose field_map names no lead field, or whose name is too long."""
    if not settings.url:
        raise SettingsError(f"feeds[{settings.name}].url is required (the http:// or https:// URL of the feed)")
    if len(source_name(settings)) > FIELD_LIMITS["source"]:
        raise SettingsError(f"feeds: name {settings.name!r} is too long (at most "
                            f"{FIELD_LIMITS['source'] - len('feed:')} characters)")
    known = set(LEAD_FIELDS) | set(ALIASES) | {"extra", "source"}
    for key, target in settings.field_map.items():
        if target not in known:
            raise SettingsError(f"feeds[{settings.name}].field_map: {key!r} -> {target!r}; the target must be "
                                f"one of: {', '.join(sorted(known))}")


# ---------------------------------------------------------------- the stored cursor

def read_cursor(db: Database, name: str) -> str | None:
    with db.read() as session:
        return session.scalar(select(Cursor.value).where(Cursor.name == name))


def write_cursor(db: Database, name: str, value: str, now: datetime) -> None:
    """Insert or update the named cursor (one statement, safe against a concurrent writer)."""
    insert = pg_insert if db.is_postgres else sqlite_insert
    statement = insert(Cursor).values(name=name, value=value, updated_at=now)
    statement = statement.on_conflict_do_update(index_elements=[Cursor.name],
                                                set_={"value": value, "updated_at": now})
    with db.write() as session:
        session.execute(statement)


def list_cursors(db: Database, prefix: str) -> dict[str, tuple[str, datetime]]:
    with db.read() as session:
        rows = session.execute(select(Cursor.name, Cursor.value, Cursor.updated_at)
                               .where(Cursor.name.startswith(prefix, autoescape=True)))
        return {row.name: (row.value, row.updated_at) for row in rows}


# ---------------------------------------------------------------- HTTP

class HttpFeed:
    """The feed over HTTP (httpx). Transport and HTTP errors become FeedError with a clear message."""

    def __init__(self, settings: FeedSettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        headers = {"Accept": "application/json"}
        if settings.token:
            headers["Authorization"] = f"Bearer {settings.token}"
        self._client = client or httpx.AsyncClient(timeout=settings.timeout_seconds, headers=headers,
                                                   follow_redirects=True)
        self._owns_client = client is None

    async def __aenter__(self) -> "HttpFeed":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def fetch(self, cursor: str | None) -> FeedPage:
        name, url = self.settings.name, self.settings.url
        params = {self.settings.cursor_param: cursor} if cursor is not None else None
        try:
            response = await self._client.get(url, params=params)
        except httpx.TimeoutException:
            raise FeedUnreachable(f"feed {name}: {url} did not answer within "
                                  f"{self.settings.timeout_seconds:g} s") from None
        except httpx.TransportError as exc:
            raise FeedUnreachable(f"feed {name}: {url} cannot be reached: {exc or type(exc).__name__}") from None
        except httpx.HTTPError as exc:  # too many redirects, undecodable content
            raise FeedError(f"feed {name}: the request to {url} failed: {exc or type(exc).__name__}") from None
        if response.status_code >= 400:
            raise FeedHttpError(f"feed {name}: {url} answered HTTP {response.status_code} "
                                f"{response.reason_phrase}: {response.text[:200]!r}")
        try:
            payload = json.loads(response.content)
        except (ValueError, RecursionError):
            raise MalformedPage(f"feed {name}: the page from {url} is not JSON "
                                f"(starts with {response.text[:60]!r})") from None
        return parse_page(payload, self.settings)


# ---------------------------------------------------------------- the poller

def retry_delay(interval: float, failures: int) -> float:
    """Seconds to wait before the next poll: the interval, doubled for each failure in a row (capped)."""
    if failures <= 0:
        return interval
    return min(interval * 2 ** failures, max(interval, MAX_BACKOFF_SECONDS))


class FeedPoller:
    """Polls one feed: `poll_once()` reads every new page; `run(stop)` polls until stop is set."""

    def __init__(self, settings: FeedSettings, source: PageSource, intake: Intake, db: Database,
                 clock: Clock, max_pages: int = MAX_PAGES_PER_POLL) -> None:
        check_feed_settings(settings)
        self.settings = settings
        self.source = source
        self.intake = intake
        self.db = db
        self.clock = clock
        self.max_pages = max_pages
        self.cursor_name = source_name(settings)

    async def poll_once(self) -> PollReport:
        report = PollReport(self.settings.name)
        try:
            cursor = await asyncio.to_thread(read_cursor, self.db, self.cursor_name)
            report.cursor_before = report.cursor_after = cursor
            for _ in range(self.max_pages):
                page = await self.source.fetch(cursor)
                report.pages += 1
                await self._store_page(page, cursor, report)
                if page.next_cursor is None or page.next_cursor == cursor:
                    break
                await asyncio.to_thread(write_cursor, self.db, self.cursor_name, page.next_cursor,
                                        self.clock.now())
                cursor = report.cursor_after = page.next_cursor
                if not page.items:
                    break
        except FeedError as exc:
            report.error = str(exc)
        except SQLAlchemyError as exc:
            report.error = f"feed {self.settings.name}: the database refused the page: {type(exc).__name__}"
            log.exception("feed.store_failed feed=%s", self.settings.name)
        if report.error:
            log.error("feed.poll_failed feed=%s cursor=%s error=%s", self.settings.name, report.cursor_after,
                      report.error)
        log.log(logging.INFO if report.stored else logging.DEBUG,
                "feed.polled feed=%s pages=%s stored=%s already_stored=%s malformed=%s cursor=%s",
                report.feed, report.pages, report.stored, report.already_stored, report.malformed_items,
                report.cursor_after)
        return report

    async def _store_page(self, page: FeedPage, cursor: str | None, report: PollReport) -> None:
        """Store the page's good items; MalformedPage if a bad item keeps the cursor on this page."""
        leads, problems = [], []
        for index, item in enumerate(page.items):
            try:
                leads.append(read_item(item, self.settings))
            except MalformedLead as exc:
                problems.append(f"[{index}] {exc}")
        if leads:
            report.add(await asyncio.to_thread(self.intake.submit, leads, self.clock.now()))
        if not problems:
            return
        report.malformed_items += len(problems)
        for problem in problems:
            log.error("feed.bad_item feed=%s cursor=%s item=%s", self.settings.name, cursor, problem)
        raise MalformedPage(f"feed {self.settings.name}: {len(problems)} malformed item(s) on the page at "
                            f"cursor {cursor!r} ({'; '.join(problems[:3])}); its good items are stored and the "
                            f"cursor stays on this page until the feed fixes them")

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every interval until `stop` is set; after failures wait longer (retry_delay)."""
        failures = 0
        while not stop.is_set():
            report = await self.poll_once()
            failures = failures + 1 if report.error else 0
            try:
                await asyncio.wait_for(stop.wait(), retry_delay(self.settings.interval_seconds, failures))
            except TimeoutError:
                pass
