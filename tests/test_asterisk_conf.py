"""The sample Asterisk configuration in asterisk_conf/: lints clean, least-privilege AMI user, and the
names the daemon's default settings use (channel, context, exten, queue) exist in the dialplan."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from kernel.settings import DialSettings
from leads.phone import format_for_dialing

CONF = Path(__file__).resolve().parent.parent / "asterisk_conf"
LINT_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+) (?P<code>[EWH]_[A-Z0-9_]+): (?P<message>.*)$")
ALLOWED_LINT = {"E_APP_MISSING"}   # asterisklint 0.4 does not know AMD() (app_amd)

# Classes each AMI action the daemon sends is registered with in Asterisk 22 (main/manager.c,
# apps/app_queue.c). An action is allowed when the user holds ANY of its classes; () = no class needed.
ACTION_CLASSES = {
    "Originate": {"originate"},
    "Hangup": {"system", "call"},
    "CoreShowChannels": {"system", "reporting"},
    "QueuePause": {"agent"},
    "QueueAdd": {"agent"},
    "QueueRemove": {"agent"},
    "QueueStatus": set(),
    "QueueSummary": set(),
    "Ping": set(),
}
# Classes of the events the daemon listens to (an event reaches a user holding its class).
EVENT_CLASS = {
    "OriginateResponse": "call", "Newchannel": "call", "Newstate": "call", "DialBegin": "call",
    "DialEnd": "call", "HangupRequest": "call", "Hangup": "call",
    "QueueCallerJoin": "agent", "QueueCallerAbandon": "agent", "AgentCalled": "agent",
    "AgentConnect": "agent", "AgentComplete": "agent", "AgentRingNoAnswer": "agent",
    "QueueMemberStatus": "agent", "QueueMemberPause": "agent",
    "UserEvent": "user",                      # DialerAMD, DialerQueue from extensions.conf
    "FullyBooted": "system", "Shutdown": "system",
}
# Classes that give more than the daemon needs: a CLI shell, config files, restart / module load.
DANGEROUS_WRITE = {"command", "config", "system", "all"}

# Keywords app_queue (Asterisk 22) accepts in a queue section; anything else logs "Unknown keyword".
QUEUE_KEYWORDS = {
    "musicclass", "music", "musiconhold", "announce", "context", "timeout", "ringinuse", "setinterfacevar",
    "setqueuevar", "setqueueentryvar", "monitor-format", "membergosub", "announce-frequency",
    "announce-to-first-user", "min-announce-frequency", "announce-round-seconds", "announce-holdtime",
    "announce-position", "announce-position-limit", "periodic-announce", "periodic-announce-frequency",
    "relative-periodic-announce", "random-periodic-announce", "retry", "wrapuptime", "penaltymemberslimit",
    "autofill", "autopause", "autopausedelay", "autopausebusy", "autopauseunavail", "maxlen", "servicelevel",
    "strategy", "joinempty", "leavewhenempty", "reportholdtime", "memberdelay", "weight", "timeoutrestart",
    "defaultrule", "timeoutpriority", "member",
}


# ---------------------------------------------------------------- a small reader of Asterisk .conf files

@dataclass(frozen=True)
class Entry:
    section: str
    key: str
    value: str
    line: int


def read_conf(path: Path) -> list[Entry]:
    """Asterisk's flat config format: [section](templates), key = value or key => value, ';' comments."""
    entries: list[Entry] = []
    section = ""
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = re.sub(r"(?<!\\);.*$", "", raw).strip()
        if not line:
            continue
        header = re.match(r"^\[([^\]]+)\]", line)
        if header:
            section = header.group(1)
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}:{number}: not 'key = value': {raw!r}"
        entries.append(Entry(section, key.strip(), value.lstrip(">").strip(), number))
    return entries


def section(entries: list[Entry], name: str) -> dict[str, str]:
    found = {e.key: e.value for e in entries if e.section == name}
    assert found, f"no [{name}] section"
    return found


def classes(value: str) -> set[str]:
    return {c.strip() for c in value.split(",") if c.strip()}


