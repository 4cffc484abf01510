"""The AMI wire format as Asterisk speaks it: `Key: Value` lines, CRLF, a blank line ends a message.

Reading is incremental: bytes are fed as TCP delivers them, an action may be split anywhere (even
inside a UTF-8 character) and several actions may arrive in one chunk. Lines may end in CRLF or a
bare LF, as Asterisk accepts both. Header names are case-insensitive; a header may repeat
(`Variable:`), so an action keeps its headers in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from kernel.errors import DialerError, UsageError

BANNER = "Asterisk Call Manager/11.0.0"
MAX_MESSAGE_BYTES = 64 * 1024

Headers = tuple[tuple[str, str], ...]

# Asterisk's permission classes (manager.conf read=/write=); "all" means every one of them.
CLASSES = ("system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
           "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security",
           "message")


class MessageTooLarge(DialerError):
    """The client sent an AMI message larger than the simulated PBX accepts."""


@dataclass(frozen=True)
class Action:
    """One message a client sent: its headers in the order received."""

    headers: Headers

    def get(self, name: str, default: str = "") -> str:
        """The first header with this name (case-insensitive), or `default`."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def has(self, name: str) -> bool:
        wanted = name.lower()
        return any(key.lower() == wanted for key, _ in self.headers)

    @property
    def name(self) -> str:
        return self.get("Action")

    @property
    def action_id(self) -> str:
        return self.get("ActionID")


class ActionReader:
    """Turns a byte stream into actions; keeps the unfinished tail between feeds."""

    def __init__(self, limit: int = MAX_MESSAGE_BYTES) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._lines: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> list[Action]:
        self._buffer += data
        if b"\n" not in data:
            self._check_size()
            return []
        *lines, tail = bytes(self._buffer).split(b"\n")
        self._buffer = bytearray(tail)
        actions: list[Action] = []
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if line:
                self._size += len(line)
                self._check_size()
                self._lines.append(line)
            elif self._lines:
                actions.append(_parse(self._lines))
                self._lines = []
                self._size = 0
        self._check_size()
        return actions

    def _check_size(self) -> None:
        if self._size + len(self._buffer) > self._limit:
            raise MessageTooLarge(f"AMI message longer than {self._limit} bytes")


def _parse(lines: list[bytes]) -> Action:
    headers = []
    for raw in lines:
        text = raw.decode("utf-8", errors="replace")
        key, sep, value = text.partition(":")
        if sep and key.strip():
            headers.append((key.strip(), value.strip()))
    return Action(tuple(headers))


def encode(pairs: Iterable[tuple[str, str]]) -> bytes:
    """One AMI message: `Key: Value` CRLF lines and the blank line. CR/LF inside a value become spaces."""
    parts = []
    for key, value in pairs:
        text = str(value)
        if "\r" in text or "\n" in text:
            text = text.replace("\r", " ").replace("\n", " ")
        parts.append(f"{key}: {text}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")


def parse_classes(text: str) -> frozenset[str]:
    """manager.conf style `system,call,originate` (or `all`, or empty) -> a set of class names."""
    found: set[str] = set()
    for part in text.split(","):
        name = part.strip().lower()
        if not name:
            continue
        if name == "all":
            found.update(CLASSES)
        elif name in CLASSES:
            found.add(name)
        else:
            raise UsageError(f"unknown AMI permission class {name!r}; known: all, {', '.join(CLASSES)}")
    return frozenset(found)


def privilege_classes(privilege: str) -> frozenset[str]:
    """The classes of an event's `Privilege: call,all` header (without the `all` marker)."""
    return frozenset(p for p in privilege.split(",") if p and p != "all")
