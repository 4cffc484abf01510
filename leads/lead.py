"""The vocabulary of a lead's life: its status, why it is invalid or closed."""

from __future__ import annotations

from enum import StrEnum


class LeadStatus(StrEnum):
    NEW = "new"              # accepted into the call queue, never dialed
    DUPLICATE = "duplicate"  # same customer as an earlier lead (DESIGN §2); never dialed
    DNC = "dnc"              # number on the do-not-call list at intake; never dialed
    INVALID = "invalid"      # cannot be called (no phone, unparsable, not a valid number)
    RETRY = "retry"          # dialed at least once, waits for its next attempt
    CALLBACK = "callback"    # the customer agreed a time; due at callback_at
    CLOSED = "closed"        # done; close_reason says why

    @property
    def dialable(self) -> bool:
        return self in DIALABLE_STATUSES


DIALABLE_STATUSES = frozenset({LeadStatus.NEW, LeadStatus.RETRY, LeadStatus.CALLBACK})
INTAKE_STATUSES = frozenset({LeadStatus.NEW, LeadStatus.DUPLICATE, LeadStatus.DNC, LeadStatus.INVALID})


class InvalidReason(StrEnum):
    NO_PHONE = "no_phone"
    UNPARSABLE = "unparsable_phone"
    NOT_VALID = "not_a_valid_number"
    NOT_CALLABLE_TYPE = "not_a_callable_number_type"
    FAKE = "obvious_fake"


class CloseReason(StrEnum):
    UNREACHABLE = "unreachable"        # max attempts used
    INVALID_NUMBER = "invalid_number"  # the network says the number does not exist
    DNC = "dnc"
    CONFIRMED = "confirmed"
    NOT_INTERESTED = "not_interested"
    WRONG_NUMBER = "wrong_number"
    FAKE = "fake"
    DUPLICATE = "duplicate"
    COMPLAINT = "complaint"
    NO_DECISION = "no_decision"
    WRITE_INSTEAD = "write_instead"    # the customer asked for e-mail, not calls (issue 19)
