"""Pure rules between RetailCRM orders and our leads and outcomes (no I/O)."""

from __future__ import annotations

import json
from typing import Any, Mapping

from kernel.errors import SettingsError

from leads.attempt import CallResult, DispositionKind

# A status map names our disposition kinds, or call results for attempts without a disposition.
MAPPABLE = tuple(k.value for k in DispositionKind) + tuple(r.value for r in CallResult if r != CallResult.CONNECTED)


def check_status_map(status_map: Mapping[str, Any], section: str) -> dict[str, str]:
    """<section>.status_map: our disposition kind (or call result) -> the CRM's status code."""
    for ours, theirs in status_map.items():
        if ours not in MAPPABLE:
            raise SettingsError(f"{section}.status_map: {ours!r} is not a disposition or call result; one of: "
                                + ", ".join(MAPPABLE))
        if not isinstance(theirs, str) or not theirs.strip():
            raise SettingsError(f"{section}.status_map.{ours} must be the CRM's status code as a non-empty string")
    return {k: v.strip() for k, v in status_map.items()}


def split_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def order_as_lead(order: Mapping[str, Any]) -> dict[str, Any]:
    """A RetailCRM order as a feed item (our field names; `id` is the order's RetailCRM id)."""
    name = " ".join(str(order.get(k) or "").strip() for k in ("firstName", "lastName")).strip()
    phone = order.get("phone") or order.get("additionalPhone")
    if not phone and isinstance(order.get("customer"), dict):
        phones = order["customer"].get("phones")
        phones = phones if isinstance(phones, list) else []
        phone = next((p.get("number") for p in phones if isinstance(p, dict) and p.get("number")), None)
    if isinstance(phone, bool) or not isinstance(phone, (str, int)):
        phone = ""   # no usable phone: stored as an invalid lead instead of holding the cursor on this page
    item: dict[str, Any] = {"id": order.get("id"), "phone": phone, "name": name or None,
                            "order_number": order.get("number") or order.get("externalId"),
                            "comment": order.get("customerComment") or None}
    extra = {"retailcrm_site": order.get("site"), "retailcrm_external_id": order.get("externalId"),
             "retailcrm_status": order.get("status"), "order_sum": order.get("totalSumm")}
    item["extra"] = {k: v for k, v in extra.items() if v is not None}
    return {k: v for k, v in item.items() if v is not None}


def outcome_line(payload: Mapping[str, Any]) -> str:
    """One line for the manager comment; it carries the idempotency key so a replay is recognised."""
    parts = [f"Звонок {(payload.get('ended_at') or payload.get('outcome_at') or '')[:16].replace('T', ' ')} UTC:",
             str(payload.get("disposition") or payload.get("result") or "?")]
    if payload.get("operator"):
        parts.append(f"оператор {payload['operator']}")
    if payload.get("talk_seconds") is not None:
        parts.append(f"{payload['talk_seconds']} с")
    if payload.get("amount"):
        parts.append(f"сумма {payload['amount']} {payload.get('currency') or ''}".strip())
    if payload.get("callback_at"):
        parts.append(f"перезвонить {payload['callback_at'][:16].replace('T', ' ')} UTC")
    if payload.get("comment"):
        parts.append(f"«{payload['comment']}»")
    if payload.get("recording"):
        parts.append(f"запись {payload['recording']}")
    return " ".join(parts[:2]) + (", " + ", ".join(parts[2:]) if parts[2:] else "") + f" [{payload['idempotency_key']}]"


def order_edit(payload: Mapping[str, Any], current_comment: str | None, status_map: Mapping[str, str],
               sum_field: str = "") -> dict[str, Any] | None:
    """The `order` object of /orders/{id}/edit for this outcome, or None if the CRM already has it."""
    key = payload["idempotency_key"]
    current = current_comment or ""
    if f"[{key}]" in current:
        return None
    order: dict[str, Any] = {"managerComment": (current + "\n" if current else "") + outcome_line(payload)}
    status = status_map.get(payload.get("disposition") or "") or status_map.get(payload.get("result") or "")
    if status:
        order["status"] = status
    if sum_field and payload.get("amount"):
        order["customFields"] = {sum_field: payload["amount"]}
    return order


def edit_form(order: Mapping[str, Any], by: str, site: str | None) -> dict[str, str]:
    form = {"by": by, "order": json.dumps(order, ensure_ascii=False)}
    if site:
        form["site"] = site
    return form
