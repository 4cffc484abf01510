"""The ONE table from what Asterisk told about a call to its CallResult.

The tracker collects `CallFacts` from the events of one attempt; `decide(facts)` reads RESULT_TABLE
top to bottom and the first row whose fact has one of the row's values gives the result.
Each row quotes the recording (tests/fixtures/ami/) it was checked against.

Why this order (facts from the real recordings):
- An operator took the call -> connected, whatever the hangup cause later.
- Answered but no operator (left the queue, hung up while the operator's phone rang, or the
  dialplan gave up) -> abandoned; answering-machine detection wins over that when it said MACHINE.
- OriginateResponse Reason: 3 is OUR timeout (no answer); 5 / 8 come only from BUSY / CONGESTION
  control frames (Local + Busy()/Congestion()); with a SIP trunk Reason is 0 for EVERY rejection,
  so after those the customer leg's Hangup Cause decides, then chan_pjsip's TechCause (the SIP code),
  then DialEnd DialStatus (which says NOANSWER for 404 and 603, so it comes last).
- A channel that was created but never dialed anything and failed (Local channel into a context
  with no such extension) is an invalid number; anything else that failed is `failed`.

AMD: the dialplan reports answering-machine detection with `UserEvent(DialerAMD,AMDStatus: MACHINE)`
or by setting the channel variable AMDSTATUS=MACHINE (VarSet); both give amd_machine (the tracker).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leads.attempt import CallResult


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What the events told about one attempt, in the words RESULT_TABLE reads."""

    refused: bool = False             # Originate got Response: Error: nothing was dialed
    connected: bool = False           # an operator took the call (AgentConnect, or Dial to an operator answered)
    amd_machine: bool = False         # answering-machine detection said MACHINE
    answered: bool = False            # the customer picked up
    cancelled: bool = False           # the dialer hung up before an answer
    originate_reason: int | None = None
    hangup_cause: int | None = None   # Q.850 cause of the customer's leg (first non-zero one)
    tech_cause: int | None = None     # SIP code of the customer's leg (chan_pjsip TechCause)
    dial_status: str | None = None    # DialEnd DialStatus of the customer's leg
    never_dialed: bool = False        # a channel was created but no Dial began toward the customer


@dataclass(frozen=True, slots=True)
class ResultRow:
    fact: str                 # a CallFacts field
    values: frozenset[Any]
    result: CallResult
    evidence: str             # where this was seen

    def matches(self, facts: CallFacts) -> bool:
        return getattr(facts, self.fact) in self.values


def _row(fact: str, values: Any, result: CallResult, evidence: str) -> ResultRow:
    if fact not in CallFacts.__dataclass_fields__:
        raise ValueError(f"RESULT_TABLE: no such fact {fact!r}")
    values = frozenset(values) if isinstance(values, (set, frozenset, tuple, list)) else frozenset([values])
    return ResultRow(fact, values, result, evidence)


