"""The simulator keeps the PBX's record of calls as Asterisk does: CDR lines, cdr_custom style.

Asterisk writes one CDR per channel pair when a call hangs up; for a dialer call (Originate of
Local/<number>@dialer-trunk) those are the ;2 half dialing the trunk ([dialer-trunk], whose
userfield the dialplan sets to `cause=${HANGUPCAUSE} dial=${DIALSTATUS}`) and, once answered, the
;1 half in [dialer-outbound] bridged to the operator who took it (dstchannel). Every CDR carries
the Originate's `Account` (the attempt id) as accountcode. A call lost with the PBX (killed) has no
CDR, as on a crashed Asterisk.
"""

from __future__ import annotations

from datetime import datetime

from dialer.pbx_sim.calls import CallRecord, CallResult
from dialer.pbx_sim.scenarios import REJECTIONS
from dialer.resilience.cdr import CdrRow, format_row

# How Asterisk ends the trunk leg for each way a simulated call ends: disposition, cause, DIALSTATUS.
_TRUNK = {
    CallResult.CONNECTED: ("ANSWERED", 16, "ANSWER"), CallResult.ABANDONED: ("ANSWERED", 16, "ANSWER"),
    CallResult.HANGUP: ("ANSWERED", 16, "ANSWER"), CallResult.MACHINE: ("ANSWERED", 16, "ANSWER"),
    CallResult.NO_ANSWER: ("NO ANSWER", 19, "NOANSWER"), CallResult.CANCELLED: ("NO ANSWER", 16, "CANCEL"),
    CallResult.FAILED: ("FAILED", 0, "CHANUNAVAIL"),
}
_DISPOSITION = {"BUSY": "BUSY", "CONGESTION": "CONGESTION", "NOANSWER": "NO ANSWER"}


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def cdr_rows(record: CallRecord, *, account: str, channel: str, context: str, trunk: str) -> list[CdrRow]:
    if record.result is CallResult.DROPPED:
        return []
    reply = next((r for o, r in REJECTIONS.items() if o.value == record.result.value), None)
    if reply is not None:
        disposition, cause, dial = _DISPOSITION.get(reply.dialstatus_var, "FAILED"), reply.cause, reply.dialstatus_var
    else:
        disposition, cause, dial = _TRUNK.get(record.result, ("FAILED", 0, "CHANUNAVAIL"))
    billsec = int((record.ended_at - record.answered_at).total_seconds()) if record.answered_at else 0
    suffix = record.uniqueid.rsplit(".", 1)[-1][-8:].rjust(8, "0")
    rows = [CdrRow(account, f"cause={cause} dial={dial}", f"{record.uniqueid}-2", record.uniqueid,
                   _when(record.started_at), _when(record.answered_at), _when(record.ended_at), disposition,
                   f"{channel}-{suffix};2", f"{trunk}-{suffix}", "dialer-trunk", "Dial", str(billsec))]
    if record.answered_at is not None:
        operator = f"{record.operator}-{suffix}" if record.operator and record.connected_at else ""
        rows.append(CdrRow(account, "amd=MACHINE" if record.result is CallResult.MACHINE else "",
                           record.uniqueid, record.uniqueid, _when(record.started_at), _when(record.answered_at),
                           _when(record.ended_at), "ANSWERED", f"{channel}-{suffix};1", operator, context,
                           "Queue", str(billsec)))
    return rows


class CdrWriter:
    """Appends the CDR lines of each finished call to one file (as cdr_custom does, line-buffered)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def write(self, rows: list[CdrRow]) -> None:
        if not rows:
            return
        with open(self.path, "a", encoding="utf-8", newline="") as handle:
            handle.write("".join(format_row(row) for row in rows))


def call_attempt_id(call) -> str:
    """The ATTEMPT_ID channel variable the dialer set on the Originate ('' when none)."""
    return dict((k.lstrip("_"), v) for k, v in call.request.variables).get("ATTEMPT_ID", "")
