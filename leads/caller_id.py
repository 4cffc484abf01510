"""Which number a call shows the customer: a pool per source and product (settings ledger.caller_ids).

Only numbers listed in the pool are ever shown. The same customer gets the same number of a pool on
every call (chosen by their phone), so a missed call they ring back reaches the same line.
"""

from __future__ import annotations

import hashlib
import re
from typing import Mapping, Sequence


def pool_for(pools: Mapping[str, Sequence[str]], source: str | None, product: str | None) -> Sequence[str]:
    """The first of 'source/product', 'source', '*/product', '*' that the settings list; empty: none."""
    for key in (f"{source}/{product}", f"{source}", f"*/{product}", "*"):
        if key in pools and pools[key]:
            return pools[key]
    return ()


def choose_caller_id(pools: Mapping[str, Sequence[str]], source: str | None, product: str | None,
                     phone: str | None) -> str | None:
    numbers = pool_for(pools, source, product)
    if not numbers:
        return None
    digest = hashlib.sha256((phone or "").encode("utf-8")).digest()
    return numbers[int.from_bytes(digest[:4], "big") % len(numbers)]


def with_number(default_caller_id: str, number: str) -> str:
    """The CallerID header with the chosen number and the default's display name: '"Shop" <74951110001>'."""
    match = re.match(r'\s*"?([^"<]*?)"?\s*<', default_caller_id or "")
    return f'"{match.group(1)}" <{number}>' if match and match.group(1) else number


def number_of(caller_id: str) -> str:
    """The number part of a CallerID header ('"Shop" <74950000000>' -> '74950000000')."""
    match = re.search(r"<([^>]*)>", caller_id or "")
    return (match.group(1) if match else caller_id or "").strip()[:32]
