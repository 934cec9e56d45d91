"""Throwaway PostgreSQL and Redis servers for the scale-out tests.

``.ci/services.sh`` starts them for ``.ci/run`` and exports
``WESOG_TEST_POSTGRES_DSN`` / ``WESOG_TEST_REDIS_URL``; when those are absent
(the README's plain ``python -m pytest``), the session fixtures in
``conftest.py`` start the same servers from the installed binaries. A test
that needs one is skipped, with the reason, only when the binaries are missing.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

POSTGRES_ENV = "WESOG_TEST_POSTGRES_DSN"
REDIS_ENV = "WESOG_TEST_REDIS_URL"
_READY_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def postgres_bin() -> str | None:
    """The directory of ``initdb`` and ``postgres`` (Debian's newest first), if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for d in found:
        if os.access(os.path.join(d, "initdb"), os.X_OK) and os.access(
            os.path.join(d, "postgres"), os.X_OK
        ):
            return d
    initdb = shutil.which("initdb")
    if initdb and shutil.which("postgres"):
        return os.path.dirname(initdb)
    return None


def _version_key(path: str) -> tuple[int, ...]:
    part = path.split("/")[-2]
    return tuple(int(p) for p in part.split(".") if p.isdigit())


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: str) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server not listening on 127.0.0.1:{port}: {_tail(log)}")


def _tail(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()[-2000:]
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()  # SIGTERM: postgres "smart" shutdown, redis exits
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def run_postgres(bin_dir: str) -> Iterator[str]:
    """Start a fresh cluster on a free loopback port; yield its DSN; remove it."""
    root = tempfile.mkdtemp(prefix="wesog-pg-")
    user: str | None = None
    if os.geteuid() == 0:
        # postgres refuses to run as root: the cluster belongs to an unprivileged user.
        user = "postgres"
        try:
            owner = pwd.getpwnam(user)
        except KeyError:
            user, owner = "nobody", pwd.getpwnam("nobody")
        os.chown(root, owner.pw_uid, owner.pw_gid)
    prefix = ["runuser", "-u", user, "--"] if user else []
    data = os.path.join(root, "data")
    log = os.path.join(root, "server.log")
    try:
        subprocess.run(
            [*prefix, os.path.join(bin_dir, "initdb"), "-D", data, "-U", "wesog", "-A", "trust",
             "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True,
        )  # fmt: skip
        port = free_port()
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [*prefix, os.path.join(bin_dir, "postgres"), "-D", data, "-p", str(port),
                 "-k", root, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                 "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=200"],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            _wait_port(port, proc, log)
            # Listening comes a moment before accepting logins; pg_isready tells.
            deadline = time.monotonic() + _READY_TIMEOUT
            ready = os.path.join(bin_dir, "pg_isready")
            while subprocess.run(
                [ready, "-q", "-h", "127.0.0.1", "-p", str(port)], check=False
            ).returncode:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL not ready: {_tail(log)}")
                time.sleep(0.05)
            yield f"postgresql://wesog@127.0.0.1:{port}/postgres"
        finally:
            _stop(proc)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def run_redis(binary: str) -> Iterator[str]:
    """Start redis-server on a free loopback port, no persistence; yield its URL."""
    root = tempfile.mkdtemp(prefix="wesog-redis-")
    log = os.path.join(root, "server.log")
    port = free_port()
    try:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                 "--appendonly", "no", "--dir", root, "--daemonize", "no"],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            _wait_port(port, proc, log)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            _stop(proc)
    finally:
        shutil.rmtree(root, ignore_errors=True)


__all__ = ["POSTGRES_ENV", "REDIS_ENV", "free_port", "postgres_bin", "run_postgres", "run_redis"]


_RUN = uuid.uuid4().hex[:8]
_counter = itertools.count()


def unique_name(tag: str) -> str:
    """A journal or job name no other test, and no earlier run against the same
    server, uses (a second run of the suite must not find the first one's rows)."""
    return f"{tag}-{_RUN}-{next(_counter)}"
