"""Read recorded AMI sessions (the format of tests/fixtures/ami/), in order.

The format, one file per session:

    # Asterisk 22.10.1 -- scenario: ...        header lines ('# ') at the top
    #-- t=+0.001s dialer TCP connected ...     a capture note (connections, EOF, what the script did)
    #<< S->C t=+0.001s                        the lines that follow are what the server sent
    Asterisk Call Manager/11.0.0              the banner: one line, no blank line after it
    #>> C->S t=+0.001s                        the lines that follow are what the client sent
    Action: Login
    ActionID: login-1
                                              a blank line ends a message
    #<< S->C t=+0.001s
    Response: Success
    ...

The wire line ending is CRLF; the file shows plain newlines. `Entry.to_wire()` gives the bytes
exactly as they crossed the socket, so the same files drive replay tests and a simulated PBX.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Iterator

from kernel.errors import DialerError

BANNER_PREFIX = "Asterisk Call Manager/"
_MARKER = re.compile(r"^#(<<|>>) (S->C|C->S) t=\+?(-?\d+(?:\.\d+)?)s\s*$")
_NOTE = re.compile(r"^#-- t=\+?(-?\d+(?:\.\d+)?)s ?(.*)$")


class TranscriptError(DialerError):
    """The transcript file is not in the expected format."""


class Direction(StrEnum):
    SERVER = "S->C"   # Asterisk -> dialer
    CLIENT = "C->S"   # dialer -> Asterisk
    NOTE = "note"     # a capture note, not on the wire


@dataclass(frozen=True, slots=True)
class Entry:
    """One message (or banner, or note) of a transcript, with its time since the capture started."""

    direction: Direction
    t: float
    line_no: int
    fields: tuple[tuple[str, str], ...] = ()   # header lines in wire order; repeats kept
    banner: str | None = None                  # 'Asterisk Call Manager/11.0.0'
    note: str | None = None

    @property
    def kind(self) -> str:
        """banner, event, response, action, note (or 'other' for a headerless chunk)."""
        if self.direction is Direction.NOTE:
            return "note"
        if self.banner is not None:
            return "banner"
        first = self.fields[0][0].lower() if self.fields else ""
        return first if first in ("event", "response", "action") else "other"

    @property
    def name(self) -> str:
        """The event name, the action name, or the response status."""
        return self.fields[0][1] if self.fields else (self.banner or "")

    def get(self, key: str, default: str | None = None) -> str | None:
        """The first value of a header (case-insensitive)."""
        wanted = key.lower()
        for k, v in self.fields:
            if k.lower() == wanted:
                return v
        return default

    def get_all(self, key: str) -> list[str]:
        wanted = key.lower()
        return [v for k, v in self.fields if k.lower() == wanted]

    def as_mapping(self) -> dict[str, str | list[str]]:
        """Header -> value, a repeated header -> list of values (the shape panoramisk gives)."""
        out: dict[str, str | list[str]] = {}
        for k, v in self.fields:
            if k in out:
                old = out[k]
                out[k] = [*old, v] if isinstance(old, list) else [old, v]
            else:
                out[k] = v
        return out

    def to_wire(self) -> bytes:
        """The bytes as they crossed the socket (CRLF line endings, a blank line after a message)."""
        if self.direction is Direction.NOTE:
            return b""
        if self.banner is not None:
            return (self.banner + "\r\n").encode("utf-8")
        lines = [f"{k}: {v}" if k else v for k, v in self.fields]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


@dataclass(frozen=True, slots=True)
class Transcript:
    name: str
    header: tuple[str, ...]     # the '# ' lines at the top, without '# '
    entries: tuple[Entry, ...]

    @property
    def title(self) -> str:
        return self.header[0] if self.header else self.name

    def server_messages(self) -> Iterator[Entry]:
        """What Asterisk sent, in order, banners included."""
        return (e for e in self.entries if e.direction is Direction.SERVER)

    def client_messages(self) -> Iterator[Entry]:
        return (e for e in self.entries if e.direction is Direction.CLIENT)

    def events(self) -> Iterator[Entry]:
        return (e for e in self.entries if e.kind == "event")


def read_transcript(path: str | Path) -> Transcript:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TranscriptError(f"{path}: not UTF-8 text") from None
    return parse_transcript(text, name=path.stem)


def transcript_files(folder: str | Path) -> list[Path]:
    """Every transcript in a folder (*.txt except README.txt), sorted by name."""
    return sorted(p for p in Path(folder).glob("*.txt") if p.name.lower() != "readme.txt")


def parse_transcript(text: str, name: str = "transcript") -> Transcript:
    header: list[str] = []
    entries: list[Entry] = []
    direction: Direction | None = None
    t = 0.0
    lines: list[str] = []
    start = 0

    def flush() -> None:
        nonlocal lines
        if lines and direction is not None:
            entries.extend(_entries(direction, t, start, lines))
        lines = []

    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        if line.startswith("#"):
            flush()
            marker = _MARKER.match(line)
            if marker:
                direction = Direction.SERVER if marker.group(2) == "S->C" else Direction.CLIENT
                t = float(marker.group(3))
                start = line_no + 1
                continue
            note = _NOTE.match(line)
            if note:
                entries.append(Entry(Direction.NOTE, float(note.group(1)), line_no, note=note.group(2)))
                direction = None
                continue
            if line.startswith("# ") and not entries:
                header.append(line[2:])
                continue
            raise TranscriptError(f"{name}:{line_no}: unknown marker line {line!r}")
        if line == "":
            flush()
            start = line_no + 1
            continue
        if direction is None:
            raise TranscriptError(f"{name}:{line_no}: AMI line outside a '#<<' or '#>>' block: {line!r}")
        if not lines:
            start = line_no
        lines.append(line)
    flush()
    return Transcript(name=name, header=tuple(header), entries=tuple(entries))


def _entries(direction: Direction, t: float, line_no: int, lines: list[str]) -> list[Entry]:
    out = []
    if lines[0].startswith(BANNER_PREFIX):  # the banner is one line with no blank line after it
        out.append(Entry(direction, t, line_no, banner=lines[0]))
        lines, line_no = lines[1:], line_no + 1
        if not lines:
            return out
    fields = []
    for line in lines:
        key, sep, value = line.partition(":")
        if not sep:  # a body line (Response: Follows) has no header name
            fields.append(("", line))
            continue
        fields.append((key, value[1:] if value.startswith(" ") else value))
    out.append(Entry(direction, t, line_no, fields=tuple(fields)))
    return out
