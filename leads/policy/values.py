"""The call policy as data (DESIGN §3): every key with its default, what it means and what is allowed.

The policy is one frozen `Policy`; its stored form is a flat JSON object {key: value} (a snapshot per
version, see store.py). Team leads change one key at a time from the CLI with a text value, so every
key knows how to read its text (`parse_value`) and what it accepts (`check_values`). A refused value
raises PolicyRefused naming the key and what is allowed; nothing is half-applied.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from datetime import time, timedelta
from typing import Any, Callable, Mapping

from kernel.errors import UsageError
from leads.attempt import CallResult
from leads.policy.tiers import Tier

Check = Callable[[Any], str | None]   # None when the value is fine, else the words "what is allowed"


class PolicyRefused(UsageError):
    """The policy change is refused."""


# --- checks and readers -------------------------------------------------------------------------

def _whole(low: int, high: int, hint: str = "") -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return None
        return f"a whole number from {low} to {high}" + (f" ({hint})" if hint else "")
    return check


def _number(low: float, high: float) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high:
            return None
        return f"a number from {low:g} to {high:g}"
    return check


def _choice(*allowed: Any) -> Check:
    def check(value: Any) -> str | None:
        return None if value in allowed else "one of: " + ", ".join(str(a) for a in allowed)
    return check


def _clock(value: Any) -> str | None:
    if isinstance(value, str) and re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        return None
    return "a time of day as HH:MM, such as 22:00"


def _tier_order(value: Any) -> str | None:
    names = [t.value for t in Tier]
    if isinstance(value, list) and sorted(value) == sorted(names):
        return None
    return "every tier exactly once, comma-separated, in the order to dial: " + ",".join(names)


def _day_parts(value: Any) -> str | None:
    allowed = ("1 to 6 day parts HH:MM-HH:MM, comma-separated, in order, not overlapping, e.g. "
               "10:00-13:00,13:00-17:00,17:00-22:00")
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= 6:
        return allowed
    last = None
    for part in value:
        if not isinstance(part, str) or not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d", part):
            return allowed
        start, end = part.split("-")
        if start >= end or (last is not None and start < last):
            return allowed
        last = end
    return None


def _read_int(text: str) -> int:
    return int(text.strip())


def _read_number(text: str) -> int | float:
    value = float(text.strip())
    return int(value) if value.is_integer() else value


def _read_str(text: str) -> str:
    return text.strip()


def _read_list(text: str) -> list[str]:
    text = text.strip()
    if text.startswith("["):
        value = json.loads(text)
        if not isinstance(value, list):
            raise ValueError
        return [str(v).strip() for v in value]
    return [part.strip() for part in text.split(",") if part.strip()]


def key(default: Any, meaning: str, check: Check, reader: Callable[[str], Any] = _read_int) -> Any:
    meta = {"meaning": meaning, "check": check, "reader": reader}
    if isinstance(default, list):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


MINUTES = _whole(0, 7 * 24 * 60, "minutes, up to a week")

# --- the policy ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """One version of the call policy. `version` 0 means the built-in defaults (nothing stored yet)."""

    # Priority tiers
    tier_variant: int = key(1, "1: dial by the tier order below; 2: new leads first, then the fewest "
                               "attempts first", _choice(1, 2))
    tier_order: tuple[str, ...] = key([t.value for t in Tier],
                                      "Variant 1 tier order: new (never dialed), second_attempt (exactly one "
                                      "attempt), callback (agreed time is due), redial (earlier attempts got "
                                      "no conversation), follow_up (next contact after a conversation)",
                                      _tier_order, _read_list)
    # Timing
    first_call_minutes: int = key(15, "First call within this many minutes of receipt (of quiet-hours end "
                                      "for leads that arrive at night)", _whole(1, 24 * 60))
    sla_warning_minutes: int = key(5, "A lead not yet dialed this many minutes before its deadline is at risk",
                                   _whole(0, 24 * 60))
    quiet_start: str = key("22:00", "Quiet hours start: no dialing from this time (center's zone and the "
                                    "lead's own zone)", _clock, _read_str)
    quiet_end: str = key("10:00", "Quiet hours end: dialing allowed again from this time", _clock, _read_str)
    unknown_zone_rule: str = key("center", "Lead whose zone is unknown (e.g. a mobile number, which may be "
                                           "anywhere in the country): center = only the center's quiet hours; "
                                           "strict = only when allowed in every zone the number may be in",
                                 _choice("center", "strict"), _read_str)
    # Attempts and retry delays (minutes) per result of the last attempt
    max_attempts: int = key(7, "Dial attempts per lead; then the lead is closed as unreachable",
                            _whole(1, 20, "practice recommends 5-10"))
    max_attempts_per_day: int = key(3, "At most this many attempts per lead in one calendar day of the lead's "
                                       "zone; then the next waits for the next day's first day part",
                                    _whole(1, 10))
    retry_day_parts: tuple[str, ...] = key(["10:00-13:00", "13:00-17:00", "17:00-22:00"],
                                           "Parts of the lead's local day (morning, afternoon, evening): after no "
                                           "answer, an answering machine or a declined call the next attempt "
                                           "waits for the next part", _day_parts, _read_list)
    retry_busy_minutes: int = key(10, "Retry delay after busy", MINUTES)
    retry_no_answer_minutes: int = key(30, "Retry delay after no answer", MINUTES)
    retry_congestion_minutes: int = key(5, "Retry delay after network congestion", MINUTES)
    retry_failed_minutes: int = key(5, "Retry delay after a failed call (trunk or network error)", MINUTES)
    retry_answering_machine_minutes: int = key(120, "Retry delay after an answering machine", MINUTES)
    retry_abandoned_minutes: int = key(1, "Retry delay after an abandoned call (answered, no operator free)",
                                       MINUTES)
    retry_rejected_minutes: int = key(30, "Retry delay after the customer declined the call", MINUTES)
    retry_cancelled_minutes: int = key(1, "Retry delay after a call we cancelled before an answer "
                                          "(a claim given back before dialing is not an attempt)", MINUTES)
    retry_unknown_minutes: int = key(5, "Retry delay after a call whose result was lost (as failed)", MINUTES)
    # Contact cadence (a contact = a conversation)
    cadence_min_gap_days: int = key(1, "Calendar days between two contacts unless a callback was agreed "
                                       "(1 = not the same day)", _whole(0, 30))
    cadence_second_contact_days: int = key(1, "The second contact is due within this many days after the "
                                              "first (1 = by the end of the next day)", _whole(1, 30))
    cadence_max_gap_days: int = key(2, "Each further contact no later than this many days after the previous",
                                    _whole(1, 60))
    # Callbacks and operators
    callback_operator_wait_minutes: int = key(10, "A due callback waits this long for the operator who agreed "
                                                  "it, then any operator takes it", _whole(0, 24 * 60))
    distribution: str = key("even", "Operator choice: even (fewest calls today), product (operators skilled "
                                    "in the lead's product first), skill (skilled first, then highest level)",
                            _choice("even", "product", "skill"), _read_str)
    ring_timeout_seconds: int = key(30, "How long the customer's phone rings before no answer",
                                    _whole(5, 300))
    lease_seconds: int = key(300, "A claimed lead stays leased to its daemon this long unless renewed; a "
                                  "crashed daemon's claims come back after it", _whole(30, 3600))
    # Abandoned calls (issue 15): customers who answered and found no operator within 2 s
    abandon_budget_percent: float = key(3.0, "Abandoned calls may be at most this share of answered calls, "
                                             "in one day and over the rolling window below (US: 3% over 30 "
                                             "days; UK: 3% over 24 hours)", _number(0, 100), _read_number)
    abandon_budget_days: int = key(30, "The abandon budget's rolling window, in days", _whole(1, 365))
    # Intake
    dedup_window_hours: float = key(24, "Variant B dedup: a phone-only lead whose phone was received within "
                                        "this many hours is a duplicate", _number(0, 24 * 365), _read_number)

    version: int = 0

    # --- typed views used by the rules (computed once per Policy: the claim reads them for every lead)

    @cached_property
    def quiet_hours(self) -> tuple[time, time]:
        return _time(self.quiet_start), _time(self.quiet_end)

    @cached_property
    def day_parts(self) -> tuple[tuple[time, time], ...]:
        return tuple((_time(p.split("-")[0]), _time(p.split("-")[1])) for p in self.retry_day_parts)

    @cached_property
    def first_call_delay(self) -> timedelta:
        return timedelta(minutes=self.first_call_minutes)

    @cached_property
    def sla_warning(self) -> timedelta:
        return timedelta(minutes=self.sla_warning_minutes)

    @cached_property
    def callback_operator_wait(self) -> timedelta:
        return timedelta(minutes=self.callback_operator_wait_minutes)

    @cached_property
    def dedup_window(self) -> timedelta:
        return timedelta(hours=self.dedup_window_hours)

    @cached_property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)

    def retry_minutes(self, result: CallResult) -> int | None:
        """The retry delay after `result`, or None when the result closes the lead."""
        name = RETRY_KEYS.get(result)
        return None if name is None else getattr(self, name)

    def values(self) -> dict[str, Any]:
        """The stored form: {key: JSON value}."""
        values = {}
        for name in KEYS:
            value = getattr(self, name)
            values[name] = list(value) if isinstance(value, tuple) else value
        return values


RETRY_KEYS: Mapping[CallResult, str] = {
    CallResult.BUSY: "retry_busy_minutes",
    CallResult.NO_ANSWER: "retry_no_answer_minutes",
    CallResult.CONGESTION: "retry_congestion_minutes",
    CallResult.FAILED: "retry_failed_minutes",
    CallResult.ANSWERING_MACHINE: "retry_answering_machine_minutes",
    CallResult.ABANDONED: "retry_abandoned_minutes",
    CallResult.REJECTED: "retry_rejected_minutes",
    CallResult.CANCELLED: "retry_cancelled_minutes",
    CallResult.UNKNOWN: "retry_unknown_minutes",
}


@dataclass(frozen=True)
class KeyInfo:
    name: str
    default: Any
    meaning: str
    check: Check
    reader: Callable[[str], Any]


KEYS: dict[str, KeyInfo] = {
    f.name: KeyInfo(f.name, f.default if f.default is not dataclasses.MISSING else list(f.default_factory()),
                    f.metadata["meaning"], f.metadata["check"], f.metadata["reader"])
    for f in dataclasses.fields(Policy) if "meaning" in f.metadata
}
DEFAULTS = Policy()


def _time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


_NOT_A_VALUE = object()


def allowed_words(name: str) -> str:
    """What a key accepts, in words: what its check says about a value no key accepts."""
    return KEYS[name].check(_NOT_A_VALUE) or ""


def parse_value(name: str, text: str) -> Any:
    """A CLI text value read as the key's type; PolicyRefused if the key or the text is not usable."""
    info = _known(name)
    try:
        value = info.reader(text)
    except (ValueError, TypeError):
        raise PolicyRefused(f"{name}: {text!r} is not allowed; expected {allowed_words(name)}") from None
    if info.check(value) is not None:
        raise PolicyRefused(f"{name}: {text!r} is not allowed; expected {allowed_words(name)}")
    return value


