"""Channels of the simulated PBX: names, Uniqueids, states and variables, as Asterisk keeps them.

Names follow Asterisk: `Local/<exten>@<context>-0000001c;1` / `;2` for a Local pair and
`PJSIP/trunk-0000000d` for a technology channel, one 8-hex-digit counter per technology. A
Uniqueid is `<epoch seconds>.<sequence>` with one sequence for the whole PBX that starts again at 0
when the PBX restarts; an Originate may choose the Uniqueids itself (ChannelId / OtherChannelId).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from dialer.ami.events import ChannelState  # Asterisk's channel states: one vocabulary for client and server


STATE_TEXT = {
    ChannelState.DOWN: "Down", ChannelState.RESERVED: "Rsrvd", ChannelState.OFFHOOK: "OffHook",
    ChannelState.DIALING: "Dialing", ChannelState.RING: "Ring", ChannelState.RINGING: "Ringing",
    ChannelState.UP: "Up", ChannelState.BUSY: "Busy",
}

UNKNOWN = "<unknown>"


@dataclass(eq=False)
class Channel:
    """One live channel. Mutable: the call flow moves it through states as the call goes."""

    name: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    created_at: datetime
    priority: int = 1
    state: ChannelState = ChannelState.DOWN
    caller_num: str = UNKNOWN
    caller_name: str = UNKNOWN
    connected_num: str = UNKNOWN
    connected_name: str = UNKNOWN
    application: str = ""
    app_data: str = ""
    bridge_id: str = ""
    variables: dict[str, str] = field(default_factory=dict)

    def var(self, name: str) -> str:
        """A variable's value whatever inheritance prefix it was set with (`LEAD_ID` finds `__LEAD_ID`)."""
        for key in (name, "_" + name, "__" + name):
            if key in self.variables:
                return self.variables[key]
        return ""

    def inheritable(self) -> list[tuple[str, str]]:
        """Variables a channel dialed from this one receives: `__X` stays `__X`, `_X` becomes `X`."""
        out = []
        for key, value in self.variables.items():
            if key.startswith("__"):
                out.append((key, value))
            elif key.startswith("_"):
                out.append((key[1:], value))
        return out

    @property
    def device(self) -> str:
        """The device this channel belongs to, as DeviceStateChange names it (`PJSIP/op1`)."""
        base = self.name.rsplit(";", 1)[0] if self.name.startswith("Local/") else self.name
        return base.rsplit("-", 1)[0]


class ChannelRegistry:
    """Hands out names and Uniqueids and knows the live channels; `reset()` is a PBX restart."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._sequence = 0
        self._per_tech: dict[str, int] = {}
        self._live: dict[str, Channel] = {}

    def uniqueid(self, now: datetime, chosen: str = "") -> str:
        """The next `<epoch>.<seq>`; the sequence advances even when the Originate chose the id."""
        value = f"{int(now.timestamp())}.{self._sequence}"
        self._sequence += 1
        return chosen or value

    def channel_name(self, base: str) -> str:
        """`PJSIP/trunk` -> `PJSIP/trunk-0000000d`; `Local/x@ctx` -> `Local/x@ctx-00000000` (add ;1/;2)."""
        tech = base.split("/", 1)[0].lower()
        number = self._per_tech.get(tech, 0)
        self._per_tech[tech] = number + 1
        return f"{base}-{number:08x}"

    def add(self, channel: Channel) -> Channel:
        self._live[channel.name] = channel
        return channel

    def remove(self, channel: Channel) -> None:
        self._live.pop(channel.name, None)

    def live(self) -> list[Channel]:
        return list(self._live.values())

    def uniqueid_in_use(self, uniqueid: str) -> bool:
        return any(ch.uniqueid == uniqueid for ch in self._live.values())

    def find(self, pattern: str) -> list[Channel]:
        """Channels named exactly `pattern`, or matching it when written as `/regex/` (Hangup action)."""
        if len(pattern) > 2 and pattern.startswith("/") and pattern.endswith("/"):
            try:
                regex = re.compile(pattern[1:-1])
            except re.error:
                return []
            return [ch for ch in self._live.values() if regex.search(ch.name)]
        found = self._live.get(pattern)
        if found is None:
            found = next((ch for ch in self._live.values() if ch.name.lower() == pattern.lower()), None)
        return [found] if found else []
