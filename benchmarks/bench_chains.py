"""Touch chains throughput: enrol + queue e-mails for N unreached leads (one chain pass), then deliver them
to a real SMTP server on 127.0.0.1 (aiosmtpd), SQLite file. Prints today's figures next to the goals.

    .venv/bin/python benchmarks/bench_chains.py            # 5,000 leads, 3 runs
    .venv/bin/python benchmarks/bench_chains.py --quick    # 500 leads, 1 run
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dialer.chains.catalog import PACKAGED_CATALOG, load_catalog  # noqa: E402
from dialer.chains.mailer import EmailSender  # noqa: E402
from dialer.chains.store import tick  # noqa: E402
from kernel.clock import ManualClock  # noqa: E402
from kernel.db.engine import Database  # noqa: E402
from kernel.db.migrate import upgrade  # noqa: E402
from kernel.db.models import Lead  # noqa: E402
from kernel.settings import ChainsSettings  # noqa: E402
from tests.smtp_inbox import SmtpInbox  # noqa: E402

# Goals from the need: a large center's day of unreached leads (20,000) enrolled and mailed within one
# 10-minute pass of the daemon: about 33/s; with margin for the shared machine:
ENROL_GOAL = 50.0      # leads enrolled and their first e-mail queued, per second
SEND_GOAL = 50.0       # e-mails delivered over SMTP, per second


def one_run(count: int) -> tuple[float, float]:
    now = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)   # 12:00 Moscow: inside the window
    with tempfile.TemporaryDirectory() as folder:
        db = Database(f"sqlite:///{folder}/bench.db")
        upgrade(db)
        with db.write() as session:
            session.add_all(Lead(received_at=now - timedelta(days=2), source="bench", phone_e164=f"+7495{i:07d}",
                                 name="Клиент", status="closed", close_reason="unreachable", closed_at=now,
                                 extra={"email": f"c{i}@example.com"}, attempts_count=5, contacts_count=0)
                            for i in range(count))
        with SmtpInbox() as inbox:
            settings = ChainsSettings(smtp_host="127.0.0.1", smtp_port=inbox.port)
            started = time.perf_counter()
            counts = tick(db, load_catalog(PACKAGED_CATALOG), settings, now)
            enrol_s = time.perf_counter() - started
            assert counts.enrolled == counts.queued == count, counts
            sender = EmailSender(db, settings, ManualClock(now), random.Random(1), batch_size=500)
            started = time.perf_counter()
            sent = 0
            while sent < count:
                sent += sender.send_due(now).sent
            send_s = time.perf_counter() - started
            inbox.wait_for(count, timeout=60)
        db.dispose()
    return count / enrol_s, count / send_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    count, runs = (500, 1) if args.quick else (5000, 3)
    results = [one_run(count) for _ in range(runs)]
    enrol = [r[0] for r in results]
    send = [r[1] for r in results]
    print(f"touch chains, {count} leads, SQLite, SMTP on loopback (shared machine: figures vary)")
    print(f"enrol + queue  min {min(enrol):7.0f}  median {statistics.median(enrol):7.0f} leads/s   goal {ENROL_GOAL:.0f}"
          f" ({'meets' if min(enrol) >= ENROL_GOAL else 'BELOW'})")
    print(f"SMTP delivery  min {min(send):7.0f}  median {statistics.median(send):7.0f} e-mails/s goal {SEND_GOAL:.0f}"
          f" ({'meets' if min(send) >= SEND_GOAL else 'BELOW'})")


if __name__ == "__main__":
    main()