def _known(name: str) -> KeyInfo:
    info = KEYS.get(name)
    if info is None:
        raise PolicyRefused(f"unknown policy key {name!r}; known keys: {', '.join(KEYS)}")
    return info


def pairs_to_changes(words: list[str]) -> dict[str, str]:
    """CLI words `KEY VALUE KEY VALUE ...` (or `KEY=VALUE ...`) as {key: text}; PolicyRefused if malformed."""
    changes: dict[str, str] = {}
    rest = list(words)
    while rest:
        word = rest.pop(0)
        if "=" in word:
            name, text = word.split("=", 1)
        elif rest:
            name, text = word, rest.pop(0)
        else:
            raise PolicyRefused(f"policy key {word!r} has no value; give KEY VALUE pairs, e.g. max_attempts 5")
        name = name.strip()
        _known(name)
        if name in changes:
            raise PolicyRefused(f"policy key {name!r} is given twice in one change")
        changes[name] = text
    if not changes:
        raise PolicyRefused("no policy key given; give KEY VALUE pairs, e.g. max_attempts 5")
    return changes


def check_values(values: Mapping[str, Any]) -> list[str]:
    """Every problem of a full set of values, each key's own check and the checks across keys."""
    problems = []
    for name, value in values.items():
        info = KEYS.get(name)
        if info is None:
            problems.append(f"unknown policy key {name!r}")
        elif info.check(value) is not None:
            problems.append(f"{name}: {value!r} is not allowed; expected {allowed_words(name)}")
    if problems:
        return problems
    merged = {**DEFAULTS.values(), **values}
    if merged["quiet_start"] == merged["quiet_end"]:
        problems.append(f"quiet_start and quiet_end are both {merged['quiet_start']}; they must differ "
                        f"(quiet hours are the span from quiet_start to quiet_end)")
    if merged["cadence_min_gap_days"] > merged["cadence_max_gap_days"]:
        problems.append(f"cadence_min_gap_days ({merged['cadence_min_gap_days']}) is more than "
                        f"cadence_max_gap_days ({merged['cadence_max_gap_days']})")
    return problems


