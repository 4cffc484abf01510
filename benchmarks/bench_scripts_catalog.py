"""How fast the scripts catalog loads, chooses and renders (the operator console does this per call).

    .venv/bin/python benchmarks/bench_scripts_catalog.py [--quick]

Prints: catalog load + validation time for the shipped catalog and for a large generated one,
and selections + renders per second. Figures only; the machine may be shared, so compare runs on
the same machine.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from scripts_catalog import PACKAGED_CATALOG, LeadFacts, load_catalog, render, select_for_lead


def generated_catalog(folder: Path, copies: int) -> None:
    """The shipped catalog plus `copies` product-specific variants of every Russian script."""
    shutil.copytree(PACKAGED_CATALOG, folder, dirs_exist_ok=True)
    sources = sorted((PACKAGED_CATALOG / "ru").glob("*.yaml"))
    for n in range(copies):
        for source in sources:
            text = source.read_text(encoding="utf-8")
            if "default: true" in text:
                continue
            text = text.replace("\nid: ru-", f"\nid: gen{n}-ru-", 1)
            if "\nproducts:" not in text:
                text = text.replace("\ncontact:", f'\nproducts: ["товар{n} *"]\ncontact:', 1)
            (folder / "gen" / f"{n}-{source.name}").parent.mkdir(parents=True, exist_ok=True)
            (folder / "gen" / f"{n}-{source.name}").write_text(text, encoding="utf-8")


def timed(label: str, repeat: int, action) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        result = action()
    elapsed = (time.perf_counter() - start) / repeat
    print(f"{label:<58} {elapsed * 1000:9.2f} ms")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run that takes a few seconds")
    args = parser.parse_args()
    copies, repeat, calls = (20, 3, 2_000) if args.quick else (200, 5, 20_000)

    catalog = timed(f"load + validate the shipped catalog (x{repeat})", repeat, lambda: load_catalog(PACKAGED_CATALOG))
    with tempfile.TemporaryDirectory() as tmp:
        generated_catalog(Path(tmp), copies)
        files = len(list(Path(tmp).rglob("*.yaml")))
        big = timed(f"load + validate a generated catalog of {files} files (x{repeat})", repeat,
                    lambda: load_catalog(Path(tmp)))
    print(f"{'':<58} {len(big)} script versions")

    leads = [LeadFacts(lead_id=n, name="Анна Петрова", product=("Смартфон X" if n % 3 else f"товар{n % copies} A"),
                       order_number=f"А-{n}", extra={"amount": 1000 + n}, contacts_count=n % 4, operator_name="Ольга")
             for n in range(calls)]
    for label, cat in (("shipped", catalog), (f"{len(big)} versions", big)):
        start = time.perf_counter()
        for facts in leads:
            render(select_for_lead(cat, facts, "ru").script, facts)
        elapsed = time.perf_counter() - start
        print(f"{'select + render, ' + label + ' catalog':<58} {calls / elapsed:9.0f} per second")


if __name__ == "__main__":
    main()
