"""What a call attempt is: its lifecycle states and its result, in call-center terms."""

from __future__ import annotations

from enum import StrEnum


class AttemptState(StrEnum):
    CLAIMED = "claimed"        # the lead is leased to a daemon, no call yet
    ORIGINATED = "originated"  # Originate sent, Asterisk queued it
    RINGING = "ringing"        # the customer's phone rings
    ANSWERED = "answered"      # the customer picked up, waits in the operators' queue
    CONNECTED = "connected"    # an operator took the call
    ENDED = "ended"            # the call is over; result is set

    @property
    def in_progress(self) -> bool:
        return self is not AttemptState.ENDED

    @property
    def rank(self) -> int:
        """Position in the lifecycle (claimed first, ended last): an attempt's state only moves forward."""
        return _LIFECYCLE.index(self)


_LIFECYCLE = tuple(AttemptState)


class CallResult(StrEnum):
    CONNECTED = "connected"                   # answered and talked to an operator: a contact
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    CONGESTION = "congestion"
    FAILED = "failed"
    INVALID_NUMBER = "invalid_number"
    REJECTED = "rejected"                     # the customer declined the call
    ANSWERING_MACHINE = "answering_machine"
    ABANDONED = "abandoned"                   # answered, but hung up before an operator was free
    CANCELLED = "cancelled"                   # we hung up before an answer (e.g. shutdown)
    UNKNOWN = "unknown"                       # the PBX lost track of it; retried like a failure

    @property
    def is_contact(self) -> bool:
        return self is CallResult.CONNECTED


class DispositionKind(StrEnum):
    CONFIRMED = "confirmed"
    CALLBACK = "callback"
    NOT_INTERESTED = "not_interested"
    WRONG_NUMBER = "wrong_number"
    FAKE = "fake"
    DUPLICATE = "duplicate"
    DO_NOT_CALL = "do_not_call"
    COMPLAINT = "complaint"
    NO_DECISION = "no_decision"
    WRITE_INSTEAD = "write_instead"           # "do not call me, write to me": e-mail only (issue 19)
