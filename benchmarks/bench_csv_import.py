"""CSV import throughput: a messy 1,000,000-row lead file into a fresh SQLite database, with dedup.

    .venv/bin/python benchmarks/bench_csv_import.py            # 1,000,000 rows (goal: <= 30 s wall on 2 cores)
    .venv/bin/python benchmarks/bench_csv_import.py --quick    # 20,000 rows
    .venv/bin/python benchmarks/bench_csv_import.py --rows 200000 --profile
    .venv/bin/python benchmarks/bench_csv_import.py --workers 2 --repeat 3 \
        --db postgresql+psycopg://postgres@127.0.0.1:5432/postgres      # COPY into PostgreSQL

--workers 1,2 compares the import in one process with the file read in a second one (goal: 1M rows
<= 30 s wall on 2 cores); the CPU of both processes is printed.

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
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from benchmarks.scratch_db import scratch_database  # noqa: E402
from kernel.clock import SystemClock  # noqa: E402
from kernel.db.engine import Database  # noqa: E402
from kernel.db.migrate import upgrade  # noqa: E402
from leads.intake import Intake  # noqa: E402
from leads.sources.csv_import import import_csv  # noqa: E402

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


def _cpu_seconds() -> tuple[float, float]:
    """CPU of this process, and of its finished children (the reading process)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def import_once(path: Path, db_url: str, workers: int, batch_size: int, profiler=None):
    db = Database(db_url)
    upgrade(db)
    db.checkpoint_in_background()   # as `dialer leads import` does
    intake = Intake(db, default_region="RU", dedup_window=timedelta(hours=24))
    (own_before, children_before) = _cpu_seconds()
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    report = import_csv(path, intake, SystemClock(), batch_size=batch_size, workers=workers)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    own_after, children_after = _cpu_seconds()
    db.dispose()
    return report, seconds, own_after - own_before, children_after - children_before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 rows instead of 1,000,000")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--workers", default="1,2", help="processes to compare: 1 (all here), 2 (a reader)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each (min and median printed)")
    parser.add_argument("--db", default=None, help="a PostgreSQL server URL (a scratch database per run)")
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile of the import")
    args = parser.parse_args()
    rows = args.rows or (20_000 if args.quick else 1_000_000)
    goal = 30 if rows >= 1_000_000 else None

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "leads.csv"
        started = time.perf_counter()
        generate(path, rows)
        print(f"generated {rows:,} rows ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")
        profiler = cProfile.Profile() if args.profile else None
        for workers in [int(w) for w in args.workers.split(",")]:
            runs = []
            for n in range(args.repeat):
                folder = Path(tmp) / f"run-{workers}-{n}"
                folder.mkdir()
                with scratch_database(args.db, folder, "dialer_csv") as url:
                    runs.append(import_once(path, url, workers, args.batch_size, profiler))
            report = runs[-1][0]
            walls = sorted(r[1] for r in runs)
            print(f"{'PostgreSQL' if args.db else 'SQLite'}, {workers} process{'es' if workers > 1 else ''}: "
                  f"{report.rows:,} rows in min {walls[0]:.1f} s / median {statistics.median(walls):.1f} s "
                  f"({report.rows / walls[0]:,.0f} rows/s), batch {args.batch_size}, {len(runs)} run(s)")
            for _, seconds, own, child in runs:
                print(f"  wall {seconds:6.1f} s; CPU: storing process {own:5.1f} s, reading process {child:5.1f} s")
            print("  " + ", ".join(f"{k} {v:,}" for k, v in report.counts.items())
                  + f", malformed {report.malformed:,}, empty {report.empty_rows:,}")
            if goal:
                print(f"  goal <= {goal} s wall on 2 cores: {'met' if walls[0] <= goal else 'NOT met'} "
                      f"(machine shared with other work)")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the storing process {peak_mb:.0f} MB")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
