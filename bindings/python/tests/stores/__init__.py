"""Store adapters for the Python tests (as tests/stores/ for the C suites).

One module per backend, named as dlock's backend() names it, with:
  SCHEMES              the URL schemes of the store
  fences(url)          whether a lock taken at this URL has a fencing token
  take_away(url, name) take the lock away behind its holder's back, with the
                       store's own client, as an operator or a failure would;
                       AssertionError when nobody held it
and optionally:
  LEASE_SET_AT_ACQUIRE an extend cannot lengthen the lease the acquire got
  MAX_LEASE_SECONDS    the longest lease the test server grants
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
