"""What is compared: a call policy and a way of choosing the next call, by name.

- `current`: the store's policy in force (the built-in defaults when there is no store), the product's
  claim (leads.policy.claim) and progressive pacing: today's product.
- `progressive`: the built-in default policy, the product's claim, progressive pacing (one call per free
  operator, the operator held while the phone rings).
- `fifo-hopper-60s`: VICIdial's hopper as a baseline: once a minute the hopper is refilled with the leads
  due then, in arrival order, and free operators take them from its head; the same policy's retry rules
  and quiet hours, but not the product's tiers, deadlines or dialing order.
- `predictive`: the store's policy with predictive pacing (more calls than free operators, an abandon
  budget; see pacing.py).
- `FILE.toml`: that policy (keys as `dialer policy set` takes them, top level or under [policy]) with
  the product's claim; `pacing = "predictive"` in the file (top level or under [simulate]) paces it so.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Callable, Mapping

from kernel.errors import UsageError
from leads.policy.values import DEFAULTS, KEYS, Policy, PolicyRefused, build_policy, night_problems, parse_value


class Chooser(StrEnum):
    CLAIM = "claim"      # the product's claim picks the next lead
    HOPPER = "hopper"    # the VICIdial-style hopper baseline picks it


class Pacing(StrEnum):
    PROGRESSIVE = "progressive"
    PREDICTIVE = "predictive"


@dataclass(frozen=True)
class Strategy:
    name: str
    policy: Policy
    chooser: Chooser = Chooser.CLAIM
    pacing: Pacing = Pacing.PROGRESSIVE
    hopper_seconds: int = 60


BUILT_IN = ("current", "progressive", "fifo-hopper-60s", "predictive")


def parse_strategy(text: str, current: Callable[[], Policy]) -> Strategy:
    """A --policy value as a Strategy; `current` reads the store's policy (only when it is asked for)."""
    name = text.strip()
    if name == "current":
        return Strategy("current", current())
    if name == "progressive":
        return Strategy("progressive", DEFAULTS)
    if name == "fifo-hopper-60s":
        return Strategy("fifo-hopper-60s", current(), Chooser.HOPPER)
    if name == "predictive":
        return Strategy("predictive", current(), pacing=Pacing.PREDICTIVE)
    path = Path(name)
    if path.suffix.lower() != ".toml":
        raise UsageError(f"--policy {text!r}: unknown policy; give one of {', '.join(BUILT_IN)} or a "
                         f"FILE.toml of policy keys")
    return policy_file(path)


def policy_file(path: Path) -> Strategy:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--policy {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--policy {path}: cannot be read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--policy {path}: not valid TOML ({exc})") from None
    options = dict(data.pop("simulate", {}) or {})
    if "pacing" in data:
        options["pacing"] = data.pop("pacing")
    keys = dict(data.pop("policy", {}) or {})
    keys.update(data)
    try:
        pacing = Pacing(str(options.pop("pacing", "progressive")))
    except ValueError:
        raise UsageError(f"--policy {path}: pacing must be progressive or predictive") from None
    if options:
        raise UsageError(f"--policy {path}: unknown [simulate] keys {sorted(options)}; known: pacing")
    try:
        policy = build_policy({**DEFAULTS.values(), **_values(keys)})
        problems = night_problems(policy.values())
    except PolicyRefused as exc:
        raise UsageError(f"--policy {path}: {exc}") from None
    if problems:
        raise UsageError(f"--policy {path}: " + "; ".join(problems))
    return Strategy(path.stem, policy, pacing=pacing)


def _values(keys: Mapping[str, Any]) -> dict[str, Any]:
    """TOML values as the policy's own: text goes through the CLI's reader, numbers and lists as they are."""
    values: dict[str, Any] = {}
    for name, value in keys.items():
        if name not in KEYS:
            raise PolicyRefused(f"unknown policy key {name!r}; known keys: {', '.join(KEYS)}")
        values[name] = parse_value(name, value) if isinstance(value, str) else value
    return values