R = CallResult
RESULT_TABLE: tuple[ResultRow, ...] = (
    _row("refused", True, R.FAILED,
         "readonly-user-permission-denied.txt: 'Response: Error / Message: Permission denied'"),
    _row("connected", True, R.CONNECTED,
         "originate-answered-queue.txt: 'AgentConnect ... Interface: Local/op2@operators/n'; "
         "originate-answered.txt: 'DialEnd' of the ;1 leg to Local/op1@operators 'DialStatus: ANSWER'"),
    _row("amd_machine", True, R.ANSWERING_MACHINE,
         "dialplan AMD(): UserEvent DialerAMD 'AMDStatus: MACHINE' or VarSet AMDSTATUS=MACHINE"),
    _row("answered", True, R.ABANDONED,
         "originate-answered-immediate-hangup.txt: Reason 4, then the operator Dial ends 'DialStatus: CANCEL'"),
    _row("cancelled", True, R.CANCELLED,
         "originate-cancelled-by-dialer.txt: our Action Hangup while ringing; Reason 0, Cause 0, DialEnd NOANSWER"),
    # OriginateResponse Reason: 3 = our Originate Timeout, 5/8 = BUSY/CONGESTION control frames
    _row("originate_reason", 3, R.NO_ANSWER,
         "originate-noanswer.txt, pjsip-noanswer-timeout.txt: 'Reason: 3' (Cause 19, TechCause 480 made up)"),
    _row("originate_reason", 5, R.BUSY, "originate-busy.txt: 'Reason: 5' (Local ;2 Cause 17)"),
    _row("originate_reason", 8, R.CONGESTION, "originate-congestion.txt: 'Reason: 8' (Local ;2 Cause 34)"),
    # Q.850 Hangup Cause of the customer's leg: decides every SIP rejection (Reason is 0 for all of them)
    _row("hangup_cause", 17, R.BUSY, "pjsip-busy-486.txt: 'Cause: 17 / Cause-txt: User busy / TechCause: 486'"),
    _row("hangup_cause", {1, 2, 3, 22, 28}, R.INVALID_NUMBER,
         "pjsip-notfound-404.txt: 'Cause: 1 / Unallocated (unassigned) number / TechCause: 404'"),
    _row("hangup_cause", 21, R.REJECTED, "pjsip-decline-603.txt: 'Cause: 21 / Call Rejected / TechCause: 603'"),
    _row("hangup_cause", {34, 38, 41, 42, 44, 47}, R.CONGESTION,
         "pjsip-unavailable-503.txt: 'Cause: 34 / Circuit/channel congestion / TechCause: 503' "
         "(Asterisk maps 503 to 34)"),
    _row("hangup_cause", {16, 18, 19, 20}, R.NO_ANSWER,
         "pjsip-tempunavail-480.txt: 'Cause: 19 / User alerting, no answer / TechCause: 480' "
         "(Asterisk maps 480 to 19)"),
    _row("hangup_cause", {27, 29, 31, 58, 65, 66, 69, 79, 88, 102, 111, 127}, R.FAILED,
         "Q.850 destination out of order / facility rejected / interworking: a failure, not the customer"),
    # chan_pjsip TechCause (SIP response code) when the Q.850 cause said nothing (0)
    _row("tech_cause", {486, 600}, R.BUSY, "TechCause 486 Busy Here / 600 Busy Everywhere"),
    _row("tech_cause", {404, 410, 484, 604}, R.INVALID_NUMBER, "TechCause 404 Not Found / 484 Address Incomplete"),
    _row("tech_cause", 603, R.REJECTED, "TechCause 603 Decline"),
    _row("tech_cause", {500, 502, 503, 504}, R.CONGESTION, "TechCause 503 Service Unavailable"),
    _row("tech_cause", {408, 480, 487}, R.NO_ANSWER, "TechCause 480 Temporarily Unavailable / 487 cancelled"),
    # DialEnd DialStatus last: ast_hangup_cause_to_dial_status() calls 404 and 603 NOANSWER
    _row("dial_status", "BUSY", R.BUSY, "originate-busy.txt: 'DialStatus: BUSY'"),
    _row("dial_status", "CONGESTION", R.CONGESTION, "originate-congestion.txt: 'DialStatus: CONGESTION'"),
    _row("dial_status", {"NOANSWER", "CANCEL"}, R.NO_ANSWER,
         "pjsip-tempunavail-480.txt: 'DialStatus: NOANSWER'; via-local timeout: 'DialStatus: CANCEL'"),
    _row("dial_status", {"CHANUNAVAIL", "DONTCALL", "TORTURE", "INVALIDARGS"}, R.FAILED,
         "DialStatus CHANUNAVAIL: the trunk could not be used"),
    _row("never_dialed", True, R.INVALID_NUMBER,
         "originate-invalid-number.txt: Local channel into [customers] with no such extension: "
         "no DialBegin, Cause 0, 'Reason: 0'"),
    _row("originate_reason", 1, R.NO_ANSWER,
         "OriginateResponse 'Reason: 1' (AST_CONTROL_HANGUP): the far end hung up before answering"),
    _row("originate_reason", {0, 2, 7}, R.FAILED, "OriginateResponse 'Response: Failure' with nothing better known"),
)
del R


def decide(facts: CallFacts) -> tuple[CallResult, ResultRow | None]:
    """The result of a finished attempt and the table row that gave it (None: nothing was known)."""
    for row in RESULT_TABLE:
        if row.matches(facts):
            return row.result, row
    return CallResult.UNKNOWN, None
