"""One typed settings object: defaults, then the TOML file, then DIALER_* environment, then CLI flags.

Every key is declared once, with its type, its check and its help text. A bad value
stops start-up with a SettingsError naming the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from kernel.errors import SettingsError

ENV_PREFIX = "DIALER_"
DEFAULT_CONFIG_FILE = "dialer.toml"

Check = Callable[[Any], str | None]  # returns what is allowed when the value is refused


def setting(default: Any = dataclasses.MISSING, help: str = "", check: Check | None = None,
            secret: bool = False, default_factory: Any = dataclasses.MISSING) -> Any:
    meta = {"help": help, "check": check, "secret": secret}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


# --- checks: each returns None when the value is fine, else the sentence "what is allowed" ---

def between(low: float, high: float) -> Check:
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"a number from {low:g} to {high:g}"
    return check


def one_of(*allowed: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in allowed else "one of: " + ", ".join(allowed)
    return check


def time_zone(value: Any) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):  # OSError: a zone folder ("Europe")
        return "an IANA time zone name such as Europe/Moscow"
    return None


def region_code(value: Any) -> str | None:
    if value in phonenumbers.SUPPORTED_REGIONS:
        return None
    return "a two-letter region code known to phonenumbers, such as RU, KZ, BY"


def db_url(value: Any) -> str | None:
    if re.match(r"^(sqlite|postgresql)(\+\w+)?://", value or ""):
        return None
    return "an SQLAlchemy URL starting with sqlite:/// or postgresql+psycopg://"


def http_url_or_empty(value: Any) -> str | None:
    if value == "" or re.match(r"^https?://[^\s]+$", value):
        return None
    return "an http:// or https:// URL, or empty to turn it off"


def clock_time(value: Any) -> str | None:
    if re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value or ""):
        return None
    return "a time of day as HH:MM, such as 02:00"


def not_empty(value: Any) -> str | None:
    return None if value else "a non-empty string"


# --- the settings ---

@dataclass(frozen=True)
class HttpSettings:
    host: str = setting("127.0.0.1", "Address the HTTP server (webhook, console) listens on")
    port: int = setting(8080, "Port of the HTTP server", between(1, 65535))


@dataclass(frozen=True)
class IntakeSettings:
    token: str = setting("", "Shared secret a webhook caller sends as 'Authorization: Bearer <token>' "
                             "or 'X-Dialer-Token'; empty refuses every webhook call", secret=True)
    dedup_window_hours: float = setting(24.0, "Variant B dedup window seeded into the policy by `dialer init` "
                                              "(afterwards: dialer policy set dedup_window_hours N)",
                                        between(0, 24 * 365))
    max_body_bytes: int = setting(65536, "Largest webhook body accepted, in bytes", between(1024, 10_000_000))
    csv_batch_size: int = setting(5000, "Rows per transaction in CSV import", between(1, 100_000))
    # web forms (issue 16): site builders that only take a URL, and forms whose fields are not named like ours
    query_token: bool = setting(False, "Also accept the token as ?token=... in the webhook URL (for site "
                                       "builders that only let you paste a URL); it is never logged")
    fields: dict = setting(default_factory=dict, check=lambda v: lead_field_mapping(v),
                           help="Webhook field mapping: our field = their field name or dotted path, or a "
                                "list of candidates (case-insensitive, the first one present wins)")


LEAD_FIELD_NAMES = ("phone", "name", "order_number", "external_id", "product", "tag", "comment",
                    "preferred_time", "timezone", "region", "source")


def lead_field_mapping(value: Any) -> str | None:
    for ours, theirs in value.items():
        candidates = [theirs] if isinstance(theirs, str) else theirs
        if ours not in LEAD_FIELD_NAMES or not isinstance(candidates, list) or not candidates \
                or not all(isinstance(c, str) and c.strip() for c in candidates):
            return ("a table of lead field (" + ", ".join(LEAD_FIELD_NAMES) + ") = their field name, "
                    "dotted path or list of them")
    return None


@dataclass(frozen=True)
class FeedSettings:
    name: str = setting(dataclasses.MISSING, "Name of the feed (stored leads get source 'feed:<name>')", not_empty)
    url: str = setting(dataclasses.MISSING, "URL of the JSON feed", http_url_or_empty)
    interval_seconds: float = setting(30.0, "Seconds between polls", between(0.05, 86400))
    token: str = setting("", "Bearer token sent to the feed", secret=True)
    cursor_param: str = setting("cursor", "Query parameter that carries the cursor", not_empty)
    items_key: str = setting("items", "Key of the list of items in a page", not_empty)
    next_cursor_key: str = setting("next_cursor", "Key of the next cursor in a page", not_empty)
    id_key: str = setting("id", "Key of an item's unique id", not_empty)
    timeout_seconds: float = setting(10.0, "HTTP timeout of one poll", between(0.1, 600))
    field_map: dict = setting(default_factory=dict, help="Feed field name -> lead field name "
                                                         "(phone, name, order_number, product, comment, ...)")


@dataclass(frozen=True)
class AmiSettings:
    name: str = setting("pbx1", "Name of this Asterisk server in logs and attempt records", not_empty)
    host: str = setting("127.0.0.1", "Asterisk AMI host")
    port: int = setting(5038, "Asterisk AMI port", between(1, 65535))
    username: str = setting("dialer", "AMI user (manager.conf)", not_empty)
    secret: str = setting("", "AMI secret (manager.conf)", secret=True)
    action_timeout_seconds: float = setting(5.0, "Longest wait for an AMI action's response", between(0.1, 120))
    ping_interval_seconds: float = setting(10.0, "Seconds between watchdog Pings", between(0.1, 600))
    reconnect_min_seconds: float = setting(0.5, "First reconnect delay (doubles up to the maximum)",
                                           between(0.01, 600))
    reconnect_max_seconds: float = setting(30.0, "Longest reconnect delay", between(0.01, 3600))
    # faults (issue 11): the outcome of calls that ended while the daemon was blind (AMI cut, restart)
    cdr_csv_path: str = setting("", "Asterisk's CDR file written by cdr_custom (asterisk_conf/cdr_custom.conf), "
                                    "e.g. /var/log/asterisk/cdr-custom/dialer.csv; empty: no CDR is read")
    shared_with_other_daemons: bool = setting(False, "Other daemons dial through this same Asterisk (same "
                                                     "ami.name): share its operators through the database")


@dataclass(frozen=True)
class DialSettings:
    channel: str = setting("Local/{number}@dialer-trunk/n", "Channel to originate; {number} is the "
                                                           "customer's number as the trunk wants it",
                           not_empty)
    number_format: str = setting("e164", "How {number} is written: e164 (+79123456789), "
                                         "national (89123456789) or digits (79123456789)",
                                 one_of("e164", "national", "digits"))
    context: str = setting("dialer-outbound", "Dialplan context the answered customer goes to", not_empty)
    exten: str = setting("s", "Extension in that context", not_empty)
    priority: int = setting(1, "Priority in that context", between(1, 1000))
    caller_id: str = setting('"Shop" <74950000000>', "Caller ID shown to the customer")
    queue: str = setting("operators", "Asterisk queue whose members are the operators", not_empty)
    wrapup_limit_seconds: float = setting(300.0, "If an operator records no disposition within this "
                                                 "time after the call, the attempt gets no_decision",
                                          between(5, 86400))


@dataclass(frozen=True)
class CrmSettings:
    webhook_url: str = setting("", "CRM webhook receiving each outcome (empty: outbox only)",
                               http_url_or_empty)
    token: str = setting("", "Bearer token sent to the CRM", secret=True)
    timeout_seconds: float = setting(10.0, "HTTP timeout of one delivery", between(0.1, 600))
    max_failures: int = setting(8, "Failed deliveries before an outcome becomes a dead letter", between(1, 100))
    field_map: dict = setting(default_factory=dict, help="Our field name -> CRM field name "
                                                         "(an empty name leaves the field out)")
    retry_base_seconds: float = setting(60.0, "Delay after the first failed delivery; doubles with each "
                                              "failure (+-20% jitter)", between(0.01, 86400))
    retry_max_seconds: float = setting(1800.0, "Longest delay between two delivery tries", between(0.01, 86400))
    concurrency: int = setting(4, "Outcomes delivered at the same time (never two of one lead)", between(1, 100))
    poll_seconds: float = setting(5.0, "Longest sleep of the sender between two looks at the outbox",
                                  between(0.01, 3600))


# crm connectors (issue 20): Bitrix24 and RetailCRM, each a source of leads and a sink of outcomes
@dataclass(frozen=True)
class RetailCrmSettings:
    url: str = setting("", "Address of the RetailCRM account, e.g. https://myshop.retailcrm.ru (empty: off)",
                       http_url_or_empty)
    api_key: str = setting("", "RetailCRM API key (Settings > Integration > API access keys)", secret=True)
    sites: str = setting("", "Store codes to take orders from, comma-separated (empty: every store)")
    statuses: str = setting("new", "Order status codes to confirm by phone, comma-separated", not_empty)
    status_map: dict = setting(default_factory=dict, help="Our disposition (or call result) -> RetailCRM "
                                                          "status code; unmapped ones only add a comment")
    sum_field: str = setting("", "Custom order field that gets the sum the operator confirmed (empty: none)")
    interval_seconds: float = setting(60.0, "Seconds between two looks at new orders", between(0.05, 86400))
    timeout_seconds: float = setting(10.0, "HTTP timeout of one API call", between(0.1, 600))


@dataclass(frozen=True)
class Bitrix24Settings:
    webhook_url: str = setting("", "Inbound webhook URL, e.g. https://myshop.bitrix24.ru/rest/1/abc123/ "
                                   "(empty: off)", http_url_or_empty, secret=True)
    application_token: str = setting("", "application_token of the outgoing webhook (ONCRMLEADADD)",
                                     secret=True)
    lead_statuses: str = setting("NEW", "Lead STATUS_ID values to call, comma-separated", not_empty)
    order_field: str = setting("", "Lead field holding the order number, e.g. UF_CRM_ORDER (empty: none)")
    status_map: dict = setting(default_factory=dict, help="Our disposition (or call result) -> Bitrix24 "
                                                          "STATUS_ID; unmapped ones only add a comment")
    register_calls: bool = setting(True, "Register each call as telephony activity (telephony scope)")
    user_id: int = setting(1, "Bitrix24 user the registered calls belong to", between(1, 10**9))
    interval_seconds: float = setting(60.0, "Seconds between two catch-up reads of crm.lead.list",
                                      between(0.05, 86400))
    timeout_seconds: float = setting(10.0, "HTTP timeout of one API call", between(0.1, 600))


@dataclass(frozen=True)
class ExportSettings:
    at: str = setting("02:00", "Time of the nightly export", clock_time)
    timezone: str = setting("", "Zone of that time (empty: the center's zone)",
                            lambda v: None if v == "" else time_zone(v))
    directory: str = setting("exports", "Folder the nightly files are written to", not_empty)
    format: str = setting("csv", "Nightly file format", one_of("csv", "jsonl"))
    excel_bom: bool = setting(True, "Start CSV files with a UTF-8 BOM so Excel shows Cyrillic")
    csv_delimiter: str = setting(";", "CSV column separator: ';' opens in columns in a Russian-locale Excel, "
                                      "',' elsewhere", one_of(";", ",", "\t"))


@dataclass(frozen=True)
class AlertSettings:
    webhook_url: str = setting("", "URL that receives a POST for every alert of every kind, besides the rule "
                                   "table (empty: only the rules of `dialer alerts rules`)", http_url_or_empty)
    # alerts (issue 14): how alerts are delivered; who gets which kind is the rule table
    console_url: str = setting("", "Console address the alert texts link to (empty: recordings.public_url, "
                                   "else http://<http.host>:<http.port>)", http_url_or_empty)
    smtp_host: str = setting("", "SMTP server for e-mail alerts (empty: the one of [chains])")
    smtp_port: int = setting(25, "SMTP port of that server", between(1, 65535))
    smtp_starttls: bool = setting(False, "Upgrade the SMTP connection with STARTTLS")
    smtp_username: str = setting("", "SMTP login (empty: no AUTH)")
    smtp_password: str = setting("", "SMTP password", secret=True)
    smtp_ca_file: str = setting("", "CA certificates (PEM) the SMTP server's STARTTLS certificate is checked "
                                    "against, for a relay with a private CA (empty: the system's)")
    from_address: str = setting("dialer@example.com", "From: address of e-mail alerts", not_empty)
    telegram_bot_token: str = setting("", "Telegram bot token (from @BotFather) for Telegram alerts", secret=True)
    telegram_api_url: str = setting("https://api.telegram.org", "Telegram Bot API address", http_url_or_empty)
    timeout_seconds: float = setting(10.0, "Timeout of one delivery (SMTP, Telegram, webhook)", between(0.1, 600))
    max_failures: int = setting(10, "Failed deliveries before a notice becomes a dead letter", between(1, 100))
    retry_base_seconds: float = setting(30.0, "Delay after the first failed delivery; doubles with each failure",
                                        between(0.01, 86400))
    retry_max_seconds: float = setting(1800.0, "Longest delay between two delivery tries", between(0.01, 86400))
    poll_seconds: float = setting(10.0, "How often the daemon groups and sends alerts", between(0.01, 3600))
    ami_down_seconds: float = setting(60.0, "AMI disconnected this long raises ami_down", between(1, 86400))
    abandon_min_answered: int = setting(20, "Answered calls today before abandon_rate_above is judged",
                                        between(1, 100000))


@dataclass(frozen=True)
class ScriptsSettings:
    directory: str = setting("", "Folder of the call scripts catalog (*.yaml files); empty: the sample "
                                 "catalog shipped with the dialer")
    language: str = setting("ru", "Language of the scripts given to operators, unless the lead's extra "
                                  "field 'language' asks for another", not_empty)


@dataclass(frozen=True)
class ConsoleSettings:
    # console (issue 6): the operator console's sign-in
    secret: str = setting("", "Key that signs console session cookies (at least 16 characters); empty: a random "
                              "key per process, so sessions end when the daemon restarts", secret=True,
                          check=lambda v: None if v == "" or len(v) >= 16 else "empty or at least 16 characters")
    session_hours: float = setting(12.0, "Hours a console sign-in lasts", between(0.05, 24 * 31))
    teamlead_password: str = setting("", "Password of the team-lead page (login 'teamlead'), plain or as a "
                                          "scrypt$... hash; empty: nobody can open the team-lead page", secret=True,
                                     check=lambda v: None if v == "" or len(v) >= 8
                                     else "empty or at least 8 characters")


@dataclass(frozen=True)
class ZonesSettings:
    # numbering plan (issue 12): where `dialer zones update` keeps a newer registry table
    registry_file: str = setting("", "Numbering-plan table written by `dialer zones update` (gzip CSV) and used "
                                     "for the lead's zone; empty or missing file: the snapshot shipped with "
                                     "the dialer")


@dataclass(frozen=True)
class ChainsSettings:
    # touch chains (issue 19): e-mail for the leads the calls do not reach
    enabled: bool = setting(True, "Run the e-mail chains (enrol leads, queue and send e-mails)")
    directory: str = setting("", "Folder of the e-mail catalog (chains.yaml, templates/); empty: the one "
                                 "shipped with the dialer")
    smtp_host: str = setting("", "SMTP server the e-mails go out through (empty: the daemon runs no chain)")
    smtp_port: int = setting(25, "SMTP port", between(1, 65535))
    smtp_starttls: bool = setting(False, "Upgrade the SMTP connection with STARTTLS")
    smtp_username: str = setting("", "SMTP login (empty: no AUTH)")
    smtp_password: str = setting("", "SMTP password", secret=True)
    smtp_timeout_seconds: float = setting(30.0, "SMTP timeout of one delivery", between(0.1, 600))
    from_address: str = setting("shop@example.com", "From: address of the e-mails", not_empty)
    public_url: str = setting("http://127.0.0.1:8080", "The daemon's address as customers reach it: base of "
                                                     "the unsubscribe links", http_url_or_empty)
    shop_name: str = setting("ДомТехника", "The shop's name in the e-mails", not_empty)
    site_url: str = setting("https://shop.example/order", "Where an e-mail's call to action leads",
                            http_url_or_empty)
    language: str = setting("ru", "Language of the e-mails unless the lead's extra field 'language' says "
                                  "otherwise", one_of("ru", "en"))
    max_failures: int = setting(8, "Failed SMTP deliveries before an e-mail becomes a dead letter",
                                between(1, 100))
    retry_base_seconds: float = setting(60.0, "Delay after the first failed delivery; doubles with each failure",
                                        between(0.01, 86400))
    retry_max_seconds: float = setting(3600.0, "Longest delay between two delivery tries", between(0.01, 86400))
    poll_seconds: float = setting(60.0, "How often the daemon enrols leads and queues due e-mails",
                                  between(0.01, 3600))


@dataclass(frozen=True)
class LedgerSettings:
    # consent and caller-ID ledger (issue 19): each attempt shows a number from this pool, and records it
    caller_ids: dict = setting(default_factory=dict, help="Caller-ID pool: 'source/product', 'source' or '*' "
                                                          "(first match) -> list of numbers shown to customers",
                               check=lambda v: None if all(isinstance(n, list) and n and all(
                                   isinstance(x, str) and re.fullmatch(r"\+?\d{5,15}", x) for x in n)
                                   for n in v.values()) else "lists of phone numbers such as [\"+74950000000\"]")


@dataclass(frozen=True)
class RecordingsSettings:
    # recordings (issue 14): MixMonitor's files, their links and how long they are kept
    directory: str = setting("recordings", "Folder the PBX writes call recordings to (<attempt id>.wav; Asterisk: "
                                           "/var/spool/asterisk/monitor)", not_empty)
    public_url: str = setting("", "Console address the CRM and the nightly file link recordings to, e.g. "
                                  "https://dialer.example.ru (empty: http://<http.host>:<http.port>)",
                              http_url_or_empty)
    retention_days: int = setting(0, "Recordings older than this many days are deleted by `dialer recordings "
                                     "prune` and the daemon's nightly run (0: kept forever)", between(0, 36500))


REPORT_PERIODS = ("today", "yesterday", "last_7_days", "last_week", "this_month", "last_month")


def cron_expression(value: Any) -> str | None:
    from apscheduler.triggers.cron import CronTrigger
    try:
        CronTrigger.from_crontab(value)
    except (ValueError, TypeError) as exc:
        return f"a crontab line of 5 fields (minute hour day month weekday), e.g. '0 8 * * 1-5' ({exc})"
    return None


def email_list(value: Any) -> str | None:
    addresses = [a.strip() for a in value.split(",")]
    if all(re.fullmatch(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+", a) for a in addresses):
        return None
    return "e-mail addresses, comma-separated"


@dataclass(frozen=True)
class ReportScheduleSettings:
    # scheduled reports (issue 14): one [[reports.schedule]] table each
    name: str = setting(dataclasses.MISSING, "Name of the scheduled report (in the subject and the file name)",
                        not_empty)
    cron: str = setting(dataclasses.MISSING, "When, as a crontab line in the center's zone, e.g. '0 8 * * *'",
                        cron_expression)
    recipients: str = setting(dataclasses.MISSING, "Who gets it: e-mail addresses, comma-separated", email_list)
    period: str = setting("yesterday", "Which days the report covers, counted from the run's date",
                          one_of(*REPORT_PERIODS))
    by: str = setting("", "Breakdown as for `dialer report --by`, e.g. 'day,operator' (empty: totals)")
    format: str = setting("xlsx", "Attached file: xlsx, csv, or png (the charts)", one_of("xlsx", "csv", "png"))


@dataclass(frozen=True)
class ReportsSettings:
    # reports (issue 13): the topics an operator may give a conversation result
    topics: str = setting("доставка, цена, качество, оплата, гарантия, другое",
                          "Topics a disposition may carry (comma-separated; empty: any topic refused)")
    schedule: tuple = setting(default_factory=tuple, help="Reports e-mailed on a schedule: [[reports.schedule]] "
                                                          "tables in the TOML file")


@dataclass(frozen=True)
class MetricsSettings:
    # metrics (issue 17): Prometheus /metrics
    enabled: bool = setting(True, "Serve Prometheus metrics at /metrics")
    port: int = setting(0, "Port of its own for /metrics (0: the HTTP server's port, next to the webhook)",
                        between(0, 65535))
    host: str = setting("127.0.0.1", "Address of that port of its own")


@dataclass(frozen=True)
class SecuritySettings:
    # safety (issue 17): sign-in lockout, webhook rate limit
    signin_account_failures: int = setting(5, "Failed console sign-ins of one login before it is locked",
                                           between(1, 1000))
    signin_address_failures: int = setting(20, "Failed console sign-ins from one address before it is locked",
                                           between(1, 100000))
    signin_lockout_seconds: float = setting(30.0, "First lockout; doubles with each further failure",
                                            between(1, 86400))
    signin_lockout_max_seconds: float = setting(900.0, "Longest lockout", between(1, 7 * 86400))
    webhook_rate_per_second: float = setting(20.0, "Webhook requests per second allowed per token (average)",
                                             between(0.01, 100000))
    webhook_burst: int = setting(200, "Webhook requests one token may send at once before the rate applies",
                                 between(1, 1000000))


@dataclass(frozen=True)
class ServiceSettings:
    # service (issue 17): running under systemd
    log_format: str = setting("text", "Log lines as text or as JSON objects (for log shippers)",
                              one_of("text", "json"))


@dataclass(frozen=True)
class RetentionSettings:
    # housekeeping (issue 17): `dialer prune`, nightly in the daemon
    sent_outbox_days: int = setting(90, "Delete outbox rows delivered to the CRM (and exported) this many days "
                                        "ago; 0 keeps them", between(0, 36500))
    attempt_events_days: int = setting(180, "Delete the event log of attempts that ended this many days ago "
                                            "(the attempt and its result stay); 0 keeps it", between(0, 36500))
    export_files_days: int = setting(365, "Delete nightly export files this many days old; 0 keeps them",
                                     between(0, 36500))
    at: str = setting("03:30", "Time of the daemon's nightly prune, center zone (empty: not scheduled; use the "
                               "systemd timer or nothing)", lambda v: None if v == "" else clock_time(v))


@dataclass(frozen=True)
class Settings:
    db_url: str = setting("sqlite:///dialer.db", "Database URL (SQLite file or PostgreSQL)", db_url)
    default_region: str = setting("RU", "Region for phone numbers written without a country code",
                                  region_code)
    center_timezone: str = setting("Europe/Moscow", "The call center's time zone", time_zone)
    log_level: str = setting("INFO", "Log level", one_of("DEBUG", "INFO", "WARNING", "ERROR"))
    daemon_id: str = setting("", "Name of this daemon in claims (empty: host name and process id)")
    http: HttpSettings = setting(default_factory=HttpSettings)
    intake: IntakeSettings = setting(default_factory=IntakeSettings)
    ami: AmiSettings = setting(default_factory=AmiSettings)
    dial: DialSettings = setting(default_factory=DialSettings)
    crm: CrmSettings = setting(default_factory=CrmSettings)
    export: ExportSettings = setting(default_factory=ExportSettings)
    alerts: AlertSettings = setting(default_factory=AlertSettings)
    scripts: ScriptsSettings = setting(default_factory=ScriptsSettings)
    console: ConsoleSettings = setting(default_factory=ConsoleSettings)   # console (issue 6)
    zones: ZonesSettings = setting(default_factory=ZonesSettings)         # numbering plan (issue 12)
    chains: ChainsSettings = setting(default_factory=ChainsSettings)      # touch chains (issue 19)
    ledger: LedgerSettings = setting(default_factory=LedgerSettings)      # caller-ID pool (issue 19)
    retailcrm: RetailCrmSettings = setting(default_factory=RetailCrmSettings)   # crm connectors (issue 20)
    bitrix24: Bitrix24Settings = setting(default_factory=Bitrix24Settings)      # crm connectors (issue 20)
    recordings: RecordingsSettings = setting(default_factory=RecordingsSettings)   # recordings (issue 14)
    reports: ReportsSettings = setting(default_factory=ReportsSettings)   # reports (issue 13)
    metrics: MetricsSettings = setting(default_factory=MetricsSettings)   # metrics (issue 17)
    security: SecuritySettings = setting(default_factory=SecuritySettings)   # safety (issue 17)
    service: ServiceSettings = setting(default_factory=ServiceSettings)   # service (issue 17)
    retention: RetentionSettings = setting(default_factory=RetentionSettings)   # housekeeping (issue 17)
    feeds: tuple = setting(default_factory=tuple, help="Pull sources: [[feeds]] tables in the TOML file")


# Fields of a section that hold a list of tables ([[reports.schedule]]): the class of one table.
TABLE_LISTS: dict[str, dict[str, type]] = {"reports": {"schedule": ReportScheduleSettings}}

SECTIONS: dict[str, type] = {
    "http": HttpSettings, "intake": IntakeSettings, "ami": AmiSettings, "dial": DialSettings,
    "crm": CrmSettings, "export": ExportSettings, "alerts": AlertSettings,
    "scripts": ScriptsSettings, "console": ConsoleSettings,
    "zones": ZonesSettings,
    "chains": ChainsSettings, "ledger": LedgerSettings,   # touch chains, caller-ID pool (issue 19)
    "retailcrm": RetailCrmSettings, "bitrix24": Bitrix24Settings,   # crm connectors (issue 20)
    "recordings": RecordingsSettings,
    "reports": ReportsSettings,   # reports (issue 13)
    "metrics": MetricsSettings, "security": SecuritySettings, "service": ServiceSettings,   # issue 17
    "retention": RetentionSettings,   # housekeeping (issue 17)
}


@dataclass(frozen=True)
class SettingInfo:
    key: str          # dotted, e.g. "intake.token"
    env: str          # e.g. DIALER_INTAKE_TOKEN
    type: type
    default: Any
    help: str
    secret: bool


def describe() -> list[SettingInfo]:
    """Every scalar key, for --help, the README and `dialer config`."""
    rows = []
    for f in dataclasses.fields(Settings):
        if f.name in SECTIONS:
            for sf in dataclasses.fields(SECTIONS[f.name]):
                if sf.name in TABLE_LISTS.get(f.name, {}):
                    continue   # a list of tables: only in the TOML file
                rows.append(_info(f"{f.name}.{sf.name}", sf))
        elif f.name != "feeds":
            rows.append(_info(f.name, f))
    return rows


def _info(key: str, f: dataclasses.Field) -> SettingInfo:
    default = f.default if f.default is not dataclasses.MISSING else (
        f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
    return SettingInfo(key, env_name(key), _field_type(f), default, f.metadata.get("help", ""),
                       f.metadata.get("secret", False))


def env_name(key: str) -> str:
    return ENV_PREFIX + key.replace(".", "_").upper()


def load_settings(config_path: str | os.PathLike | None = None,
                  env: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build the settings: defaults < TOML file < DIALER_* environment < overrides (CLI flags)."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}

    path = config_path or env.get(ENV_PREFIX + "CONFIG")
    if path:
        data = _read_toml(Path(path), required=True)
    elif Path(DEFAULT_CONFIG_FILE).is_file():
        data = _read_toml(Path(DEFAULT_CONFIG_FILE), required=False)

    _check_known_keys(data)
    for info in describe():
        if info.env in env:
            _put(data, info.key, _from_string(info, env[info.env]))
    for key, value in (overrides or {}).items():
        if value is not None:
            _put(data, key, value)
    return _build(data)


def _read_toml(path: Path, required: bool) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if required:
            raise SettingsError(f"config file {path} does not exist") from None
        return {}
    except OSError as exc:
        raise SettingsError(f"config file {path} cannot be read: {exc.strerror}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SettingsError(f"config file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None


def _check_known_keys(data: Mapping[str, Any]) -> None:
    top = {f.name for f in dataclasses.fields(Settings)}
    for key, value in data.items():
        if key not in top:
            homes = [f"[{name}] {key}" for name, cls in SECTIONS.items()
                     if key in {f.name for f in dataclasses.fields(cls)}]
            if homes:
                raise SettingsError(f"unknown setting '{key}' at the top level: it belongs in a section, "
                                    f"write it as {' or '.join(homes)}")
            raise SettingsError(f"unknown setting '{key}' (top level, outside any [section]); known there: "
                                f"{', '.join(sorted(top - set(SECTIONS)))}; sections: "
                                f"{', '.join(f'[{name}]' for name in SECTIONS)}")
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise SettingsError(f"'{key}' must be a table ([{key}]) of settings")
            known = {f.name for f in dataclasses.fields(SECTIONS[key])}
            for sub in value:
                if sub not in known:
                    raise SettingsError(f"unknown setting '{key}.{sub}'; known in [{key}]: "
                                        + ", ".join(sorted(known)))


def _put(data: dict[str, Any], key: str, value: Any) -> None:
    if "." in key:
        section, name = key.split(".", 1)
        data.setdefault(section, {})[name] = value
    else:
        data[key] = value


def _from_string(info: SettingInfo, text: str) -> Any:
    """Environment values are strings; turn them into the key's type or say what is allowed."""
    try:
        if info.type is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if info.type is int:
            return int(text)
        if info.type is float:
            return float(text)
        if info.type is dict:
            value = json.loads(text)
            if not isinstance(value, dict):
                raise ValueError
            return value
    except ValueError:
        shown = "***" if info.secret else repr(text)  # a secret's value is never printed, even when wrong
        raise SettingsError(f"{info.env}={shown}: {info.key} must be {_type_words(info.type)}") from None
    return text


