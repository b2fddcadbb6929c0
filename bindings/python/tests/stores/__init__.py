"""Store adapters for the Python tests (as tests/stores/ for the C suites).

One module per backend, named as dlock's backend() names it, with:
  SCHEMES              the URL schemes of the store
  fences(url)          whether a lock taken at this URL has a fencing token
  take_away(url, name) take the lock away behind its holder's back, with the
                       store's own client, as an operator or a failure would;
                       AssertionError when nobody held it
  refused_logins(url)  URLs of the same server that it answers with a refused
                       login (a wrong password, an unknown database); [] for a
                       store without logins
and optionally:
  LEASE_SET_AT_ACQUIRE an extend cannot lengthen the lease the acquire got
  MAX_LEASE_SECONDS    the longest lease the test server grants
  MIN_LEASE_SECONDS    the shortest (a shorter TTL is InvalidArgument)
"""
import urllib.parse

OURS = ("mode", "table", "fencing", "prefix")


def options(url: str) -> dict:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)


def without_our_options(url: str) -> str:
    """The URL without libdlock's own options: they are not the client programs' business."""
    parts = urllib.parse.urlsplit(url)
    kept = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k not in OURS]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(kept)))


def with_password(url: str, password: str) -> str:
    """The URL with its password replaced (or added, with the user kept)."""
    parts = urllib.parse.urlsplit(url)
    user = urllib.parse.quote(urllib.parse.unquote(parts.username or ""), safe="")
    host = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


def with_path(url: str, path: str) -> str:
    """The URL with its path (the database) replaced."""
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(path=path))
