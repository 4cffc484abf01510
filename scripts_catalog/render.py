"""Fill a script's placeholders from the lead. Pure; never fails on missing data.

Text uses {name}, {product}, {order_number}, {amount}, ... ; {{ and }} are literal braces. A
placeholder without a value gets the script's fallback text, or a visible marker such as [name?]
so the operator sees the gap instead of a sentence with a hole in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterator

from scripts_catalog.facts import LeadFacts
from scripts_catalog.model import STAGE_TITLES, FaqKind, Script

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
PLACEHOLDER_NAME = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True)
class Token:
    kind: str          # "text", "placeholder", "error"
    value: str         # the text, the placeholder name, or what is wrong
    offset: int        # where it starts in the source text


def tokens(text: str) -> Iterator[Token]:
    """Split a script text into literal text and placeholders, flagging malformed braces."""
    position = 0
    for match in _TOKEN.finditer(text):
        if match.start() > position:
            yield Token("text", text[position:match.start()], position)
        token = match.group(0)
        if token in ("{{", "}}"):
            yield Token("text", token[0], match.start())
        elif token in ("{", "}"):
            yield Token("error", f"a lone '{token}'; write '{token * 2}' for a brace in the text", match.start())
        elif PLACEHOLDER_NAME.fullmatch(match.group(1)):
            yield Token("placeholder", match.group(1), match.start())
        else:
            yield Token("error", f"'{token}' is not a placeholder: use lower-case letters, digits and _, "
                                 f"e.g. {{order_number}}", match.start())
        position = match.end()
    if position < len(text):
        yield Token("text", text[position:], position)


def used_placeholders(script: Script) -> list[str]:
    """Every placeholder name the script's texts use, sorted."""
    texts = [script.title, script.goal]
    for stage in script.stages:
        texts += [t for v in stage.variants for t in (v.text, v.label) if t]
    for entry in script.faq:
        texts += [entry.question, entry.answer]
    return sorted({t.value for text in texts for t in tokens(text) if t.kind == "placeholder"})


def marker(name: str) -> str:
    return f"[{name}?]"


# Languages that write 12 990,5 (space between thousands, decimal comma); others write 12,990.5.
SPACE_GROUPING = frozenset({"ru", "uk", "be", "kk", "uz", "fr", "de", "pl", "cs"})


def as_text(value: Any, language: str = "en") -> str | None:
    """A lead value as the operator should read it; None, blank or a yes/no flag means there is none."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        return number_text(value, language)
    if isinstance(value, (list, tuple)):
        parts = [t for t in (as_text(v, language) for v in value) if t]
        return ", ".join(parts) or None
    text = str(value).strip()
    return text or None


def number_text(value: int | float | Decimal, language: str) -> str | None:
    """12990 -> "12 990" (ru) or "12,990" (en); 99.50 -> "99,5" / "99.5"; no trailing zeros."""
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return None
    if not number.is_finite():
        return None
    number = number.quantize(Decimal(1)) if number == number.to_integral_value() else number.normalize()
    text = f"{number:,f}"
    if language in SPACE_GROUPING:
        text = text.replace(",", "\u00a0").replace(".", ",")
    return text


@dataclass(frozen=True)
class RenderedVariant:
    text: str
    label: str | None


@dataclass(frozen=True)
class RenderedStage:
    name: str
    title: str
    variants: tuple[RenderedVariant, ...]


@dataclass(frozen=True)
class RenderedFaq:
    kind: FaqKind
    question: str
    answer: str


@dataclass(frozen=True)
class RenderedScript:
    script_id: str
    version: int
    language: str
    title: str
    goal: str
    stages: tuple[RenderedStage, ...]
    faq: tuple[RenderedFaq, ...]
    lead_id: int | None
    fallbacks: tuple[str, ...]      # placeholders that had no value and used the script's fallback text
    markers: tuple[str, ...]        # placeholders that had no value and no fallback: shown as [name?]

    def as_dict(self) -> dict[str, Any]:
        return {
            "script_id": self.script_id, "version": self.version, "language": self.language,
            "lead_id": self.lead_id, "title": self.title, "goal": self.goal,
            "stages": [{"stage": s.name, "title": s.title,
                        "variants": [{"label": v.label, "text": v.text} for v in s.variants]} for s in self.stages],
            "faq": [{"kind": f.kind.value, "question": f.question, "answer": f.answer} for f in self.faq],
            "fallbacks": list(self.fallbacks), "markers": list(self.markers),
        }


class _Filler:
    def __init__(self, script: Script, facts: LeadFacts) -> None:
        self.script = script
        self.facts = facts
        self.fallbacks: dict[str, None] = {}
        self.markers: dict[str, None] = {}

    def value_of(self, name: str) -> str:
        placeholder = self.script.placeholder(name)
        if placeholder is None:
            self.markers[name] = None
            return marker(name)
        text = placeholder.value if placeholder.value is not None else (
            as_text(self.facts.value(placeholder.source), self.script.language) if placeholder.source else None)
        if text:
            return text
        if placeholder.fallback:
            self.fallbacks[name] = None
            return placeholder.fallback
        self.markers[name] = None
        return marker(name)

    def fill(self, text: str) -> str:
        parts = []
        for token in tokens(text):
            if token.kind == "placeholder":
                parts.append(self.value_of(token.value))
            elif token.kind == "text":
                parts.append(token.value)
            else:
                parts.append(text[token.offset])     # validation reports it; rendering keeps the character
        return "".join(parts)


def render(script: Script, facts: LeadFacts) -> RenderedScript:
    """The script as the operator reads it for this lead."""
    filler = _Filler(script, facts)
    titles = STAGE_TITLES.get(script.language, STAGE_TITLES["en"])
    stages = tuple(
        RenderedStage(stage.name, titles.get(stage.name, stage.name),
                      tuple(RenderedVariant(filler.fill(v.text), v.label and filler.fill(v.label))
                            for v in stage.variants))
        for stage in script.stages)
    faq = tuple(RenderedFaq(f.kind, filler.fill(f.question), filler.fill(f.answer)) for f in script.faq)
    return RenderedScript(script.id, script.version, script.language, filler.fill(script.title),
                          filler.fill(script.goal), stages, faq, facts.lead_id,
                          tuple(filler.fallbacks), tuple(filler.markers))
