"""What a call script is: frozen values, no I/O.

A script guides the operator through one contact with a customer (1st, 2nd, 3rd and later): its goal,
the stages of the talk with several variants each, an FAQ of questions and objections with answers,
and placeholders ({name}, {product}, {order_number}, {amount}, ...) filled from the lead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Iterable

from scripts_catalog.errors import UnknownScript

# The stages of a talk, in the order the operator goes through them.
STAGES: tuple[str, ...] = ("greeting", "need_discovery", "presentation", "objection_handling", "closing")

STAGE_TITLES: dict[str, dict[str, str]] = {
    "ru": {"greeting": "Приветствие", "need_discovery": "Выявление потребностей", "presentation": "Презентация",
           "objection_handling": "Работа с возражениями", "closing": "Завершение"},
    "en": {"greeting": "Greeting", "need_discovery": "Need discovery", "presentation": "Presentation",
           "objection_handling": "Objection handling", "closing": "Closing"},
}

# Where a placeholder's value comes from. `lead.extra.<key>` reads the lead's extra JSON fields.
LEAD_SOURCES: frozenset[str] = frozenset({
    "lead.name", "lead.product", "lead.order_number", "lead.comment", "lead.preferred_time", "lead.region",
    "lead.source", "operator.name",
})
EXTRA_PREFIX = "lead.extra."

# Placeholders every script may use without declaring them.
BUILTIN_SOURCES: dict[str, str] = {
    "name": "lead.name",
    "product": "lead.product",
    "order_number": "lead.order_number",
    "amount": "lead.extra.amount",
    "operator": "operator.name",
}


def is_known_source(source: str) -> bool:
    return source in LEAD_SOURCES or (source.startswith(EXTRA_PREFIX) and len(source) > len(EXTRA_PREFIX))


class ScriptStatus(StrEnum):
    ACTIVE = "active"     # may be chosen for calls
    DRAFT = "draft"       # being written; validated, never chosen
    RETIRED = "retired"   # kept for the record (gaps and old calls refer to it), never chosen


class FaqKind(StrEnum):
    QUESTION = "question"
    OBJECTION = "objection"


@dataclass(frozen=True)
class ContactRange:
    """Which contact with the customer a script is for: first..last, last None = and every later one."""

    first: int
    last: int | None = None

    def includes(self, contact: int) -> bool:
        return self.first <= contact and (self.last is None or contact <= self.last)

    def __str__(self) -> str:
        if self.last is None:
            return f"{self.first}+"
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


@dataclass(frozen=True)
class Variant:
    text: str
    label: str | None = None
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Stage:
    name: str
    variants: tuple[Variant, ...]


@dataclass(frozen=True)
class FaqEntry:
    question: str
    answer: str
    kind: FaqKind = FaqKind.QUESTION
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Placeholder:
    """Where {name} gets its text: a lead field (`source`) or a fixed `value`; `fallback` when it is empty."""

    name: str
    source: str | None = None
    value: str | None = None
    fallback: str | None = None


@dataclass(frozen=True)
class Script:
    id: str
    version: int
    status: ScriptStatus
    language: str
    title: str
    goal: str
    contacts: tuple[ContactRange, ...]
    stages: tuple[Stage, ...]
    products: tuple[str, ...] = ()          # shell-style patterns ("смартфон*"); empty: any product
    default: bool = False                   # the fallback when no other script fits
    priority: int = 0                       # higher wins when several scripts fit equally
    placeholders: tuple[Placeholder, ...] = ()
    faq: tuple[FaqEntry, ...] = ()
    notes: str | None = None
    path: str = field(default="", compare=False)
    line: int = field(default=0, compare=False)

    @property
    def key(self) -> tuple[str, int]:
        return (self.id, self.version)

    def for_contact(self, contact: int) -> bool:
        return any(r.includes(contact) for r in self.contacts)

    def placeholder(self, name: str) -> Placeholder | None:
        """The declared placeholder, or the built-in one, or None for an unknown name."""
        for p in self.placeholders:
            if p.name == name:
                if p.source is None and p.value is None and name in BUILTIN_SOURCES:
                    return Placeholder(name, BUILTIN_SOURCES[name], None, p.fallback)
                return p
        if name in BUILTIN_SOURCES:
            return Placeholder(name, BUILTIN_SOURCES[name])
        return None

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def contacts_text(self) -> str:
        return ", ".join(str(r) for r in self.contacts)


@dataclass(frozen=True)
class Catalog:
    """Every script version found in the catalog folder."""

    scripts: tuple[Script, ...]
    directory: str = ""

    def __len__(self) -> int:
        return len(self.scripts)

    def versions(self, script_id: str) -> list[Script]:
        return sorted((s for s in self.scripts if s.id == script_id), key=lambda s: s.version)

    def get(self, script_id: str, version: int | None = None) -> Script:
        """A given version, or without one the newest active version (the newest one if none is active)."""
        versions = self.versions(script_id)
        if not versions:
            raise UnknownScript(f"no script {script_id!r} in the catalog; known: {', '.join(self.ids()) or 'none'}")
        if version is not None:
            for s in versions:
                if s.version == version:
                    return s
            raise UnknownScript(f"script {script_id!r} has no version {version}; versions: "
                                + ", ".join(str(s.version) for s in versions))
        active = [s for s in versions if s.status is ScriptStatus.ACTIVE]
        return (active or versions)[-1]

    def ids(self) -> list[str]:
        return sorted({s.id for s in self.scripts})

    def newest_active(self) -> list[Script]:
        """The version of each script that calls use: its newest active version."""
        return list(self._newest_active)

    @cached_property
    def _newest_active(self) -> tuple[Script, ...]:
        best: dict[str, Script] = {}
        for s in self.scripts:
            if s.status is ScriptStatus.ACTIVE and (s.id not in best or s.version > best[s.id].version):
                best[s.id] = s
        return tuple(best[i] for i in sorted(best))


def sorted_scripts(scripts: Iterable[Script]) -> list[Script]:
    return sorted(scripts, key=lambda s: (s.language, s.id, s.version))
