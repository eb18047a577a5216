"""A throwaway PostgreSQL server for the tests: Debian's ``initdb`` and ``pg_ctl``, no system service.

The cluster lives in a fresh folder under the system temp directory, listens on a free loopback
port (and on a Unix socket inside that folder), runs as an unprivileged system user (``cnnpg``,
created on first use; initdb refuses to run as root) and has one superuser role with a password,
so that the tests exercise password authentication (scram-sha-256) and password masking for real.
``stop()`` stops it at once (``pg_ctl stop -m immediate``) and removes its folder.
"""
from __future__ import annotations

import atexit
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SYSTEM_USER = "cnnpg"
ROLE = "cnncourse"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL is not installed here, or its server would not start."""


def pg_bindir() -> Path:
    """``/usr/lib/postgresql/<version>/bin`` of the newest installed version."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if not found:
        raise PostgresUnavailable("PostgreSQL is not installed (no /usr/lib/postgresql/<version>/bin/initdb): "
                                  "apt-get install postgresql, or run `make postgres` as root")
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ensure_user() -> tuple[int, int]:
    try:
        pw = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", SYSTEM_USER], check=True, capture_output=True)
        pw = pwd.getpwnam(SYSTEM_USER)
    return pw.pw_uid, pw.pw_gid


class PostgresServer:
    def __init__(self, password: str | None = None):
        self.bindir = pg_bindir()
        self.password = password or "pw-" + secrets.token_hex(8)
        self.role = ROLE
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="cnn-pg-"))
        self.data = self.dir / "data"
        self.socket_dir = self.dir / "sock"
        self.log = self.dir / "server.log"
        self.started = False

    # -- running commands as the server's user
    def _as_owner(self, argv: list[str]) -> list[str]:
        if os.getuid() != 0:
            return argv
        return ["setpriv", f"--reuid={SYSTEM_USER}", f"--regid={SYSTEM_USER}", "--clear-groups", "--"] + argv

    def _run(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        res = subprocess.run(self._as_owner(argv), capture_output=True, text=True, timeout=timeout,
                             cwd=self.dir, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"})
        if res.returncode != 0:
            raise PostgresUnavailable(f"{Path(argv[0]).name} failed ({res.returncode}): "
                                      f"{(res.stderr or res.stdout).strip()[-1500:]}")
        return res

    def start(self) -> "PostgresServer":
        self.socket_dir.mkdir()
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.getuid() == 0:
            uid, gid = _ensure_user()
            for p in (self.dir, self.socket_dir, pwfile):
                os.chown(p, uid, gid)
        os.chmod(pwfile, 0o600)
        self._run([str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.role, f"--pwfile={pwfile}",
                   "--auth=scram-sha-256", "--encoding=UTF8", "--no-locale", "--no-sync"])
        pwfile.unlink()
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.socket_dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60")
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts,
                   "-w", "-t", "60", "start"])
        self.started = True
        atexit.register(self.stop)   # also on an interrupted session whose fixtures were not finalized
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30) -> None:
        import psycopg

        end = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=3).close()
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > end:
                    raise PostgresUnavailable(f"PostgreSQL did not accept connections: {exc}") from None
                time.sleep(0.3)

    def stop(self) -> None:
        if self.started:
            try:
                self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                          timeout=60)
            except (PostgresUnavailable, subprocess.TimeoutExpired):
                pass
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- databases and URLs
    def dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.role} password={self.password} dbname={database}"

    def url(self, database: str, password: str | None = None, port: int | None = None) -> str:
        """The SQLAlchemy URL (psycopg 3 driver) of one database on this server."""
        pw = self.password if password is None else password
        return f"postgresql+psycopg://{self.role}:{pw}@127.0.0.1:{port or self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = name or "gb_" + secrets.token_hex(4)
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
