"""A log handler for the fuzz tests: every record with a traceback or at ERROR, which no input may cause."""

from __future__ import annotations

import logging


class Problems(logging.Handler):
    """Every log record with a traceback or at ERROR: the server must write none for any input."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)
