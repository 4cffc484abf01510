"""A throwaway PostgreSQL cluster a fault test or benchmark may stop and start (never the shared server).

initdb + pg_ctl from /usr/lib/postgresql/*/bin (or PATH), run as the `postgres` OS user when we are
root, on a free loopback port, in a temporary directory removed afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile

from tests.daemon_harness import free_port


def pg_bin() -> str | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "pg_ctl")) and os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    found = shutil.which("pg_ctl")
    return os.path.dirname(found) if found and shutil.which("initdb") else None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster this test may stop and start (never the shared server)."""

    def __init__(self, bin_dir: str) -> None:
        self.bin = bin_dir
        self.dir = tempfile.mkdtemp(prefix="dialer-faults-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = list(args)
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)

    def init(self) -> None:
        if self.as_postgres:
            shutil.chown(self.dir, "postgres")
        self._run(f"{self.bin}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync",
                  "-E", "UTF8", "--locale=C.UTF-8")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-o", options, "-l", os.path.join(self.dir, "log"),
                  "-w", "start")

    def stop(self) -> None:
        self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
