"""A throwaway PostgreSQL server for the integration tests (Debian's packages).

:func:`ensure_installed` installs ``postgresql`` with apt when no ``initdb`` is found under
``/usr/lib/postgresql/*/bin`` (CI machines start clean; we are root there). :func:`start`
creates a cluster in a fresh temporary directory, owned by the non-root ``postgres`` user
when run as root (PostgreSQL refuses to run as root), listening on a free loopback port
with password authentication for one test user, and :meth:`PgServer.stop` removes it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

if t.TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: Where Debian's ``postgresql-NN`` packages put the server programs.
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
#: The system user that owns clusters when we run as root.
SERVER_USER = "postgres"
_APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "NEEDRESTART_MODE": "a"}


class PostgresUnavailableError(RuntimeError):
    """PostgreSQL is not installed and cannot be installed here."""


def find_bindir() -> Path | None:
    """Return the newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb``, if any."""
    found = [p for p in Path("/").glob(DEBIAN_BIN_GLOB.lstrip("/")) if (p / "initdb").is_file()]
    if not found:
        return None

    def version(path: Path) -> tuple[int, ...]:
        digits = path.parent.name.split(".")
        return tuple(int(d) for d in digits if d.isdigit())

    return max(found, key=version)


def _package_installed(package: str) -> bool:
    """Whether dpkg has ``package`` installed."""
    if shutil.which("dpkg-query") is None:
        return False
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode == 0 and done.stdout.strip().endswith(" installed")


def _apt_install(packages: Sequence[str]) -> None:
    env = {**os.environ, **_APT_ENV}
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    subprocess.run(["apt-get", *lock, "update", "-q"], check=True, env=env)
    subprocess.run(
        ["apt-get", *lock, "install", "-y", "-q", "--no-install-recommends", *packages],
        check=True,
        env=env,
    )


def major_version(bindir: Path) -> str:
    """The major version of a ``/usr/lib/postgresql/<major>/bin`` directory (``"15"``)."""
    return bindir.parent.name


def ensure_installed(extra_packages: Sequence[str] = ()) -> Path:
    """Return PostgreSQL's bin directory, installing Debian's ``postgresql`` if needed.

    Args:
        extra_packages: Debian packages the caller needs as well (server extensions such
            as ``postgresql-{major}-wal2json``); ``{major}`` is replaced by the major version
            of the server found or installed. Missing ones are installed with apt-get.

    Raises:
        PostgresUnavailableError: Not installed, and not root (cannot run apt-get).
        subprocess.CalledProcessError: apt-get failed.
    """
    bindir = find_bindir()
    if bindir is None:
        if os.geteuid() != 0:
            msg = "PostgreSQL is not installed; run `apt-get install -y postgresql` as root"
            raise PostgresUnavailableError(msg)
        _apt_install(["postgresql"])
        bindir = find_bindir()
        if bindir is None:
            msg = f"apt-get installed postgresql but no initdb is under {DEBIAN_BIN_GLOB}"
            raise PostgresUnavailableError(msg)
    wanted = [name.format(major=major_version(bindir)) for name in extra_packages]
    missing = [name for name in wanted if not _package_installed(name)]
    if missing:
        if os.geteuid() != 0:
            msg = f"PostgreSQL needs {' '.join(missing)}; run `apt-get install -y` them as root"
            raise PostgresUnavailableError(msg)
        _apt_install(missing)
    return bindir


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class PgServer:
    """A running throwaway cluster and how to reach it."""

    bindir: Path
    workdir: Path
    port: int
    user: str
    password: str
    database: str
    host: str = "127.0.0.1"

    @property
    def datadir(self) -> Path:
        """The cluster's data directory."""
        return self.workdir / "data"

    @property
    def logfile(self) -> Path:
        """The server's log file."""
        return self.workdir / "server.log"

    def env(self) -> dict[str, str]:
        """Environment for libpq clients (``psql``) connecting as the test user."""
        return {
            **os.environ,
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGDATABASE": self.database,
            "PGCONNECT_TIMEOUT": "10",
        }

    def psql(self, sql: str, *, database: str | None = None) -> str:
        """Run SQL with ``psql`` as the test user; return unaligned, tuples-only output.

        Raises:
            subprocess.CalledProcessError: psql failed (the SQL's error is in ``stderr``).
        """
        command = [str(self.bindir / "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"]
        if database is not None:
            command += ["-d", database]
        result = subprocess.run(
            command,
            input=sql,
            capture_output=True,
            text=True,
            check=True,
            env=self.env(),
            timeout=120,
        )
        return result.stdout

    def admin_psql(self, sql: str, *, database: str = "postgres") -> str:
        """Run SQL as the superuser (``postgres``, over the socket); tuples-only output.

        Raises:
            subprocess.CalledProcessError: psql failed.
        """
        command = [
            str(self.bindir / "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
            "-h", str(self.workdir), "-p", str(self.port), "-U", SERVER_USER, "-d", database,
            "-c", sql,
        ]  # fmt: skip
        return _as_server_user(command, timeout=120).stdout

    def create_database(self, name: str, *, template: str | None = None) -> None:
        """Create database ``name`` owned by the test user (a copy of ``template``)."""
        copy_of = f' TEMPLATE "{template}"' if template is not None else ""
        self.psql(f'CREATE DATABASE "{name}"{copy_of}', database="postgres")

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` (closing its connections)."""
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', database="postgres")

    def stop(self) -> None:
        """Stop the server (fast) and delete its directory."""
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            _as_server_user(
                [str(self.bindir / "pg_ctl"), "stop", "-D", str(self.datadir), "-m", "fast", "-w"],
                timeout=60,
            )
        shutil.rmtree(self.workdir, ignore_errors=True)


def _as_server_user(command: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    if os.geteuid() == 0:
        command = ["runuser", "-u", SERVER_USER, "--", *command]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=timeout)


def start(
    *,
    user: str = "tsi",
    password: str = "tsi-secret",
    database: str = "tsi",
    timezone: str = "UTC",
    attempts: int = 3,
    settings: Mapping[str, str | int] | None = None,
    extra_packages: Sequence[str] = (),
    replication: bool = False,
) -> PgServer:
    """Install if needed, then start a new cluster on a free loopback port.

    Args:
        user: The test user (owner of ``database``), authenticated by password over TCP.
        password: Its password.
        database: The database created for it.
        timezone: The server's ``TimeZone`` (what ``timestamptz`` values print in).
        attempts: Tries with a new port if another process took the chosen one.
        settings: More server settings (``-c name=value``), e.g. ``{"wal_level": "logical",
            "max_replication_slots": 4, "max_wal_senders": 4}``; they win over the defaults.
        extra_packages: Debian packages to install first (see :func:`ensure_installed`).
        replication: Give the test user the ``REPLICATION`` attribute (to create and read
            replication slots).

    Returns:
        The running server; call :meth:`PgServer.stop` when done.

    Raises:
        subprocess.CalledProcessError: initdb or pg_ctl failed (its output is attached).
    """
    bindir = ensure_installed(extra_packages)
    # As root the cluster belongs to ``postgres``, who must reach it: /tmp, not $TMPDIR.
    workdir = Path(tempfile.mkdtemp(prefix="tsi-pg-", dir="/tmp" if os.geteuid() == 0 else None))
    try:
        if os.geteuid() == 0:
            shutil.chown(workdir, SERVER_USER, SERVER_USER)
        pwfile = workdir / "pw"
        pwfile.write_text("bootstrap\n", encoding="utf-8")
        if os.geteuid() == 0:
            shutil.chown(pwfile, SERVER_USER, SERVER_USER)
        _as_server_user(
            [
                str(bindir / "initdb"), "-D", str(workdir / "data"), "-U", SERVER_USER,
                "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
                "-E", "UTF8", "--locale=C", "--no-sync",
            ],
            timeout=120,
        )  # fmt: skip
        for attempt in range(attempts):
            server = PgServer(bindir, workdir, free_port(), user, password, database)
            options = (
                f"-c listen_addresses=127.0.0.1 -p {server.port} -k {workdir} "
                f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                f"-c timezone={timezone} -c max_connections=40"
            )
            for name, value in (settings or {}).items():
                options += f" -c {name}={value}"
            try:
                _as_server_user(
                    [
                        str(bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(server.datadir),
                        "-l", str(server.logfile), "-o", options,
                    ],
                    timeout=90,
                )  # fmt: skip
                break
            except subprocess.CalledProcessError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.5)
        _bootstrap(server, replication=replication)
    except BaseException:
        log = workdir / "server.log"
        if log.exists():
            print(log.read_text(encoding="utf-8", errors="replace")[-4000:])
        with contextlib.suppress(Exception):
            _as_server_user(
                [str(bindir / "pg_ctl"), "stop", "-D", str(workdir / "data"), "-m", "immediate"],
                timeout=30,
            )
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return server


def _bootstrap(server: PgServer, *, replication: bool = False) -> None:
    """Create the password-authenticated test user and its database (over the socket)."""
    quoted_password = server.password.replace("'", "''")
    attributes = "LOGIN CREATEDB REPLICATION" if replication else "LOGIN CREATEDB"
    role = f"CREATE ROLE \"{server.user}\" {attributes} PASSWORD '{quoted_password}'"
    database = f'CREATE DATABASE "{server.database}" OWNER "{server.user}"'
    _as_server_user(
        [
            str(server.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(server.workdir),
            "-p", str(server.port), "-U", SERVER_USER, "-d", "postgres", "-c", role, "-c", database,
        ],
        timeout=60,
    )  # fmt: skip
