"""Sign-in lockout with backoff, and token buckets: pure rules, `now` passed in, state in memory.

State is per daemon process (a restart forgets it, which an attacker cannot trigger from outside);
both tables are bounded so a flood of made-up logins or tokens cannot grow memory without end.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

MAX_KEYS = 10_000


@dataclass
class _Failures:
    count: int = 0
    last: datetime | None = None
    locked_until: datetime | None = None


class _Bounded(OrderedDict):
    def touch(self, key, factory):
        if key in self:
            self.move_to_end(key)
            return self[key]
        if len(self) >= MAX_KEYS:
            self.popitem(last=False)
        self[key] = factory()
        return self[key]


@dataclass(frozen=True)
class LockoutRule:
    failures: int            # failures allowed before the first lockout
    base: timedelta          # first lockout; doubles with each further failure
    longest: timedelta

    def lock_for(self, count: int) -> timedelta | None:
        if count < self.failures:
            return None
        return min(self.base * (2 ** min(count - self.failures, 30)), self.longest)


class SignInThrottle:
    """Failed sign-ins counted per account (the login) and per address (the client's IP).

    After `failures` failures a key is locked for `base`, then twice as long after each further
    failure, up to `longest`; a success clears the account. A key idle for `forget_after` starts over.
    While locked, the password is not even checked.
    """

    def __init__(self, account: LockoutRule, address: LockoutRule, forget_after: timedelta = timedelta(hours=1)):
        self.rules = {"account": account, "address": address}
        self.forget_after = forget_after
        self._failures: dict[str, _Bounded] = {"account": _Bounded(), "address": _Bounded()}

    def retry_after(self, account: str, address: str, now: datetime) -> float | None:
        """Seconds until a sign-in may be tried again, or None when it may be tried now."""
        waits = []
        for kind, key in (("account", account.lower()), ("address", address)):
            entry = self._failures[kind].get(key)
            if entry and entry.locked_until and now < entry.locked_until:
                waits.append((entry.locked_until - now).total_seconds())
        return max(waits) if waits else None

    def failed(self, account: str, address: str, now: datetime) -> None:
        for kind, key in (("account", account.lower()), ("address", address)):
            entry = self._failures[kind].touch(key, _Failures)
            if entry.last is not None and now - entry.last > self.forget_after:
                entry.count = 0
            entry.count += 1
            entry.last = now
            lock = self.rules[kind].lock_for(entry.count)
            entry.locked_until = now + lock if lock else None

    def succeeded(self, account: str) -> None:
        self._failures["account"].pop(account.lower(), None)


class TokenBuckets:
    """A token bucket per key: `rate` requests per second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: _Bounded = _Bounded()

    def take(self, key: str, now: datetime) -> float | None:
        """Take one token: None when allowed, else the seconds until one is available (Retry-After)."""
        bucket = self._buckets.touch(key, lambda: [float(self.burst), now])
        tokens, last = bucket
        tokens = min(float(self.burst), tokens + max((now - last).total_seconds(), 0.0) * self.rate)
        if tokens >= 1.0:
            bucket[:] = [tokens - 1.0, now]
            return None
        bucket[:] = [tokens, now]
        return (1.0 - tokens) / self.rate


def retry_after_header(seconds: float) -> str:
    """Retry-After is whole seconds; round up so a client that obeys it is never refused again."""
    return str(max(1, math.ceil(seconds)))
