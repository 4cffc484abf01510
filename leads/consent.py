"""Where a lead's permission to call came from, as the site or file sent it (issue 19).

The site sends the consent with the lead (JSON keys or CSV columns, kept in the lead's extra): the form
id, the consent text or its version, the customer's IP and browser (user agent) when it knows them. The
lead's own source and receipt time complete the record. Later changes (an unsubscribe, the DNC list,
"write, don't call") are rows of the consents table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

# Our name -> the keys a site may use for it.
CONSENT_KEYS = {
    "form_id": ("form_id", "form"),
    "consent_text": ("consent_text", "consent"),
    "consent_version": ("consent_version",),
    "ip": ("ip", "client_ip", "customer_ip"),
    "user_agent": ("user_agent", "ua"),
}


def consent_of(source: str | None, received_at: datetime | None, extra: Mapping[str, Any] | None
               ) -> dict[str, Any]:
    values: dict[str, Any] = {"source": source, "at": received_at}
    for name, keys in CONSENT_KEYS.items():
        found = next((extra[key] for key in keys if extra and extra.get(key) not in (None, "")), None)
        values[name] = None if found is None else str(found)[:2000]
    return values


_WORDS = {
    "en": {"form": "form", "consent": "consent", "none": "no consent text sent"},
    "ru": {"form": "форма", "consent": "согласие", "none": "текст согласия не передан"},
}


def consent_line(consent: Mapping[str, Any], language: str = "en") -> str:
    """One line for a card or a trail: 'site, form callback-1, consent v3, IP 203.0.113.7, Chrome/...'.

    The CLI's trail is English; the operator console shows it in the operator's language (`ru`)."""
    words = _WORDS.get(language, _WORDS["en"])
    parts = [f"{consent.get('source') or '?'}"]
    if consent.get("form_id"):
        parts.append(f"{words['form']} {consent['form_id']}")
    if consent.get("consent_version"):
        parts.append(f"{words['consent']} {consent['consent_version']}")
    elif consent.get("consent_text"):
        text = str(consent["consent_text"])
        parts.append(f"{words['consent']} «{text[:60]}{'…' if len(text) > 60 else ''}»")
    else:
        parts.append(words["none"])
    if consent.get("ip"):
        parts.append(f"IP {consent['ip']}")
    if consent.get("user_agent"):
        parts.append(str(consent["user_agent"])[:80])
    return ", ".join(parts)


# What the webhook's OpenAPI schema says about the fields this ledger and the e-mail chains read
# (any other key is kept in the lead's extra too; these are the ones with a meaning).
LEDGER_FIELD_DOCS = {
    "email": {"type": ["string", "null"], "description": "Customer's e-mail: the touch chains write to it"},
    "write_instead": {"type": ["boolean", "string", "null"], "description": (
        "true: 'do not call me, write to me' - this lead and every open lead with the phone go to e-mail "
        "only (also contact_by: \"email\")")},
    "contact_by": {"type": ["string", "null"], "description": "\"email\": the same as write_instead: true"},
    "language": {"type": ["string", "null"], "description": "ru or en: e-mails and the promised call sentence"},
    "form_id": {"type": ["string", "null"], "description": "Consent ledger: the site form the request came from"},
    "consent_text": {"type": ["string", "null"], "description": "Consent ledger: the consent text the customer "
                                                                 "agreed to"},
    "consent_version": {"type": ["string", "null"], "description": "Consent ledger: or the version of that text"},
    "ip": {"type": ["string", "null"], "description": "Consent ledger: the customer's IP address, if known"},
    "user_agent": {"type": ["string", "null"], "description": "Consent ledger: the customer's browser, if known"},
}
