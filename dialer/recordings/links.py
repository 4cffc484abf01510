"""The recording URL the CRM payload and the nightly file carry: the console's audio endpoint."""

from __future__ import annotations

from typing import Any, Mapping

from kernel.settings import Settings

PATH = "/console/recordings/{attempt_id}"


def public_base(settings: Settings) -> str:
    base = settings.recordings.public_url or f"http://{settings.http.host}:{settings.http.port}"
    return base.rstrip("/")


def recording_url(base: str, attempt_id: int) -> str:
    return base.rstrip("/") + PATH.format(attempt_id=int(attempt_id))


def with_recording_url(payload: Mapping[str, Any], base: str) -> Mapping[str, Any]:
    """The outcome with `recording` as a URL: the outbox keeps MixMonitor's file name (the store's fact),
    the CRM and the nightly file get a link a browser opens (a base chosen at send time, so a moved
    console changes the links of what is not sent yet)."""
    ref, attempt_id = payload.get("recording"), payload.get("attempt_id")
    if not ref or attempt_id is None or "://" in str(ref):
        return payload
    return {**payload, "recording": recording_url(base, attempt_id)}
