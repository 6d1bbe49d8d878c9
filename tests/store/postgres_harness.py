"""Start a throw-away local PostgreSQL server (the Debian ``postgresql`` package's binaries) from Python.

Independent of pytest::

    ok, reason = available()                 # (False, "...") when initdb / pg_ctl cannot be found
    with PostgresServer() as pg:             # initdb into a temp dir, pg_ctl start, unix socket only
        url = pg.create_database("t1")       # "postgresql+psycopg://cds@/t1?host=<socket dir>&port=5432"
        url = pg.create_schema("t1", "s1")   # the same URL with search_path=s1: a fresh, cheap "database"
    # stopped and deleted on exit

The server listens on a unix socket in its own temp directory (``listen_addresses=''``), so it never takes a TCP
port and never clashes with another server. PostgreSQL refuses to run as root: under root the server runs as the
``postgres`` user (created by the Debian package) through ``runuser``. Binaries are looked up in
``$PG_BINDIR``, then next to ``pg_ctl`` on PATH, then in ``/usr/lib/postgresql/*/bin`` (newest first).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Final

import psycopg

SUPERUSER: Final = "cds"
PORT: Final = 5432  # only names the socket file inside our private directory
RUN_AS_WHEN_ROOT: Final = "postgres"


def bin_dir() -> Path | None:
    candidates: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)

    def version(path: str) -> int:
        part = Path(path).parent.name
        return int(part) if part.isdigit() else 0

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)]
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    return None


def available() -> tuple[bool, str]:
    """Whether a server can be started here, and the reason (for ``pytest.skip``) when it cannot."""
    if bin_dir() is None:
        return False, (
            "PostgreSQL server binaries (initdb, pg_ctl) not found in $PG_BINDIR, on PATH or in "
            "/usr/lib/postgresql/*/bin: install the Debian package `postgresql` to run these tests"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS_WHEN_ROOT)
        except KeyError:
            return False, f"running as root and there is no {RUN_AS_WHEN_ROOT!r} user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return False, "running as root and `runuser` is missing: cannot drop privileges for PostgreSQL"
    return True, ""


class PostgresServerError(RuntimeError):
    """initdb or pg_ctl failed; the message holds their output and the server log."""


class PostgresServer:
    def __init__(self) -> None:
        found = bin_dir()
        if found is None:
            raise PostgresServerError(available()[1])
        self.bin = found
        self.root = Path(tempfile.mkdtemp(prefix="cds-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log_file = self.root / "server.log"
        self._prefix: list[str] = []
        self._started = False

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object | TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            user = pwd.getpwnam(RUN_AS_WHEN_ROOT)
            for path in (self.root, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
            self._prefix = ["runuser", "-u", RUN_AS_WHEN_ROOT, "--"]
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--no-sync")
        options = f"-k {self.socket_dir} -c listen_addresses='' -p {PORT}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_file), "-o", options, "-w", "-t", "60", "start")
        self._started = True

    def stop(self) -> None:
        if self._started:
            # immediate: no shutdown checkpoint (it would fsync every test database); the cluster is deleted next
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
            self._started = False
        shutil.rmtree(self.root, ignore_errors=True)

    # -- use ----------------------------------------------------------------------------------------------------
    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.socket_dir}&port={PORT}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        self._execute("postgres", f'CREATE DATABASE "{name}"')
        return self.url(name)

    def create_schema(self, database: str, schema: str) -> str:
        """A new empty schema, first on the search path of the returned URL: an empty database for the
        application, much cheaper than CREATE DATABASE (which copies and later deletes ~7 MB of files)."""
        self._execute(database, f'CREATE SCHEMA "{schema}"')
        return f"{self.url(database)}&options=-csearch_path%3D{schema}"

    def _execute(self, database: str, statement: str) -> None:
        with psycopg.connect(
            host=str(self.socket_dir), port=PORT, user=SUPERUSER, dbname=database, autocommit=True
        ) as conn:
            conn.execute(statement.encode())  # names come from the tests, never from outside input

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        argv = [*self._prefix, str(self.bin / tool), *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
        if check and done.returncode != 0:
            server_log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
            raise PostgresServerError(
                f"{tool} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n--- server log ---\n{server_log}"
            )
