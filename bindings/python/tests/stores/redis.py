"""Redis: the lock is the key <prefix>{<name>} (docs/redis.md)."""
import os
import subprocess
import urllib.parse

from . import with_password

SCHEMES = ("redis", "redis+unix")


def fences(url: str) -> bool:
    return True


def take_away(url: str, name: str) -> None:
    """Delete its key with redis-cli, as an operator would.  The password
    goes through the environment, never the command line."""
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


def refused_logins(url: str) -> list:
    """A wrong password, and none at all (NOAUTH), where the server has one."""
    parts = urllib.parse.urlsplit(url)
    if not parts.password or url.startswith("redis+unix:"):
        return []
    bare = parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl()
    return [with_password(url, "dlock-wrong-password"), bare]
