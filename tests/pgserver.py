"""A throw-away PostgreSQL server for the tests and the bench: Debian's binaries
(``/usr/lib/postgresql/VERSION/bin``), ``initdb`` in a temporary directory, run as the
``postgres`` user when we are root (PostgreSQL refuses to run as root), on a free loopback
port with its socket in that directory.  Durability is off (``fsync=off``): it is thrown
away.  ``TRUST`` logs ``postgres`` in without a password; every other role needs its
password over TCP (scram-sha-256), so the tests can check password handling too.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

#: what to install when the server binaries are missing (Debian 12)
PACKAGE = "postgresql-15 (apt-get install postgresql)"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
_HBA = """local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
"""


def binaries() -> Path | None:
    """The directory of ``initdb`` and ``postgres`` (version 15 first), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: (not p.startswith(
        "/usr/lib/postgresql/15/"), p))
    return Path(found[0]).parent if found else None


def missing_reason() -> str | None:
    """Why no server can be started here (for ``pytest.skip``), or None."""
    if binaries() is None:
        return f"PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: install {PACKAGE}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return f"running as root without a 'postgres' user to run the server as: install {PACKAGE}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, max_connections: int = 300) -> None:
        self.bin = binaries()
        if self.bin is None:
            raise RuntimeError(missing_reason())
        self.max_connections = max_connections
        self.dir = Path(tempfile.mkdtemp(prefix="sipgw-pg-"))
        self.data = self.dir / "data"
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self._user = pwd.getpwnam("postgres")
            os.chown(self.dir, self._user.pw_uid, self._user.pw_gid)
            self.dir.chmod(0o700)
        self._count = 0

    def _as_server_user(self, argv: list[str]) -> list[str]:
        # setpriv execs the server itself (runuser would stay between us and it, holding its pid)
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *argv] \
            if self._user is not None else argv

    def start(self) -> PostgresServer:
        subprocess.run(self._as_server_user([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                                             "-E", "UTF8", "--locale=C", "--auth=trust", "--no-sync"]),
                       check=True, capture_output=True, timeout=120, cwd=self.dir)
        (self.data / "pg_hba.conf").write_text(_HBA)
        for _ in range(3):   # a port taken between choosing and binding: choose again
            self.port = _free_port()
            self.proc = subprocess.Popen(
                self._as_server_user([str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                                      "-k", str(self.dir), "-c", "listen_addresses=127.0.0.1",
                                      "-c", "fsync=off", "-c", "full_page_writes=off",
                                      "-c", f"max_connections={self.max_connections}"]),
                stdout=open(self.dir / "server.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True,
                cwd=self.dir)
            if self._wait_ready():
                return self
        raise RuntimeError(f"PostgreSQL did not start; see {self.dir / 'server.log'}:\n" + self.log_tail())

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                psycopg.connect(self.admin_url(), connect_timeout=2).close()
                return True
            except psycopg.OperationalError:
                time.sleep(0.05)   # polling a starting server, bounded by the deadline
        self.proc.kill()
        self.proc.wait(10)
        return False

    def log_tail(self) -> str:
        try:
            return (self.dir / "server.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def url(self, database: str, user: str = "postgres", password: str | None = None) -> str:
        secret = f":{password}" if password is not None else ""
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{database}"

    def admin_url(self) -> str:
        return self.url("postgres")

    def admin(self, *statements: str) -> None:
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def create_database(self, prefix: str = "t", template: str | None = None) -> str:
        """A new database, empty or a copy of ``template``; its URL (as ``postgres``)."""
        self._count += 1
        name = f"{prefix}{os.getpid()}_{self._count}"
        self.admin(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop it (its connections are closed first), so a long run does not pile them up."""
        self.admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)   # fast shutdown
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def migrated_template(server: PostgresServer) -> str:
    """The name of a database holding sipgateway's schema (made once per server), to copy
    with ``CREATE DATABASE ... TEMPLATE``: a copy is much quicker than the migrations."""
    name = getattr(server, "_template", None)
    if name is None:
        from sipgateway.acs.sqlite.schema import connect, migrate

        url = server.create_database("template")
        conn = connect(url)
        try:
            migrate(conn)
        finally:
            conn.close()
        name = server._template = url.rsplit("/", 1)[1]
    return name
