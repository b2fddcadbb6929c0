"""Exceptions, one per libdlock status code.

Every exception raised for a failed libdlock call is a DlockError whose
``status`` is the C status code (``dlock.EBUSY`` …) and whose ``detail`` is
the library's dlock_last_error() text for that call.  Where a built-in
exception means the same thing, the class derives from it too, so that
``except ValueError`` catches a bad name and ``except MemoryError`` an
allocation failure.  The store being unreachable is ``StoreUnreachable``: it
deliberately does not derive from the built-in ConnectionError, which is an
OSError and carries errno semantics that a lock store failure does not have.
A store that answered and refused the login (wrong password, unknown user or
database) is ``LoginRefused``, a StoreUnreachable that a retry loop can tell
apart: retrying a wrong password does not help.
"""
from __future__ import annotations

from typing import Dict, Optional, Type

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
    or already held by this client (locks are not re-entrant).  ``holder``
    is who held it when the acquire gave up, as Client.holder() tells it
    (diagnostic text), or None when that is not known."""

    holder: Optional[str] = None

    def __init__(self, status: int, detail: str = "", what: str = "", holder: Optional[str] = None) -> None:
        super().__init__(status, detail, what)
        self.holder = holder
        if holder:
            self.args = (f"{self.args[0]}; held by {holder}",)


class LockLost(DlockError):
    """DLOCK_ELOST: the lock is no longer held (lease ran out, session ended,
    store restarted): the critical section may have overlapped another."""


class InvalidArgument(DlockError, ValueError):
    """DLOCK_EINVAL: bad name, TTL or wait out of range, malformed URL."""


class StoreUnreachable(DlockError):
    """DLOCK_ECONN: the lock store is unreachable, or the connection broke."""


class LoginRefused(StoreUnreachable):
    """DLOCK_ECONN, but the store answered and refused this login: a wrong
    password, an unknown user or database, no pg_hba.conf entry, a Redis
    server that needs a password.  The C library gives these the status of
    an unreachable store (one status for "this store cannot be used from
    here"); the binding tells them apart by the texts the backends pass on
    from the server (LOGIN_REFUSED_MARKERS), so that a retry loop can stop
    at once instead of retrying a wrong password for ever."""


# What the servers say when they refuse a login, as the backends pass it on
# in the detail text: PostgreSQL (libpq), PgBouncer, MySQL/MariaDB, Redis, etcd.
LOGIN_REFUSED_MARKERS = (
    "password authentication failed",
    "authentication failed for user",
    "no password supplied",
    "no pg_hba.conf entry",
    "pg_hba.conf rejects",
    "permission denied for database",
    "FATAL:  database \"",  # ... "x" does not exist
    "FATAL:  role \"",  # ... "x" does not exist / is not permitted to log in
    "Access denied for user",
    "Unknown database",
    "authentication refused by",  # Redis: AUTH answered WRONGPASS
    "WRONGPASS",
    "NOAUTH",
    "SELECT of the database refused",
    "FATAL:  no such database",  # PgBouncer: a database it does not know
    "refused the login of user",  # etcd: Authenticate answered "authentication failed"
)


def _is_refused_login(detail: str) -> bool:
    return any(marker in detail for marker in LOGIN_REFUSED_MARKERS)


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
    if cls is StoreUnreachable and _is_refused_login(detail):
        cls = LoginRefused
    return cls(status, detail, what)


def check(status: int, what: str) -> int:
    """Raise for a negative status, reading this thread's detail text."""
    if status < 0:
        raise error_for(status, _native.last_error(), what)
    return status
