"""Running the app with uvicorn: in the foreground (`dialer serve`) or on a thread (tests, benchmarks)."""

from __future__ import annotations

import signal
import socket
import threading
import time
from typing import Any

import uvicorn


def server_config(app: Any, host: str, port: int, log_level: str = "info", **options: Any) -> uvicorn.Config:
    """uvicorn settings the product runs with: our logging (log_config=None), no access log
    (every accepted or refused lead is logged by the webhook itself, phone masked)."""
    return uvicorn.Config(app, host=host, port=port, log_level=log_level.lower(), log_config=None,
                          access_log=False, server_header=False, **options)


class ServerThread:
    """A real uvicorn server on 127.0.0.1 on its own thread: `with ServerThread(app) as server: server.url`.

    Port 0 takes a free port; the socket is bound before the thread starts, so `url` is known at once.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, start_timeout: float = 10.0,
                 **options: Any) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._server = uvicorn.Server(server_config(app, self.host, self.port, log_level="warning", **options))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"uvicorn:{self.port}", daemon=True)
        self._start_timeout = start_timeout

    def __enter__(self) -> "ServerThread":
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the HTTP server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._socket.close()


def bind(host: str, port: int) -> socket.socket:
    """The listening socket for `dialer serve`, or DialerError in one line (uvicorn would exit 3 itself)."""
    from kernel.errors import DialerError
    try:
        sock = socket.create_server((host, port), reuse_port=False)
    except OSError as exc:
        raise DialerError(f"cannot listen for HTTP on {host}:{port}: {exc.strerror or exc} "
                          f"(set http.port or --port)") from None
    return sock


def run_until_stopped(server: uvicorn.Server, sock: socket.socket | None = None) -> None:
    """Serve in the foreground until SIGINT or SIGTERM, shut down gracefully, and return normally.

    uvicorn re-raises the signal it caught once it has shut down; the no-op handlers installed here
    receive it, so a stop asked for by a signal ends the command with exit code 0.
    """
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda *_: None) for signum in stops}
    try:
        server.run(sockets=[sock] if sock is not None else None)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
