"""PostgreSQL: session mode (advisory locks) or mode=lease (rows)."""
import subprocess

from . import options, with_path, without_our_options

SCHEMES = ("postgresql", "postgres")


def fences(url: str) -> bool:
    opts = options(url)
    return opts.get("mode") == ["lease"] or opts.get("fencing") == ["on"]


def _psql(url: str, name: str, sql: str) -> str:
    # psql reads the name as a variable, quoted.
    return subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v", f"name={name}",
                           "-d", without_our_options(url)], input=sql, capture_output=True, text=True,
                          timeout=30, check=True).stdout.strip()


def take_away(url: str, name: str) -> None:
    """Lease mode: clear the row's owner; session mode: end the holder's
    session (pg_terminate_backend)."""
    opts = options(url)
    if opts.get("mode") == ["lease"]:
        table = opts.get("table", ["dlock_leases"])[0]
        out = _psql(url, name, f"UPDATE {table} SET owner = NULL WHERE name = convert_to(:'name', 'UTF8')"
                               " AND owner IS NOT NULL RETURNING 1;\n")
        assert out == "1", f"cleared {out!r} rows"
        return
    # The advisory key is the first 8 bytes of SHA-256(name), big-endian (docs/postgresql.md).
    out = _psql(url, name, "SELECT count(pg_catalog.pg_terminate_backend(pid)) FROM pg_catalog.pg_locks"
                           " WHERE locktype = 'advisory' AND granted AND objsubid = 1"
                           " AND ((classid::bigint << 32) | objid::bigint) ="
                           " ('x' || substr(encode(sha256(convert_to(:'name', 'UTF8')), 'hex'), 1, 16))"
                           "::bit(64)::bigint;\n")
    assert out == "1", f"ended {out!r} sessions"


def refused_logins(url: str) -> list:
    """An unknown database (the test server may trust its users, so a wrong
    password is not refused there)."""
    return [with_path(url, "/dlock_no_such_database")]
