"""A RetailCRM API v5 on 127.0.0.1 answering the documented shapes (see README.md in this folder).

Holds orders and their change history; records every edit. Can be told to refuse the key, to answer
503 (the request limit) for the next N calls, and to go down and come back.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PAGE_LIMITS = (20, 50, 100)


class RetailCrmStub:
    def __init__(self, api_key: str = "test-key") -> None:
        self.api_key = api_key
        self.lock = threading.Lock()
        self.orders: dict[int, dict[str, Any]] = {}
        self.history: list[dict[str, Any]] = []
        self.edits: list[dict[str, Any]] = []        # every accepted /edit: {"ref", "by", "site", "order"}
        self.calls: list[str] = []                   # "GET /orders", ...
        self.limit_next = 0                          # answer 503 to this many coming calls
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------ data

    def add_order(self, order_id: int, *, status: str = "new", site: str = "shop", phone: str = "+79123456789",
                  first: str = "Иван", last: str = "Петров", number: str | None = None, total: float = 1990.0,
                  comment: str = "") -> dict[str, Any]:
        with self.lock:
            order = {"id": order_id, "externalId": f"ext-{order_id}", "number": number or f"{order_id}A",
                     "site": site, "status": status, "firstName": first, "lastName": last, "phone": phone,
                     "customerComment": comment, "managerComment": "", "totalSumm": total,
                     "createdAt": "2026-12-07 09:00:00", "customFields": {}}
            self.orders[order_id] = order
            self._change(order, created=True)
            return order

    def set_status(self, order_id: int, status: str) -> None:
        with self.lock:
            order = self.orders[order_id]
            old, order["status"] = order["status"], status
            self._change(order, field="status", old={"code": old}, new={"code": status})

    def _change(self, order: dict[str, Any], *, created: bool = False, field: str | None = None,
                old: Any = None, new: Any = None) -> None:
        entry: dict[str, Any] = {"id": len(self.history) + 1, "createdAt": "2026-12-07 09:00:00",
                                 "source": "api", "order": {k: order[k] for k in ("id", "externalId", "site",
                                                                                   "number")}}
        if created:
            entry.update(created=True, field="id", oldValue=None, newValue=order["id"],
                         order=json.loads(json.dumps(order)))
        else:
            entry.update(field=field, oldValue=old, newValue=new)
        self.history.append(entry)

    # ------------------------------------------------------------ life

    def start(self) -> "RetailCrmStub":
        stub = self

        class Handler(_Handler):
            owner = stub

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Go down: the port refuses connections until start() is called again (same port)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    # ------------------------------------------------------------ the API

    def answer(self, method: str, path: str, query: dict[str, list[str]], form: dict[str, list[str]],
               key: str | None) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.calls.append(f"{method} {path}")
            if self.limit_next > 0:
                self.limit_next -= 1
                return 503, {"success": False, "errorMsg": "Service Unavailable: request limit exceeded"}
            if key != self.api_key:
                return 403, {"success": False, "errorMsg": "Wrong \"apiKey\" value."}
            if not path.startswith("/api/v5/"):
                return 404, {"success": False, "errorMsg": "API method not found"}
            parts = path[len("/api/v5/"):].strip("/").split("/")
            if method == "GET" and parts == ["orders"]:
                return self._list(query)
            if method == "GET" and parts == ["orders", "history"]:
                return self._history(query)
            if method == "GET" and len(parts) == 2 and parts[0] == "orders":
                order = self._find(parts[1], _one(query, "by") or "externalId", _one(query, "site"))
                if isinstance(order, tuple):
                    return order
                return 200, {"success": True, "order": order}
            if method == "POST" and len(parts) == 3 and parts[0] == "orders" and parts[2] == "edit":
                return self._edit(parts[1], form)
            return 404, {"success": False, "errorMsg": "API method not found"}

    def _page(self, query: dict[str, list[str]]) -> tuple[int, int] | tuple[int, dict[str, Any]]:
        try:
            limit = int(_one(query, "limit") or 20)
            page = int(_one(query, "page") or 1)
        except ValueError:
            return 400, {"success": False, "errorMsg": "Parameters are not valid",
                         "errors": {"limit": "This value should be a number."}}
        if limit not in PAGE_LIMITS:
            return 400, {"success": False, "errorMsg": "Parameters are not valid",
                         "errors": {"limit": "The value you selected is not a valid choice."}}
        if page < 1:
            return 400, {"success": False, "errorMsg": "Parameters are not valid",
                         "errors": {"page": "This value should be greater than or equal to 1."}}
        return limit, page

    @staticmethod
    def _pagination(rows: list[Any], limit: int, page: int) -> tuple[list[Any], dict[str, int]]:
        total_pages = (len(rows) + limit - 1) // limit
        return rows[(page - 1) * limit: page * limit], {"limit": limit, "totalCount": len(rows),
                                                         "currentPage": page, "totalPageCount": total_pages}

    def _list(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        paged = self._page(query)
        if isinstance(paged[1], dict):
            return paged  # type: ignore[return-value]
        limit, page = paged
        statuses, sites = query.get("filter[statuses][]", []), query.get("filter[sites][]", [])
        ids = {int(i) for i in query.get("filter[ids][]", [])}
        rows = [o for _, o in sorted(self.orders.items())
                if (not statuses or o["status"] in statuses) and (not sites or o["site"] in sites)
                and (not ids or o["id"] in ids)]
        rows, pagination = self._pagination(rows, limit, page)
        return 200, {"success": True, "pagination": pagination, "orders": json.loads(json.dumps(rows))}

    def _history(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        paged = self._page(query)
        if isinstance(paged[1], dict):
            return paged  # type: ignore[return-value]
        limit, page = paged
        since = int(_one(query, "filter[sinceId]") or 0)
        rows, pagination = self._pagination([h for h in self.history if h["id"] > since], limit, page)
        return 200, {"success": True, "generatedAt": "2026-12-07 09:00:00", "history": rows,
                     "pagination": pagination}

    def _find(self, ref: str, by: str, site: str | None) -> dict[str, Any] | tuple[int, dict[str, Any]]:
        if by not in ("id", "externalId"):
            return 400, {"success": False, "errorMsg": "Parameters are not valid",
                         "errors": {"by": "The value you selected is not a valid choice."}}
        for order in self.orders.values():
            if (by == "id" and str(order["id"]) == ref) or (by == "externalId" and order["externalId"] == ref
                                                            and (site is None or order["site"] == site)):
                return order
        return 404, {"success": False, "errorMsg": "Not found"}

    def _edit(self, ref: str, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        by, site = _one(form, "by") or "externalId", _one(form, "site")
        if by == "externalId" and not site:
            return 400, {"success": False, "errorMsg": "Parameters are not valid",
                         "errors": {"site": "This value should not be blank."}}
        order = self._find(ref, by, site)
        if isinstance(order, tuple):
            return order
        try:
            changes = json.loads(_one(form, "order") or "")
        except ValueError:
            return 400, {"success": False, "errorMsg": "Parameter 'order' must contain a valid JSON"}
        if not isinstance(changes, dict):
            return 400, {"success": False, "errorMsg": "Parameter 'order' must contain a valid JSON"}
        if "status" in changes and not str(changes["status"]).strip():
            return 400, {"success": False, "errorMsg": "Order is not loaded",
                         "errors": {"status": "This value should not be blank."}}
        self.edits.append({"ref": ref, "by": by, "site": site, "order": changes})
        for field, value in changes.items():
            if field == "customFields":
                order["customFields"].update(value)
            elif field == "status":
                self.set_status_locked(order, value)
            else:
                order[field] = value
        return 200, {"success": True, "id": order["id"], "order": order}

    def set_status_locked(self, order: dict[str, Any], status: str) -> None:
        old, order["status"] = order["status"], status
        self._change(order, field="status", old={"code": old}, new={"code": status})


def _one(values: dict[str, list[str]], name: str) -> str | None:
    got = values.get(name)
    return got[0] if got else None


class _Handler(BaseHTTPRequestHandler):
    owner: RetailCrmStub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8") if length else ""
        form = parse_qs(raw, keep_blank_values=True) if method == "POST" else {}
        query = parse_qs(parts.query, keep_blank_values=True)
        key = self.headers.get("X-API-KEY") or _one(query, "apiKey")
        status, body = self.owner.answer(method, parts.path, query, form, key)
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")
