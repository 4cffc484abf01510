"""Which zones' quiet hours apply to a lead, besides the center's (DESIGN §3), and where they came from.

Order of trust (issue 12):
1. a zone sent with the lead (webhook/CSV `timezone`);
2. a region or city sent with the lead (`region`), read through the region table of leads/numbering;
3. Russia's numbering plan: the region of the allocated range holding the number (mobiles included;
   number portability never moves a number between regions);
4. phonenumbers, where it names one zone (landlines outside the shipped ranges);
5. the policy's rule for a number whose zone is still unknown: `center` applies only the center's
   quiet hours, `strict` every zone the number may be in.
A region spanning several zones (Yakutia) keeps all of them: every one's quiet hours apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from leads.numbering.plan import active_plan, zones_for_e164
from leads.numbering.regions import zones_of_region
from leads.phone import zones_for_number

# phonenumbers names one representative zone per UTC offset; where that zone keeps a daylight-saving
# time Russia does not, a Russian number (+7) gets the Russian zone of that offset instead.
_RUSSIAN_ZONE_FOR = {"Europe/Bucharest": "Europe/Kaliningrad"}


class ZoneSource:
    LEAD = "lead"            # explicit zone in the lead
    LEAD_REGION = "region"   # the region/city sent with the lead
    REGISTRY = "registry"    # the numbering plan's range of the number
    NUMBER = "number"        # the one zone phonenumbers gives the number
    CENTER = "center"        # unknown: the center's zone only
    STRICT = "strict"        # unknown: every zone the number may be in

    WORDS = {LEAD: "sent with the lead", LEAD_REGION: "the lead's region", REGISTRY: "numbering plan",
             NUMBER: "from the number", CENTER: "unknown: center only", STRICT: "unknown: every zone"}


@dataclass(frozen=True)
class LeadZones:
    names: tuple[str, ...]   # zones whose quiet hours apply in addition to the center's
    source: str

    @property
    def zones(self) -> tuple[ZoneInfo, ...]:
        return tuple(_zone(name) for name in self.names)

    @property
    def known(self) -> bool:
        """The lead's own zone(s) are known (from the lead, its region or its number)."""
        return self.source not in (ZoneSource.CENTER, ZoneSource.STRICT)

    @property
    def source_words(self) -> str:
        return ZoneSource.WORDS.get(self.source, self.source)


def lead_zones(timezone: str | None, phone_e164: str | None, unknown_rule: str,
               region: str | None = None) -> LeadZones:
    if timezone and _valid(timezone):
        return LeadZones((timezone,), ZoneSource.LEAD)
    if region:
        named = _valid_zones(zones_of_region(region))
        if named:
            return LeadZones(named, ZoneSource.LEAD_REGION)
    if not phone_e164:
        return LeadZones((), ZoneSource.CENTER)
    return _number_zones(phone_e164, unknown_rule, id(active_plan()))


@lru_cache(maxsize=65536)
def _number_zones(phone_e164: str, unknown_rule: str, plan_id: int) -> LeadZones:
    registry = registry_zones(phone_e164)
    if registry:
        return LeadZones(registry, ZoneSource.REGISTRY)
    possible = number_zones(phone_e164)
    if len(possible) == 1:
        return LeadZones(possible, ZoneSource.NUMBER)
    if unknown_rule == "strict" and possible:
        return LeadZones(possible, ZoneSource.STRICT)
    return LeadZones((), ZoneSource.CENTER)


registry_zones = zones_for_e164   # the zones of the number's range in Russia's numbering plan


@lru_cache(maxsize=65536)
def number_zones(phone_e164: str) -> tuple[str, ...]:
    zones = zones_for_number(phone_e164)
    if phone_e164.startswith("+7"):
        zones = tuple(dict.fromkeys(_RUSSIAN_ZONE_FOR.get(z, z) for z in zones))
    return tuple(z for z in zones if _valid(z))


def _valid_zones(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(z for z in names if _valid(z))


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
