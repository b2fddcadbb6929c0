"""dlock — run a scheduled job on exactly one server at a time.

A pure-ctypes binding of libdlock (the C library must be installed, or named
by the environment variable DLOCK_LIBRARY; it is loaded by the first Client(),
so ``import dlock`` works without it)::

    import dlock

    with dlock.Client("postgresql://jobs@db.internal/app") as client:
        try:
            with client.lock("nightly-report", ttl=60, wait=0, heartbeat=True) as lock:
                run_the_report()          # lock.remaining, lock.lost, lock.extend()
        except dlock.LockBusy:
            pass                          # another server runs it

    lock = client.try_lock("nightly-report", ttl=60)     # None when busy

    @client.synchronized("nightly-report", ttl=60, wait=None)
    def run_the_report(): ...

    async with client.alock("nightly-report", ttl=60, wait=10) as lock: ...

Durations are seconds (float).  Every failure is a DlockError subclass that
carries the C status code (``status``) and the library's detail text.
"""
from ._native import (EBACKEND, EBUSY, ECANCELED, ECONN, EINVAL, ELOST,
                      ENOMEM, ENOTSUP, OK, LibraryNotFound, status_name, strerror)
from .client import Client, Lock, default_url, version
from .errors import (BackendError, Canceled, DlockError, InvalidArgument,
                     LockBusy, LockLost, NotSupported, OutOfMemory,
                     StoreUnreachable, LoginRefused, UsedAfterFork, error_for)


def _package_version() -> str:
    """The version of the installed distribution; in a source tree (used
    through PYTHONPATH) the one in the pyproject.toml beside the package."""
    try:
        from importlib.metadata import PackageNotFoundError, version as dist_version
        try:
            return dist_version("dlock")
        except PackageNotFoundError:
            pass
    except ImportError:  # pragma: no cover - Python < 3.8
        pass
    import os
    import re
    pyproject = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "pyproject.toml")
    try:
        with open(pyproject, encoding="utf-8") as f:
            found = re.search(r'^version\s*=\s*"([^"]+)"', f.read(), re.MULTILINE)
    except OSError:
        found = None
    return found.group(1) if found else "0+unknown"


__version__ = _package_version()

__all__ = [
    "Client", "Lock", "default_url", "version", "strerror", "status_name", "error_for",
    "DlockError", "LockBusy", "LockLost", "InvalidArgument", "StoreUnreachable", "LoginRefused",
    "BackendError", "OutOfMemory", "NotSupported", "Canceled", "UsedAfterFork",
    "LibraryNotFound",
    "OK", "EBUSY", "ELOST", "EINVAL", "ECONN", "EBACKEND", "ENOMEM", "ENOTSUP", "ECANCELED",
]