def pattern_matches(pattern: str, number: str) -> bool:
    """Asterisk extension matching: a literal, or _pattern with X N Z [..] . !"""
    if not pattern.startswith("_"):
        return pattern == number
    regex = ""
    i, body = 0, pattern[1:]
    while i < len(body):
        ch = body[i]
        if ch == "[":
            end = body.index("]", i)
            regex += "[" + re.escape(body[i + 1:end]).replace("\\-", "-") + "]"
            i = end + 1
            continue
        regex += {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]", ".": ".+", "!": ".*"}.get(ch.upper(), re.escape(ch))
        i += 1
    return re.fullmatch(regex, number) is not None


def dialplan(path: Path) -> dict[str, dict[str, list[str]]]:
    """context -> extension -> its applications in order (exten => and same => lines)."""
    contexts: dict[str, dict[str, list[str]]] = {}
    current_exten = None
    for entry in read_conf(path):
        if entry.key == "exten":
            current_exten, _priority, app = [p.strip() for p in entry.value.split(",", 2)]
            contexts.setdefault(entry.section, {}).setdefault(current_exten, []).append(app)
        elif entry.key == "same":
            contexts[entry.section][current_exten].append(entry.value.split(",", 1)[1].strip())
        else:
            contexts.setdefault(entry.section, {})
    return contexts


def lint(path: Path) -> tuple[int, list[re.Match]]:
    env = {k: v for k, v in os.environ.items() if k != "ALINT_IGNORE"}
    proc = subprocess.run(
        [sys.executable, "-c", "import os, sys; from asterisklint.main import main; "
                               "sys.exit(main(sys.argv[1:], os.environ))", "dialplan-check", str(path)],
        capture_output=True, text=True, timeout=120, env=env, cwd=path.parent)
    output = (proc.stdout + proc.stderr).splitlines()
    matches = [LINT_LINE.match(line) for line in output if line.strip()]
    unparsed = [line for line, m in zip([x for x in output if x.strip()], matches) if m is None]
    assert not unparsed, f"asterisklint printed lines this test cannot read: {unparsed}"
    return proc.returncode, matches  # type: ignore[return-value]


# ---------------------------------------------------------------- dialplan lint

def test_given_the_sample_dialplan_when_linted_then_only_unknown_applications_are_reported():
    returncode, issues = lint(CONF / "extensions.conf")
    bad = [f"line {m['line']} {m['code']}: {m['message']}" for m in issues if m["code"] not in ALLOWED_LINT]
    assert not bad, "asterisklint: " + "; ".join(bad)
    assert returncode in (0, 1)
    assert {m["message"].split("'")[1] for m in issues} <= {"AMD"}


def test_given_a_broken_dialplan_when_linted_then_the_issue_is_reported_with_its_line(tmp_path):
    broken = tmp_path / "extensions.conf"
    broken.write_text("[general]\nstatic=yes\n\n[dialer-trunk]\nexten => _X.,1,NoOp(ok)\n"
                      " same => n,Dial(PJSIP/${EXTEN}@trunk,,g\n", encoding="utf-8")
    returncode, issues = lint(broken)
    assert returncode == 1
    assert [(m["line"], m["code"]) for m in issues if m["code"] not in ALLOWED_LINT], issues
    assert any(m["line"] == "6" for m in issues)


# ---------------------------------------------------------------- manager.conf

def test_given_manager_conf_then_ami_listens_on_loopback_only_and_tags_events_with_the_ids():
    general = section(read_conf(CONF / "manager.conf"), "general")
    assert general["enabled"] == "yes"
    assert general["bindaddr"] == "127.0.0.1"
    assert general["webenabled"] == "no"
    assert {"LEAD_ID", "ATTEMPT_ID"} <= classes(general["channelvars"])


def test_given_the_dialer_ami_user_then_it_has_exactly_the_least_privilege_classes():
    user = section(read_conf(CONF / "manager.conf"), "dialer")
    assert classes(user["write"]) == {"originate", "call", "agent", "reporting"}
    assert classes(user["read"]) == {"system", "call", "agent", "user"}
    assert user["permit"] == "127.0.0.1/255.255.255.255"
    assert user["deny"] == "0.0.0.0/0.0.0.0"
    assert "REPLACE" in user["secret"].upper(), "the sample secret must be an obvious placeholder"


