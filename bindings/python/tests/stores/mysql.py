"""MySQL/MariaDB: session mode (GET_LOCK) or mode=lease (rows)."""
import os
import subprocess
import urllib.parse

from . import options, with_password, with_path, without_our_options

SCHEMES = ("mysql", "mariadb")


def fences(url: str) -> bool:
    opts = options(url)
    return opts.get("mode") == ["lease"] or opts.get("fencing") == ["on"]


def take_away(url: str, name: str) -> None:
    """Lease mode: clear the row's owner; session mode: KILL the holder's connection."""
    opts = options(url)
    parts = urllib.parse.urlsplit(without_our_options(url))
    query = urllib.parse.parse_qs(parts.query)
    args = ["mysql", "--protocol=" + ("socket" if "socket" in query else "tcp"), "-N", "-B"]
    if parts.username:
        args += ["-u", urllib.parse.unquote(parts.username)]
    if "socket" in query:
        args += ["-S", query["socket"][0]]
    else:
        args += ["-h", parts.hostname or "127.0.0.1", "-P", str(parts.port or 3306)]
    env = dict(os.environ, MYSQL_PWD=urllib.parse.unquote(parts.password or ""))

    def run(*more: str) -> str:
        return subprocess.run(args + list(more), env=env, capture_output=True, text=True, timeout=30,
                              check=True).stdout.strip()

    # Names made by unique_name() are lower-case ASCII: the server's lock
    # name is the name itself (docs/mysql.md).
    if opts.get("mode") == ["lease"]:
        table = opts.get("table", ["dlock_leases"])[0]
        out = run(urllib.parse.unquote(parts.path.lstrip("/")), "-e",
                  f"UPDATE {table} SET owner = NULL, expires_at = 0"
                  f" WHERE name = '{name}' AND owner IS NOT NULL; SELECT ROW_COUNT()")
        assert out == "1", f"cleared {out!r} rows"
        return
    holder = run("-e", f"SELECT IS_USED_LOCK('{name}')")
    assert holder.isdigit(), f"IS_USED_LOCK gave {holder!r}"
    run("-e", f"KILL {holder}")


def refused_logins(url: str) -> list:
    """A wrong password, and a database the user may not use."""
    return [with_password(url, "dlock-wrong-password"), with_path(url, "/dlock_no_such_database")]
