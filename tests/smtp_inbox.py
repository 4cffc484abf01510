"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message it accepts, for the e-mail tests."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Callable

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Received:
    at: datetime | None          # the test clock when the server took it
    rcpt: tuple[str, ...]
    message: EmailMessage

    @property
    def body(self) -> str:
        return self.message.get_content()


class _Handler:
    def __init__(self, inbox: "SmtpInbox") -> None:
        self.inbox = inbox

    async def handle_DATA(self, server, session, envelope):
        if self.inbox.refuse:
            return "451 4.3.0 try again later"
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self.inbox.lock:
            self.inbox.received.append(Received(self.inbox.clock() if self.inbox.clock else None,
                                                tuple(envelope.rcpt_tos), message))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpInbox:
    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.refuse = False
        self.port = free_port()
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> "SmtpInbox":
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._controller.stop()

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.received)} e-mails arrived within {timeout} s, expected {count}")
