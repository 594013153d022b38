"""A real, throwaway PostgreSQL server for the test suite.

`PostgresServer` runs the machine's own PostgreSQL binaries (`initdb`, `pg_ctl`) on a cluster in a
fresh temporary directory: loopback TCP on a free port, trust authentication for the `postgres`
superuser, and durability turned off (fsync, synchronous_commit, full_page_writes), so a start
takes a second or two and nothing outlives `close()`.

    server = PostgresServer()
    server.start()
    url = server.create_database("orders")   # postgresql://postgres@127.0.0.1:PORT/orders
    server.stop()                             # the database is DOWN: connections now fail
    server.start()                            # back on the same port, with the same data
    server.close()                            # stopped and deleted

There is no skipping: when PostgreSQL is not installed, the constructor raises and says which
package to install (CI installs it, see .ci/run).

PostgreSQL refuses to run as root. When the tests run as root (containers, CI), every `initdb` and
`pg_ctl` command runs as the `postgres` system user (created by Debian's package) through
`runuser`, and the temporary directory is given to that user; otherwise they run directly. As root,
the temporary directory (`TMPDIR`, usually /tmp) must be reachable by that user.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import weakref
from pathlib import Path
from typing import Self
from urllib.parse import quote

import psycopg
from psycopg import sql

INSTALL_HINT = "install it with `apt-get install postgresql` (Debian/Ubuntu)"
SERVER_USER = "postgres"  # the system user the server runs as under root; also the superuser's name

# A throwaway cluster: nothing it writes needs to survive a crash of the machine.
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "50",
}
COMMAND_TIMEOUT = 60  # seconds, for one initdb or pg_ctl run (pg_ctl itself waits at most 30 s)


def find_binaries() -> Path:
    """The directory holding `initdb` and `pg_ctl`: the newest /usr/lib/postgresql/<version>/bin
    (Debian's layout), else the one on PATH. Raises RuntimeError when there is none."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)

    debian = sorted(
        (bin_dir for bin_dir in Path("/usr/lib/postgresql").glob("*/bin") if _has_binaries(bin_dir)),
        key=version,
    )
    if debian:
        return debian[-1]
    initdb = shutil.which("initdb")
    if initdb and _has_binaries(Path(initdb).parent):
        return Path(initdb).parent
    raise RuntimeError(
        "The store tests need a PostgreSQL server, and none is installed: no initdb/pg_ctl in "
        f"/usr/lib/postgresql/*/bin or on PATH; {INSTALL_HINT}."
    )


def _quoted(value: str) -> str:
    """A postgresql.conf string literal."""
    return "'" + value.replace("'", "''") + "'"


def _has_binaries(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / name, os.X_OK) for name in ("initdb", "pg_ctl"))


