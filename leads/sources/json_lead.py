"""A lead written as a JSON object: the webhook's body and a feed's item are read by the same rules.

- `phone` must be present (it may be empty or unparsable: such a lead is stored as `invalid`);
  `phone` and `order_number` may be JSON numbers (CRMs send them so), every other field is a string.
- `external_id` is another name for `order_number`, `tag` for `product`.
- Any other key is kept, as given, in the lead's `extra` (a JSON object); an `extra` object in the
  input is merged into it.
- An empty string in an optional field means "not given".

A value of the wrong type, an over-long text, an unknown time zone or text that is not Unicode makes
the object malformed: `MalformedLead` lists every problem, and nothing is stored.
"""

from __future__ import annotations

from typing import Any, Mapping

from kernel.errors import DialerError
from leads.intake import LEAD_FIELDS, LeadIn, field_problems

ALIASES = {"external_id": "order_number", "tag": "product"}
NUMBER_FIELDS = frozenset({"phone", "order_number"})  # may come as JSON integers
TEXT_FIELDS = (*LEAD_FIELDS, "source")

# What the webhook's OpenAPI schema says about each field.
FIELD_DOCS = {
    "phone": "Customer's phone in any usual spelling (required key; empty or unparsable -> stored as invalid)",
    "name": "Customer's name",
    "order_number": "Order number / external id (alias: external_id); same phone + same order = duplicate",
    "product": "Product or tag (alias: tag), used to route to operators with that skill",
    "comment": "Free comment from the form",
    "preferred_time": "When the customer prefers to be called, as they wrote it",
    "timezone": "Customer's IANA time zone, e.g. Asia/Vladivostok",
    "region": "Customer's region",
    "source": "Where the lead came from, e.g. the site form's name",
}


class MalformedLead(DialerError):
    """The lead is not written the way the product reads leads."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def lead_from_json(obj: Any, *, default_source: str = "api", fixed_source: str | None = None,
                   source_item_id: str | None = None) -> LeadIn:
    """Read one JSON value (already parsed) as a lead, or raise MalformedLead with every problem.

    `fixed_source` (feeds) replaces the object's own `source`, which is then kept in `extra`.
    """
    if not isinstance(obj, dict):
        raise MalformedLead([f"a lead must be a JSON object, got {_json_type(obj)}"])
    problems: list[str] = []
    values: dict[str, str | None] = {}
    extra: dict[str, Any] = {}

    if "phone" not in obj:
        problems.append("phone is required (it may be empty, then the lead is stored as invalid)")
    for key, value in obj.items():
        name = ALIASES.get(key, key)
        if key == "extra":
            if isinstance(value, dict):
                extra.update(value)
            elif value is not None:
                problems.append(f"extra must be a JSON object, got {_json_type(value)}")
        elif name == "source" and fixed_source is not None:
            extra[key] = value
        elif name in TEXT_FIELDS:
            if name in values and values[name] != _text(value):
                problems.append(f"{key} and its other name both given with different values")
                continue
            problem = _type_problem(key, name, value)
            if problem:
                problems.append(problem)
            else:
                values[name] = _text(value)
        else:
            extra[key] = value

    problems.extend(_unicode_problems(obj))
    if problems:
        raise MalformedLead(problems)
    phone = values.pop("phone", None)
    source = fixed_source or values.pop("source", None) or default_source
    values.pop("source", None)
    optional = {name: value or None for name, value in values.items()}
    lead = LeadIn(phone=phone, **optional, extra=extra or None, source=source, source_item_id=source_item_id)
    problems = field_problems(lead)
    if problems:
        raise MalformedLead(problems)
    return lead


def _type_problem(key: str, name: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return None
    if name in NUMBER_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        return None
    allowed = "a string or a whole number" if name in NUMBER_FIELDS else "a string"
    return f"{key} must be {allowed}, got {_json_type(value)}"


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _unicode_problems(obj: Mapping[str, Any]) -> list[str]:
    """Text a database cannot store: NUL characters, lone UTF-16 surrogates (from \\ud800 escapes)."""
    problems = []
    for key, value in obj.items():
        for text in (key, *_strings(value)):
            if "\x00" in text:
                problems.append(f"{key} contains a NUL character")
                break
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                problems.append(f"{key} contains text that is not valid Unicode (a lone surrogate)")
                break
    return problems


def _strings(value: Any):
    """Every string inside a JSON value, keys included; iterative, so deep nesting cannot overflow."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
