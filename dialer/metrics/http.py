"""`GET /metrics` in the Prometheus text format, on the webhook's app or on a port of its own."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, start_http_server

from dialer.metrics.registry import DialerMetrics


def metrics_router(metrics: DialerMetrics) -> APIRouter:
    router = APIRouter(tags=["metrics"])

    @router.get("/metrics", summary="Prometheus metrics of this daemon", response_class=Response)
    def scrape() -> Response:   # sync: the store gauges query the database in a worker thread
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


def count_webhook_requests(app: FastAPI, metrics: DialerMetrics) -> None:
    @app.middleware("http")
    async def count(request: Request, call_next):
        response = await call_next(request)
        if request.url.path == "/leads" and request.method == "POST":
            metrics.on_webhook(response.status_code)
        return response


def serve_separately(metrics: DialerMetrics, host: str, port: int):
    """A port of its own (metrics.port): prometheus_client's threaded server; returns (server, thread)."""
    return start_http_server(port, addr=host, registry=metrics.registry)
