"""The PBX's own record of calls: Asterisk's CDR, read for calls that ended while the daemon was blind.

Asterisk does not replay AMI events a client missed (connection cut, daemon killed). It does write
a Call Detail Record of every channel when it hangs up. asterisk_conf/cdr_custom.conf makes
cdr_custom append one CSV line per CDR to /var/log/asterisk/cdr-custom/dialer.csv with the columns
below; the daemon's Originate sets `Account: <attempt id>` so every CDR of the call (both halves of
the Local channel, inherited) carries the attempt id as its accountcode, and the dialplan puts the
carrier's hangup cause and Dial() status into the userfield (`cause=17 dial=BUSY`, `amd=MACHINE`).
`dialer pbx-sim --cdr FILE` writes the same lines the same way.

Reading them gives the same CallFacts the events would have given, so the one result table
(dialer.ami.results) decides, not a second set of rules.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable

from dialer.ami.results import CallFacts

log = logging.getLogger("dialer.cdr")

# The columns of asterisk_conf/cdr_custom.conf [mappings], in order.
CDR_COLUMNS = ("accountcode", "userfield", "uniqueid", "linkedid", "start", "answer", "end", "disposition",
               "channel", "dstchannel", "dcontext", "lastapp", "billsec")

# CDR disposition -> the Dial() status it stands for, when the userfield did not say.
_DIAL_STATUS = {"BUSY": "BUSY", "CONGESTION": "CONGESTION", "NO ANSWER": "NOANSWER", "FAILED": "CHANUNAVAIL",
                "ANSWERED": "ANSWER"}


@dataclass(frozen=True)
class CdrRow:
    accountcode: str
    userfield: str = ""
    uniqueid: str = ""
    linkedid: str = ""
    start: str = ""
    answer: str = ""
    end: str = ""
    disposition: str = ""
    channel: str = ""
    dstchannel: str = ""
    dcontext: str = ""
    lastapp: str = ""
    billsec: str = "0"

    @property
    def attempt_id(self) -> int | None:
        return int(self.accountcode) if self.accountcode.isdigit() else None

    def tags(self) -> dict[str, str]:
        """userfield `cause=17 dial=BUSY` -> {'cause': '17', 'dial': 'BUSY'}."""
        out = {}
        for part in self.userfield.replace(";", " ").split():
            name, _, value = part.partition("=")
            if name.strip():
                out[name.strip().lower()] = value.strip()
        return out


def format_row(row: CdrRow) -> str:
    """One line as cdr_custom writes it: every column double-quoted, comma-separated."""
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n").writerow(
        [getattr(row, name) for name in CDR_COLUMNS])
    return buffer.getvalue()


def parse_line(line: str) -> CdrRow | None:
    """A CSV line -> CdrRow; None for a line that is not one of ours (wrong shape, no attempt id)."""
    try:
        values = next(csv.reader([line]))
    except (csv.Error, StopIteration):
        return None
    if len(values) < len(CDR_COLUMNS):
        return None
    row = CdrRow(*values[:len(CDR_COLUMNS)])
    return row if row.attempt_id is not None else None


def facts_from_rows(rows: Iterable[CdrRow], outbound_context: str) -> tuple[CallFacts, str | None]:
    """What the CDRs of one attempt say, as CallFacts; and the operator's channel if one took it.

    Connected: a CDR of the answered customer's channel in the outbound context (where Queue()/Dial()
    to the operators runs) that was answered and bridged to another channel (dstchannel).
    """
    answered = connected = machine = False
    cause: int | None = None
    dial: str | None = None
    operator: str | None = None
    for row in rows:
        tags = row.tags()
        if row.disposition == "ANSWERED":
            answered = True
            if row.dcontext == outbound_context and row.dstchannel:
                connected, operator = True, row.dstchannel
        if tags.get("amd", "").upper() == "MACHINE":
            machine = True
        if tags.get("cause", "").isdigit() and int(tags["cause"]) and cause is None:
            cause = int(tags["cause"])
        dial = tags.get("dial") or dial or (None if row.disposition == "ANSWERED" else
                                            _DIAL_STATUS.get(row.disposition))
    return CallFacts(connected=connected, amd_machine=machine, answered=answered, hangup_cause=cause,
                     dial_status=None if answered else dial), operator


class CdrLog:
    """The CDR file, read incrementally (only what was appended since the last read).

    A rotated or truncated file is read from its start again. At the first read only the last
    `tail_bytes` are read: the records of calls that ended while the daemon was down are the newest.
    """

    def __init__(self, path: str, outbound_context: str, *, tail_bytes: int = 32 << 20,
                 keep_attempts: int = 200_000) -> None:
        self.path = path
        self.outbound_context = outbound_context
        self._offset: int | None = None
        self._inode: int | None = None
        self._partial = ""
        self._rows: OrderedDict[int, list[CdrRow]] = OrderedDict()
        self._tail = tail_bytes
        self._keep = keep_attempts

    def read_new(self) -> int:
        """Read what was appended; returns how many of our records were read. A missing file: 0."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return 0
        if self._offset is None or stat.st_ino != self._inode or stat.st_size < self._offset:
            first = self._offset is None
            self._offset = max(0, stat.st_size - self._tail) if first else 0
            self._inode, self._partial = stat.st_ino, ""
            skip_partial_line = first and self._offset > 0
        else:
            skip_partial_line = False
        if stat.st_size == self._offset:
            return 0
        with open(self.path, "r", encoding="utf-8", errors="replace", newline="") as handle:
            handle.seek(self._offset)
            data = handle.read()
            self._offset = handle.tell()
        text = self._partial + data
        lines = text.split("\n")
        self._partial = lines.pop()   # a line Asterisk is still writing
        if skip_partial_line and lines:
            lines = lines[1:]
        count = 0
        for line in lines:
            row = parse_line(line)
            if row is None:
                continue
            self._rows.setdefault(row.attempt_id, []).append(row)
            self._rows.move_to_end(row.attempt_id)
            count += 1
        while len(self._rows) > self._keep:
            self._rows.popitem(last=False)
        return count

    def facts_for(self, attempt_ids: Iterable[int]) -> dict[int, tuple[CallFacts, str | None]]:
        return {a: facts_from_rows(self._rows[a], self.outbound_context) for a in attempt_ids if a in self._rows}

    def has(self, attempt_id: int) -> bool:
        return attempt_id in self._rows

