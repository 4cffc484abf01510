"""The operator console over HTTP: pages, a small JSON API and the server push (Server-Sent Events).

    GET  /console/login, POST /console/login, POST /console/logout      sign-in (session cookie)
    GET  /console                    the operator's page (state, pause, call card, script, disposition form)
    GET  /console/events             server push for the signed-in operator: `state` and `call` events
    GET  /console/api/me             who am I, my state
    POST /console/api/pause          {"paused": true|false, "reason": "..."}: QueuePause through AMI
    GET  /console/api/calls/{id}     one of my calls as a card (JSON with the HTML fragment)
    POST /console/api/gaps           {"attempt_id", "script_id", "version", "question"}: the script did not cover it
    GET  /console/teamlead           the team-lead page; /console/teamlead/live: its tables, refreshed by the page
    GET  /console/recordings/{id}    a call's recording (audio/wav with HTTP Range): team leads; operators their own
    GET  /console/static/{file}      CSS and JavaScript

Without a valid session a page answers 303 to the sign-in page, an API call 401 (JSON `{"error"}`);
an operator on a team-lead URL, or on another operator's call, gets 403. The disposition endpoint
(`POST /attempts/{id}/disposition`, dialer/web/dispositions.py) takes its operator from the same
session: pass `Console.operator_identity` as its `operator_identity`.

Cookies are HttpOnly and SameSite=Strict (a page on another site cannot post with them). Every
database read runs in a worker thread; the event loop only moves messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, AsyncIterator, Iterator
from urllib.parse import parse_qs, quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy.exc import SQLAlchemyError

from kernel.clock import Clock
from dialer.console import pages
from dialer.console.auth import (COOKIE_NAME, Identity, Role, SessionSigner, authenticate, current_identity,
                                 session_secret, teamlead_password_hash)
from dialer.console.cards import ScriptBook, call_owner, load_call_card, open_call_of, owns_call
from dialer.console.hub import ConsoleHub, ScreenPop
from dialer.console.switchboard import STATE_WORDS, PauseRefused, PbxUnavailable, Switchboard
from dialer.console.teamlead import load_view
from dialer.recordings.files import recording_path, stored_recording
from dialer.safety.throttle import LockoutRule, SignInThrottle, retry_after_header
from kernel.db.engine import Database
from kernel.errors import NotFound, UsageError
from kernel.settings import Settings
from leads.disposition import parse_topics
from scripts_catalog import catalog_directory, flag_gap

log = logging.getLogger("dialer.console")

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
STATIC_FILES = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8",
                "teamlead.js": "text/javascript; charset=utf-8"}
MAX_FORM_BYTES = 16 * 1024
STATE_POLL_SECONDS = 0.25       # how often an open page's stream looks at the operator's live state
RECHECK_SECONDS = 15.0          # how often a stream re-checks the session (password changed, deactivated)
MAX_PAUSE_REASON = 100


class ApiRefusal(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status, self.error = status, error

    def response(self) -> JSONResponse:
        from dialer.web.dispositions import REFUSAL_WORDS
        words = {409: "АТС отказала в паузе", 503: "АТС не подключена, попробуйте через минуту"}.get(self.status) \
            or REFUSAL_WORDS.get(self.status, "запрос не выполнен")
        return JSONResponse({"error": self.error, "message": words}, status_code=self.status)


class Console:
    """The console bound to one store, clock, hub of screen pops and switchboard. `router` goes into the app."""

    def __init__(self, db: Database, clock: Clock, settings: Settings, hub: ConsoleHub, switchboard: Switchboard,
                 *, stopping: asyncio.Event | None = None, wall=time.time) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.hub = hub
        self.switchboard = switchboard
        self.stopping = stopping or asyncio.Event()
        self.zone = ZoneInfo(settings.center_timezone)
        self.signer = SessionSigner(session_secret(settings.console.secret),
                                    timedelta(hours=settings.console.session_hours))
        self.teamlead_hash = teamlead_password_hash(settings.console.teamlead_password)
        self.scripts = ScriptBook(catalog_directory(settings.scripts.directory), settings.scripts.language)
        self._wall = wall
        self.throttle = _sign_in_throttle(settings)   # safety (issue 17)
        self.router = self._routes()

    # ------------------------------------------------------------------ identity

    def identity_of(self, cookie: str | None) -> Identity | None:
        """The identity of a session cookie value (blocking: reads the operator)."""
        claims = self.signer.read(cookie, self.clock.now())
        if claims is None:
            return None
        try:
            return current_identity(self.db, claims.subject, claims.fingerprint, self.teamlead_hash)
        except SQLAlchemyError as exc:
            log.error("console.identity_unavailable error=%s", exc)
            return None

    def operator_identity(self, request: Request) -> int | None:
        """FastAPI dependency for the disposition endpoint: the signed-in operator's id, else None (401)."""
        identity = self.identity_of(request.cookies.get(COOKIE_NAME))
        return identity.operator_id if identity is not None and identity.role is Role.OPERATOR else None

    async def _identity(self, request: Request) -> Identity | None:
        cookie = request.cookies.get(COOKIE_NAME)
        if not cookie:
            return None
        return await asyncio.to_thread(self.identity_of, cookie)

    async def _operator(self, request: Request) -> Identity:
        identity = await self._identity(request)
        if identity is None:
            raise ApiRefusal(401, "not signed in: sign in at /console/login")
        if identity.role is not Role.OPERATOR:
            raise ApiRefusal(403, "this is for operators; the team lead's page is /console/teamlead")
        return identity

    def _cookie(self, response: Response, value: str, request: Request) -> None:
        response.set_cookie(COOKIE_NAME, value, max_age=int(self.signer.lifetime.total_seconds()), path="/",
                            httponly=True, samesite="strict", secure=request.url.scheme == "https")

    # ------------------------------------------------------------------ routes

    def _routes(self) -> APIRouter:
        router = APIRouter(prefix="/console", tags=["console"])
        router.add_api_route("/login", self.login_form, methods=["GET"], response_class=HTMLResponse,
                             summary="The sign-in page")
        router.add_api_route("/login", self.login, methods=["POST"], response_class=HTMLResponse,
                             summary="Sign in (form fields login, password, next)")
        router.add_api_route("/logout", self.logout, methods=["POST"], summary="Sign out")
        router.add_api_route("", self.operator_page, methods=["GET"], response_class=HTMLResponse,
                             summary="The operator's console page")
        router.add_api_route("/events", self.events, methods=["GET"],
                             summary="Server-Sent Events for the signed-in operator: state, call")
        router.add_api_route("/api/me", self.me, methods=["GET"], summary="Who is signed in, and their state")
        router.add_api_route("/api/pause", self.pause, methods=["POST"],
                             summary="Pause or resume the signed-in operator in the Asterisk queue")
        router.add_api_route("/api/calls/{attempt_id}", self.call, methods=["GET"],
                             summary="One of the signed-in operator's calls, as a card")
        router.add_api_route("/api/gaps", self.gap, methods=["POST"], status_code=201,
                             summary="Flag a customer's question the script does not cover")
        router.add_api_route("/teamlead", self.teamlead_page, methods=["GET"], response_class=HTMLResponse,
                             summary="The team lead's page: queue head, operators, calls, SLA risks")
        router.add_api_route("/teamlead/live", self.teamlead_live, methods=["GET"], response_class=HTMLResponse,
                             summary="The team lead's tables (HTML fragment the page refreshes)")
        router.add_api_route("/recordings/{attempt_id}", self.recording, methods=["GET"],
                             summary="A call's recording (audio/wav, HTTP Range): team leads, and the operator "
                                     "for their own calls")
        router.add_api_route("/teamlead/report", self.teamlead_report, methods=["GET"], response_class=HTMLResponse,
                             summary="The team lead's report: KPIs and charts of today or ?from=&to= (issue 13)")
        router.add_api_route("/static/{name}", self.static, methods=["GET"], include_in_schema=False)
        return router

    # --- sign-in

    async def login_form(self, request: Request, next: str = "/console") -> Response:
        identity = await self._identity(request)
        if identity is not None:
            return RedirectResponse(self._home(identity), status_code=303)
        return HTMLResponse(pages.login_page(next_url=_safe_next(next)), headers=_NO_STORE)

    async def login(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return HTMLResponse(pages.login_page(error="Слишком длинная форма."), status_code=413)
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True).items()}
        login, password = form.get("login", "").strip(), form.get("password", "")
        next_url = _safe_next(form.get("next", "/console"))
        address = request.client.host if request.client else "-"
        locked = self.throttle.retry_after(login, address, self.clock.now())   # safety (issue 17)
        if locked is not None:
            log.warning("console.sign_in_locked login=%r address=%s retry_after=%.0fs", login[:100], address, locked)
            return HTMLResponse(pages.login_page(error=f"Слишком много неудачных попыток входа. Повторите через "
                                                       f"{retry_after_header(locked)} с.", login=login,
                                                 next_url=next_url), status_code=429,
                                headers={**_NO_STORE, "Retry-After": retry_after_header(locked)})
        try:
            principal = await asyncio.to_thread(authenticate, self.db, login, password, self.teamlead_hash)
        except SQLAlchemyError as exc:
            log.error("console.sign_in_failed error=%s", exc)
            return HTMLResponse(pages.login_page(error="База данных недоступна, попробуйте ещё раз.", login=login,
                                                 next_url=next_url), status_code=503)
        if principal is None:
            self.throttle.failed(login, address, self.clock.now())
            return HTMLResponse(pages.login_page(error="Неверный логин или пароль.", login=login,
                                                 next_url=next_url), status_code=401, headers=_NO_STORE)
        self.throttle.succeeded(login)
        identity = principal.identity
        target = next_url if _allowed(identity, next_url) else self._home(identity)
        response = RedirectResponse(target, status_code=303)
        self._cookie(response, self.signer.issue(principal, self.clock.now()), request)
        return response

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
        return response

    @staticmethod
    def _home(identity: Identity) -> str:
        return "/console/teamlead" if identity.role is Role.TEAMLEAD else "/console"

    # --- the operator's page and push

    async def operator_page(self, request: Request) -> Response:
        identity = await self._identity(request)
        if identity is None:
            return _to_login("/console")
        if identity.role is Role.TEAMLEAD:
            return RedirectResponse("/console/teamlead", status_code=303)
        state = self.switchboard.state_of(identity.interface, self.clock.now())
        config = {"kinds": pages.KIND_WORDS, "states": STATE_WORDS, "operator_id": identity.operator_id}
        return HTMLResponse(pages.operator_page(identity, state, config), headers=_NO_STORE)

    async def events(self, request: Request) -> Response:
        try:
            identity = await self._operator(request)
        except ApiRefusal as refusal:
            return refusal.response()
        return StreamingResponse(self._stream(request, identity), media_type="text/event-stream",
                                 headers={**_NO_STORE, "X-Accel-Buffering": "no"})

    async def _stream(self, request: Request, identity: Identity) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        cookie = request.cookies.get(COOKIE_NAME)
        with self.hub.subscribe(identity.interface) as pops:
            yield "retry: 2000\n\n"
            state = self.switchboard.state_of(identity.interface, self.clock.now())
            yield _event("state", {"state": state})
            current = self.hub.current(identity.interface)
            attempt_id = current.attempt_id if current else await asyncio.to_thread(
                open_call_of, self.db, identity.operator_id, identity.interface, self.clock.now())
            if attempt_id is not None:
                message = await asyncio.to_thread(self._call_message, identity, attempt_id, current)
                if message is not None:
                    yield _event("call", message)
            recheck = loop.time() + RECHECK_SECONDS
            while not self.stopping.is_set():
                try:
                    pop = await asyncio.wait_for(pops.get(), STATE_POLL_SECONDS)
                except asyncio.TimeoutError:
                    pop = None
                if pop is not None:
                    message = await asyncio.to_thread(self._call_message, identity, pop.attempt_id, pop)
                    if message is not None:
                        yield _event("call", message)
                now_state = self.switchboard.state_of(identity.interface, self.clock.now())
                if now_state != state:
                    state = now_state
                    yield _event("state", {"state": state})
                if loop.time() >= recheck:
                    recheck = loop.time() + RECHECK_SECONDS
                    if await asyncio.to_thread(self.identity_of, cookie) is None:
                        yield _event("signed_out", {})
                        return
                    yield ": keep-alive\n\n"

    def _call_message(self, identity: Identity, attempt_id: int, pop: ScreenPop | None) -> dict[str, Any] | None:
        """The `call` event for one of the operator's calls (blocking); None if it is not theirs or gone."""
        try:
            card = load_call_card(self.db, attempt_id, self.scripts, identity.name)
        except NotFound:
            return None
        except SQLAlchemyError as exc:
            log.error("console.card_failed attempt_id=%s error=%s", attempt_id, exc)
            return None
        if not owns_call(card.operator_id, card.operator_interface, identity.operator_id, identity.interface):
            return None
        html = pages.call_card(card, self.zone, self.clock.now(), self.settings.center_timezone,
                               parse_topics(self.settings.reports.topics))
        pushed = pop is not None and pop.attempt_id == attempt_id
        return {"attempt_id": card.attempt_id, "lead_id": card.lead_id,
                "event_ms": pop.event_epoch_ms if pushed else None,            # the AMI event, received
                "published_ms": pop.published_epoch_ms if pushed else None,    # stored, handed to the page
                "sent_ms": self._wall() * 1000.0, "html": html}                # card read and rendered

    # --- JSON API

    async def me(self, request: Request) -> JSONResponse:
        identity = await self._identity(request)
        if identity is None:
            return ApiRefusal(401, "not signed in: sign in at /console/login").response()
        body: dict[str, Any] = {"role": identity.role.value, "name": identity.name,
                                "operator_id": identity.operator_id, "interface": identity.interface}
        if identity.role is Role.OPERATOR:
            body["state"] = self.switchboard.state_of(identity.interface, self.clock.now())
        return JSONResponse(body)

    async def pause(self, request: Request) -> JSONResponse:
        try:
            identity = await self._operator(request)
            body = await _json_object(request)
            paused = body.get("paused")
            if not isinstance(paused, bool):
                raise ApiRefusal(422, "'paused' must be true (pause) or false (resume)")
            reason = body.get("reason") or ""
            if not isinstance(reason, str) or len(reason) > MAX_PAUSE_REASON:
                raise ApiRefusal(422, f"'reason' must be text of at most {MAX_PAUSE_REASON} characters")
            with _refusing((PauseRefused, 409), (PbxUnavailable, 503)):
                await self.switchboard.pause(identity.interface, paused, reason.strip() if paused else "")
        except ApiRefusal as refusal:
            return refusal.response()
        log.info("console.%s operator_id=%s interface=%s", "pause" if paused else "resume", identity.operator_id,
                 identity.interface)
        return JSONResponse({"requested": "paused" if paused else "resumed",
                             "state": self.switchboard.state_of(identity.interface, self.clock.now())})

    async def call(self, request: Request, attempt_id: int) -> JSONResponse:
        try:
            identity = await self._operator(request)
            await self._own_call(identity, attempt_id)
        except ApiRefusal as refusal:
            return refusal.response()
        message = await asyncio.to_thread(self._call_message, identity, attempt_id, None)
        if message is None:
            return ApiRefusal(404, f"no call attempt with id {attempt_id}").response()
        return JSONResponse(message)

    async def gap(self, request: Request) -> JSONResponse:
        try:
            identity = await self._operator(request)
            body = await _json_object(request)
            attempt_id, version = body.get("attempt_id"), body.get("version")
            if isinstance(attempt_id, bool) or not isinstance(attempt_id, int):
                raise ApiRefusal(422, "'attempt_id' must be the call's id")
            await self._own_call(identity, attempt_id)
            with _refusing((NotFound, 404), (UsageError, 422)):
                gap_id = await asyncio.to_thread(flag_gap, self.db, str(body.get("script_id") or ""), version,
                                                 str(body.get("question") or ""), None, attempt_id,
                                                 identity.operator_id, self.clock.now())
        except ApiRefusal as refusal:
            return refusal.response()
        log.info("console.gap_flagged gap_id=%s attempt_id=%s operator_id=%s", gap_id, attempt_id,
                 identity.operator_id)
        return JSONResponse({"id": gap_id}, status_code=201)

    async def _own_call(self, identity: Identity, attempt_id: int) -> None:
        with _refusing((NotFound, 404)):
            operator_id, interface = await asyncio.to_thread(call_owner, self.db, attempt_id)
        if not owns_call(operator_id, interface, identity.operator_id, identity.interface):
            raise ApiRefusal(403, f"call attempt {attempt_id} was taken by another operator")

    # --- recordings (issue 14)

    async def recording(self, request: Request, attempt_id: int) -> Response:
        try:
            identity = await self._identity(request)
            if identity is None:
                raise ApiRefusal(401, "not signed in: sign in at /console/login")
            if identity.role is not Role.TEAMLEAD:
                await self._own_call(identity, attempt_id)
            with _refusing((NotFound, 404)):
                ref = await asyncio.to_thread(stored_recording, self.db, attempt_id)
            path = recording_path(self.settings.recordings.directory, ref)
            if path is None:
                raise ApiRefusal(404, f"call attempt {attempt_id} has no recording (it never reached an operator)")
            if not await asyncio.to_thread(path.is_file):
                log.warning("console.recording_missing attempt_id=%s file=%s", attempt_id, path)
                raise ApiRefusal(404, f"the recording of call attempt {attempt_id} ({ref}) is not on disk: "
                                      "deleted by retention or not written by the PBX")
        except ApiRefusal as refusal:
            return refusal.response()
        log.info("console.recording_served attempt_id=%s by=%s range=%s", attempt_id, identity.subject,
                 request.headers.get("range", "-"))
        # Starlette's FileResponse answers Range with 206 and Content-Range (416 for a range past the end)
        return FileResponse(path, media_type="audio/wav", filename=f"call-{attempt_id}.wav",
                            content_disposition_type="inline", headers={"Cache-Control": "private, no-store"})

    # --- the team lead

    async def teamlead_page(self, request: Request) -> Response:
        identity = await self._identity(request)
        if identity is None:
            return _to_login("/console/teamlead")
        if identity.role is not Role.TEAMLEAD:
            return HTMLResponse(pages.forbidden_page("Эта страница — для руководителя смены.", "/console"),
                                status_code=403)
        view = await asyncio.to_thread(self._view)
        return HTMLResponse(pages.teamlead_page(identity, view, self.zone), headers=_NO_STORE)

    async def teamlead_report(self, request: Request) -> Response:   # reports (issue 13)
        from dialer.reports.web import period_from_query, report_body
        from kernel.errors import UsageError
        identity = await self._identity(request)
        if identity is None:
            return _to_login("/console/teamlead")
        if identity.role is not Role.TEAMLEAD:
            return HTMLResponse(pages.forbidden_page("Эта страница — для руководителя смены.", "/console"),
                                status_code=403)
        try:
            period = period_from_query(request.query_params.get("from"), request.query_params.get("to"),
                                       self.clock.now(), self.zone.key)
        except UsageError as exc:
            return HTMLResponse(pages.forbidden_page(f"Неверный период: {exc}", "/console/teamlead/report"),
                                status_code=400)
        body = await asyncio.to_thread(lambda: report_body(self.db.engine, period, now=self.clock.now()))
        return HTMLResponse(pages.page("Отчёт", "teamlead-page", body), headers=_NO_STORE)

    async def teamlead_live(self, request: Request) -> Response:
        identity = await self._identity(request)
        if identity is None:
            return ApiRefusal(401, "not signed in: sign in at /console/login").response()
        if identity.role is not Role.TEAMLEAD:
            return ApiRefusal(403, "this is for the team lead").response()
        view = await asyncio.to_thread(self._view)
        return HTMLResponse(pages.teamlead_live(view, self.zone), headers=_NO_STORE)

    def _view(self):
        return load_view(self.db, self.clock.now(), center_zone=self.settings.center_timezone,
                         presences=self.switchboard.presences())

    # --- files

    async def static(self, name: str) -> Response:
        if name not in STATIC_FILES:
            return JSONResponse({"error": "no such file"}, status_code=404)
        return FileResponse(STATIC / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"})


_NO_STORE = {"Cache-Control": "no-store"}


@contextlib.contextmanager
def _refusing(*statuses: tuple[type[Exception], int]) -> Iterator[None]:
    """Our errors as API refusals: each exception type with its HTTP status, the message as the error."""
    try:
        yield
    except tuple(kind for kind, _ in statuses) as exc:
        raise ApiRefusal(next(code for kind, code in statuses if isinstance(exc, kind)), str(exc)) from None


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


def _sign_in_throttle(settings: Settings) -> SignInThrottle:
    s = settings.security
    longest = timedelta(seconds=s.signin_lockout_max_seconds)
    return SignInThrottle(LockoutRule(s.signin_account_failures, timedelta(seconds=s.signin_lockout_seconds), longest),
                          LockoutRule(s.signin_address_failures, timedelta(seconds=s.signin_lockout_seconds), longest))


def _safe_next(value: str) -> str:
    """Only our own console pages: never an open redirect to another site."""
    return value if value in ("/console", "/console/teamlead") else "/console"


def _allowed(identity: Identity, url: str) -> bool:
    return (url == "/console/teamlead") == (identity.role is Role.TEAMLEAD)


def _to_login(next_url: str) -> RedirectResponse:
    return RedirectResponse(f"/console/login?next={quote(next_url)}", status_code=303)


async def _json_object(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ApiRefusal(413, f"the body is larger than {MAX_FORM_BYTES} bytes")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiRefusal(400, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise ApiRefusal(400, "the body must be a JSON object")
    return data