LEGAL_QUIET_HOURS = ("22:00", "10:00")   # DESIGN §3: no calls from 22:00 to 10:00


def night_problems(values: Mapping[str, Any], *, allow_short: bool = False) -> list[str]:
    """A team lead's change of quiet hours that would call people at night (checked on change only).

    Midnight must always be quiet (the dialing window lies inside one day: quiet_start after
    quiet_end, or quiet_start 00:00). Unless `allow_short`, the quiet span must also cover the legal
    22:00-10:00. Stored versions are not checked again: a policy set with --allow-short-quiet-hours
    keeps loading.
    """
    merged = {**DEFAULTS.values(), **values}
    start_text, end_text = merged["quiet_start"], merged["quiet_end"]
    start, end = _time(start_text), _time(end_text)
    if start <= end and start != time(0, 0):
        return [f"quiet hours {start_text}-{end_text} leave dialing allowed overnight (from {end_text} through "
                f"midnight to {start_text}); quiet hours must span the night, quiet_start in the evening and "
                f"quiet_end in the morning, e.g. {'-'.join(LEGAL_QUIET_HOURS)}"]
    legal_start, legal_end = (_time(t) for t in LEGAL_QUIET_HOURS)
    if allow_short:
        return []
    problems = []
    if start == time(0, 0) or start > legal_start:
        problems.append(f"quiet_start {start_text} allows calls after {LEGAL_QUIET_HOURS[0]}")
    if end < legal_end:
        problems.append(f"quiet_end {end_text} allows calls before {LEGAL_QUIET_HOURS[1]}")
    if problems:
        return [f"quiet hours {start_text}-{end_text} are shorter than the legal {'-'.join(LEGAL_QUIET_HOURS)}: "
                + "; ".join(problems) + ". Pass --allow-short-quiet-hours to set them anyway"]
    return []


def spread_problems(values: Mapping[str, Any]) -> list[str]:
    """A retry plan that could close a lead on its first day (checked on change only, like night_problems)."""
    merged = {**DEFAULTS.values(), **values}
    if merged["max_attempts"] <= merged["max_attempts_per_day"]:
        return [f"max_attempts ({merged['max_attempts']}) must be more than max_attempts_per_day "
                f"({merged['max_attempts_per_day']}): attempts spread over at least two days"]
    return []


def build_policy(values: Mapping[str, Any], version: int = 0) -> Policy:
    """A Policy from stored or changed values (missing keys take their defaults); refuses bad values."""
    problems = check_values(values)
    if problems:
        raise PolicyRefused("; ".join(problems))
    kwargs = {name: tuple(v) if isinstance(v, list) else v for name, v in values.items()}
    return dataclasses.replace(DEFAULTS, version=version, **kwargs)
