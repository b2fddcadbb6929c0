"""Exceptions, one per libdlock status code.

Every exception raised for a failed libdlock call is a DlockError whose
``status`` is the C status code (``dlock.EBUSY`` …) and whose ``detail`` is
the library's dlock_last_error() text for that call.  Where a built-in
exception means the same thing, the class derives from it too, so that
``except ValueError`` catches a bad name and ``except MemoryError`` an
allocation failure.  The store being unreachable is ``StoreUnreachable``: it
deliberately does not derive from the built-in ConnectionError, which is an
OSError and carries errno semantics that a lock store failure does not have.
"""
from __future__ import annotations

from typing import Dict, Type

from . import _native


class DlockError(Exception):
    """A libdlock call failed; ``status`` is the C status code."""

    status: int = 0

    def __init__(self, status: int, detail: str = "", what: str = "") -> None:
        self.status = status
        self.detail = detail
        self.what = what
        reason = _native.strerror(status)
        message = f"{what}: {reason}" if what else reason
        if detail:
            message += f" ({detail})"
        super().__init__(message)


class LockBusy(DlockError):
    """DLOCK_EBUSY: held by someone else (the try failed or the wait ran out),
    or already held by this client (locks are not re-entrant)."""


class LockLost(DlockError):
    """DLOCK_ELOST: the lock is no longer held (lease ran out, session ended,
    store restarted): the critical section may have overlapped another."""


class InvalidArgument(DlockError, ValueError):
    """DLOCK_EINVAL: bad name, TTL or wait out of range, malformed URL."""


class StoreUnreachable(DlockError):
    """DLOCK_ECONN: the lock store is unreachable, or the connection broke."""


class BackendError(DlockError):
    """DLOCK_EBACKEND: the store answered with an error (permissions, SQL)."""


class OutOfMemory(DlockError, MemoryError):
    """DLOCK_ENOMEM."""


class NotSupported(DlockError):
    """DLOCK_ENOTSUP: URL scheme not built into this libdlock, or an operation
    that this backend does not offer."""


class Canceled(DlockError):
    """DLOCK_ECANCELED: a wait was interrupted by Client.cancel()."""


class UsedAfterFork(DlockError, RuntimeError):
    """A client, or one of its locks, used in a process other than the one
    that opened it (a child after fork()).  ``status`` is DLOCK_EINVAL, as
    for any call on a handle that cannot be used; the C library was not
    called."""


_BY_STATUS: Dict[int, Type[DlockError]] = {
    _native.EBUSY: LockBusy,
    _native.ELOST: LockLost,
    _native.EINVAL: InvalidArgument,
    _native.ECONN: StoreUnreachable,
    _native.EBACKEND: BackendError,
    _native.ENOMEM: OutOfMemory,
    _native.ENOTSUP: NotSupported,
    _native.ECANCELED: Canceled,
}


def error_for(status: int, detail: str = "", what: str = "") -> DlockError:
    """The exception for a status code; an unknown (newer) code gives a plain
    DlockError, since codes are only ever appended in C."""
    cls = _BY_STATUS.get(status, DlockError)
    return cls(status, detail, what)


def check(status: int, what: str) -> int:
    """Raise for a negative status, reading this thread's detail text."""
    if status < 0:
        raise error_for(status, _native.last_error(), what)
    return status