def test_given_the_dialer_write_classes_then_every_daemon_action_is_allowed_and_every_class_is_used():
    write = classes(section(read_conf(CONF / "manager.conf"), "dialer")["write"])
    assert not write & DANGEROUS_WRITE
    for action, needed in ACTION_CLASSES.items():
        assert not needed or needed & write, f"{action} needs one of {sorted(needed)}"
    used = set().union(*(needed & write for needed in ACTION_CLASSES.values()))
    assert used == write, f"classes no action needs: {sorted(write - used)}"


def test_given_the_dialer_read_classes_then_every_event_the_daemon_needs_arrives_and_no_class_is_spare():
    read = classes(section(read_conf(CONF / "manager.conf"), "dialer")["read"])
    missing = {event: cls for event, cls in EVENT_CLASS.items() if cls not in read}
    assert not missing
    assert read == set(EVENT_CLASS.values())


# ---------------------------------------------------------------- dialplan vs the daemon's settings

@pytest.mark.parametrize("number_format", ["e164", "national", "digits"])
def test_given_the_default_dial_channel_then_its_context_dials_the_number_in_every_format(number_format):
    settings = DialSettings()
    channel = settings.channel.format(number=format_for_dialing("+79123456789", number_format))
    # /n: no Local channel optimization, so the originated ;1 leg lives as long as the call
    match = re.fullmatch(r"Local/(?P<number>[^@]+)@(?P<context>[^/]+)(?:/n)?", channel)
    assert match, channel
    contexts = dialplan(CONF / "extensions.conf")
    assert match["context"] == "dialer-trunk"
    extens = contexts[match["context"]]
    hits = [e for e in extens if pattern_matches(e, match["number"])]
    assert hits, f"no extension in [{match['context']}] matches {match['number']}"
    apps = extens[hits[0]]
    assert apps[1] == "Dial(PJSIP/${EXTEN}@trunk,,g)"
    assert apps[-1] == "Hangup(${HANGUPCAUSE})"


def test_given_the_default_context_and_exten_then_the_answered_call_reaches_the_default_queue():
    settings = DialSettings()
    contexts = dialplan(CONF / "extensions.conf")
    apps = contexts[settings.context][settings.exten]
    assert settings.context == "dialer-outbound" and settings.exten == "s" and settings.priority == 1
    queue_calls = [a for a in apps if a.startswith(f"Queue({settings.queue},")]
    assert queue_calls, f"[{settings.context}] {settings.exten} never calls Queue({settings.queue})"
    assert any("AMD()" in a for a in apps)
    assert any(a.startswith("UserEvent(DialerAMD,AMDStatus: MACHINE,") and "LeadId: ${LEAD_ID}" in a
               and "AttemptId: ${ATTEMPT_ID}" in a for a in apps)
    assert any("MixMonitor(" in a and "${ATTEMPT_ID}" in a and ".wav" in a for a in apps)
    assert any("Dial(${DIALER_OPERATOR}" in a for a in apps)
    assert "operators" in contexts


def test_given_queues_conf_then_the_default_queue_exists_with_only_keywords_asterisk_22_knows():
    entries = read_conf(CONF / "queues.conf")
    queue = [e for e in entries if e.section == DialSettings().queue]
    assert queue, "queues.conf has no section for dial.queue"
    unknown = [f"line {e.line}: {e.key}" for e in queue if e.key not in QUEUE_KEYWORDS]
    assert not unknown
    values = {e.key: e.value for e in queue}
    assert values["ringinuse"] == "no"
    assert values["strategy"] != "ringall"
    assert "paused" in classes(values["joinempty"])
    members = [e.value.split(",")[0] for e in queue if e.key == "member"]
    assert members == ["PJSIP/op1", "PJSIP/op2"]


def test_given_pjsip_conf_then_every_queue_member_is_an_operator_endpoint_and_the_trunk_exists():
    entries = read_conf(CONF / "pjsip.conf")
    endpoints = {e.section.split("(")[0] for e in entries if e.key in ("aors", "auth", "outbound_auth")
                 and "(!)" not in e.section}
    queue_members = [e.value.split(",")[0].split("/", 1)[1] for e in read_conf(CONF / "queues.conf")
                     if e.key == "member"]
    assert set(queue_members) <= endpoints
    assert "trunk" in endpoints
    contexts = dialplan(CONF / "extensions.conf")
    for e in entries:
        if e.key == "context":
            assert e.value in contexts, f"pjsip.conf line {e.line}: context {e.value} not in extensions.conf"
