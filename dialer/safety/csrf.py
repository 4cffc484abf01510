"""CSRF protection: a signed double-submit token on every state-changing console request.

The browser gets a random nonce in an HttpOnly, SameSite=Strict cookie; pages carry the token
HMAC(secret, nonce) in a `<meta name="csrf-token">` (for fetch: `X-CSRF-Token`) and in a hidden
`csrf_token` field of every POST form. A POST under /console or /attempts that carries a session
cookie (or signs in: login CSRF) must bring the token. Another site can make the browser send the
cookies (older browsers ignore SameSite) but can read neither the page nor the cookie, so it
cannot know the token. A request without any session has no ambient authority to abuse.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import re
import secrets
from urllib.parse import parse_qs

CSRF_COOKIE = "dialer_csrf"
HEADER = "x-csrf-token"
FIELD = "csrf_token"
GUARDED = ("/console", "/attempts")
MAX_FORM = 64 * 1024
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

current_token: contextvars.ContextVar[str] = contextvars.ContextVar("csrf_token", default="")
_NONCE = re.compile(r"[A-Za-z0-9_-]{32,64}")
_POST_FORM = re.compile(r'(<form\b[^>]*\bmethod="post"[^>]*>)', re.IGNORECASE)


def token_for(secret: bytes, nonce: str) -> str:
    return hmac.new(secret, b"csrf:" + nonce.encode("ascii"), hashlib.sha256).hexdigest()


def with_tokens(html: str, token: str | None = None) -> str:
    """Put the token in every POST form of a page (and nowhere else)."""
    token = token if token is not None else current_token.get()
    if not token:
        return html
    return _POST_FORM.sub(lambda m: f'{m.group(1)}<input type="hidden" name="{FIELD}" value="{token}">', html)


class CsrfMiddleware:
    """Pure ASGI: issues the nonce cookie, exposes the token to the pages, refuses bad requests (403)."""

    def __init__(self, app, secret: bytes, session_cookie: str, secure_cookie: bool = False) -> None:
        self.app, self.secret, self.session_cookie = app, secret, session_cookie

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        cookies = _cookies(headers.get("cookie", ""))
        nonce = cookies.get(CSRF_COOKIE, "")
        fresh = None
        if not _NONCE.fullmatch(nonce):
            nonce = fresh = secrets.token_urlsafe(32)
        token = token_for(self.secret, nonce)
        path = scope.get("path", "")
        if scope.get("method") in UNSAFE and path.startswith(GUARDED) and (
                path == "/console/login" or self.session_cookie in cookies):
            given = headers.get(HEADER, "")
            if not given and headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                body, receive = await _buffer(receive)
                if len(body) <= MAX_FORM:
                    given = parse_qs(body.decode("utf-8", "replace")).get(FIELD, [""])[0]
            if fresh or not given or not hmac.compare_digest(given.encode("latin-1", "replace"), token.encode()):
                return await _refuse(scope, send, path, fresh)
        reset = current_token.set(token)
        try:
            await self.app(scope, receive, _with_cookie(send, fresh, scope))
        finally:
            current_token.reset(reset)


def _cookies(header: str) -> dict[str, str]:
    out = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            out.setdefault(name, value)
    return out


def _cookie_header(nonce: str, scope) -> tuple[bytes, bytes]:
    secure = "; Secure" if scope.get("scheme") == "https" else ""
    return b"set-cookie", f"{CSRF_COOKIE}={nonce}; Path=/; HttpOnly; SameSite=Strict{secure}".encode()


def _with_cookie(send, nonce: str | None, scope):
    if nonce is None:
        return send

    async def sending(message):
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), _cookie_header(nonce, scope)]}
        await send(message)
    return sending


async def _buffer(receive):
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return body, replay


async def _refuse(scope, send, path: str, fresh: str | None) -> None:
    wants_json = "/api/" in path or path.startswith("/attempts")
    if wants_json:
        body = json.dumps({"error": "missing or wrong CSRF token: reload the page (send X-CSRF-Token)"}).encode()
        kind = b"application/json"
    else:
        body = ("<!doctype html><meta charset=utf-8><title>Форма устарела</title>"
                "<p>Форма устарела или отправлена с другого сайта. Обновите страницу и попробуйте снова.</p>"
                '<p><a href="/console/login">Вход</a></p>').encode("utf-8")
        kind = b"text/html; charset=utf-8"
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    if fresh:
        headers.append(_cookie_header(fresh, scope))
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": body})
