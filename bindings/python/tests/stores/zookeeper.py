"""ZooKeeper: the lock is the lowest node of <chroot>/<encoded name> (docs/zookeeper.md)."""
import re
import subprocess
import urllib.parse

SCHEMES = ("zookeeper",)
ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
# The session timeout is the lease: set by the acquire, granted at most the
# server's maxSessionTimeout (60 s on tests/zookeeper-server.sh's ensemble).
LEASE_SET_AT_ACQUIRE = True
MAX_LEASE_SECONDS = 60.0
MIN_LEASE_SECONDS = 0.1  # its minSessionTimeout: a shorter TTL is InvalidArgument


def fences(url: str) -> bool:
    return True


def refused_logins(url: str) -> list:
    """Digest credentials are never refused: a wrong password is another
    identity, which the nodes' ACL keeps out (check_zookeeper)."""
    return []


def _encode(name: str) -> str:
    """Every byte outside A-Z a-z 0-9 _ - as %XX (backends/zookeeper/url.c)."""
    plain = re.compile(rb"[A-Za-z0-9_-]")
    return "".join(chr(b) if plain.fullmatch(bytes([b])) else "%%%02X" % b for b in name.encode())


def _zkcli(server: str, *commands: str) -> str:
    script = "\n".join(commands) + "\nquit\n"
    return subprocess.run([ZKCLI, "-server", server], input=script, capture_output=True, text=True,
                          timeout=60, check=False).stdout


def take_away(url: str, name: str) -> None:
    """Delete the holder's node with zkCli.sh, as an operator would."""
    parts = urllib.parse.urlsplit(url)
    server = parts.netloc.rsplit("@", 1)[-1].split(",")[0]
    prefix = urllib.parse.parse_qs(parts.query).get("prefix", [""])[0]
    base = urllib.parse.unquote(parts.path.rstrip("/")) or "/dlock"
    folder = base + "/" + _encode(prefix + name)
    out = _zkcli(server, "ls " + folder)
    nodes = re.findall(r"[^\s\[\],]+-\d{10}", out)
    assert nodes, f"nobody holds {name!r}: {out[-300:]!r}"
    lowest = min(nodes, key=lambda n: int(n[-10:]))
    _zkcli(server, "delete " + folder + "/" + lowest)
    assert lowest not in _zkcli(server, "ls " + folder), f"{lowest} is still there"