def _build(data: Mapping[str, Any]) -> Settings:
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        if f.name not in data:
            continue
        if f.name in SECTIONS:
            kwargs[f.name] = _build_section(SECTIONS[f.name], data[f.name], f.name)
        elif f.name == "feeds":
            kwargs["feeds"] = _build_feeds(data["feeds"])
        else:
            kwargs[f.name] = _coerce(f.name, f, data[f.name])
    settings = Settings(**kwargs)
    names = [feed.name for feed in settings.feeds]
    if len(names) != len(set(names)):
        raise SettingsError("feeds: every [[feeds]] entry needs its own name")
    return settings


def _build_section(cls: type, values: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(values, Mapping):
        raise SettingsError(f"'{prefix}' must be a table of settings")
    kwargs = {}
    for f in dataclasses.fields(cls):
        item_class = TABLE_LISTS.get(prefix, {}).get(f.name)
        if item_class is not None and f.name in values:
            kwargs[f.name] = _build_tables(item_class, values[f.name], f"{prefix}.{f.name}")
        elif f.name in values:
            kwargs[f.name] = _coerce(f"{prefix}.{f.name}", f, values[f.name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SettingsError(f"{prefix}.{f.name} is required")
    return cls(**kwargs)


def _build_tables(cls: type, value: Any, prefix: str, unique_names: bool = True) -> tuple:
    """[[section.name]] tables: each built and checked like a section, names unique (unless told)."""
    if not isinstance(value, list):
        raise SettingsError(f"{prefix} must be a list of [[{prefix}]] tables")
    known = {f.name for f in dataclasses.fields(cls)}
    items = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise SettingsError(f"{prefix}[{i}] must be a table")
        for key in item:
            if key not in known:
                raise SettingsError(f"unknown setting '{prefix}[{i}].{key}'; known: {', '.join(sorted(known))}")
        items.append(_build_section(cls, item, f"{prefix}[{i}]"))
    names = [getattr(x, "name", i) for i, x in enumerate(items)]
    if unique_names and len(names) != len(set(names)):
        raise SettingsError(f"{prefix}: every [[{prefix}]] entry needs its own name")
    return tuple(items)


def _build_feeds(value: Any) -> tuple[FeedSettings, ...]:
    return _build_tables(FeedSettings, value, "feeds", unique_names=False)


def _coerce(key: str, f: dataclasses.Field, value: Any) -> Any:
    expected = _field_type(f)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, expected) and not (expected in (int, float) and isinstance(value, bool))
    shown = "the value given (a secret, not shown)" if f.metadata.get("secret") else _hide_password(repr(value))
    if not ok:
        raise SettingsError(f"{key} must be {_type_words(expected)}, got {shown}")
    check = f.metadata.get("check")
    if check is not None:
        allowed = check(value)
        if allowed is not None:
            raise SettingsError(f"{key}: {shown} is not allowed; expected {allowed}")
    return value


def _hide_password(text: str) -> str:
    """A URL's password (postgresql://user:password@host) is a secret too."""
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)


def _field_type(f: dataclasses.Field) -> type:
    names = {"str": str, "int": int, "float": float, "bool": bool, "dict": dict, "tuple": tuple}
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    return names.get(t, object)


def _type_words(t: type) -> str:
    return {str: "a string", int: "a whole number", float: "a number", bool: "true or false",
            dict: "a table / JSON object"}.get(t, t.__name__)


def resolved_daemon_id(settings: Settings) -> str:
    if settings.daemon_id:
        return settings.daemon_id
    import socket
    return f"{socket.gethostname()}:{os.getpid()}"
