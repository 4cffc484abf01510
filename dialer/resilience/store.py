"""Is the store down, since when and why, and how long to wait before trying it again.

A store outage (PostgreSQL stopped, SQLite locked past its busy timeout, a full disk, a dropped
connection) is weather, not a bug: the daemon pauses what needs the store and tries again with
backoff, in the same process. Anything else a store call raises is a bug and is not retried.
Pure: the caller passes monotonic time in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import exc as sa_exc


def is_outage(error: BaseException) -> bool:
    """Would the same statement succeed once the store is back? (connection, lock, disk, timeout)."""
    if isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
                          sa_exc.DisconnectionError)):
        return True
    return isinstance(error, sa_exc.DBAPIError) and bool(error.connection_invalidated)


@dataclass
class StoreHealth:
    """Backoff doubling from `min_delay` to `max_delay` while the store keeps failing."""

    min_delay: float = 0.2
    max_delay: float = 5.0
    down_since: float | None = None
    reason: str | None = None
    failures: int = 0
    retry_at: float = 0.0
    outages: int = 0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, error: BaseException, now: float) -> float:
        """Record a failure at monotonic `now`; returns how long to wait before the next try."""
        if self.down_since is None:
            self.down_since = now
            self.outages += 1
        self.failures += 1
        self.reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
        delay = min(self.max_delay, self.min_delay * (2 ** min(self.failures - 1, 16)))
        self.retry_at = now + delay
        return delay

    def recovered(self) -> bool:
        """The store answered; True if it had been down (the caller may have catching up to do)."""
        was_down = self.down_since is not None
        self.down_since, self.reason, self.failures, self.retry_at = None, None, 0, 0.0
        return was_down

    def wait_before_retry(self, now: float) -> float:
        return max(0.0, self.retry_at - now) if self.down else 0.0

    def report(self, now: float) -> dict[str, Any]:
        if not self.down:
            return {"ok": True}
        return {"ok": False, "reason": self.reason, "down_for_seconds": round(now - self.down_since, 1),
                "failures": self.failures}
