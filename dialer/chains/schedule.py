"""When an e-mail of a chain may go out: pure functions of times, zones and the send window."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Sequence
from zoneinfo import ZoneInfo

from kernel.clock import require_aware
from dialer.chains.model import Chain, SendWindow

_MAX_STEPS = 16


def in_window(when: datetime, zones: Sequence[ZoneInfo], window: SendWindow) -> bool:
    return all(window.contains(when.astimezone(zone).time()) for zone in zones)


def first_send_time(earliest: datetime, zones: Sequence[ZoneInfo], window: SendWindow) -> datetime | None:
    """The first moment from `earliest` that is inside the window in every zone the customer may be in.

    None when no such moment exists (zones too far apart for the window): the chain then skips the lead.
    """
    require_aware(earliest)
    moment = earliest
    for _ in range(_MAX_STEPS):
        outside = [zone for zone in zones if not window.contains(moment.astimezone(zone).time())]
        if not outside:
            return moment
        moment = max(_next_start(moment, zone, window) for zone in outside)
    return None


def _next_start(moment: datetime, zone: ZoneInfo, window: SendWindow) -> datetime:
    local = moment.astimezone(zone)
    day = local.date() if local.time() < window.start else local.date() + timedelta(days=1)
    return datetime.combine(day, window.start, tzinfo=zone)


def planned_step_time(chain: Chain, step_index: int, previous: datetime, zones: Sequence[ZoneInfo]
                      ) -> datetime | None:
    """When step `step_index` (0-based) goes out: `previous` (entry, or the previous e-mail) + the step's
    delay, moved forward into the window. Moving forward only keeps the 3-day gap."""
    return first_send_time(previous + chain.steps[step_index].delay, zones, chain.window)
