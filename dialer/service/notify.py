"""sd_notify(3) without libsystemd: one datagram to the unix socket systemd names in $NOTIFY_SOCKET."""

from __future__ import annotations

import os
import socket
from typing import Mapping


def sd_notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send `READY=1`, `WATCHDOG=1`, `STATUS=...` (newline-separated); False when not under systemd."""
    address = (env if env is not None else os.environ).get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":
        return False
    if address[0] == "@":                      # an abstract socket: a leading NUL byte
        address = "\0" + address[1:]
    # Non-blocking: a receiver that does not read (its queue holds ~10 datagrams) must never stall the
    # daemon's event loop; a note that cannot be sent now is dropped (the next WATCHDOG=1 follows soon).
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK) as sock:
        try:
            sock.sendto(state.encode("utf-8"), address)
        except OSError:   # BlockingIOError included
            return False
    return True


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when no watchdog is asked for."""
    env = env if env is not None else os.environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000 / 2
