"""Logging: stable `key=value` fields, and no full phone number ever reaches a log line."""

from __future__ import annotations

import json
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


_FIELD = re.compile(r"(\w+)=('[^']*'|\"[^\"]*\"|\S+)")


class JsonLines(logging.Formatter):
    """`--log-format json` (issue 17): one JSON object a line for log shippers. The message's first word
    is `event`, its key=value fields become keys; phones are already masked by MaskPhones."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
                "level": record.levelname, "logger": record.name, "event": message.split(" ", 1)[0],
                "message": message}
        for key, value in _FIELD.findall(message):
            line.setdefault(key, value.strip("'\""))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def setup_logging(level: str = "INFO", stream=None, fmt: str = "text") -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLines() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
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
