"""The disposition endpoints the operator console calls after a conversation.

`POST /attempts/{attempt_id}/disposition`: 201 with the stored disposition; refusals as JSON
`{"error": ...}`: 401 no operator identity, 403 another operator's call, 404 no such call,
409 the call already has a disposition, 422 anything wrong with the values (nothing is stored then).
Operator identity: until the console brings its login, the `X-Operator-Id` header; pass another
`operator_identity` dependency to `dispositions_router` to replace it.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any, Callable

from fastapi import APIRouter, Depends, Header
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from kernel.clock import Clock
from kernel.db.engine import Database
from dialer.dispositions import get_disposition, operator_name, record_disposition
from kernel.errors import NotFound, UsageError
from kernel.settings import Settings
from leads.attempt import DispositionKind
from leads.disposition import RULES, AlreadyDisposed, DispositionInput, NotYourAttempt, parse_topics

log = logging.getLogger("dialer.web.dispositions")


class DispositionBody(BaseModel):
    kind: str = Field(description="One of: " + ", ".join(k.value for k in DispositionKind))
    amount: Decimal | str | None = Field(None, description="confirmed: order amount, 0 or more, 2 decimals")
    currency: str | None = Field(None, description="confirmed: ISO 4217 code; RUB when left out")
    callback_at: str | None = Field(None, description="callback: ISO 8601; without an offset it is the "
                                                      "customer's local time if known, else the center's")
    comment: str | None = None
    topic: str | None = Field(None, description="One of the configured conversation topics (reports.topics)")
    script_id: str | None = Field(None, description="The script shown on the call card (the console sends it)")
    script_version: int | str | None = None
    fields: dict[str, Any] | None = Field(None, description="Custom fields: name -> text, number or true/false")


# What the operator console shows (in Russian) when a refusal has no words of its own.
REFUSAL_WORDS = {401: "сеанс завершён: войдите снова", 403: "это звонок другого оператора",
                 404: "такого звонка нет", 409: "итог этого звонка уже записан",
                 422: "итог не принят: проверьте поля формы", 503: "база недоступна, ничего не записано; "
                                                               "попробуйте ещё раз"}


class Refused(Exception):
    def __init__(self, status: int, error: str, words: str | None = None) -> None:
        self.status, self.error, self.words = status, error, words

    def response(self) -> JSONResponse:
        body = {"error": self.error, "message": self.words or REFUSAL_WORDS.get(self.status, "итог не записан")}
        return JSONResponse(body, status_code=self.status)


def header_operator_identity(x_operator_id: str | None = Header(
        None, description="The operator's id (until the console brings its login)")) -> int | None:
    """The operator making the request, or None when the request does not say."""
    if x_operator_id is None or not x_operator_id.strip().isdigit():
        return None
    return int(x_operator_id)


def dispositions_router(db: Database, clock: Clock, settings: Settings, *,
                        operator_identity: Callable[..., int | None] = header_operator_identity,
                        on_outcome: Callable[[], None] | None = None) -> APIRouter:
    """The router for create_app(routers=[...]).

    operator_identity: a FastAPI dependency giving the requesting operator's id (None: unknown -> 401).
    on_outcome: called after each recorded disposition (give it OutboxSender.wake so the CRM hears at once).
    """
    router = APIRouter(tags=["dispositions"])

    @router.post("/attempts/{attempt_id}/disposition", status_code=201, summary="Record a call's disposition",
                 responses={code: {"description": what} for code, what in REFUSALS.items()})
    def post_disposition(attempt_id: int, body: DispositionBody,
                         operator_id: int | None = Depends(operator_identity)) -> JSONResponse:
        # A sync endpoint: FastAPI runs it in a worker thread, the store calls block only that thread.
        try:
            name = _operator(db, operator_id)
            given = DispositionInput(body.kind, body.amount, body.currency, body.callback_at, body.comment,
                                     body.fields, body.topic, body.script_id, body.script_version)
            record = _record(db, clock, settings, attempt_id, given, operator_id, name)
        except Refused as refused:
            log.warning("disposition.refused attempt_id=%s operator_id=%s status=%s error=%s", attempt_id,
                        operator_id, refused.status, refused.error)
            return refused.response()
        if on_outcome is not None:
            on_outcome()
        return JSONResponse(_json(record.as_dict()), status_code=201)

    @router.get("/attempts/{attempt_id}/disposition", summary="The disposition recorded for a call",
                responses={404: {"description": "No such call, or no disposition yet"}})
    def read_disposition(attempt_id: int) -> JSONResponse:
        try:
            return JSONResponse(_json(get_disposition(db, attempt_id).as_dict()))
        except NotFound as exc:
            return Refused(404, str(exc)).response()

    @router.get("/dispositions/kinds", summary="The kinds an operator can choose and what each does")
    def kinds() -> list[dict[str, Any]]:
        return [{"kind": kind.value, "meaning": rule.meaning, "needs_amount": rule.needs_amount,
                 "needs_callback_time": rule.needs_callback_time, "closes_lead": rule.close_reason is not None}
                for kind, rule in RULES.items()]

    return router


REFUSALS = {
    401: "No operator identity, or an unknown operator",
    403: "The call was taken by another operator",
    404: "No such call attempt",
    409: "The call already has a disposition (perhaps the wrap-up time ran out)",
    422: "A value is wrong: unknown kind, amount, currency, callback time (past, quiet hours), "
         "or the call never reached an operator",
    503: "The store is not available; nothing was recorded",
}


def _json(record: dict[str, Any]) -> Any:
    """Amounts as exact decimal strings ("4990.00"), never floats."""
    return jsonable_encoder(record, custom_encoder={Decimal: str})


def _operator(db: Database, operator_id: int | None) -> str:
    if operator_id is None:
        raise Refused(401, "who are you? send the operator's id in the X-Operator-Id header")
    try:
        return operator_name(db, operator_id)
    except NotFound:
        raise Refused(401, f"no operator with id {operator_id}") from None


def _record(db: Database, clock: Clock, settings: Settings, attempt_id: int, given: DispositionInput,
            operator_id: int, name: str):
    try:
        return record_disposition(db, attempt_id, given, now=clock.now(), center_zone=settings.center_timezone,
                                  recorded_by=name, operator_id=operator_id,
                                  topics=parse_topics(settings.reports.topics))
    except NotFound as exc:
        raise Refused(404, str(exc)) from None
    except NotYourAttempt as exc:
        raise Refused(403, str(exc)) from None
    except AlreadyDisposed as exc:
        raise Refused(409, str(exc)) from None
    except UsageError as exc:
        raise Refused(422, str(exc), getattr(exc, "words", None)) from None
    except SQLAlchemyError as exc:
        log.error("disposition.store_failed attempt_id=%s error=%s", attempt_id, exc)
        raise Refused(503, "the store is not available; nothing was recorded, try again") from None
