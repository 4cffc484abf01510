"""Screen pops from the daemon to the operators' open consoles: an in-process publish/subscribe.

The daemon tells the hub when a call reached an operator (`pops_of(updates)`, then `publish`
once the CONNECTED write is stored, so the card and a disposition see the call); every console page
of that operator (one asyncio queue per open page) gets the pop. The hub keeps each operator's
latest pop, so a page opened or reloaded during the call shows it at once.

No I/O here and nothing blocks: publishing only puts items on queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Callable, Iterable, Iterator

from kernel.clock import Clock

log = logging.getLogger("dialer.console.hub")

QUEUE_SIZE = 64


@dataclass(frozen=True)
class ScreenPop:
    """A call that reached an operator's phone."""

    attempt_id: int
    interface: str
    connected_at: datetime          # receive time of the AMI event that connected it (daemon clock)
    event_epoch_ms: float           # the same instant on the wall clock (Unix ms), for screen-pop delays
    published_epoch_ms: float | None = None   # when the hub handed it to the pages (after the store write)


class ConsoleHub:
    def __init__(self, clock: Clock, *, wall: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._wall = wall
        self._subscribers: dict[str, set[asyncio.Queue[ScreenPop]]] = {}
        self._current: dict[str, ScreenPop] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.published = 0

    # ------------------------------------------------------------------ daemon side

    def pops_of(self, updates: Iterable) -> list[ScreenPop]:
        """The screen pops in a batch of tracker updates (state CONNECTED with an operator interface).

        Call it on the event loop when the updates are made: it stamps each pop with the wall-clock
        time of the AMI event (the daemon clock may be simulated and faster than the wall clock).
        """
        pops = []
        for update in updates:
            interface = update.fields.get("operator_interface")
            if update.state.value == "connected" and interface:
                pops.append(ScreenPop(update.attempt_id, interface, update.at, self._event_epoch_ms(update.at)))
        if pops and self._loop is None:
            with contextlib.suppress(RuntimeError):
                self._loop = asyncio.get_running_loop()
        return pops

    def publish(self, pops: Iterable[ScreenPop]) -> None:
        """Hand the pops to the operators' open pages (on the event loop)."""
        for pop in pops:
            pop = replace(pop, published_epoch_ms=self._wall() * 1000.0)
            self._current[pop.interface] = pop
            self.published += 1
            queues = self._subscribers.get(pop.interface, ())
            log.debug("console.pop attempt_id=%s interface=%s pages=%s", pop.attempt_id, pop.interface, len(queues))
            for queue in queues:
                if queue.full():                 # a page that stopped reading: drop its oldest pop
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()
                queue.put_nowait(pop)

    def publish_from_thread(self, pops: list[ScreenPop]) -> None:
        """`publish`, from a worker thread (the daemon's store writer)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.publish, pops)

    def _event_epoch_ms(self, at: datetime) -> float:
        elapsed = (self._clock.now() - at).total_seconds() / float(getattr(self._clock, "speed", 1.0) or 1.0)
        return self._wall() * 1000.0 - max(0.0, elapsed) * 1000.0

    # ------------------------------------------------------------------ console side

    @contextlib.contextmanager
    def subscribe(self, interface: str) -> Iterator[asyncio.Queue[ScreenPop]]:
        """A queue of this operator's pops for as long as the page is open."""
        queue: asyncio.Queue[ScreenPop] = asyncio.Queue(QUEUE_SIZE)
        self._loop = asyncio.get_running_loop()
        self._subscribers.setdefault(interface, set()).add(queue)
        try:
            yield queue
        finally:
            pages = self._subscribers.get(interface)
            if pages is not None:
                pages.discard(queue)
                if not pages:
                    del self._subscribers[interface]

    def current(self, interface: str) -> ScreenPop | None:
        """The operator's latest pop (the page decides from the store whether it still needs attention)."""
        return self._current.get(interface)

    def pages_open(self, interface: str | None = None) -> int:
        if interface is not None:
            return len(self._subscribers.get(interface, ()))
        return sum(len(pages) for pages in self._subscribers.values())
