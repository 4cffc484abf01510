"""Region -> IANA zones (data/regions.csv), and reading a region or city name as a lead or the registry writes it.

A region spanning several zones (Yakutia) keeps all of them: the quiet hours of every one apply, the
conservative window. A registry region naming several regions ("Город Москва, Московская область",
"г. Норильск|...|Красноярский край") gets the zones of every part that is known. "Российская
Федерация" (ranges allocated for the whole country) is no region: no zone.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

_DROP = re.compile(r"\b(г|город|гор|обл|область|край|республика|респ|ао|автономный|округ|автономная|г\.о)\b\.?")
_SPACES = re.compile(r"[\s\-–—.,()«»\"]+")


@dataclass(frozen=True)
class Region:
    name: str
    zones: tuple[str, ...]


def _key(text: str) -> str:
    text = text.casefold().replace("ё", "е")
    return _SPACES.sub(" ", text).strip()


def _short(text: str) -> str:
    return _SPACES.sub(" ", _DROP.sub(" ", _key(text))).strip()


@lru_cache(maxsize=1)
def _table() -> tuple[dict[str, Region], dict[str, Region]]:
    exact: dict[str, Region] = {}
    short: dict[str, Region] = {}
    with resources.files("leads.numbering").joinpath("data/regions.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter=";"):
            region = Region(row["region"], tuple(row["zones"].split("|")))
            for name in [row["region"], *filter(None, row["cities"].split("|"))]:
                exact.setdefault(_key(name), region)
                if _short(name):
                    short.setdefault(_short(name), region)
    return exact, short


def regions() -> list[Region]:
    return list({r.name: r for r in _table()[0].values()}.values())


@lru_cache(maxsize=4096)
def find_region(text: str | None) -> Region | None:
    """The one region a name means ("Приморский край", "приморский", "г. Владивосток"), else None."""
    if not text or not text.strip():
        return None
    exact, short = _table()
    return exact.get(_key(text)) or short.get(_short(text))


@lru_cache(maxsize=4096)
def zones_of_region(text: str | None) -> tuple[str, ...]:
    """Every zone of the region(s) a name means, split on ',', '*', '|' and ' и ' when not one region."""
    region = find_region(text)
    if region is not None:
        return region.zones
    if not text:
        return ()
    zones: dict[str, None] = {}
    for part in re.split(r"[,|*]| и ", text):
        found = find_region(part)
        if found is not None:
            zones.update(dict.fromkeys(found.zones))
    return tuple(zones)
