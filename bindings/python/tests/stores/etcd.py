"""etcd: the lock is the lowest of the keys PREFIX/NAME/LEASEID (docs/etcd.md)."""
import os
import subprocess
import urllib.parse

from . import options

SCHEMES = ("etcd", "etcds")


def fences(url: str) -> bool:
    return True


def refused_logins(url: str) -> list:
    """A wrong password on the test cluster's member with authentication on
    (DLOCK_TEST_ETCD_AUTH_URL, from tests/servers.sh); none without it."""
    auth = os.environ.get("DLOCK_TEST_ETCD_AUTH_URL")
    if not auth:
        return []
    parts = urllib.parse.urlsplit(auth)
    host = parts.netloc.rsplit("@", 1)[-1]
    return ["%s://%s:dlock-wrong-password@%s%s" % (parts.scheme, parts.username or "dlock", host, parts.path)]


def _escape(name: str) -> str:
    """The name as it appears in a key: '%', '/' and control bytes as %XX."""
    out = []
    for byte in name.encode():
        if byte in (0x25, 0x2F) or byte < 0x20 or byte == 0x7F:
            out.append("%%%02X" % byte)
        else:
            out.append(chr(byte))
    return "".join(out).encode("latin-1").decode("utf-8")


def take_away(url: str, name: str) -> None:
    """Delete the holder's key with etcdctl, as an operator would."""
    parts = urllib.parse.urlsplit(url)
    endpoints = parts.netloc.rsplit("@", 1)[-1]
    prefix = options(url).get("prefix", ["dlock"])[0]
    args = ["etcdctl", "--endpoints=" + endpoints, "--command-timeout=5s"]
    if parts.username:
        args.append("--user=%s:%s" % (urllib.parse.unquote(parts.username),
                                      urllib.parse.unquote(parts.password or "")))
    env = dict(os.environ, ETCDCTL_API="3")
    keys = subprocess.run(args + ["get", "--prefix", "%s/%s/" % (prefix, _escape(name)), "--sort-by=CREATE",
                                  "--order=ASCEND", "--keys-only", "--limit=1"],
                          env=env, capture_output=True, text=True, timeout=30, check=True).stdout.split()
    assert keys, "nobody held %r" % name
    out = subprocess.run(args + ["del", keys[0]], env=env, capture_output=True, text=True, timeout=30,
                         check=True).stdout.strip()
    assert out == "1", f"del gave {out!r}"
