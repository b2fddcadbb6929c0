"""dlock — run a scheduled job on exactly one server at a time.

A pure-ctypes binding of libdlock (the C library must be installed, or named
by the environment variable DLOCK_LIBRARY)::

    import dlock

    with dlock.Client("postgresql://jobs@db.internal/app") as client:
        try:
            with client.lock("nightly-report", ttl=60, wait=0, heartbeat=True) as lock:
                run_the_report()          # lock.remaining, lock.lost, lock.extend()
        except dlock.LockBusy:
            pass                          # another server runs it

Durations are seconds (float).  Every failure is a DlockError subclass that
carries the C status code (``status``) and the library's detail text.
"""
from ._native import (EBACKEND, EBUSY, ECANCELED, ECONN, EINVAL, ELOST,
                      ENOMEM, ENOTSUP, OK)
from ._native import strerror
from .client import Client, Lock, version
from .errors import (BackendError, Canceled, DlockError, InvalidArgument,
                     LockBusy, LockLost, NotSupported, OutOfMemory,
                     StoreUnreachable, error_for)

__version__ = "0.1.0"

__all__ = [
    "Client", "Lock", "version", "strerror", "error_for",
    "DlockError", "LockBusy", "LockLost", "InvalidArgument", "StoreUnreachable",
    "BackendError", "OutOfMemory", "NotSupported", "Canceled",
    "OK", "EBUSY", "ELOST", "EINVAL", "ECONN", "EBACKEND", "ENOMEM", "ENOTSUP", "ECANCELED",
]
