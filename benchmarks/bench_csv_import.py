"""CSV import throughput: a messy 1,000,000-row lead file into a fresh SQLite database, with dedup.

    .venv/bin/python benchmarks/bench_csv_import.py            # 1,000,000 rows (goal: <= 60 s)
    .venv/bin/python benchmarks/bench_csv_import.py --quick    # 20,000 rows
    .venv/bin/python benchmarks/bench_csv_import.py --rows 200000 --profile

The file looks like a real export: Cyrillic names, phones in every usual spelling, ~10% repeats
(same phone and order number, or same phone without an order), ~3% numbers that cannot be called,
a few malformed rows, `;` as delimiter, a UTF-8 BOM. Prints seconds, rows/s and peak RSS.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import pstats
import random
import resource
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from kernel.clock import SystemClock
from kernel.db.engine import Database
from kernel.db.migrate import upgrade
from leads.intake import Intake
from leads.sources.csv_import import import_csv

FIRST = ["Иван", "Пётр", "Мария", "Анна", "Сергей", "Ольга", "Алексей", "Наталья", "Дмитрий", "Елена"]
LAST = ["Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов", "Новиков"]
PRODUCTS = ["Кухня «Модерн»", "Диван угловой", "Шкаф-купе", "Матрас 160×200", "Кресло"]
SOURCES = ["site-form", "callback-widget", "yandex-direct", "vk-ads", ""]
INVALID = ["", "123", "не звонить", "8 800 555-35-35", "9999999999", "+7 000", "+7 (912) 345-67-8"]
SPELLINGS = [
    lambda n: f"8 ({n[:3]}) {n[3:6]}-{n[6:8]}-{n[8:]}",
    lambda n: f"+7 {n[:3]} {n[3:6]} {n[6:8]} {n[8:]}",
    lambda n: n,
    lambda n: f"+7({n[:3]}){n[3:6]}-{n[6:8]}-{n[8:]}",
    lambda n: f"8-{n[:3]}-{n[3:6]}-{n[6:]}",
    lambda n: f"7{n}",                               # no plus: the full parser decides
    lambda n: f"+7 {n[:3]} {n[3:6]}-{n[6:8]}-{n[8:]} доб. 12",
]
SPELLING_WEIGHTS = [30, 25, 20, 10, 8, 5, 2]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rnd = random.Random(seed)
    seen: list[tuple[str, str]] = []
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f, delimiter=";")
        writer.writerow(["ФИО", "Телефон", "Номер заказа", "Товар", "Комментарий", "Источник", "utm_campaign"])
        for i in range(rows):
            roll = rnd.random()
            if roll < 0.10 and seen:                       # a repeat of an earlier customer
                national, order = rnd.choice(seen)
                phone = rnd.choices(SPELLINGS, SPELLING_WEIGHTS)[0](national)
            elif roll < 0.13:
                phone, order = rnd.choice(INVALID), f"Z-{i}"
            else:
                national = f"9{rnd.randrange(10**9):09d}"
                phone = rnd.choices(SPELLINGS, SPELLING_WEIGHTS)[0](national)
                order = f"{rnd.randrange(10**6):06d}-{i}" if rnd.random() < 0.7 else ""
                if len(seen) < 200_000:
                    seen.append((national, order))
            comment = rnd.choice(["", "", "перезвонить после 18:00", 'спросить про "скидку"; срочно',
                                  "доставка в Казань\nподъезд 3"])
            writer.writerow([f"{rnd.choice(LAST)} {rnd.choice(FIRST)}", phone, order, rnd.choice(PRODUCTS),
                             comment, rnd.choice(SOURCES), f"camp{i % 97}"])
            if i % 50_000 == 49_999:
                f.write("битая строка;без\n")               # wrong number of fields: malformed


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 rows instead of 1,000,000")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile of the import")
    args = parser.parse_args()
    rows = args.rows or (20_000 if args.quick else 1_000_000)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "leads.csv"
        started = time.perf_counter()
        generate(path, rows)
        print(f"generated {rows:,} rows ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")

        db = Database(f"sqlite:///{tmp}/bench.db")
        upgrade(db)
        db.checkpoint_in_background()   # as `dialer leads import` does
        intake = Intake(db, default_region="RU", dedup_window=timedelta(hours=24))
        profiler = cProfile.Profile() if args.profile else None
        cpu_before = _cpu_seconds()
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        report = import_csv(path, intake, SystemClock(), batch_size=args.batch_size)
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu_before
        db.dispose()

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"imported {report.rows:,} rows in {seconds:.1f} s: {report.rows / seconds:,.0f} rows/s, "
          f"peak RSS {peak_mb:.0f} MB (batch {args.batch_size})")
    print(f"  CPU of this process {cpu:.1f} s ({cpu / report.rows * 1e6:.0f} us/row); the rest is waiting "
          f"for the disk or for other processes")
    print("  " + ", ".join(f"{k} {v:,}" for k, v in report.counts.items())
          + f", malformed {report.malformed:,}, empty {report.empty_rows:,}")
    if rows >= 1_000_000:
        print(f"  goal <= 60 s: {'met' if seconds <= 60 else 'NOT met'} (machine shared with other work)")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
