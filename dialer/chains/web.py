"""The unsubscribe page every chain e-mail links to (RFC 8058 one-click, and a page for people).

GET shows one button (a link scanner that follows links must not unsubscribe anybody); the button, and
a mail client's one-click POST with `List-Unsubscribe=One-Click`, stop the chain and record the
withdrawal in the consent ledger. Texts are in the customer's language.
"""

from __future__ import annotations

import html
import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from kernel.clock import Clock
from kernel.db.engine import Database
from kernel.errors import NotFound
from dialer.chains.store import language_of_token, unsubscribe

log = logging.getLogger("dialer.chains.web")

TEXTS = {
    "ru": {"title": "Отписка от писем", "ask": "Больше не присылать вам письма с предложениями?",
           "button": "Отписаться", "done": "Готово: мы больше не будем присылать вам письма.",
           "already": "Вы уже отписаны: писем больше не будет.",
           "unknown": "Ссылка для отписки не найдена. Если письма приходят, ответьте на любое из них словом «стоп»."},
    "en": {"title": "Unsubscribe", "ask": "Stop sending you e-mails with offers?", "button": "Unsubscribe",
           "done": "Done: we will not send you any more e-mails.", "already": "You are already unsubscribed.",
           "unknown": "This unsubscribe link is not known. If e-mails keep coming, reply 'stop' to any of them."},
}


def _page(language: str, body: str, status: int = 200) -> HTMLResponse:
    t = TEXTS.get(language, TEXTS["ru"])
    return HTMLResponse(f"<!doctype html><html lang=\"{language}\"><head><meta charset=\"utf-8\">"
                        f"<meta name=\"viewport\" content=\"width=device-width\"><title>{t['title']}</title></head>"
                        f"<body><main><h1>{t['title']}</h1>{body}</main></body></html>", status_code=status)


def unsubscribe_router(db: Database, clock: Clock) -> APIRouter:
    router = APIRouter(tags=["e-mail chains"])

    @router.get("/unsubscribe/{token}", response_class=HTMLResponse, summary="The unsubscribe page of an e-mail")
    def ask(token: str) -> HTMLResponse:
        language = language_of_token(db, token[:64])
        if language is None:
            return _page("ru", f"<p id=\"result\">{TEXTS['ru']['unknown']}</p>", 404)
        t = TEXTS.get(language, TEXTS["ru"])
        action = "/unsubscribe/" + html.escape(token)
        return _page(language, f"<p>{t['ask']}</p><form method=\"post\" action=\"{action}\">"
                               f"<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">"
                               f"<button type=\"submit\" id=\"unsubscribe\">{t['button']}</button></form>")

    @router.post("/unsubscribe/{token}", response_class=HTMLResponse,
                 summary="One-click unsubscribe (RFC 8058): stops the chain, records the withdrawal")
    def one_click(token: str, request: Request) -> HTMLResponse:
        language = language_of_token(db, token[:64])
        if language is None:
            return _page("ru", f"<p id=\"result\">{TEXTS['ru']['unknown']}</p>", 404)
        t = TEXTS.get(language, TEXTS["ru"])
        try:
            done = unsubscribe(db, token, clock.now(), ip=request.client.host if request.client else None,
                               user_agent=request.headers.get("user-agent"))
        except NotFound:
            return _page(language, f"<p id=\"result\">{t['unknown']}</p>", 404)
        log.info("chain.unsubscribed lead_id=%s already=%s cancelled=%s", done.lead_id, done.already,
                 done.cancelled)
        return _page(language, f"<p id=\"result\">{t['already'] if done.already else t['done']}</p>")

    return router
