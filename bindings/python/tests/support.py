"""Shared helpers of the dlock Python tests.

The tests run against every URL in DLOCK_TEST_URLS (space-separated, as for
the C conformance suite); without it, against a fresh SQLite file.  The C
library is the one that the dlock package finds (DLOCK_LIBRARY overrides).
"""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_PARENT = os.path.dirname(HERE)
if PACKAGE_PARENT not in sys.path:
    sys.path.insert(0, PACKAGE_PARENT)  # use the package from the source tree

import dlock  # noqa: E402

RACER = os.path.join(HERE, "racer.py")

_scratch = tempfile.mkdtemp(prefix="dlock-py-")
atexit.register(shutil.rmtree, _scratch, True)

SCHEME_BACKEND = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "redis": "redis",
    "redis+unix": "redis",
}


def backend_of(url: str) -> str:
    return SCHEME_BACKEND.get(url.split(":", 1)[0], "unknown")


def test_urls() -> list[str]:
    urls = os.environ.get("DLOCK_TEST_URLS", "").split()
    if not urls:
        urls = ["sqlite://" + os.path.join(_scratch, "locks.db")]
    return urls


def required_backends() -> set[str]:
    """What DLOCK_TEST_REQUIRE asks for: 'all', or backend names."""
    words = set(os.environ.get("DLOCK_TEST_REQUIRE", "").replace(",", " ").split())
    if "all" in words:
        return {"sqlite", "postgresql", "mysql", "redis"}
    return words & {"sqlite", "postgresql", "mysql", "redis"}


def unique_name(label: str) -> str:
    """A lock name that no other test, run or process uses."""
    return f"py-{label}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def scratch_dir() -> str:
    return _scratch


def take_away(url: str, name: str) -> None:
    """Take the lock `name` away from whoever holds it, for real, as an
    operator or a failure would: SQLite — delete its row; lease mode — clear
    the owner of its row; PostgreSQL — end
    the holder's session (pg_terminate_backend); MySQL — KILL the holder's
    connection; Redis — delete its key.  Raises AssertionError when nobody held it."""
    backend = backend_of(url)
    # libdlock's own URL options are not the client programs' business.
    parts = urllib.parse.urlsplit(url)
    ours = ("mode", "table", "fencing", "prefix")
    options = urllib.parse.parse_qs(parts.query)
    lease = options.get("mode") == ["lease"]
    table = options.get("table", ["dlock_leases"])[0]
    if backend in ("postgresql", "mysql"):
        kept = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k not in ours]
        url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(kept)))
    if backend == "postgresql" and lease:
        # Lease mode: the row's owner cleared, as an operator would.
        sql = (f"UPDATE {table} SET owner = NULL WHERE name = convert_to(:'name', 'UTF8')"
               " AND owner IS NOT NULL RETURNING 1;\n")
        out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v",
                              f"name={name}", "-d", url], input=sql, capture_output=True,
                             text=True, timeout=30, check=True).stdout.strip()
        assert out == "1", f"cleared {out!r} rows"
        return
    if backend == "sqlite":
        import sqlite3
        path = urllib.parse.unquote(url[len("sqlite://"):] if url.startswith("sqlite://")
                                    else url[len("sqlite:"):])
        db = sqlite3.connect(path, timeout=10)
        try:
            deleted = db.execute("DELETE FROM dlock_locks WHERE name = ?", (name,)).rowcount
            db.commit()
        finally:
            db.close()
        assert deleted == 1, f"no row for {name}"
    elif backend == "postgresql":
        # The advisory key is the first 8 bytes of SHA-256(name), big-endian
        # (docs/postgresql.md); psql reads the name as a variable, quoted.
        sql = ("SELECT count(pg_catalog.pg_terminate_backend(pid)) FROM pg_catalog.pg_locks"
               " WHERE locktype = 'advisory' AND granted AND objsubid = 1"
               " AND ((classid::bigint << 32) | objid::bigint) ="
               " ('x' || substr(encode(sha256(convert_to(:'name', 'UTF8')), 'hex'), 1, 16))::bit(64)::bigint;\n")
        out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v",
                              f"name={name}", "-d", url], input=sql, capture_output=True,
                             text=True, timeout=30, check=True).stdout.strip()
        assert out == "1", f"ended {out!r} sessions"
    elif backend == "mysql":
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qs(parts.query)
        args = ["mysql", "--protocol=" + ("socket" if "socket" in query else "tcp"), "-N", "-B"]
        if parts.username:
            args += ["-u", urllib.parse.unquote(parts.username)]
        if "socket" in query:
            args += ["-S", query["socket"][0]]
        else:
            args += ["-h", parts.hostname or "127.0.0.1", "-P", str(parts.port or 3306)]
        env = dict(os.environ, MYSQL_PWD=urllib.parse.unquote(parts.password or ""))
        # Names made by unique_name() are lower-case ASCII: the server's lock
        # name is the name itself (docs/mysql.md).
        if lease:
            # Lease mode: the row's owner cleared, as an operator would.
            out = subprocess.run(args + [urllib.parse.unquote(parts.path.lstrip("/")), "-e",
                                         f"UPDATE {table} SET owner = NULL, expires_at = 0"
                                         f" WHERE name = '{name}' AND owner IS NOT NULL; SELECT ROW_COUNT()"],
                                 env=env, capture_output=True, text=True, timeout=30, check=True).stdout.strip()
            assert out == "1", f"cleared {out!r} rows"
            return
        holder = subprocess.run(args + ["-e", f"SELECT IS_USED_LOCK('{name}')"], env=env,
                                capture_output=True, text=True, timeout=30, check=True).stdout.strip()
        assert holder.isdigit(), f"IS_USED_LOCK gave {holder!r}"
        subprocess.run(args + ["-e", f"KILL {holder}"], env=env, capture_output=True, text=True,
                       timeout=30, check=True)
    elif backend == "redis":
        # The lock is the key <prefix>{<name>} (docs/redis.md); redis-cli
        # deletes it as an operator would.  The password goes through the
        # environment, never the command line.
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qs(parts.query)
        prefix = query.get("prefix", ["dlock:"])[0]
        env = dict(os.environ, REDISCLI_AUTH=urllib.parse.unquote(parts.password or ""))
        if url.startswith("redis+unix:"):
            args = ["redis-cli", "-s", parts.path, "-n", query.get("db", ["0"])[0]]
        else:
            args = ["redis-cli", "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 6379),
                    "-n", (parts.path.strip("/") or "0")]
        if parts.username:
            args += ["--user", urllib.parse.unquote(parts.username)]
        out = subprocess.run(args + ["--no-auth-warning", "DEL", prefix + "{" + name + "}"], env=env,
                             capture_output=True, text=True, timeout=30, check=True).stdout.strip()
        assert out == "1", f"DEL gave {out!r}"
    else:
        raise AssertionError(f"cannot take a lock away on {backend}")
