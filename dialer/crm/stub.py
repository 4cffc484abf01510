"""A CRM webhook on 127.0.0.1 that can be told to fail, hang, be slow, go down and come back.

The fake side of the CRM interface: a real HTTP server (tests, benchmarks, a newcomer's demo), which
honours idempotency keys the way a CRM should: a key seen before is answered 200 and not stored again.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG_LIMIT_SECONDS = 60.0   # a hanging request answers 503 after this, or when released


@dataclass(frozen=True)
class Received:
    key: str | None
    body: dict[str, Any]
    status: int          # what the stub answered
    duplicate: bool      # the key had been accepted before


class CrmStub:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, path: str = "/outcomes",
                 token: str | None = None) -> None:
        self.host, self.port, self.path, self.token = host, port, path, token
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._release = threading.Event()
        self._fail_next: list[tuple[str | None, int]] = []
        self._fail_always: int | None = None
        self._hang = False
        self._delay = 0.0
        self.requests: list[Received] = []           # every request, duplicates included
        self.accepted: dict[str, dict[str, Any]] = {}  # key -> body, first delivery only
        self.accepted_keys: list[str] = []            # keys in the order they were accepted

    # ------------------------------------------------------------ life

    def start(self) -> "CrmStub":
        stub = self

        class Handler(_Handler):
            owner = stub

        server = ThreadingHTTPServer((self.host, self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"crm-stub-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go down: stop listening and drop open connections (callers get 'connection refused')."""
        server, self._server = self._server, None
        if server is None:
            return
        self._release.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._release.clear()

    def come_back(self) -> None:
        """Listen again on the same port."""
        self.start()

    def __enter__(self) -> "CrmStub":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    # ------------------------------------------------------------ behaviour

    def fail_next(self, count: int, status: int = 500, key: str | None = None) -> None:
        """Answer the next `count` requests (only those with idempotency key `key`, if given) with `status`."""
        with self._lock:
            self._fail_next.extend([(key, status)] * count)

    def fail_always(self, status: int | None = 500) -> None:
        """Answer every request with `status` (None: back to normal)."""
        with self._lock:
            self._fail_always = status

    def hang(self, on: bool = True) -> None:
        """Never answer (until released, stopped, or HANG_LIMIT_SECONDS)."""
        with self._lock:
            self._hang = on
        if not on:
            self._release.set()
            self._release = threading.Event()

    def slow(self, seconds: float) -> None:
        """Store the outcome, then wait `seconds` before answering (a CRM slower than our timeout)."""
        with self._lock:
            self._delay = seconds

    def healthy(self) -> None:
        with self._lock:
            self._fail_next.clear()
            self._fail_always = None
            self._delay = 0.0
        self.hang(False)

    # ------------------------------------------------------------ inspection

    def accepted_for(self, field: str, value: Any) -> list[dict[str, Any]]:
        """Accepted bodies whose `field` equals `value`, in acceptance order."""
        with self._lock:
            return [self.accepted[k] for k in self.accepted_keys if self.accepted[k].get(field) == value]

    def tries_of(self, key: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.key == key)

    # ------------------------------------------------------------ the handler's side

    def _answer(self, key: str | None, body: dict[str, Any] | None, authorized: bool) -> tuple[int, dict, float]:
        with self._lock:
            if not authorized:
                return 401, {"error": "bad token"}, 0.0
            if body is None:
                return 400, {"error": "body is not a JSON object"}, 0.0
            for index, (only, status) in enumerate(self._fail_next):
                if only is None or only == key:
                    del self._fail_next[index]
                    self.requests.append(Received(key, body, status, False))
                    return status, {"error": "induced failure"}, 0.0
            if self._fail_always is not None:
                self.requests.append(Received(key, body, self._fail_always, False))
                return self._fail_always, {"error": "induced failure"}, 0.0
            if not key:
                self.requests.append(Received(key, body, 400, False))
                return 400, {"error": "Idempotency-Key header missing"}, 0.0
            duplicate = key in self.accepted
            if not duplicate:
                self.accepted[key] = body
                self.accepted_keys.append(key)
            self.requests.append(Received(key, body, 200, duplicate))
            return 200, {"ok": True, "duplicate": duplicate}, self._delay

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(conn)


class _Handler(BaseHTTPRequestHandler):
    owner: CrmStub
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True   # headers and body go out as two writes: no 40 ms delayed-ACK stall

    def setup(self) -> None:
        super().setup()
        self.owner._track(self.connection, True)

    def finish(self) -> None:
        self.owner._track(self.connection, False)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:   # keep test output quiet
        return

    def do_POST(self) -> None:
        stub = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if stub._hang:
            released = stub._release.wait(HANG_LIMIT_SECONDS)
            if released or stub._server is None:
                self.close_connection = True
                return
            self._reply(503, {"error": "hung"})
            return
        try:
            body = json.loads(raw.decode("utf-8"))
            body = body if isinstance(body, dict) else None
        except (UnicodeDecodeError, ValueError):
            body = None
        authorized = stub.token is None or self.headers.get("Authorization") == f"Bearer {stub.token}"
        status, answer, delay = stub._answer(self.headers.get("Idempotency-Key"), body, authorized)
        if delay:
            threading.Event().wait(delay)
        self._reply(status, answer)

    def _reply(self, status: int, answer: dict[str, Any]) -> None:
        data = json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True


def main(argv: list[str] | None = None) -> None:
    """`python -m dialer.crm.stub [--port N]`: a CRM to point crm.webhook_url at (demos, benchmarks).
    Prints its URL, serves until SIGINT or SIGTERM, then prints how many outcomes it accepted."""
    import argparse
    import signal
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=None, help="Bearer token to require")
    parser.add_argument("--delay", type=float, default=0.0, help="Seconds each answer takes (a slow CRM)")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with CrmStub(args.host, args.port, token=args.token) as stub:
        stub.slow(args.delay)
        print(stub.url, flush=True)
        stop.wait()
        print(f"accepted {len(stub.accepted)} outcome(s), {len(stub.requests)} request(s)", flush=True)


if __name__ == "__main__":
    main()
