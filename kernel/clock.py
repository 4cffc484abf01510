"""Where time comes from. Domain code takes `now` as an argument; only loops hold a clock."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class ManualClock:
    """A clock that only moves when told to (tests, replays)."""

    def __init__(self, start: datetime) -> None:
        require_aware(start)
        self._now = start.astimezone(timezone.utc)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, when: datetime) -> None:
        require_aware(when)
        self._now = when.astimezone(timezone.utc)


class ScaledClock:
    """Simulated time running `speed` times faster than the wall clock, from `start`."""

    def __init__(self, start: datetime, speed: float) -> None:
        require_aware(start)
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._start = start.astimezone(timezone.utc)
        self._speed = speed
        self._origin = time.monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        elapsed = time.monotonic() - self._origin
        return self._start + timedelta(seconds=elapsed * self._speed)


def require_aware(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"naive datetime refused: {when!r} (give a time zone)")
    return when
