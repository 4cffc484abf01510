"""AMI events per second through the adapter's parser and the call tracker (goal: >= 10,000/s).

    .venv/bin/python benchmarks/bench_ami_events.py            # 3,000 calls (~150,000 AMI messages)
    .venv/bin/python benchmarks/bench_ami_events.py --quick    # 200 calls
    .venv/bin/python benchmarks/bench_ami_events.py --calls 10000

The stream is made of real recordings (tests/fixtures/ami/pjsip-*.txt: answered and queued,
busy, no answer, 503 via Local, 603), every call given its own ChannelId, ActionID and Uniqueids,
played one after another, every AMI message of the recording included (Newexten, VarSet, Cdr...
that the parser must look at and drop).

Two figures:
1. parse + track: raw messages -> parse_event -> CallTracker.feed, in memory;
2. over a real loopback socket: a tiny server writes the bytes, AmiClient (panoramisk framing,
   incremental UTF-8, typed events, events queue) delivers them and the tracker consumes them.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from dialer.ami.adapter import AmiClient
from dialer.ami.events import parse_event
from dialer.ami.transcript import Entry, read_transcript
from dialer.calls.tracker import CallTracker
from kernel.clock import SystemClock
from kernel.settings import AmiSettings

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "ami"
RECORDINGS = ["pjsip-answered-queue", "pjsip-busy-486", "pjsip-noanswer-timeout",
              "pjsip-unavailable-503-via-local", "pjsip-decline-603"]
_NUMERIC_UID = re.compile(r"\b\d{10}\.(\d+)\b")


@dataclass
class Call:
    attempt_id: int
    action_id: str
    channel_id: str
    messages: list[Entry]   # what Asterisk sent for this call, ids rewritten


def build_calls(count: int) -> list[Call]:
    templates = []
    for name in RECORDINGS:
        t = read_transcript(TRANSCRIPTS / f"{name}.txt")
        originate = next(e for e in t.client_messages() if e.name == "Originate")
        events = [e for e in t.events() if e.name not in ("FullyBooted",)]
        templates.append((originate.get("ActionID"), originate.get("ChannelId"), events))
    calls = []
    for i in range(count):
        action_id, channel_id, events = templates[i % len(templates)]
        new_action, new_channel = f"bench-orig-{i}", f"bench-{i}"

        def rewrite(value: str) -> str:
            value = value.replace(channel_id, new_channel).replace(action_id, new_action)
            return _NUMERIC_UID.sub(lambda m: f"{1_900_000_000 + i}.{m.group(1)}", value)

        messages = [replace(e, fields=tuple((k, rewrite(v)) for k, v in e.fields)) for e in events]
        calls.append(Call(i + 1, new_action, new_channel, messages))
    return calls


def track_all(calls: list[Call]) -> CallTracker:
    tracker = CallTracker()
    now = datetime.now(timezone.utc)
    for call in calls:
        tracker.track(call.attempt_id, action_id=call.action_id, channel_id=call.channel_id, at=now)
    return tracker


def bench_parse_track(calls: list[Call]) -> tuple[int, float, Counter]:
    raws = [m.as_mapping() for call in calls for m in call.messages]
    tracker = track_all(calls)
    results: Counter = Counter()
    now = datetime.now(timezone.utc)
    start = time.perf_counter()
    for raw in raws:
        event = parse_event(raw, now)
        if event is not None:
            for update in tracker.feed(event):
                if update.result is not None:
                    results[update.result.value] += 1
    return len(raws), time.perf_counter() - start, results


async def bench_socket(calls: list[Call]) -> tuple[int, int, float, Counter]:
    payload = b"".join(m.to_wire() for call in calls for m in call.messages)
    messages = sum(len(call.messages) for call in calls)
    now = datetime.now(timezone.utc)
    typed = sum(parse_event(m.as_mapping(), now) is not None for call in calls for m in call.messages)
    go = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        login = await reader.readuntil(b"\r\n\r\n")
        action_id = re.search(rb"ActionID: (\S+)", login).group(1)  # type: ignore[union-attr]
        writer.write(b"Response: Success\r\nActionID: " + action_id + b"\r\nMessage: Authentication accepted\r\n\r\n")
        await go.wait()
        for i in range(0, len(payload), 65536):
            writer.write(payload[i:i + 65536])
            await writer.drain()
        await reader.read()   # keep the socket open until the client leaves

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = AmiSettings(name="bench", host="127.0.0.1", port=port, secret="x", ping_interval_seconds=600)
    client = AmiClient(settings, SystemClock())
    await client.connect(timeout=10)
    await client.events.get()     # Connected
    tracker = track_all(calls)
    results: Counter = Counter()
    start = time.perf_counter()
    go.set()
    for _ in range(typed):
        event = await client.events.get()
        for update in tracker.feed(event):
            if update.result is not None:
                results[update.result.value] += 1
    elapsed = time.perf_counter() - start
    await client.close()
    server.close()
    return messages, typed, elapsed, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--quick", action="store_true", help="200 calls")
    args = parser.parse_args()
    count = 200 if args.quick else args.calls
    calls = build_calls(count)

    n, seconds, results = bench_parse_track(calls)
    print(f"parse + track      : {n:,} AMI messages of {count:,} calls in {seconds:.3f} s "
          f"= {n / seconds:,.0f} messages/s   results {dict(results)}")
    messages, typed, seconds, results = asyncio.run(bench_socket(calls))
    print(f"loopback AmiClient : {messages:,} AMI messages ({typed:,} typed events) in {seconds:.3f} s "
          f"= {messages / seconds:,.0f} messages/s, {typed / seconds:,.0f} typed events/s   "
          f"results {dict(results)}")
    print("goal: >= 10,000 events/s (the machine is shared with other engineers' work: figures vary)")


if __name__ == "__main__":
    main()
