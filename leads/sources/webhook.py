"""The HTTP webhook `POST /leads`: what site forms and CRMs send (DESIGN §2).

Checks, in order, each refusal a JSON `{"error": ..., "problems": [...]}` and nothing stored:
401/403 token (`Authorization: Bearer <token>`, `X-Dialer-Token`, or `?token=` when intake.query_token
is on; an empty configured token refuses every call), 415 content type or charset, 413 body size
(checked on the stream, before it is all read), 400 not readable JSON or form, 422 not a lead (see
leads.sources.json_lead), 409 an Idempotency-Key stored before with another lead. Forms and foreign
field names are read by leads.sources.web_form first; a body with no lead field at all (a site
builder checking the webhook) is answered 200 and stores nothing. A lead that is well formed but
cannot be called is stored as `invalid` and answered 202 like any other.

The body is one lead (a JSON object) or a batch (a JSON list of objects, stored in one transaction,
all or nothing). An `Idempotency-Key` header makes a retried call answer the first call's outcome
instead of storing the lead again.

The intake is synchronous SQLAlchemy: it runs on one writer thread, never on the event loop, and
calls that arrive while a transaction is written share the next one (`SharedTransactions`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

from fastapi import APIRouter, Request
from starlette.requests import ClientDisconnect
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from kernel.clock import Clock
from kernel.db.models import Lead
from kernel.settings import IntakeSettings
from leads.intake import FIELD_LIMITS, Intake, IntakeOutcome, LeadIn
from leads.phone import mask_phone
from leads.sources.json_lead import ALIASES, FIELD_DOCS, NUMBER_FIELDS, MalformedLead, lead_from_json
from leads.sources.web_form import FORM_TYPES, FormError, charset_of, decode_form, map_fields, parse_mapping

log = logging.getLogger("leads.webhook")

MAX_BATCH = 1000
DEFAULT_SOURCE = "webhook"


class LeadAccepted(BaseModel):
    lead_id: int
    status: str
    reason: str | None = None
    duplicate_of: int | None = None
    already_stored: bool = False


class BatchAccepted(BaseModel):
    leads: list[LeadAccepted]


RETRY_AFTER_SECONDS = 5   # answered with every 503: the store is usually back within seconds


class RefusalBody(BaseModel):
    error: str
    problems: list[str] | None = None


@dataclass
class Refusal(Exception):
    status: int
    error: str
    problems: Sequence[str] = ()

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"error": self.error}
        if self.problems:
            body["problems"] = list(self.problems)
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        if self.status == 503:   # the store is down: a well-behaved sender backs off and retries
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return JSONResponse(body, status_code=self.status, headers=headers)


def webhook_router(intake: Intake, settings: IntakeSettings, clock: Clock) -> APIRouter:
    """`POST /leads`, bound to one intake, the `[intake]` settings and the clock that stamps receipt."""
    router = APIRouter(tags=["intake"])
    store = SharedTransactions(intake, clock)
    mapping = parse_mapping(settings.fields)

    @router.post("/leads", status_code=202, response_model=None, summary="Submit a lead (or a list of leads)",
                 responses={202: {"model": LeadAccepted | BatchAccepted,
                                  "description": "Stored (also when duplicate, dnc or invalid)"},
                            **{code: {"model": RefusalBody, "description": what} for code, what in REFUSALS.items()}},
                 openapi_extra={"requestBody": _request_body_doc(), "parameters": _header_docs()})
    async def post_leads(request: Request) -> JSONResponse:
        try:
            _check_token(request, settings)
            media_type, params = _check_content_type(request.headers.get("content-type"))
            body = await _read_body(request, settings.max_body_bytes)
            if not body.strip():
                return _no_lead(request, "the request carries no body")
            data = _parse_body(body, media_type, params)
            data = _mapped(data, mapping)
            if data is None:
                return _no_lead(request, "the request carries no lead field", body)
            leads, is_batch = _parse_leads(data, request.headers.get("idempotency-key"))
            outcomes = await store.submit(leads)
        except Refusal as refusal:
            log.warning("webhook.refused status=%s client=%s error=%s", refusal.status,
                        request.client.host if request.client else "-", refusal.error)
            return refusal.response()
        except ClientDisconnect:  # the caller went away before its body arrived: nothing to store or answer
            log.info("webhook.client_gone client=%s", request.client.host if request.client else "-")
            return JSONResponse({"error": "the client closed the connection"}, status_code=400)
        for lead, outcome in zip(leads, outcomes):
            log.info("webhook.lead lead_id=%s status=%s phone=%s%s", outcome.lead_id, outcome.status.value,
                     mask_phone(outcome.phone or lead.phone), " already_stored" if outcome.already_stored else "")
        answers = [_answer(outcome) for outcome in outcomes]
        return JSONResponse({"leads": answers} if is_batch else answers[0], status_code=202)

    @router.get("/leads", summary="A site builder's check that the webhook URL answers", include_in_schema=True)
    async def check_leads() -> JSONResponse:
        return JSONResponse({"status": "ok", "stored": False, "hint": "POST leads to this URL"})

    return router


REFUSALS = {
    400: "The body is not JSON or a form that can be read (or not in its charset)",
    401: "No token or a wrong token",
    403: "Webhook intake is turned off (intake.token is empty)",
    413: "The body is larger than intake.max_body_bytes",
    409: "The Idempotency-Key was used before with a different lead",
    415: "The body is not JSON or a form (or in an unknown charset)",
    422: "The JSON is not a lead: missing phone key, wrong types, over-long fields, unknown time zone",
    503: "The lead store is not available; retry later",
}


def _check_token(request: Request, settings: IntakeSettings) -> None:
    if not settings.token:
        raise Refusal(403, "webhook intake is turned off: the server has no intake.token set")
    given = []
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        given.append(value.strip())
    if "x-dialer-token" in request.headers:
        given.append(request.headers["x-dialer-token"])
    in_query = request.query_params.getlist("token")
    if in_query and not settings.query_token:
        raise Refusal(401, "a token in the URL is not accepted here: send it in the 'Authorization: Bearer' or "
                           "'X-Dialer-Token' header, or turn on intake.query_token")
    # Query values arrive as text; encoding to UTF-8 gives the bytes the caller percent-encoded.
    query_given = [g.encode("utf-8", "replace") for g in in_query]
    if not given and not query_given:
        hint = " or '?token=<token>' in the URL" if settings.query_token else ""
        raise Refusal(401, f"no token: send 'Authorization: Bearer <token>' or 'X-Dialer-Token: <token>'{hint}")
    expected = settings.token.encode("utf-8")
    # Header values arrive decoded as latin-1; encoding back gives the bytes the caller sent.
    candidates = [g.encode("latin-1", "replace") for g in given] + query_given
    if not any(hmac.compare_digest(g, expected) for g in candidates):
        raise Refusal(401, "wrong token")


def _check_content_type(header: str | None) -> tuple[str, dict[str, str]]:
    """The media type (lower case) and its parameters, or 415 for a body the webhook cannot read."""
    media_type, *parts = [part.strip() for part in (header or "").split(";")]
    media_type = media_type.lower()
    params = {}
    for part in parts:
        name, _, value = part.partition("=")
        params[name.strip().lower()] = value.strip().strip('"')
    is_json = media_type == "application/json" or (media_type.startswith("application/")
                                                   and media_type.endswith("+json"))
    if not is_json and media_type not in FORM_TYPES:
        raise Refusal(415, f"send the lead as JSON with 'Content-Type: application/json', or as a form "
                           f"(application/x-www-form-urlencoded or multipart/form-data) "
                           f"(got {(header or 'no content type')[:100]!r})")
    try:
        charset_of(params)
    except FormError as exc:
        raise Refusal(415, f"the body must be UTF-8 or another known charset: {exc}") from None
    return media_type, params


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be over the limit (never read past it)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise Refusal(400, f"Content-Length {declared!r} is not a number")
        if int(declared) > limit:
            raise Refusal(413, f"the body is {int(declared)} bytes; at most {limit} are accepted "
                               f"(intake.max_body_bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refusal(413, f"the body is larger than {limit} bytes (intake.max_body_bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_body(body: bytes, media_type: str, params: dict[str, str]) -> Any:
    if media_type in FORM_TYPES:
        try:
            return decode_form(body, media_type, params)
        except FormError as exc:
            raise Refusal(400, f"the form cannot be read: {exc}") from None
    return _parse_json(body, charset_of(params))


def _parse_json(body: bytes, charset: str = "utf-8") -> Any:
    try:
        text = body.decode("utf-8-sig" if charset == "utf-8" else charset)
    except UnicodeDecodeError as exc:
        name = "UTF-8" if charset == "utf-8" else charset
        raise Refusal(400, f"the body is not {name} text (bad byte at offset {exc.start})") from None
    if not text.strip():
        raise Refusal(400, "the body is empty; send a JSON object with at least a phone")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise Refusal(400, f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") \
            from None
    except ValueError as exc:  # NaN / Infinity, or an integer too long to read
        raise Refusal(400, f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise Refusal(400, "the body is not valid JSON here: it is nested too deeply") from None


def _mapped(data: Any, mapping: dict[str, tuple[str, ...]]) -> Any:
    """Their field names replaced by ours; None when the body holds no lead at all."""
    if isinstance(data, dict):
        return map_fields(data, mapping)
    if isinstance(data, list):
        items = [map_fields(item, mapping) if isinstance(item, dict) else item for item in data]
        # A lead without a lead field inside a batch is a malformed lead, not a builder's check.
        return [{} if item is None else item for item in items] if data else data
    return data


def _no_lead(request: Request, why: str, body: bytes = b"") -> JSONResponse:
    """A request without a lead (a builder checking a new webhook): 200, nothing stored, and said so."""
    log.warning("webhook.no_lead client=%s why=%r bytes=%s", request.client.host if request.client else "-",
                why, len(body))
    return JSONResponse({"status": "no_lead", "stored": False,
                         "reason": f"{why}: nothing was stored. A lead needs a phone field "
                                   f"(phone, Phone, Телефон, ... or one mapped in [intake.fields])"},
                        status_code=200)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_leads(data: Any, idempotency_key: str | None) -> tuple[list[LeadIn], bool]:
    if idempotency_key is not None and not 0 < len(idempotency_key) <= FIELD_LIMITS["source_item_id"] - 10:
        raise Refusal(422, f"Idempotency-Key must be 1 to {FIELD_LIMITS['source_item_id'] - 10} characters")
    if isinstance(data, list):
        if not data:
            raise Refusal(422, "the list of leads is empty")
        if len(data) > MAX_BATCH:
            raise Refusal(422, f"a batch holds at most {MAX_BATCH} leads, got {len(data)}")
        leads, problems = [], []
        for index, item in enumerate(data):
            key = f"{idempotency_key}:{index}" if idempotency_key else None
            try:
                leads.append(lead_from_json(item, default_source=DEFAULT_SOURCE, source_item_id=key))
            except MalformedLead as exc:
                problems.extend(f"lead [{index}]: {problem}" for problem in exc.problems)
        if problems:
            raise Refusal(422, "the batch is not stored: some leads are malformed", problems)
        return leads, True
    if not isinstance(data, dict):
        raise Refusal(422, "the body must be a JSON object (one lead) or a list of objects")
    try:
        return [lead_from_json(data, default_source=DEFAULT_SOURCE, source_item_id=idempotency_key)], False
    except MalformedLead as exc:
        raise Refusal(422, "the lead is malformed: " + str(exc), exc.problems) from None


class SharedTransactions:
    """Calls that arrive while a transaction is being written share the next one (group commit).

    One intake transaction at a time runs in a worker thread (SQLite has one writer anyway); every call
    that arrives meanwhile waits, and all of them are stored together in the next transaction, in
    arrival order, so a burst of N calls costs a few transactions instead of N. If a shared transaction
    fails, each call is retried on its own, so one call's problem never refuses another's leads.
    """

    def __init__(self, intake: Intake, clock: Clock, max_leads: int = MAX_BATCH) -> None:
        self.intake = intake
        self.clock = clock
        self.max_leads = max_leads
        # One writer thread: the event loop never blocks, and transactions never compete for the lock.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-intake")
        self._waiting: deque[tuple[list[LeadIn], asyncio.Future]] = deque()
        self._writer: asyncio.Task | None = None

    async def submit(self, leads: list[LeadIn]) -> list[IntakeOutcome]:
        answer: asyncio.Future = asyncio.get_running_loop().create_future()
        self._waiting.append((leads, answer))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        return await answer

    async def _write_all(self) -> None:
        while self._waiting:
            group, size = [], 0
            while self._waiting and (not group or size + len(self._waiting[0][0]) <= self.max_leads):
                leads, answer = self._waiting.popleft()
                group.append((leads, answer))
                size += len(leads)
            await self._write(group)

    async def _write(self, group: list[tuple[list[LeadIn], asyncio.Future]]) -> None:
        try:
            outcomes = await asyncio.get_running_loop().run_in_executor(
                self._thread, _submit, self.intake, [lead for leads, _ in group for lead in leads], self.clock)
        except Refusal as refusal:
            if len(group) == 1:
                _settle(group[0][1], error=refusal)
                return
            for leads, answer in group:  # one at a time: find whose leads the store refuses
                await self._write([(leads, answer)])
            return
        except Exception as exc:  # a bug: every call of the group gets it (a 500); none waits forever
            for _, answer in group:
                _settle(answer, error=exc)
            return
        start = 0
        for leads, answer in group:
            _settle(answer, result=outcomes[start:start + len(leads)])
            start += len(leads)


def _settle(answer: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if answer.done():  # the caller went away (cancelled); its leads are stored all the same
        return
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(result)


def _submit(intake: Intake, leads: list[LeadIn], clock: Clock) -> list[IntakeOutcome]:
    received_at = clock.now()
    try:
        _check_reused_keys(intake, leads)
        try:
            return intake.submit(leads, received_at)
        except IntegrityError:
            # Two retries with one Idempotency-Key raced past the exactly-once check; the loser
            # now finds the winner's row and answers its outcome.
            if not any(lead.source_item_id for lead in leads):
                raise
            return intake.submit(leads, received_at)
    except SQLAlchemyError:
        log.exception("webhook.store_failed leads=%s", len(leads))
        raise Refusal(503, "the lead store is not available right now; nothing was stored, retry later") \
            from None


_COMPARED = ("phone", "name", "order_number", "product", "comment", "preferred_time", "timezone", "region")


def _check_reused_keys(intake: Intake, leads: list[LeadIn]) -> None:
    """409 when an Idempotency-Key stored before comes back with a different lead.

    Runs on the one writer thread, so no other webhook call stores a lead between this check and the
    insert. Compared: every lead field and extra, as stored (a retry of the same body is equal).
    """
    keyed = {(lead.source, lead.source_item_id): lead for lead in leads if lead.source_item_id}
    if not keyed:
        return
    with intake.db.read() as session:
        rows = session.execute(select(Lead).where(
            Lead.source.in_(sorted({source for source, _ in keyed})),
            Lead.source_item_id.in_([item for _, item in keyed]))).scalars().all()
        stored = {(row.source, row.source_item_id): row for row in rows}
        for key, lead in keyed.items():
            row = stored.get(key)
            if row is None:
                continue
            theirs = [("phone" if name == "phone" else name, getattr(row, "phone_raw" if name == "phone" else name))
                      for name in _COMPARED]
            different = [name for name, value in theirs if (value or None) != (getattr(lead, name) or None)]
            if (row.extra or None) != (lead.extra or None):
                different.append("extra")
            if different:
                raise Refusal(409, f"Idempotency-Key {key[1][:60]!r} was used before with a different lead "
                                   f"(lead {row.id}; differs in {', '.join(different)}); nothing was stored. "
                                   f"Send each new lead with a new key")


def _answer(outcome: IntakeOutcome) -> dict[str, Any]:
    return {"lead_id": outcome.lead_id, "status": outcome.status.value, "reason": outcome.reason,
            "duplicate_of": outcome.duplicate_of, "already_stored": outcome.already_stored}


def _request_body_doc() -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name, doc in FIELD_DOCS.items():
        types = ["string", "integer", "null"] if name in NUMBER_FIELDS else ["string", "null"]
        properties[name] = {"type": types, "description": doc}
        if name in FIELD_LIMITS:
            properties[name]["maxLength"] = FIELD_LIMITS[name]
    for alias, name in ALIASES.items():
        properties[alias] = {**properties[name], "description": f"Another name for {name}"}
    properties["extra"] = {"type": "object", "description": "Kept as JSON with the lead"}
    lead = {"type": "object", "required": ["phone"], "properties": properties, "additionalProperties": True,
            "description": "Unknown fields are kept in the lead's extra"}
    example = {"phone": "8 (912) 345-67-89", "name": "Анна Петрова", "order_number": "A-1001",
               "product": "кофемашина", "comment": "Перезвоните после обеда", "utm_source": "yandex"}
    form = {"type": "object", "additionalProperties": {"type": "string"},
            "description": "A web form: field names such as Phone, Телефон, Name, Имя or those mapped in "
                           "[intake.fields]; any charset named in Content-Type (e.g. windows-1251)"}
    return {"required": False, "content": {
        "application/json": {"schema": {"oneOf": [lead, {"type": "array", "items": lead, "maxItems": MAX_BATCH}]},
                             "example": example},
        "application/x-www-form-urlencoded": {"schema": form, "example": {"Name": "Анна", "Phone": "+79123456789"}},
        "multipart/form-data": {"schema": form}}}


def _header_docs() -> list[dict[str, Any]]:
    return [
        {"name": "X-Dialer-Token", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "The shared secret (intake.token); or send 'Authorization: Bearer <token>'"},
        {"name": "token", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "The token in the URL, for site builders that only take a URL (only when "
                        "intake.query_token is on)"},
        {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "A retry with the same key answers the first call's outcome, storing nothing new"},
    ]
