"""Which script an operator gets for a lead: by contact number, product and language. Pure.

For each language in order (the lead's own, then the center's):
  1. a script for this contact whose products match the lead's product,
  2. a script for this contact that names no products (any product),
  3. the language's default script (default: true).
Only the newest active version of each script takes part. Among several fitting scripts the
higher `priority` wins, then the id in alphabetical order, so the choice is always the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Sequence

from scripts_catalog.errors import NoScript
from scripts_catalog.facts import LeadFacts
from scripts_catalog.model import Catalog, Script


@dataclass(frozen=True)
class Choice:
    script: Script
    reason: str
    words: str = ""   # the reason in Russian, for the operator console


def product_pattern(patterns: Sequence[str], product: str | None) -> str | None:
    """The first of a script's product patterns ("смартфон*", shell-style, case-insensitive) the product matches."""
    if not product or not product.strip():
        return None
    wanted = " ".join(product.split()).casefold()
    return next((p for p in patterns if fnmatchcase(wanted, p.casefold())), None)


def _best(scripts: list[Script]) -> Script | None:
    return min(scripts, key=lambda s: (-s.priority, s.id)) if scripts else None


def select_script(catalog: Catalog, *, contact: int, product: str | None, languages: Sequence[str]) -> Choice:
    """The script for this contact number and product. Raises NoScript when not even a default fits."""
    if contact < 1:
        raise ValueError(f"contact numbers start at 1, got {contact}")
    usable = catalog.newest_active()
    tried = []
    for language in dict.fromkeys(lang for lang in languages if lang):
        tried.append(language)
        in_language = [s for s in usable if s.language == language]
        regular = [s for s in in_language if not s.default and s.for_contact(contact)]
        matching = [s for s in regular if s.products and product_pattern(s.products, product)]
        if (script := _best(matching)) is not None:
            return Choice(script, f"contact {contact}, product {product!r} matches "
                                  f"{product_pattern(script.products, product)!r}",
                          f"Контакт №{contact}, сценарий для товара «{product}».")
        if (script := _best([s for s in regular if not s.products])) is not None:
            why = f"no script for product {product!r}, " if product else ""
            return Choice(script, f"contact {contact}, {why}a script for any product",
                          f"Контакт №{contact}, общий сценарий для любого товара.")
        if (script := _best([s for s in in_language if s.default])) is not None:
            return Choice(script, f"no script for contact {contact} and product {product!r}: the default script",
                          f"Контакт №{contact}: подходящего сценария нет, показан сценарий по умолчанию.")
    raise NoScript(f"no active script for contact {contact} and product {product!r} in language(s) "
                   f"{', '.join(tried) or '-'}, and no default script")


def select_for_lead(catalog: Catalog, facts: LeadFacts, center_language: str,
                    contact: int | None = None) -> Choice:
    """The script for the lead's next contact (or the given one), in the lead's language if it has one."""
    return select_script(catalog, contact=contact or facts.contact_number, product=facts.product,
                         languages=[facts.language or center_language, center_language])
