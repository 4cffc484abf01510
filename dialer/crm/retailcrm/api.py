"""RetailCRM API v5 over HTTP: the few calls the connector makes, errors as CrmApiError with the CRM's words.

Shapes: every answer is JSON with `success`; a refusal is `success: false` with `errorMsg` and maybe
`errors`. Too many requests (over 10 a second per key) is HTTP 503: retried here after a short backoff.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Mapping

import httpx

from kernel.errors import DialerError

RATE_LIMIT_RETRIES = 4
RATE_LIMIT_BASE_SECONDS = 0.25


class CrmApiError(DialerError):
    """The CRM could not be reached or refused the call."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class RetailCrmApi:
    def __init__(self, client: httpx.AsyncClient, url: str, api_key: str, timeout: float = 10.0) -> None:
        self._client = client
        self._base = url.rstrip("/") + "/api/v5"
        self._headers = {"X-API-KEY": api_key, "Accept": "application/json"}
        self._timeout = timeout

    async def call(self, method: str, path: str, *, params: Any = None,
                   form: Mapping[str, str] | None = None) -> dict[str, Any]:
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                response = await self._client.request(method, self._base + path, params=params, data=form,
                                                      headers=self._headers, timeout=self._timeout)
            except httpx.TimeoutException:
                raise CrmApiError(f"RetailCRM {path}: no answer within {self._timeout:g} s") from None
            except httpx.HTTPError as exc:
                raise CrmApiError(f"RetailCRM {path}: cannot be reached: {exc or type(exc).__name__}") from None
            if response.status_code == 503 and attempt < RATE_LIMIT_RETRIES:
                await asyncio.sleep(RATE_LIMIT_BASE_SECONDS * 2 ** attempt)
                continue
            return _answer(path, response)
        raise AssertionError("unreachable")

    async def orders(self, *, page: int, limit: int, statuses: list[str], sites: list[str],
                     ids: list[int] | None = None) -> dict[str, Any]:
        params: list[tuple[str, Any]] = [("page", page), ("limit", limit)]
        params += [("filter[statuses][]", s) for s in statuses] + [("filter[sites][]", s) for s in sites]
        params += [("filter[ids][]", i) for i in ids or ()]
        return await self.call("GET", "/orders", params=params)

    async def history(self, *, since_id: int | None, limit: int, page: int = 1) -> dict[str, Any]:
        params: list[tuple[str, Any]] = [("limit", limit), ("page", page)]
        if since_id is not None:
            params.append(("filter[sinceId]", since_id))
        return await self.call("GET", "/orders/history", params=params)

    async def order(self, ref: str, *, by: str, site: str | None) -> dict[str, Any]:
        params = {"by": by, **({"site": site} if site else {})}
        return (await self.call("GET", f"/orders/{ref}", params=params))["order"]

    async def edit(self, ref: str, form: Mapping[str, str]) -> dict[str, Any]:
        return await self.call("POST", f"/orders/{ref}/edit", form=form)


def _answer(path: str, response: httpx.Response) -> dict[str, Any]:
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict) and body.get("success") is True and response.status_code < 400:
        return body
    status = response.status_code
    if isinstance(body, dict):
        detail = str(body.get("errorMsg") or "no errorMsg")
        if body.get("errors"):
            detail += ": " + json.dumps(body["errors"], ensure_ascii=False)[:300]
    else:
        detail = f"not a RetailCRM answer: {response.text[:120]!r}"
    # 4xx other than 429 are refusals of this very request: repeating it will not help.
    retryable = status >= 500 or status == 429 or status < 400
    raise CrmApiError(f"RetailCRM {path}: HTTP {status}: {detail}", retryable=retryable)
