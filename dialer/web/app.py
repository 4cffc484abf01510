"""The ASGI app: the lead webhook and the health check; other parts add their routers to it.

`create_app` only composes: each feature brings an APIRouter factory. The objects the app was built
with are on `app.state` (settings, db, intake, clock) for routers that need them per request.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from kernel.clock import Clock
from kernel.db.engine import Database
from kernel.db.migrate import current_revision, head_revision
from kernel.settings import Settings
from leads.intake import Intake
from leads.sources.webhook import webhook_router


def create_app(settings: Settings, db: Database, intake: Intake, clock: Clock,
               routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The app with `POST /leads`, `GET /health`, the OpenAPI schema, and any further routers.

    More routers can also be added afterwards with `app.include_router(...)`.
    """
    app = FastAPI(title="dialer", version="0.1.0",
                  description="Outbound call-center dialer: lead intake webhook and operator console.")
    app.state.settings = settings
    app.state.db = db
    app.state.intake = intake
    app.state.clock = clock
    from dialer.safety.guards import install_guards   # safety (issue 17): headers, rate limit, CSRF
    install_guards(app, settings, clock, settings.console.secret.encode("utf-8") or os.urandom(32))
    app.include_router(health_router(db))
    app.include_router(webhook_router(intake, settings.intake, clock, center_zone=settings.center_timezone))
    for router in routers:
        app.include_router(router)
    return app


def health_router(db: Database) -> APIRouter:
    """`GET /health` (no token): 200 when the database answers and its schema is at head, else 503."""
    router = APIRouter(tags=["health"])
    head = head_revision(db)

    @router.get("/health", summary="Is the service up and its database ready?")
    def health(request: Request) -> JSONResponse:  # a sync endpoint: FastAPI runs it in a worker thread
        body: dict[str, Any] = {"status": "ok", "schema": {"current": None, "head": head, "up_to_date": False}}
        daemon = getattr(request.app.state, "daemon_health", None)   # faults (issue 11): why degraded
        if daemon is not None:
            body["daemon"] = daemon()
            if body["daemon"]["degraded"]:
                body["status"] = "degraded"
        try:
            current = current_revision(db)
        except SQLAlchemyError as exc:
            body.update(status="error", error=f"database not reachable: {type(exc).__name__}")
            return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
        body["schema"].update(current=current, up_to_date=current == head)
        if current != head:
            body.update(status="error", error="the database schema is not at head: run `dialer init`")
            return JSONResponse(body, status_code=503)
        return JSONResponse(body)

    return router
