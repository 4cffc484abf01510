"""Phone numbers: normalization to E.164 (with extension), masking, and the zones a number may be in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from phonenumbers import timezone as phone_timezone
from phonenumbers.re_util import enable_pattern_cache

from kernel.errors import InvalidPhone
from leads.lead import InvalidReason

MAX_RAW_LENGTH = 100

# phonenumbers otherwise looks its metadata's patterns up in the re module's cache at every use:
# keeping them compiled makes each number ~1.5 us cheaper (a 1M-row CSV import: ~1.5 s).
enable_pattern_cache()

# Types a call center may call: a person's line. Toll-free, premium and the like are never a customer.
CALLABLE_TYPES = frozenset({
    PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.VOIP, PhoneNumberType.PERSONAL_NUMBER,
})

# Only separators: such strings take the fast path below (phonenumbers.parse costs ~20 us a number).
_PLAIN = re.compile(r"^\+?[0-9 \u00a0().\-]+$")
_NON_DIGIT = re.compile(r"\D")
_TRUNK_PREFIX_8 = frozenset({"RU", "KZ"})  # "8 (912) ..." is the national form there


@dataclass(frozen=True)
class Phone:
    e164: str              # +79123456789
    extension: str | None  # "123" for "... доб. 123"

    def __str__(self) -> str:
        return self.e164 + (f" ext. {self.extension}" if self.extension else "")


def normalize_phone(raw: str | None, default_region: str = "RU") -> Phone:
    """The number in E.164, or InvalidPhone with the reason the lead cannot be called."""
    if raw is None or not str(raw).strip():
        raise InvalidPhone(InvalidReason.NO_PHONE)
    text = str(raw).strip()
    if len(text) > MAX_RAW_LENGTH:
        raise InvalidPhone(InvalidReason.UNPARSABLE)
    number = _fast_parse(text, default_region) or _slow_parse(text, default_region)
    kind = phonenumbers.number_type(number)   # UNKNOWN exactly when the number is not valid
    if kind == PhoneNumberType.UNKNOWN:
        raise InvalidPhone(InvalidReason.NOT_VALID)
    if kind not in CALLABLE_TYPES:
        raise InvalidPhone(InvalidReason.NOT_CALLABLE_TYPE)
    if _looks_fake(str(number.national_number)):
        raise InvalidPhone(InvalidReason.FAKE)
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return Phone(e164, number.extension or None)


def _fast_parse(text: str, region: str) -> phonenumbers.PhoneNumber | None:
    """The common Russian spellings ("8 (912) 345-67-89", "+7 912 ...", "9123456789") without parse().

    Returns None whenever the string is not one of those shapes; the full parser decides then.
    Equivalence with phonenumbers.parse is checked by a property test.
    """
    if region not in _TRUNK_PREFIX_8 or not _PLAIN.match(text):
        return None
    digits = _NON_DIGIT.sub("", text)
    if text.startswith("+"):
        if len(digits) == 11 and digits[0] == "7" and digits[1] != "0":
            return phonenumbers.PhoneNumber(country_code=7, national_number=int(digits[1:]))
        return None
    if len(digits) == 11 and digits[0] == "8" and digits[1] in "3489":
        national = digits[1:]
    elif len(digits) == 10 and digits[0] == "9":
        national = digits
    else:
        return None
    return phonenumbers.PhoneNumber(country_code=7, national_number=int(national))


def _slow_parse(text: str, region: str) -> phonenumbers.PhoneNumber:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise InvalidPhone(InvalidReason.UNPARSABLE) from None


def _looks_fake(national: str) -> bool:
    return len(set(national)) == 1 or national in "01234567890" or national in "98765432109"


def mask_phone(phone: str | None) -> str:
    """+79123456789 -> +7912***6789: enough to tell numbers apart in a log, not enough to call."""
    if not phone:
        return "-"
    if len(phone) <= 8:
        return phone[:2] + "***"
    return phone[:5] + "***" + phone[-4:]


@lru_cache(maxsize=65536)
def zones_for_number(e164: str) -> tuple[str, ...]:
    """Every IANA zone the number may be in (one for most landlines, the whole country for mobiles)."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = phone_timezone.time_zones_for_number(number)
    return tuple(z for z in zones if z != phone_timezone.UNKNOWN_TIMEZONE)


def format_for_dialing(e164: str, style: str) -> str:
    """How the trunk wants the number: e164 (+79123456789), digits (79123456789), national (89123456789)."""
    if style == "e164":
        return e164
    if style == "digits":
        return e164.lstrip("+")
    number = phonenumbers.parse(e164, None)
    return _NON_DIGIT.sub("", phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL))
