"""Screen-pop delay of the operator console: from the daemon receiving the AMI event that connected a
call to the operator (AgentConnect) to the lead card being on the operator's screen.

    .venv/bin/python benchmarks/bench_screen_pop.py            # 100 calls
    .venv/bin/python benchmarks/bench_screen_pop.py --quick    # 5 calls, a few seconds
    .venv/bin/python benchmarks/bench_screen_pop.py --calls 300 --db-url postgresql+psycopg://postgres@127.0.0.1/bench

The real daemon runs against the simulated PBX (AMI over TCP, 10x simulated time) on a fresh SQLite file
(or the given database); the operator is signed in in Debian's headless Chromium (Playwright), calls
come one after another, and after each one the operator records a disposition in wrap-up, as the
browser test does. The daemon stamps each pop with the wall-clock time the event was received; the page
records when the card was put in place and a frame was drawn. Prints p50 / p90 / p99 / max in ms, split
into: event -> stored and handed to the page's stream (the daemon's store writer), -> card read and script
rendered and sent, -> the page got it, -> on screen.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from kernel.db.engine import Database  # noqa: E402
from kernel.db.migrate import upgrade  # noqa: E402
from tests.console_harness import (OPERATOR_PASSWORD, DaemonThread, OperatorPage, launch_chromium,  # noqa: E402
                                   percentile, register_operators, run_calls, screen_pop_delays)


def summary(name: str, values: list[float]) -> str:
    return (f"{name:<40} p50 {percentile(values, 50):7.1f}  p90 {percentile(values, 90):7.1f}  "
            f"p99 {percentile(values, 99):7.1f}  max {max(values):7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="calls to time (default 100)")
    parser.add_argument("--quick", action="store_true", help="5 calls, a few seconds")
    parser.add_argument("--db-url", default=None, help="an empty, migrated database (default: a new SQLite file)")
    args = parser.parse_args()
    calls = 5 if args.quick else args.calls
    with tempfile.TemporaryDirectory() as scratch:
        db = Database(args.db_url or f"sqlite:///{Path(scratch) / 'bench.db'}")
        upgrade(db)
        register_operators(db)
        started = time.monotonic()
        with DaemonThread(db) as daemon, launch_chromium() as browser:
            operator = OperatorPage(browser.new_page(viewport={"width": 1366, "height": 768}), daemon.url)
            operator.sign_in("PJSIP/op1", OPERATOR_PASSWORD)
            operator.wait_state("available")
            run_calls(daemon, operator, calls)
            pops = operator.pops()
        elapsed = time.monotonic() - started
        db.dispose()
    timed = [p for p in pops if p.get("event_ms") is not None]
    print(f"screen pop over {len(timed)} calls ({elapsed:.1f} s, database {'given' if args.db_url else 'SQLite file'}; "
          f"machine shared with other work, so treat the tail with care)")
    print(summary("AMI event -> card on screen", screen_pop_delays(timed)))
    print(summary("  event -> stored, handed to the page", [p["published_ms"] - p["event_ms"] for p in timed]))
    print(summary("  -> card read and rendered, sent", [p["sent_ms"] - p["published_ms"] for p in timed]))
    print(summary("  push sent -> page received", [p["received_ms"] - p["sent_ms"] for p in timed]))
    print(summary("  page received -> on screen", [p["shown_ms"] - p["received_ms"] for p in timed]))


if __name__ == "__main__":
    main()
