"""Run a throw-away PostgreSQL server for tests and local use, from Debian's
``postgresql`` package (``deploy/local/install.sh`` installs it when missing).

``initdb`` into a temporary data directory, ``pg_ctl start`` on a free port on
127.0.0.1 (its socket in the same directory), one database per caller, ``stop``
removes it all. PostgreSQL refuses to run as root, so under root the server runs as
the package's ``postgres`` user (or ``nobody``), through ``runuser``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from catalogflow.localbroker.launcher import free_port
from catalogflow.streams.errors import CatalogflowError
from psycopg import sql

#: The superuser initdb creates (trust authentication on 127.0.0.1 only).
SUPERUSER = "catalogflow"
_RUN_AS = ("postgres", "nobody")


def bin_dir() -> Path:
    """Where initdb and pg_ctl are: ``$CATALOGFLOW_PG_BIN``, Debian's newest
    ``/usr/lib/postgresql/<version>/bin``, or the PATH."""
    override = os.environ.get("CATALOGFLOW_PG_BIN")
    if override:
        return Path(override)
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise CatalogflowError(
        "PostgreSQL not found: run deploy/local/install.sh (apt-get install postgresql) "
        "or set CATALOGFLOW_PG_BIN to the folder holding initdb and pg_ctl"
    )


def _service_user() -> str | None:
    """The user to run the server as: None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in _RUN_AS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise CatalogflowError("running as root and no postgres or nobody user to run PostgreSQL as")


@dataclass
class LocalPostgres:
    """A server in its own temporary folder; :meth:`start` returns its base URL."""

    fast: bool = True  # fsync off: for tests, never for data you keep
    port: int = 0
    root: Path = field(init=False, default=Path())
    _user: str | None = field(init=False, default=None)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 60.0) -> str:
        self._user = _service_user()
        self.root = Path(tempfile.mkdtemp(prefix="catalogflow-pg-"))
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.port = self.port or free_port()
        tools = bin_dir()
        self._run(
            str(tools / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
            "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        options = f"-p {self.port} -k {self.root} -h 127.0.0.1"
        if self.fast:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            str(tools / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
            "-o", options, "-w", "-t", str(int(timeout)), "start",
        )  # fmt: skip
        self._wait_ready(time.monotonic() + timeout)
        return self.url()

    def create_database(self, name: str) -> str:
        """A new, empty database; returns its SQLAlchemy URL."""
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        if not self.root.name:
            return
        if (self.data_dir / "postmaster.pid").exists():
            self._run(
                str(bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"
            )
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = Path()

    def _dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def _run(self, *command: str) -> None:
        full = (
            list(command) if self._user is None else ["runuser", "-u", self._user, "--", *command]
        )
        done = subprocess.run(
            full, capture_output=True, text=True, timeout=120, check=False, cwd=self.root
        )
        if done.returncode != 0:
            log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
            tail = "\n".join((done.stdout + done.stderr + log).splitlines()[-30:])
            raise CatalogflowError(
                f"{Path(command[0]).name} failed (exit {done.returncode}):\n{tail}"
            )

    def _wait_ready(self, deadline: float) -> None:
        while True:
            try:
                with psycopg.connect(self._dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise CatalogflowError(f"PostgreSQL did not accept connections: {exc}") from exc
                time.sleep(0.2)
