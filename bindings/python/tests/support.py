"""Shared helpers of the dlock Python tests.

The tests run against every URL in DLOCK_TEST_URLS (space-separated, as for
the C conformance suite); without it, against a fresh SQLite file.  The C
library is the one that the dlock package finds (DLOCK_LIBRARY overrides).
"""
from __future__ import annotations

import atexit
import importlib
import os
import shutil
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_PARENT = os.path.dirname(HERE)
if PACKAGE_PARENT not in sys.path:
    sys.path.insert(0, PACKAGE_PARENT)  # use the package from the source tree
if HERE not in sys.path:
    sys.path.insert(0, HERE)  # the store adapters (stores/)

import dlock  # noqa: E402

RACER = os.path.join(HERE, "racer.py")

_scratch = tempfile.mkdtemp(prefix="dlock-py-")
atexit.register(shutil.rmtree, _scratch, True)

# The store adapters (stores/<backend>.py, as tests/stores/ for the C suites):
# each names its URL schemes, says whether it fences by default, and takes a
# lock away behind its holder's back with the store's own client.
STORES_DIR = os.path.join(HERE, "stores")


def _adapters() -> dict:
    found = {}
    for entry in sorted(os.listdir(STORES_DIR)):
        if entry.endswith(".py") and not entry.startswith("_"):
            name = entry[:-3]
            found[name] = importlib.import_module("stores." + name)
    return found


ADAPTERS = _adapters()


def backend_of(url: str) -> str:
    scheme = url.split(":", 1)[0].lower()
    for name, adapter in ADAPTERS.items():
        if scheme in adapter.SCHEMES:
            return name
    return "unknown"


def store_of(url: str):
    """The adapter of the URL's store; fails loudly naming the file to add."""
    backend = backend_of(url)
    if backend not in ADAPTERS:
        raise AssertionError(f"no Python test adapter for {url.split(':', 1)[0]}: add "
                             f"bindings/python/tests/stores/<backend>.py (see stores/__init__.py)")
    return ADAPTERS[backend]


def test_urls() -> list[str]:
    urls = os.environ.get("DLOCK_TEST_URLS", "").split()
    if not urls:
        urls = ["sqlite://" + os.path.join(_scratch, "locks.db")]
    return urls


def required_backends() -> set[str]:
    """What DLOCK_TEST_REQUIRE asks for: 'all', or backend names."""
    words = set(os.environ.get("DLOCK_TEST_REQUIRE", "").replace(",", " ").split())
    if "all" in words:
        return set(ADAPTERS)
    return words & set(ADAPTERS)


def unique_name(label: str) -> str:
    """A lock name that no other test, run or process uses."""
    return f"py-{label}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def scratch_dir() -> str:
    return _scratch


def take_away(url: str, name: str) -> None:
    """Take the lock `name` away from whoever holds it, for real, as an
    operator or a failure would (each store's adapter says how).  Raises
    AssertionError when nobody held it."""
    store_of(url).take_away(url, name)


def fences(url: str) -> bool:
    """Whether a lock taken at this URL has a fencing token."""
    return store_of(url).fences(url)
