"""Pure rules between Bitrix24 leads and our leads and outcomes (no I/O)."""

from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import quote

# telephony.externalcall.finish STATUS_CODE: 200 talked, 304 missed, 486 busy, 603 declined, 484 bad number
CALL_STATUS = {"connected": 200, "busy": 486, "rejected": 603, "invalid_number": 484}


def phone_of(lead: Mapping[str, Any]) -> str | None:
    phones = lead.get("PHONE")
    for entry in phones if isinstance(phones, list) else ():
        if isinstance(entry, dict) and str(entry.get("VALUE") or "").strip():
            return str(entry["VALUE"]).strip()
    return None


def lead_as_item(lead: Mapping[str, Any], order_field: str = "") -> dict[str, Any]:
    """A Bitrix24 lead (crm.lead.get / crm.lead.list) as a feed item; `id` is the lead's ID."""
    name = " ".join(str(lead.get(k) or "").strip() for k in ("NAME", "LAST_NAME")).strip() or lead.get("TITLE")
    # no phone: stored as an invalid lead (seen in reports) instead of holding the catch-up on this page
    item = {"id": lead.get("ID"), "phone": phone_of(lead) or "", "name": name if isinstance(name, str) else None,
            "order_number": (str(lead.get(order_field)) if order_field and lead.get(order_field) else None),
            "comment": lead.get("COMMENTS") or None,
            "extra": {k: v for k, v in (("bitrix24_source", lead.get("SOURCE_ID")),
                                        ("bitrix24_status", lead.get("STATUS_ID"))) if v}}
    return {k: v for k, v in item.items() if v is not None}


def comment_text(payload: Mapping[str, Any]) -> str:
    lines = [f"Результат звонка: {payload.get('disposition') or payload.get('result') or '?'}"]
    for label, key in (("Оператор", "operator"), ("Длительность, с", "talk_seconds"), ("Сумма", "amount"),
                       ("Перезвонить", "callback_at"), ("Комментарий", "comment"), ("Запись", "recording")):
        if payload.get(key) not in (None, ""):
            lines.append(f"{label}: {payload[key]}")
    lines.append(f"[{payload['idempotency_key']}]")
    return "\n".join(lines)


def query(params: Mapping[str, Any], prefix: str = "") -> str:
    """PHP-style nested query string (what Bitrix24's `batch` commands are written in)."""
    parts = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, Mapping):
            parts.append(query(value, name))
        elif isinstance(value, (list, tuple)):
            parts.append(query({str(i): v for i, v in enumerate(value)}, name))
        else:
            parts.append(f"{quote(name, safe='[]')}={quote(str(value), safe='$[]')}")
    return "&".join(p for p in parts if p)


def outcome_batch(payload: Mapping[str, Any], lead_id: str, status_map: Mapping[str, str], *,
                  register_calls: bool, user_id: int) -> dict[str, str]:
    """The `batch` commands for one outcome: status and opportunity, the call as telephony activity,
    then the timeline comment, which carries the outcome's key and so marks the outcome as delivered."""
    cmd: dict[str, str] = {}
    fields: dict[str, Any] = {}
    status = status_map.get(payload.get("disposition") or "") or status_map.get(payload.get("result") or "")
    if status:
        fields["STATUS_ID"] = status
    if payload.get("amount"):
        fields["OPPORTUNITY"] = payload["amount"]
        if payload.get("currency"):
            fields["CURRENCY_ID"] = payload["currency"]
    if fields:
        cmd["update"] = "crm.lead.update?" + query({"id": lead_id, "fields": fields})
    if register_calls and payload.get("phone"):
        cmd["call"] = "telephony.externalcall.register?" + query({
            "USER_ID": user_id, "PHONE_NUMBER": payload["phone"], "TYPE": 1,
            "CALL_START_DATE": payload.get("dialed_at") or payload.get("outcome_at"), "CRM_CREATE": 0,
            "CRM_ENTITY_TYPE": "LEAD", "CRM_ENTITY_ID": lead_id, "SHOW": 0})
        finish = {"CALL_ID": "$result[call][CALL_ID]", "USER_ID": user_id,
                  "DURATION": payload.get("talk_seconds") or 0,
                  "STATUS_CODE": CALL_STATUS.get(payload.get("result") or "", 304)}
        if payload.get("recording"):
            finish["RECORD_URL"] = payload["recording"]
        cmd["finish"] = "telephony.externalcall.finish?" + query(finish)
    cmd["comment"] = "crm.timeline.comment.add?" + query({"fields": {
        "ENTITY_ID": lead_id, "ENTITY_TYPE": "lead", "COMMENT": comment_text(payload)}})
    return cmd
