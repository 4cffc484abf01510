"""The rules of `dialer doctor`: each takes what a probe found and returns findings. No I/O here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Iterable, Mapping, Sequence


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str
    fix: str = ""
    required: bool = True    # a failed required check makes the exit code non-zero


# Actions the daemon sends, and the manager.conf write class each needs (one of them suffices).
DAEMON_ACTIONS: dict[str, str] = {
    "Originate": "originate", "Hangup": "call", "CoreShowChannels": "reporting", "QueueStatus": "",
    "QueuePause": "agent", "Ping": "",
}
# Actions that show the user has a class the daemon never needs (and an attacker would love).
TOO_MUCH: dict[str, str] = {"Command": "command", "UpdateConfig": "config", "ModuleCheck": "system"}
NEEDED_WRITE = "originate,call,agent,reporting"
NEEDED_READ = "call,agent"


def exit_code(findings: Iterable[Finding]) -> int:
    return 1 if any(f.required and f.status is Status.FAIL for f in findings) else 0


def judge_schema(current: str | None, head: str | None) -> Finding:
    if current == head:
        return Finding("database", Status.OK, f"reachable, schema at head ({head})")
    return Finding("database", Status.FAIL, f"schema at {current or 'nothing'}, the code needs {head}",
                   "run `dialer init` (applies the migrations)")


def judge_permissions(allowed_actions: Iterable[str]) -> list[Finding]:
    """From ListCommands (the actions this AMI user may send): enough for the daemon, and not more."""
    allowed = {a.lower() for a in allowed_actions}
    missing = [f"{action} ({cls})" for action, cls in DAEMON_ACTIONS.items() if action.lower() not in allowed]
    out = []
    if missing:
        out.append(Finding("ami write classes", Status.FAIL, "the AMI user may not send " + ", ".join(missing),
                           f"in manager.conf give the user: write = {NEEDED_WRITE}"))
    else:
        out.append(Finding("ami write classes", Status.OK, "may send every action the daemon uses"))
    extra = sorted({cls for action, cls in TOO_MUCH.items() if action.lower() in allowed})
    if extra:
        out.append(Finding("ami least privilege", Status.WARN, "the AMI user has write classes the dialer never "
                           "needs: " + ", ".join(extra), f"in manager.conf: write = {NEEDED_WRITE}", required=False))
    else:
        out.append(Finding("ami least privilege", Status.OK, "no system, command or config write class",
                           required=False))
    out.append(Finding("ami read classes", Status.SKIP, "Asterisk does not list a user's read classes over AMI",
                       f"make sure manager.conf has read = {NEEDED_READ} (call events and queue member events)",
                       required=False))
    return out


def judge_queue(queue: str, exists: bool, members: Sequence[str]) -> Finding:
    if not exists:
        return Finding("operators' queue", Status.FAIL, f"queue {queue!r} does not exist on this Asterisk",
                       "define it in queues.conf, or set dial.queue to the queue your operators are in")
    if not members:
        return Finding("operators' queue", Status.FAIL, f"queue {queue!r} has no members: no call could be "
                       "answered", "add the operators' phones as members (queues.conf member => PJSIP/op1)")
    return Finding("operators' queue", Status.OK, f"queue {queue!r} has {len(members)} member(s)")


def local_channel(channel: str) -> tuple[str, str] | None:
    """`Local/{number}@dialer-trunk/n` -> ("{number}", "dialer-trunk"); None for other technologies."""
    match = re.fullmatch(r"Local/([^@/]+)@([^/]+)(/.*)?", channel, flags=re.IGNORECASE)
    return (match.group(1), match.group(2)) if match else None


def judge_trunk(context: str, number: str, number_format: str, found: Mapping[str, list[str]] | None,
                context_exists: bool) -> Finding:
    """`found`: extension -> applications listed for the test number in the trunk context (None: no match)."""
    name = "originate context"
    if not context_exists:
        return Finding(name, Status.FAIL, f"context [{context}] of dial.channel does not exist",
                       "install asterisk_conf/extensions.conf's [dialer-trunk], or fix dial.channel")
    if not found:
        return Finding(name, Status.FAIL, f"no extension in [{context}] matches {number} (dial.number_format = "
                       f"{number_format}): Asterisk would answer every call as an invalid number and every lead "
                       "would be closed", "add a pattern for this format (e.g. exten => _+X. for e164, _8X. for "
                       "national) or change dial.number_format")
    apps = {app.lower() for apps in found.values() for app in apps}
    if "dial" not in apps:
        return Finding(name, Status.WARN, f"[{context}] matches {number} as {', '.join(found)}, but no Dial() in it",
                       "the extension should Dial() the trunk", required=False)
    return Finding(name, Status.OK, f"{number} ({number_format}) matches {', '.join(found)} in [{context}], "
                   "which dials the trunk")


def judge_destination(context: str, exten: str, exists: bool) -> Finding:
    if exists:
        return Finding("answered destination", Status.OK, f"{exten}@{context} exists")
    return Finding("answered destination", Status.FAIL, f"{exten}@{context} (dial.context / dial.exten) does not "
                   "exist: an answered customer would be hung up", "install asterisk_conf/extensions.conf's "
                   "[dialer-outbound] or fix dial.context / dial.exten")


def judge_caller_id(caller_id: str) -> Finding:
    if re.search(r"\d{5,}", caller_id or ""):
        return Finding("caller id", Status.OK, f"set to {caller_id}")
    return Finding("caller id", Status.FAIL, "dial.caller_id has no number: many carriers refuse or mark such calls",
                   'set dial.caller_id, e.g. "Shop" <74950000000>')


def judge_cdr_file(path: str, *, folder_exists: bool, file_exists: bool, readable: bool,
                   is_folder: bool = False) -> Finding:
    """The CDR file of `ami.cdr_csv_path` (asterisk_conf/cdr_custom.conf): how calls that ended while the
    daemon was blind (AMI cut, restart) get their real outcome instead of `unknown`."""
    name = "cdr backend"
    if not path:
        return Finding(name, Status.WARN, "ami.cdr_csv_path is empty: calls that end while the AMI link is down "
                       "or the daemon restarts are stored `unknown`",
                       "enable cdr_custom (asterisk_conf/cdr_custom.conf) and set ami.cdr_csv_path to its file",
                       required=False)
    if not folder_exists:
        return Finding(name, Status.FAIL, f"{path}: its folder does not exist on this host",
                       "mount Asterisk's cdr-custom folder here, or fix ami.cdr_csv_path")
    if is_folder:
        return Finding(name, Status.FAIL, f"{path} is a folder: ami.cdr_csv_path names the CSV file itself",
                       "set ami.cdr_csv_path to the file cdr_custom writes, e.g. /var/log/asterisk/cdr-custom/"
                       "dialer.csv")
    if not file_exists:
        return Finding(name, Status.WARN, f"{path}: no CDR written yet (the folder exists)",
                       "check cdr_custom is loaded ('module show like cdr_custom') if calls were made",
                       required=False)
    if not readable:
        return Finding(name, Status.FAIL, f"{path}: exists but this user cannot read it",
                       "give the dialer user read access (e.g. the asterisk group)")
    return Finding(name, Status.OK, f"{path}: readable")


def judge_clock_skew(seconds: float, warn_at: float = 2.0) -> Finding:
    text = f"this host is {abs(seconds):.1f} s {'ahead of' if seconds > 0 else 'behind'} Asterisk"
    if abs(seconds) <= warn_at:
        return Finding("clock skew", Status.OK, text, required=False)
    return Finding("clock skew", Status.WARN, text + ": quiet hours and SLAs are judged on this host's clock",
                   "run NTP (chrony/systemd-timesyncd) on both hosts", required=False)


def judge_crm(url: str, status: int | None, error: str | None, dry_run: bool) -> Finding:
    if not url:
        return Finding("crm endpoint", Status.SKIP, "crm.webhook_url is empty: outcomes stay in the outbox "
                       "(and the nightly export)", required=False)
    how = "a dry-run POST" if dry_run else "OPTIONS"
    if error is not None:
        return Finding("crm endpoint", Status.FAIL, f"{url} not reachable ({how}): {error}",
                       "check crm.webhook_url and the network path")
    if status is not None and (status >= 500 or (dry_run and not 200 <= status < 300)):
        return Finding("crm endpoint", Status.FAIL, f"{url} answered {how} with HTTP {status}",
                       "check the CRM side; the token (crm.token) is sent as Bearer")
    return Finding("crm endpoint", Status.OK, f"{url} answered {how} with HTTP {status}")