def free_port() -> int:
    """A loopback TCP port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, initialised by the constructor.

    `start()` and `stop()` may alternate any number of times (tests take the database down
    mid-run); the port and the data stay the same. `close()` (or the end of the interpreter, if
    nobody called it) stops the server and deletes the directory. Also a context manager:
    `with PostgresServer() as server:` starts it and closes it.
    """

    def __init__(self) -> None:
        self.bin_dir = find_binaries()
        self._as_server_user: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser") or "/usr/sbin/runuser"
            try:
                pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise RuntimeError(
                    f"Running as root, the PostgreSQL server must run as the {SERVER_USER!r} system "
                    f"user, which does not exist; {INSTALL_HINT} (its package creates the user)."
                ) from None
            self._as_server_user = [runuser, "-u", SERVER_USER, "--"]

        self.directory = Path(tempfile.mkdtemp(prefix="shadowdiff-pg-"))
        self.data = self.directory / "data"  # also holds the unix socket
        self.log_file = self.directory / "server.log"
        self.port = free_port()
        self.running = False
        self._started_once = False
        # Whatever happens to this object, the server is stopped and the directory removed, at the
        # latest when the interpreter exits.
        self._finalizer = weakref.finalize(
            self, _teardown, self._command("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"),
            self.directory,
        )
        if self._as_server_user:
            shutil.chown(self.directory, SERVER_USER, SERVER_USER)
        self._initdb()

    # -- the cluster -------------------------------------------------------------------------

    def _command(self, binary: str, *args: str) -> list[str]:
        return [*self._as_server_user, str(self.bin_dir / binary), *args]

    def _run(self, binary: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._command(binary, *args),
            cwd=self.directory,  # a directory the server user can enter
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def _initdb(self) -> None:
        # --locale=C: the machine's locale may not be generated (initdb would refuse it), and C
        # sorts the same everywhere.
        done = self._run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", SERVER_USER,
            "--no-sync", "-E", "UTF8", "--locale=C",
        )  # fmt: skip
        if done.returncode != 0:
            self.close()
            raise RuntimeError(f"initdb failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
        settings = {**SETTINGS, "unix_socket_directories": str(self.data)}
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# tests/store/postgres.py: a fast, throwaway cluster\n")
            conf.writelines(f"{name} = {_quoted(value)}\n" for name, value in settings.items())

    # -- the server --------------------------------------------------------------------------

    def start(self) -> Self:
        """Starts the server and waits until it accepts connections (at most 30 s). Raises
        RuntimeError with the end of the server's log when it does not come up."""
        if self.running:
            return self
        attempts = 1 if self._started_once else 3  # a fresh port may be taken by someone meanwhile
        for attempt in range(attempts):
            log_start = self.log_file.stat().st_size if self.log_file.exists() else 0
            done = self._run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.log_file),
                "-o", f"-p {self.port}", "-w", "-t", "30", "start",
            )  # fmt: skip
            if done.returncode == 0:
                self.running = self._started_once = True
                return self
            log = self._log_tail(log_start)
            if attempt + 1 < attempts and "could not bind" in log:
                self.port = free_port()
                continue
            # -w timing out leaves a server that may still come up: make sure it does not.
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            raise RuntimeError(
                f"PostgreSQL did not start on port {self.port} (pg_ctl exit {done.returncode}):\n"
                f"{done.stdout}{done.stderr}\n--- end of {self.log_file} ---\n{log}"
            )
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Shuts the server down (fast: open connections are cut, the data stays) and waits until
        it is gone; a connection attempt then fails until `start()`."""
        if not self.running:
            return
        done = self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        if done.returncode != 0:
            raise RuntimeError(
                f"pg_ctl stop failed (exit {done.returncode}):\n{done.stdout}{done.stderr}\n"
                f"--- end of {self.log_file} ---\n{self._log_tail()}"
            )
        self.running = False

    def close(self) -> None:
        """Stops the server if it runs and deletes its directory; the object is unusable after."""
        self.running = False
        self._finalizer()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _log_tail(self, offset: int = 0, lines: int = 30) -> str:
        try:
            with open(self.log_file, encoding="utf-8", errors="replace") as log:
                log.seek(offset)
                return "".join(log.readlines()[-lines:])
        except OSError as error:
            return f"(no log: {error})"

    # -- databases ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The superuser's URL of the `postgres` database (no password: trust authentication)."""
        return self.url_of("postgres")

    def url_of(self, database: str) -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{quote(database, safe='')}"

    def create_database(self, name: str) -> str:
        """Creates the (empty) database `name` and returns its URL."""
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_of(name)

    def drop_database(self, name: str) -> None:
        """Drops the database `name` if it exists, disconnecting whoever is still connected."""
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _teardown(stop_command: list[str], directory: Path) -> None:
    """Stops the server (whether it runs or not: pg_ctl then just fails) and deletes the cluster."""
    if (directory / "data" / "postmaster.pid").exists():
        subprocess.run(
            stop_command, cwd=directory, stdin=subprocess.DEVNULL, capture_output=True,
            timeout=COMMAND_TIMEOUT, check=False,
        )  # fmt: skip
    shutil.rmtree(directory, ignore_errors=True)
