"""Running the simulated PBX from the command line: customer files, serving until Ctrl-C.

A customer file (YAML or JSON) says how the simulated customers behave:

    rules:                              # tried in order; pattern matches the whole dialed number
      - {pattern: '\\+7912.*', outcome: answer, after: 3, talk: 60}
      - {pattern: '.*0$', outcome: busy}
    mix:                                # everyone else: outcome weights
      answer: 0.55
      no_answer: 0.20
      busy: 0.10
    talk: null                          # seconds answered customers talk (null: until the operator ends)
    patience: 30                        # seconds they wait for an operator before hanging up
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any, Callable

import yaml

from kernel.errors import UsageError
from dialer.pbx_sim.scenarios import DEFAULT_MIX, CustomerBook, CustomerMix
from dialer.pbx_sim.server import SimulatedPbx


def customers_from_data(data: Any) -> CustomerBook:
    if not isinstance(data, dict):
        raise UsageError("a customer file holds a mapping with 'rules' and/or 'mix'")
    unknown = set(data) - {"rules", "mix", "talk", "patience"}
    if unknown:
        raise UsageError(f"unknown keys in the customer file: {sorted(unknown)}; known: mix, patience, rules, talk")
    rules = data.get("rules") or []
    if not isinstance(rules, list):
        raise UsageError("'rules' must be a list of {pattern, outcome, after, talk, patience}")
    weights = data.get("mix")
    if weights is not None and not isinstance(weights, dict):
        raise UsageError("'mix' must map outcomes to weights, e.g. {answer: 0.55, busy: 0.1}")
    mix = CustomerMix.from_dict(weights or {o.value: w for o, w in DEFAULT_MIX}, talk=data.get("talk"),
                                patience=data.get("patience"))
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            raise UsageError(f"rules[{i}] must be a mapping with pattern and outcome")
    return CustomerBook.from_rules(rules, mix)


def customers_from_file(path: Path) -> CustomerBook:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the customer file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise UsageError(f"the customer file {path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}") from None
    return customers_from_data(data)


async def serve_until_stopped(pbx: SimulatedPbx, host: str, port: int, ready: Callable[[int], None]) -> None:
    """Listen, tell `ready` the port, serve until Ctrl-C (the task is cancelled) or SIGTERM, then stop."""
    bound = await pbx.start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    except (NotImplementedError, RuntimeError):   # not on this platform / not the main thread
        pass
    ready(bound)
    try:
        await stop.wait()
    finally:
        await pbx.stop()
