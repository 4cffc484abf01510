"""`dialer simulate` (issue 15): how fast a simulated day runs, and three days under each strategy.

1. Speed: a 12-hour day (10:00-22:00 Moscow), 10 operators, 2,000 leads on the online-store curve
   (night leads included), under the product's own claim with progressive pacing; wall time of the
   whole day (temporary store, migrations, intake, every claim and result), repeated 3 times,
   min / median against the goal of 30 s.
2. A month: consecutive days of the same (2,000 leads a day, 10 operators) on one store, retries,
   callbacks and follow-ups carried over, predictive pacing with its rolling 30-day budget; goal:
   30 days <= 10 minutes, so 3 days (the default) <= 60 s.
3. Three days, each under fifo-hopper-60s (VICIdial's hopper), progressive (the product today) and
   predictive (pacing.py, abandon budget 3%), printed side by side:
   - staffed: 2,000 leads, 10 operators 10:00-22:00;
   - overloaded with a night backlog: 3,000 leads of which a night campaign brings 35% between 22:00
     and 10:00, 8 operators;
   - thin staff: 2,000 leads, 4 operators.

    .venv/bin/python benchmarks/bench_simulate.py            # every part (about 10 minutes)
    .venv/bin/python benchmarks/bench_simulate.py --only speed
    .venv/bin/python benchmarks/bench_simulate.py --only month --month-days 30
    .venv/bin/python benchmarks/bench_simulate.py --only days --quick    # the days at a quarter of the leads
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time as walltime
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from dialer.simulate.day import DayPlan, simulate  # noqa: E402
from dialer.simulate.inputs import HOURLY_SHARE, constant_staffing, synthetic_arrivals  # noqa: E402
from dialer.simulate.kpis import COLUMNS, day_kpis  # noqa: E402
from dialer.simulate.strategies import parse_strategy  # noqa: E402
from leads.policy.values import DEFAULTS  # noqa: E402

MOSCOW = ZoneInfo("Europe/Moscow")
DAY = date(2026, 11, 24)       # a Tuesday
SPEED_GOAL_SECONDS = 30.0
MONTH_GOAL_SECONDS = 600.0
NIGHT_HOURS = (22, 23, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)


@dataclass(frozen=True)
class Day:
    name: str
    leads: int
    operators: int
    night_share: float | None = None     # share of the leads arriving 22:00-10:00 (None: the plain curve)


DAYS = (Day("staffed", 2000, 10), Day("overloaded, night backlog", 3000, 8, night_share=0.35),
        Day("thin staff", 2000, 4))
STRATEGIES = ("fifo-hopper-60s", "progressive", "predictive")


def profile(night_share: float | None) -> dict[int, float]:
    if night_share is None:
        return dict(HOURLY_SHARE)
    night = sum(HOURLY_SHARE[h] for h in NIGHT_HOURS)
    day = sum(v for h, v in HOURLY_SHARE.items() if h not in NIGHT_HOURS)
    return {h: v * (night_share / night if h in NIGHT_HOURS else (1 - night_share) / day)
            for h, v in HOURLY_SHARE.items()}


def plan_of(day: Day, seed: int, scale: float = 1.0) -> DayPlan:
    arrivals = synthetic_arrivals(int(day.leads * scale), DAY, MOSCOW, seed, profile(day.night_share))
    staffing = constant_staffing(max(1, round(day.operators * scale)), time(10), time(22))
    return DayPlan(DAY, "Europe/Moscow", tuple(arrivals), staffing, seed=seed)


def speed(repeats: int) -> None:
    plan = plan_of(DAYS[0], seed=1)
    strategy = parse_strategy("progressive", lambda: DEFAULTS)
    walls = []
    for n in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            started = walltime.perf_counter()
            record, = simulate(plan, [strategy], Path(folder))
            walls.append(walltime.perf_counter() - started)
        print(f"   run {n + 1}: {walls[-1]:.1f} s wall ({record.events} events, {record.claims} calls placed)",
              flush=True)
    verdict = "met" if min(walls) <= SPEED_GOAL_SECONDS else "MISSED"
    print(f"speed: 12 h, 10 operators, 2,000 leads: min {min(walls):.1f} s, median {statistics.median(walls):.1f} s "
          f"(goal <= {SPEED_GOAL_SECONDS:.0f} s: {verdict})")


def month(days_count: int, seed: int) -> None:
    from datetime import timedelta
    arrivals = [a for k in range(days_count)
                for a in synthetic_arrivals(2000, DAY + timedelta(days=k), MOSCOW, seed + k)]
    plan = DayPlan(DAY, "Europe/Moscow", tuple(arrivals), constant_staffing(10, time(10), time(22)), seed=seed,
                   days=days_count)
    with tempfile.TemporaryDirectory() as folder:
        started = walltime.perf_counter()
        record, = simulate(plan, [parse_strategy("predictive", lambda: DEFAULTS)], Path(folder))
        wall = walltime.perf_counter() - started
    k = day_kpis(record)
    goal = MONTH_GOAL_SECONDS * days_count / 30
    print(f"month: {days_count} days, {len(arrivals)} leads, 10 operators, predictive: {wall:.0f} s wall "
          f"({record.events} events, {record.claims} calls placed; goal <= {goal:.0f} s: "
          f"{'met' if wall <= goal else 'MISSED'}); by deadline {k.first_call_met_pct}%, contact rate "
          f"{k.contact_rate_pct}%, abandoned {k.abandoned_pct}%, talk {k.talk_min_per_operator_hour} min/op-hour")


def days(scale: float, seed: int) -> None:
    strategies = [parse_strategy(name, lambda: DEFAULTS) for name in STRATEGIES]
    for day in DAYS:
        plan = plan_of(day, seed, scale)
        with tempfile.TemporaryDirectory() as folder:
            kpis = [day_kpis(r) for r in simulate(plan, strategies, Path(folder))]
        print(f"\n{day.name}: {len(plan.arrivals)} leads, {plan.staffing.most} operators 10:00-22:00, seed {seed}")
        width = max(len(label) for _, label in COLUMNS)
        print(" " * width + "".join(f"{k.strategy:>18}" for k in kpis))
        for key, label in COLUMNS:
            print(f"{label:<{width}}" + "".join(f"{_cell(getattr(k, key)):>18}" for k in kpis))
        hopper = kpis[0].sla_breaches
        for k in kpis[1:]:
            ratio = f"{k.sla_breaches / hopper:.2f}x" if hopper else "-"
            print(f"   {k.strategy}: SLA breaches {ratio} the hopper's; contacts/op-hour "
                  f"{k.contacts_per_operator_hour}; abandoned {k.abandoned_pct}%")


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("speed", "month", "days"))
    parser.add_argument("--month-days", type=int, default=3,
                        help="days of the month part (3; 30 is the issue's month, about 30 minutes here)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the three days at a quarter of leads and operators")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    if args.only in (None, "speed"):
        speed(args.repeats)
    if args.only in (None, "month"):
        month(args.month_days, args.seed)
    if args.only in (None, "days"):
        days(0.25 if args.quick else 1.0, args.seed)


if __name__ == "__main__":
    main()
