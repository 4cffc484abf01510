"""Who is at the console: operators' passwords, the team lead's password, signed session cookies.

Passwords are hashed with scrypt and a random salt per password, stored as ONE string
(`scrypt$16384$8$1$<salt>$<hash>`, base64) in Operator.password_hash. A session is a cookie
`<payload>.<signature>`: the payload names the subject (an operator id, or the team lead), the
expiry and a fingerprint of the password hash it was issued against, so setting a new password
ends that operator's sessions; the signature is HMAC-SHA256 with `console.secret`.

The team lead signs in with the login `teamlead` and `console.teamlead_password` (plain text or a
hash in the format above); with that setting empty nobody can open the team-lead page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select

from kernel.clock import require_aware
from kernel.db.engine import Database
from kernel.db.models import Operator
from kernel.errors import NotFound, UsageError

log = logging.getLogger("dialer.console.auth")

SCHEME = "scrypt"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1   # about 16 MB and a few tens of ms per check
SALT_BYTES = 16
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
TEAMLEAD_LOGIN = "teamlead"
TEAMLEAD_NAME = "Руководитель смены"
COOKIE_NAME = "dialer_console"


class Role(StrEnum):
    OPERATOR = "operator"
    TEAMLEAD = "teamlead"


@dataclass(frozen=True)
class Identity:
    """The person behind a request."""

    role: Role
    name: str
    operator_id: int | None = None
    interface: str | None = None

    @property
    def subject(self) -> str:
        return f"op:{self.operator_id}" if self.role is Role.OPERATOR else TEAMLEAD_LOGIN


# ---------------------------------------------------------------- password hashes

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _normalized(password: str) -> bytes:
    # NFC: "й" typed as one character or as "и" + combining breve is the same password.
    return unicodedata.normalize("NFC", password).encode("utf-8")


def check_password_rules(password: str) -> None:
    """UsageError unless the password is 8 to 1024 characters and not only spaces."""
    if not isinstance(password, str) or not password.strip():
        raise UsageError("the password is empty")
    if len(password) < MIN_PASSWORD:
        raise UsageError(f"the password is {len(password)} characters long; at least {MIN_PASSWORD}")
    if len(password) > MAX_PASSWORD:
        raise UsageError(f"the password is longer than {MAX_PASSWORD} characters")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The string to store for this password (a new random salt each time)."""
    check_password_rules(password)
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = hashlib.scrypt(_normalized(password), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"{SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def is_password_hash(text: str | None) -> bool:
    return _parse_hash(text) is not None


def _parse_hash(stored: str | None) -> tuple[int, int, int, bytes, bytes] | None:
    parts = (stored or "").split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        return None
    if not (2 <= n <= 2 ** 20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16 and salt and digest):
        return None
    return n, r, p, salt, digest


_DUMMY_HASH = f"{SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(b'0' * SALT_BYTES)}${_b64(b'0' * 32)}"


def verify_password(password: str, stored: str | None) -> bool:
    """Does the password match the stored hash? Takes as long for an unknown login as for a known one."""
    parsed = _parse_hash(stored)
    if parsed is None:
        parsed = _parse_hash(_DUMMY_HASH)
        stored = None
    n, r, p, salt, digest = parsed
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        return False
    computed = hashlib.scrypt(_normalized(password), salt=salt, n=n, r=r, p=p, dklen=len(digest),
                              maxmem=256 * 1024 * 1024)
    return stored is not None and hmac.compare_digest(computed, digest)


def fingerprint(password_hash: str) -> str:
    """A short tag of a stored hash: a session remembers it, so a new password ends old sessions."""
    return hashlib.sha256(password_hash.encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------- operators' passwords

def _find_operator(session, ref: str) -> Operator:
    ref = str(ref).strip()
    if ref.isdigit():
        row = session.get(Operator, int(ref))
    else:
        row = session.scalar(select(Operator).where(Operator.interface == ref))
        if row is None:   # people type pjsip/op1; Asterisk writes PJSIP/op1
            rows = session.scalars(select(Operator).where(func.lower(Operator.interface) == ref.lower())).all()
            row = rows[0] if len(rows) == 1 else None
    if row is None:
        raise NotFound(f"no operator with id or interface {ref!r}")
    return row


def set_operator_password(db: Database, ref: str, password: str) -> tuple[int, str, str]:
    """Store a new password for the operator with this id or interface; returns (id, name, interface).

    Their open console sessions end (the session's fingerprint no longer matches).
    """
    stored = hash_password(password)
    with db.write() as session:
        row = _find_operator(session, ref)
        row.password_hash = stored
        log.info("operator.password_set id=%s interface=%s", row.id, row.interface)
        return row.id, row.name, row.interface


@dataclass(frozen=True)
class Principal:
    """A signed-in identity and the fingerprint its session is bound to."""

    identity: Identity
    fingerprint: str


def authenticate(db: Database, login: str, password: str, teamlead_hash: str | None) -> Principal | None:
    """The identity for this login and password, or None (unknown login, wrong password, no password set,
    inactive operator: all answered the same way). Blocking (scrypt, a database read): run it in a thread."""
    login = (login or "").strip()
    if login.lower() == TEAMLEAD_LOGIN:
        if verify_password(password, teamlead_hash):   # no team-lead password set: never matches
            return Principal(Identity(Role.TEAMLEAD, TEAMLEAD_NAME), fingerprint(teamlead_hash))
        log.warning("console.sign_in_refused login=teamlead")
        return None
    row = None
    if login:
        with db.read() as session:
            try:
                row = _find_operator(session, login)
            except NotFound:
                row = None
            if row is not None:
                session.expunge(row)
    stored = row.password_hash if row is not None else None
    if not verify_password(password, stored) or row is None or not row.active:
        log.warning("console.sign_in_refused login=%r reason=%s", login[:100],
                    "unknown login" if row is None else "no password set" if not stored
                    else "inactive operator" if not row.active else "wrong password")
        return None
    log.info("console.signed_in operator_id=%s interface=%s", row.id, row.interface)
    return Principal(Identity(Role.OPERATOR, row.name, row.id, row.interface), fingerprint(stored))


def current_identity(db: Database, subject: str, session_fingerprint: str, teamlead_hash: str | None
                     ) -> Identity | None:
    """The identity a valid session cookie names, if it still stands: the operator exists, is active and
    has the password the session was issued against."""
    if subject == TEAMLEAD_LOGIN:
        if teamlead_hash and hmac.compare_digest(fingerprint(teamlead_hash), session_fingerprint):
            return Identity(Role.TEAMLEAD, TEAMLEAD_NAME)
        return None
    if not subject.startswith("op:") or not subject[3:].isdigit():
        return None
    with db.read() as session:
        row = session.get(Operator, int(subject[3:]))
        if row is None or not row.active or not row.password_hash:
            return None
        if not hmac.compare_digest(fingerprint(row.password_hash), session_fingerprint):
            return None
        return Identity(Role.OPERATOR, row.name, row.id, row.interface)


# ---------------------------------------------------------------- session cookies

@dataclass(frozen=True)
class SessionClaims:
    subject: str          # "op:<id>" or "teamlead"
    fingerprint: str
    expires: datetime


class SessionSigner:
    """Issues and reads session cookie values: `<base64 JSON payload>.<base64 HMAC-SHA256>`."""

    def __init__(self, secret: bytes, lifetime: timedelta) -> None:
        if len(secret) < 16:
            raise ValueError("the session secret must be at least 16 bytes")
        self._secret = secret
        self.lifetime = lifetime

    def issue(self, principal: Principal, now: datetime) -> str:
        require_aware(now)
        expires = int((now + self.lifetime).timestamp())
        payload = _b64(json.dumps({"sub": principal.identity.subject, "fp": principal.fingerprint,
                                   "exp": expires}, separators=(",", ":")).encode("utf-8"))
        return f"{payload}.{self._sign(payload)}"

    def read(self, value: str | None, now: datetime) -> SessionClaims | None:
        """The claims of a genuine, unexpired cookie value; None for anything else."""
        require_aware(now)
        if not value or value.count(".") != 1 or len(value) > 2000:
            return None
        payload, signature = value.split(".")
        if not hmac.compare_digest(self._sign(payload), signature):
            return None
        try:
            data = json.loads(_unb64(payload))
            subject, fp, expires = str(data["sub"]), str(data["fp"]), int(data["exp"])
        except (ValueError, KeyError, TypeError):
            return None
        if now.timestamp() >= expires:
            return None
        return SessionClaims(subject, fp, datetime.fromtimestamp(expires, tz=now.tzinfo))

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode("ascii"), hashlib.sha256).digest())


def session_secret(configured: str) -> bytes:
    """The configured secret, or a random one for this process (sessions then end on restart)."""
    return configured.encode("utf-8") if configured else os.urandom(32)


def teamlead_password_hash(configured: str) -> str | None:
    """The team lead's password as a hash: the setting's hash as is, plain text hashed now; None when empty."""
    if not configured:
        return None
    return configured if is_password_hash(configured) else hash_password(configured)
