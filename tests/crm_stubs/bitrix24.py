"""A Bitrix24 portal's REST (inbound webhook) on 127.0.0.1 answering the documented shapes (README.md).

Holds leads, timeline comments and registered calls; records every write. Can be told to answer
QUERY_LIMIT_EXCEEDED for the next N calls and to go down and come back.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

PAGE = 50
STATUSES = {"NEW", "IN_PROCESS", "PROCESSED", "CONVERTED", "JUNK"}


def nested(query: str) -> dict[str, Any]:
    """PHP-style `a[b][c]=v` query string as nested dicts."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        names = re.findall(r"[^\[\]]+", key)
        node = out
        for name in names[:-1]:
            node = node.setdefault(name, {})
        node[names[-1]] = value
    return out


class Error(Exception):
    def __init__(self, status: int, code: str, description: str) -> None:
        self.status, self.code, self.description = status, code, description


class Bitrix24Stub:
    def __init__(self, secret: str = "abc123", user: int = 1) -> None:
        self.path = f"/rest/{user}/{secret}/"
        self.lock = threading.Lock()
        self.leads: dict[int, dict[str, Any]] = {}
        self.comments: list[dict[str, Any]] = []
        self.calls_registered: dict[str, dict[str, Any]] = {}
        self.updates: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self.limit_next = 0
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    def add_lead(self, lead_id: int, *, phone: str = "+79123456789", name: str = "Иван", status: str = "NEW",
                 modified: str = "2026-12-07T09:00:00+03:00", **fields: Any) -> dict[str, Any]:
        with self.lock:
            lead = {"ID": str(lead_id), "TITLE": f"Заявка с сайта {lead_id}", "NAME": name, "LAST_NAME": "",
                    "STATUS_ID": status, "SOURCE_ID": "WEB", "COMMENTS": "", "OPPORTUNITY": "0.00",
                    "DATE_MODIFY": modified,
                    "PHONE": [{"ID": str(lead_id * 10), "VALUE_TYPE": "WORK", "VALUE": phone, "TYPE_ID": "PHONE"}],
                    **fields}
            self.leads[lead_id] = lead
            return lead

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self) -> "Bitrix24Stub":
        stub = self

        class Handler(_Handler):
            owner = stub

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    # ------------------------------------------------------------ REST

    def answer(self, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            if not path.startswith(self.path):
                return 401, {"error": "INVALID_CREDENTIALS", "error_description": "Invalid request credentials"}
            method = path[len(self.path):].removesuffix(".json")
            self.requests.append(method)
            if self.limit_next > 0:
                self.limit_next -= 1
                return 503, {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
            try:
                if method == "batch":
                    return 200, {"result": self._batch(params), "time": {}}
                return 200, {**self._method(method, params), "time": {}}
            except Error as exc:
                return exc.status, {"error": exc.code, "error_description": exc.description}

    def _batch(self, params: dict[str, Any]) -> dict[str, Any]:
        cmd = params.get("cmd") or {}
        if len(cmd) > 50:
            raise Error(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
        results: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        halt = str(params.get("halt", "0")) not in ("0", "", "false")
        for name, command in cmd.items():
            method, _, query = str(command).partition("?")

            def ref(match: re.Match) -> str:
                value: Any = results
                for part in re.findall(r"\[([^\]]+)\]", match.group(0)):
                    value = value.get(part) if isinstance(value, dict) else None
                return str(value if value is not None else "")

            query = re.sub(r"\$result(\[[^\]]+\])+", ref, query)
            try:
                results[name] = self._method(method, nested(query))["result"]
            except Error as exc:
                errors[name] = {"error": exc.code, "error_description": exc.description}
                if halt:
                    break
        return {"result": results, "result_error": errors or [], "result_total": [], "result_next": [],
                "result_time": {}}

    def _lead(self, value: Any) -> dict[str, Any]:
        try:
            return self.leads[int(value)]
        except (TypeError, ValueError, KeyError):
            raise Error(400, "", "Not found") from None

    def _method(self, method: str, p: dict[str, Any]) -> dict[str, Any]:
        if method == "crm.lead.get":
            return {"result": self._lead(p.get("id") or p.get("ID"))}
        if method == "crm.lead.list":
            flt = p.get("filter") or {}
            since = flt.get(">=DATE_MODIFY")
            statuses = flt.get("STATUS_ID")
            statuses = list(statuses.values()) if isinstance(statuses, dict) else statuses
            rows = [l for _, l in sorted(self.leads.items(), key=lambda kv: (kv[1]["DATE_MODIFY"], kv[0]))
                    if (since is None or l["DATE_MODIFY"] >= since)
                    and (not statuses or l["STATUS_ID"] in (statuses if isinstance(statuses, list) else [statuses]))]
            start = int(p.get("start") or 0)
            page = rows[start:start + PAGE]
            answer: dict[str, Any] = {"result": json.loads(json.dumps(page)), "total": len(rows)}
            if start + PAGE < len(rows):
                answer["next"] = start + PAGE
            return answer
        if method == "crm.lead.update":
            lead = self._lead(p.get("id"))
            fields = p.get("fields") or {}
            if "STATUS_ID" in fields and fields["STATUS_ID"] not in STATUSES:
                raise Error(400, "", f"Status not found: {fields['STATUS_ID']}")
            lead.update(fields)
            self.updates.append({"id": lead["ID"], "fields": dict(fields)})
            return {"result": True}
        if method == "crm.timeline.comment.add":
            fields = p.get("fields") or {}
            if str(fields.get("ENTITY_TYPE", "")).lower() != "lead":
                raise Error(400, "", "Entity type not supported")
            self._lead(fields.get("ENTITY_ID"))
            if not fields.get("COMMENT"):
                raise Error(400, "", "COMMENT is empty")
            comment = {"ID": str(len(self.comments) + 1), "ENTITY_ID": str(fields["ENTITY_ID"]),
                       "ENTITY_TYPE": "lead", "COMMENT": fields["COMMENT"]}
            self.comments.append(comment)
            return {"result": int(comment["ID"])}
        if method == "crm.timeline.comment.list":
            flt = p.get("filter") or {}
            rows = [c for c in self.comments if c["ENTITY_ID"] == str(flt.get("ENTITY_ID"))]
            return {"result": rows, "total": len(rows)}
        if method == "telephony.externalcall.register":
            for need in ("USER_ID", "PHONE_NUMBER", "TYPE"):
                if not p.get(need):
                    raise Error(400, "ERROR_ARGUMENT", f"Argument {need} is required")
            call_id = f"externalCall.{len(self.calls_registered) + 1}"
            self.calls_registered[call_id] = {**p, "finished": None}
            return {"result": {"CALL_ID": call_id, "CRM_ENTITY_TYPE": p.get("CRM_ENTITY_TYPE"),
                               "CRM_ENTITY_ID": p.get("CRM_ENTITY_ID")}}
        if method == "telephony.externalcall.finish":
            call = self.calls_registered.get(str(p.get("CALL_ID")))
            if call is None:
                raise Error(400, "ERROR_ARGUMENT", "Call is not found")
            call["finished"] = {k: p.get(k) for k in ("DURATION", "STATUS_CODE", "RECORD_URL")}
            return {"result": {"CALL_ID": p["CALL_ID"]}}
        raise Error(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")


class _Handler(BaseHTTPRequestHandler):
    owner: Bitrix24Stub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8") if length else ""
        if "json" in (self.headers.get("Content-Type") or ""):
            params = json.loads(raw or "{}")
        else:
            params = nested(raw)
        status, body = self.owner.answer(self.path.split("?")[0], params)
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
