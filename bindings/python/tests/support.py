"""Shared helpers of the dlock Python tests.

The tests run against every URL in DLOCK_TEST_URLS (space-separated, as for
the C conformance suite); without it, against a fresh SQLite file.  The C
library is the one that the dlock package finds (DLOCK_LIBRARY overrides).
"""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
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
        return {"sqlite", "postgresql", "mysql"}
    return words & {"sqlite", "postgresql", "mysql"}


def unique_name(label: str) -> str:
    """A lock name that no other test, run or process uses."""
    return f"py-{label}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def scratch_dir() -> str:
    return _scratch
