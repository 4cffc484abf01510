"""The middlewares that guard every request: security headers, webhook rate limit, CSRF."""

from __future__ import annotations

import hashlib
import json
import logging

from dialer.safety.csrf import CsrfMiddleware
from dialer.safety.throttle import TokenBuckets, retry_after_header
from kernel.clock import Clock

log = logging.getLogger("dialer.safety")

CONSOLE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS = ("/docs", "/redoc")   # FastAPI's API pages load their script from a CDN: no CSP there


class SecurityHeaders:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        extra = [(b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer"),
                 (b"x-content-type-options", b"nosniff")]
        if not path.startswith(DOCS):
            extra.append((b"content-security-policy", (CONSOLE_CSP if path.startswith("/console") else API_CSP)
                          .encode()))

        async def sending(message):
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message = {**message, "headers": [*message.get("headers", []),
                                                  *[(k, v) for k, v in extra if k not in present]]}
            await send(message)
        await self.app(scope, receive, sending)


class WebhookRateLimit:
    """POST /leads: a token bucket per presented token (its digest: the token itself is never kept or
    logged), or per address when none is presented; over the limit -> 429 with Retry-After."""

    def __init__(self, app, clock: Clock, rate: float, burst: int) -> None:
        self.app, self.clock = app, clock
        self.buckets = TokenBuckets(rate, burst)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") != "/leads" or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        wait = self.buckets.take(_caller_key(scope), self.clock.now())
        if wait is None:
            return await self.app(scope, receive, send)
        log.warning("webhook.rate_limited retry_after=%.1fs", wait)
        body = json.dumps({"error": "too many requests for this token: slow down and retry after "
                                    f"{retry_after_header(wait)} s", "status": 429}).encode()
        await send({"type": "http.response.start", "status": 429,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"retry-after", retry_after_header(wait).encode())]})
        await send({"type": "http.response.body", "body": body})


def _caller_key(scope) -> str:
    headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
    given = headers.get("x-dialer-token")
    auth = headers.get("authorization", b"")
    if not given and auth[:7].lower() == b"bearer ":
        given = auth[7:].strip()
    if given:
        return "token:" + hashlib.sha256(given).hexdigest()[:32]
    client = scope.get("client") or ("-", 0)
    return f"address:{client[0]}"


def install_guards(app, settings, clock: Clock, session_secret: bytes) -> None:
    """Outermost first: headers on every answer (refusals too), then the rate limit, then CSRF."""
    security = settings.security
    app.add_middleware(CsrfMiddleware, secret=session_secret, session_cookie="dialer_console")
    app.add_middleware(WebhookRateLimit, clock=clock, rate=security.webhook_rate_per_second,
                       burst=security.webhook_burst)
    app.add_middleware(SecurityHeaders)
