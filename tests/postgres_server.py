"""A real PostgreSQL server from Debian's packages, on loopback, for tests and benchmarks.

``initdb`` into a temp dir, ``pg_ctl start`` on a free port; each caller gets its own
database from :meth:`PostgresServer.new_database`. PostgreSQL refuses to run as root, so
as root the server runs as the ``postgres`` user the Debian package creates.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from tests.net import free_port

__all__ = ["PostgresServer", "find_bindir", "query", "stored_records"]

USER = "alignwatch"


def find_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` that has ``initdb``."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql "
            "(Debian package `postgresql`; `make system-deps` installs it)"
        )
    return Path(found[-1]).parent


class PostgresServer:
    """``fsync`` is off by default: tests kill workers, never the machine."""

    def __init__(self, *, fsync: bool = False):
        self._fsync = fsync
        self._bindir = find_bindir()
        self._dir = Path(tempfile.mkdtemp(prefix="alignwatch-pg-"))
        self._data = self._dir / "data"
        self.port = free_port()
        self._run_as = "postgres" if os.geteuid() == 0 else None
        if self._run_as is not None:
            account = pwd.getpwnam(self._run_as)
            os.chown(self._dir, account.pw_uid, account.pw_gid)
        self._running = False

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def _command(self, *argv: str) -> list[str]:
        prefix = ["runuser", "-u", self._run_as, "--"] if self._run_as else []
        return [*prefix, *argv]

    def _run(self, *argv: str) -> None:
        done = subprocess.run(self._command(*argv), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = self._dir / "server.log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(
                f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}\n{tail}"
            )

    def start(self) -> Self:
        self._run(
            str(self._bindir / "initdb"),
            "-D",
            str(self._data),
            "-U",
            USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        options = (
            f"-p {self.port} -k {self._dir} -c listen_addresses=127.0.0.1 "
            f"-c fsync={'on' if self._fsync else 'off'} -c max_connections=200"
        )
        self._run(
            str(self._bindir / "pg_ctl"),
            "-D",
            str(self._data),
            "-o",
            options,
            "-l",
            str(self._dir / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        self._running = True
        atexit.register(self.stop)
        return self

    def restart(self) -> None:
        """Stop (fast: open connections are cut) and start again on the same port and data."""
        log = str(self._dir / "server.log")  # else the server holds our output pipe open
        pg_ctl = str(self._bindir / "pg_ctl")
        self._run(pg_ctl, "-D", str(self._data), "-l", log, "-m", "fast", "-w", "restart")

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def stop(self) -> None:
        if self._running:
            self._running = False
            subprocess.run(
                self._command(
                    str(self._bindir / "pg_ctl"), "-D", str(self._data), "-m", "immediate", "stop"
                ),
                capture_output=True,
                check=False,
            )
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read a store's database from outside; nothing before its schema exists."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        try:
            return connection.execute(sql, params).fetchall()
        except psycopg.errors.UndefinedTable:
            return []


def stored_records(url: str) -> int:
    rows = query(url, "SELECT COUNT(*) FROM records")
    return int(rows[0][0]) if rows else 0
