"""Logging: stable `key=value` fields, and no full phone number ever reaches a log line."""

from __future__ import annotations

import logging
import re
import sys

from leads.phone import mask_phone

_PHONE_LIKE = re.compile(r"\+\d{10,15}")


class MaskPhones(logging.Filter):
    """Safety net: any E.164 number that slipped into a message is masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _PHONE_LIKE.search(message):
            record.msg = _PHONE_LIKE.sub(lambda m: mask_phone(m.group(0)), message)
            record.args = None
        return True


def setup_logging(level: str = "INFO", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(MaskPhones())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_dialer", False):
            root.removeHandler(old)
    handler._dialer = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("uvicorn.access", "httpx", "httpcore", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
