"""What `dialer doctor` asks: the database, the Asterisk over AMI, the CRM. Findings come from checks."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime
from typing import Any

import httpx
import phonenumbers

from dialer.ami.adapter import AmiClient
from dialer.ami.errors import AmiAuthError, AmiError
from dialer.doctor import checks
from dialer.doctor.checks import Finding, Status
from kernel.clock import Clock
from kernel.settings import Settings
from leads.phone import format_for_dialing

NOT_HEADERS = {"response", "actionid", "message", "eventlist"}


def probe_database(settings: Settings) -> Finding:
    from sqlalchemy.exc import SQLAlchemyError

    from kernel.db.engine import Database
    from kernel.db.migrate import current_revision, head_revision
    db = Database(settings.db_url)
    try:
        return checks.judge_schema(current_revision(db), head_revision(db))
    except SQLAlchemyError as exc:
        return Finding("database", Status.FAIL, f"not reachable: {type(exc).__name__}",
                       "check db_url (DIALER_DB_URL) and that the server runs")
    finally:
        db.dispose()


def test_number(settings: Settings) -> str:
    """A valid mobile number of the default region, written as dial.number_format says."""
    example = phonenumbers.example_number_for_type(settings.default_region,
                                                   phonenumbers.PhoneNumberType.MOBILE)
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    return format_for_dialing(e164, settings.dial.number_format)


async def probe_ami(settings: Settings, clock: Clock) -> list[Finding]:
    client = AmiClient(settings.ami, clock)
    address = f"{settings.ami.host}:{settings.ami.port}"
    try:
        await client.connect(timeout=max(5.0, settings.ami.action_timeout_seconds * 2))
    except AmiAuthError as exc:
        await client.close()
        return [Finding("ami login", Status.FAIL, f"{address} refused user {settings.ami.username!r}: {exc.reason}",
                        "check ami.username and ami.secret against manager.conf")]
    except AmiError as exc:
        await client.close()
        return [Finding("ami login", Status.FAIL, f"{address} not reachable: {exc}",
                        "check ami.host / ami.port and manager.conf (enabled = yes, bindaddr)")]
    try:
        found = [Finding("ami login", Status.OK, f"logged in to {address} as {settings.ami.username!r}")]
        found += await _ami_checks(client, settings, clock)
        return found
    finally:
        await client.close()


async def _ami_checks(client: AmiClient, settings: Settings, clock: Clock) -> list[Finding]:
    found: list[Finding] = []
    commands = await client.send_action({"Action": "ListCommands"})
    found += checks.judge_permissions(k for k in _single(commands).keys() if k.lower() not in NOT_HEADERS)

    queue = settings.dial.queue
    try:
        snapshot = await client.queue_status(queue)
        found.append(checks.judge_queue(queue, snapshot.params is not None, [m.interface for m in snapshot.members]))
    except AmiError as exc:
        found.append(Finding("operators' queue", Status.FAIL, f"QueueStatus failed: {exc}"))

    target = checks.local_channel(settings.dial.channel)
    if target is None:
        found.append(Finding("originate context", Status.SKIP, f"dial.channel {settings.dial.channel!r} is not a "
                             "Local channel: the trunk's number format cannot be checked", required=False))
    else:
        _, context = target
        number = test_number(settings)
        exists, matches = await _dialplan(client, context, number)
        found.append(checks.judge_trunk(context, number, settings.dial.number_format, matches, exists))
    _, matches = await _dialplan(client, settings.dial.context, settings.dial.exten)
    found.append(checks.judge_destination(settings.dial.context, settings.dial.exten, bool(matches)))

    loop = asyncio.get_running_loop()
    sent = loop.time()
    ping = _single(await client.send_action({"Action": "Ping"}))
    rtt = loop.time() - sent
    if ping.get("Timestamp"):
        theirs = float(ping["Timestamp"]) + rtt / 2
        found.append(checks.judge_clock_skew(clock.now().timestamp() - theirs))
    else:
        found.append(Finding("clock skew", Status.SKIP, "this Asterisk's Ping has no Timestamp", required=False))
    return found


async def _dialplan(client: AmiClient, context: str, exten: str) -> tuple[bool, dict[str, list[str]] | None]:
    """(context exists, extension -> applications) from ShowDialPlan; None when nothing matches."""
    reply = await client.send_action({"Action": "ShowDialPlan", "Context": context, "Extension": exten})
    if not isinstance(reply, list):
        message = str(reply.get("Message", ""))
        if "permission" in message.lower():
            raise AmiError(f"ShowDialPlan: {message} (needs the reporting write class)")
        return "did not find context" not in message.lower(), None
    rows: dict[str, list[str]] = {}
    for item in reply[1:]:
        if item.get("Event") == "ListDialplan":
            rows.setdefault(item.get("Extension", ""), []).append(item.get("Application", ""))
    return True, rows or None


def _single(reply: Any) -> Any:
    return reply[0] if isinstance(reply, list) else reply


async def probe_crm(settings: Settings, now: datetime, dry_run: bool) -> Finding:
    url = settings.crm.webhook_url
    if not url:
        return checks.judge_crm(url, None, None, dry_run)
    headers = {"Authorization": f"Bearer {settings.crm.token}"} if settings.crm.token else {}
    try:
        async with httpx.AsyncClient(timeout=settings.crm.timeout_seconds) as http:
            if dry_run:
                response = await http.post(url, headers={**headers, "X-Dialer-Dry-Run": "1"},
                                           json={"dry_run": True, "topic": "dialer.doctor", "at": now.isoformat()})
            else:
                response = await http.options(url, headers=headers)
        return checks.judge_crm(url, response.status_code, None, dry_run)
    except httpx.HTTPError as exc:
        return checks.judge_crm(url, None, type(exc).__name__ + (f": {exc}" if str(exc) else ""), dry_run)


def probe_results_backend(settings: Settings) -> Finding:
    """The CDR file the daemon reads for calls that ended while it was blind (faults, issue 11)."""
    path = settings.ami.cdr_csv_path
    return checks.judge_cdr_file(path, folder_exists=bool(path) and os.path.isdir(os.path.dirname(path) or "."),
                                 file_exists=bool(path) and os.path.isfile(path),
                                 readable=bool(path) and os.access(path, os.R_OK),
                                 is_folder=bool(path) and os.path.isdir(path))


def probe_caller_id(settings: Settings) -> Finding:
    return checks.judge_caller_id(settings.dial.caller_id)


async def run_doctor(settings: Settings, clock: Clock, *, crm_dry_run: bool = False) -> list[Finding]:
    found = [await asyncio.to_thread(probe_database, settings)]
    found += await probe_ami(settings, clock)
    found.append(probe_caller_id(settings))
    found.append(probe_results_backend(settings))
    found.append(await probe_crm(settings, clock.now(), crm_dry_run))
    return found
