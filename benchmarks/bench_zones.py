"""The customer's zone from Russia's numbering plan (issue 12): coverage and lookup speed.

    .venv/bin/python benchmarks/bench_zones.py              # 1,000,000 random allocated numbers
    .venv/bin/python benchmarks/bench_zones.py --numbers 100000 --repeat 3

Prints, next to the goals: the share of the shipped snapshot's mobile (DEF 9xx) ranges, and of a
random sample of allocated mobile numbers (drawn in proportion to range capacity), that resolve to
exactly one time zone; the same share by phonenumbers alone (before issue 12: none); and lookups per
second, of the bare range table (10-digit int -> zones) and of the policy's path from an E.164 string
(`registry_zones`). Repeated runs: min and median.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from bisect import bisect_right
from itertools import accumulate

from leads.numbering.plan import active_plan
from leads.policy.zones import number_zones, registry_zones

GOAL_SHARE = 0.99
GOAL_RATE = 500_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()

    plan = active_plan()
    mobile = [a for a in plan.ranges() if 9_000_000_000 <= a.start < 10_000_000_000]
    one = sum(1 for a in mobile if len(a.zones) == 1)
    print(f"snapshot: {plan.source.get('source')} (date {plan.source.get('date')}), {len(plan)} ranges")
    print(f"mobile ranges resolving to exactly one zone: {one}/{len(mobile)} = {one / len(mobile):.2%} "
          f"(goal >= {GOAL_SHARE:.0%})")
    several = sum(1 for a in mobile if len(a.zones) > 1)
    print(f"  several zones (conservative window): {several}; no region (unknown-zone rule): "
          f"{len(mobile) - one - several}")

    rng = random.Random(args.seed)
    cumulative = list(accumulate(a.end - a.start + 1 for a in mobile))
    numbers = []
    for _ in range(args.numbers):
        a = mobile[bisect_right(cumulative, rng.randrange(cumulative[-1]))]
        numbers.append(rng.randint(a.start, a.end))
    phones = [f"+7{n}" for n in numbers]
    resolved = sum(1 for p in phones if len(registry_zones(p)) == 1)
    print(f"random allocated mobile numbers resolving to exactly one zone: {resolved}/{len(phones)} = "
          f"{resolved / len(phones):.2%} (goal >= {GOAL_SHARE:.0%})")
    sample = phones[:20000]
    by_lib = sum(1 for p in sample if len(number_zones(p)) == 1)
    print(f"  by phonenumbers alone (today before issue 12), {len(sample)} of them: {by_lib / len(sample):.2%}")

    def rate(fn, items) -> float:
        start = time.perf_counter()
        for item in items:
            fn(item)
        return len(items) / (time.perf_counter() - start)

    table = [rate(plan.zones, numbers) for _ in range(args.repeat)]
    path = [rate(registry_zones, phones) for _ in range(args.repeat)]
    print(f"lookups/s, range table (int): min {min(table):,.0f}, median {statistics.median(table):,.0f} "
          f"(goal >= {GOAL_RATE:,})")
    print(f"lookups/s, from E.164 (registry_zones): min {min(path):,.0f}, median {statistics.median(path):,.0f} "
          f"(goal >= {GOAL_RATE:,})")
    start = time.perf_counter()
    from leads.numbering.plan import load_shipped
    load_shipped()
    print(f"loading the shipped table: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
