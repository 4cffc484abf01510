"""Which zones' quiet hours apply to a lead, besides the center's (DESIGN §3).

Explicit zone sent with the lead > the single zone the number belongs to (most landlines) > the
policy's rule for a number that may be in several zones (mobiles: the whole country):
`center` applies only the center's quiet hours, `strict` applies every zone the number may be in.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from leads.phone import zones_for_number

# phonenumbers names one representative zone per UTC offset; where that zone keeps a daylight-saving
# time Russia does not, a Russian number (+7) gets the Russian zone of that offset instead.
_RUSSIAN_ZONE_FOR = {"Europe/Bucharest": "Europe/Kaliningrad"}


class ZoneSource:
    LEAD = "lead"          # explicit zone in the lead
    NUMBER = "number"      # the one zone of the number
    CENTER = "center"      # unknown: the center's zone only
    STRICT = "strict"      # unknown: every zone the number may be in


@dataclass(frozen=True)
class LeadZones:
    names: tuple[str, ...]   # zones whose quiet hours apply in addition to the center's
    source: str

    @property
    def zones(self) -> tuple[ZoneInfo, ...]:
        return tuple(_zone(name) for name in self.names)

    @property
    def known(self) -> bool:
        """The lead's own zone is known (a single zone from the lead or its number)."""
        return self.source in (ZoneSource.LEAD, ZoneSource.NUMBER)


def lead_zones(timezone: str | None, phone_e164: str | None, unknown_rule: str) -> LeadZones:
    if timezone and _valid(timezone):
        return LeadZones((timezone,), ZoneSource.LEAD)
    possible = number_zones(phone_e164) if phone_e164 else ()
    if len(possible) == 1:
        return LeadZones(possible, ZoneSource.NUMBER)
    if unknown_rule == "strict" and possible:
        return LeadZones(possible, ZoneSource.STRICT)
    return LeadZones((), ZoneSource.CENTER)


@lru_cache(maxsize=65536)
def number_zones(phone_e164: str) -> tuple[str, ...]:
    zones = zones_for_number(phone_e164)
    if phone_e164.startswith("+7"):
        zones = tuple(dict.fromkeys(_RUSSIAN_ZONE_FOR.get(z, z) for z in zones))
    return tuple(z for z in zones if _valid(z))


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=1024)
def _valid(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a zone folder such as "Europe"
        return False
    return True
