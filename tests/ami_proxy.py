"""A TCP proxy between the daemon and the (simulated) Asterisk that a test can cut, as a flaky network would."""

from __future__ import annotations

import asyncio
import contextlib


class AmiProxy:
    """Forwards bytes both ways; `cut()` drops every connection; `cut_on_originate` drops the link
    when the next Originate passes (`before`: it never reaches Asterisk; else: right after it did)."""

    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (host, upstream_port)
        self.port = 0
        self.cuts = 0
        self._server: asyncio.base_events.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._originate_cut: str | None = None     # "before" | "after" | None
        self.originates_dropped = 0
        self._down_until = 0.0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    @property
    def linked(self) -> bool:
        return bool(self._pairs)

    def cut(self, down_for: float = 0.0) -> None:
        """Drop every connection; refuse new ones for `down_for` seconds (a network outage)."""
        self._down_until = max(self._down_until, asyncio.get_running_loop().time() + down_for)
        if self._pairs:
            self.cuts += 1
        for a, b in list(self._pairs):
            for writer in (a, b):
                with contextlib.suppress(Exception):
                    writer.transport.abort()
        self._pairs.clear()

    def cut_on_originate(self, when: str) -> None:
        self._originate_cut = when

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if asyncio.get_running_loop().time() < self._down_until:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        await asyncio.gather(self._pipe(reader, up_writer, pair, client_side=True),
                             self._pipe(up_reader, writer, pair, client_side=False), return_exceptions=True)
        self._pairs.discard(pair)

    async def _pipe(self, reader, writer, pair, *, client_side: bool) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if client_side and self._originate_cut and b"Action: Originate" in data:
                    when, self._originate_cut = self._originate_cut, None
                    if when == "before":
                        self.originates_dropped += 1
                        self.cut()
                        return
                    writer.write(data)
                    await writer.drain()
                    self.cut()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.transport.abort()
