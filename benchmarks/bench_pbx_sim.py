"""How much load the simulated PBX carries: many calls at once, every event to several AMI clients.

    .venv/bin/python benchmarks/bench_pbx_sim.py            # 2000 calls, 50 operators, 3 clients
    .venv/bin/python benchmarks/bench_pbx_sim.py --quick    # 200 calls
    .venv/bin/python benchmarks/bench_pbx_sim.py --calls 5000 --clients 1 --speed 500

One client originates all calls at once (the default customer mix), every client is logged in with
Events: on (read = system,call,agent,user, as asterisk_conf/manager.conf) and reads everything.
Prints the wall time until every call ended, how long the clients then needed to read what was
still queued for them, messages per second, and the most calls in progress at once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from dialer.pbx_sim import PbxConfig, PbxUser, SimulatedPbx, numbered_operators  # noqa: E402
from dialer.pbx_sim.protocol import ActionReader, encode  # noqa: E402


async def reader_task(reader: asyncio.StreamReader, counts: dict[str, int]) -> None:
    """Read everything until the response to the final Ping (ActionID 'drained')."""
    parser = ActionReader(limit=10_000_000)
    while True:
        data = await reader.read(1 << 16)
        if not data:
            return
        for message in parser.feed(data):
            counts["messages"] += 1
            if message.get("Event") == "Hangup":
                counts["hangups"] += 1
            if message.action_id == "drained":
                return


async def run(calls: int, operators: int, clients: int, speed: float) -> None:
    user = PbxUser.from_conf("dialer", "dialer-secret", read="system,call,agent,user")   # as asterisk_conf
    pbx = SimulatedPbx(PbxConfig(users=(user,), speed=speed, seed=1, queue_wait=20),
                       operators=numbered_operators(operators, talk=30))
    port = await pbx.start("127.0.0.1", 0)
    streams, counters, readers = [], [], []
    for _ in range(clients):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        writer.write(encode([("Action", "Login"), ("Username", "dialer"), ("Secret", "dialer-secret"),
                             ("Events", "on")]))
        counts = {"messages": 0, "hangups": 0}
        streams.append((reader, writer))
        counters.append(counts)
        readers.append(asyncio.create_task(reader_task(reader, counts)))
    dialer = streams[0][1]
    started = time.perf_counter()
    for i in range(calls):
        dialer.write(encode([("Action", "Originate"), ("ActionID", f"b{i}"),
                             ("Channel", f"Local/+7900{i:07d}@dialer-trunk"), ("Context", "dialer-outbound"),
                             ("Exten", "s"), ("Timeout", "20000"), ("Async", "true"), ("ChannelId", f"b{i}"),
                             ("Variable", f"__LEAD_ID={i}"), ("Variable", f"__ATTEMPT_ID={i}")]))
    await dialer.drain()
    while pbx.stats().calls_placed < calls or pbx.stats().calls_in_progress:
        await asyncio.sleep(0.01)
    ended = time.perf_counter()
    for _, writer in streams:
        writer.write(encode([("Action", "Ping"), ("ActionID", "drained")]))
    await asyncio.wait_for(asyncio.gather(*readers), 300)
    drained = time.perf_counter()
    for _, writer in streams:
        writer.close()
    await pbx.stop()
    wall = ended - started
    stats = pbx.stats()
    print(f"calls {calls}, operators {operators}, clients {clients}, speed {speed:g}x")
    print(f"  calls done after   {wall:8.2f} s   ({calls / wall:,.0f} calls/s, {wall * speed:,.0f} simulated s)")
    print(f"  clients caught up  {drained - ended:8.2f} s later")
    for n, counts in enumerate(counters, start=1):
        print(f"  client {n}: {counts['messages']:,} messages ({counts['messages'] / (drained - started):,.0f}/s), "
              f"{counts['hangups']:,} Hangup events")
    print(f"  peak calls in progress {stats.peak_calls_in_progress}, queue peak waiting {stats.queue_peak_waiting}")
    print(f"  results {dict(sorted(stats.results.items()))}")
    print("  (machine shared with other engineers' work: figures are indicative)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 calls, a few seconds")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--operators", type=int, default=50)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--speed", type=float, default=200.0)
    args = parser.parse_args()
    calls = 200 if args.quick else args.calls
    asyncio.run(run(calls, args.operators, args.clients, args.speed))


if __name__ == "__main__":
    main()
