"""Loading libdlock and declaring its C signatures (ctypes, no compile step).

The library is found, in this order:
  1. the path in the environment variable DLOCK_LIBRARY (a build tree or a
     staged prefix: ``DLOCK_LIBRARY=/tmp/prefix/lib/libdlock.so.0``);
  2. ``ctypes.util.find_library("dlock")`` (the installed copy, via ldconfig);
  3. the soname ``libdlock.so.0`` through the dynamic loader's own search.

ctypes.CDLL releases the GIL around every call, so a thread blocked in
dlock_acquire() does not stop the others, and dlock_cancel() from another
thread reaches it.  dlock_last_error() is thread-local in C; each Python
thread runs its calls on its own OS thread, so reading it right after a
failed call in the same thread gives that call's detail.

The library is loaded at first use (``get()``), not at import: ``import dlock``
always succeeds, and the first Client() raises LibraryNotFound with the hint.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from ctypes import (POINTER, c_char_p, c_int, c_int32, c_int64, c_size_t,
                    c_uint32, c_uint64)
from typing import Any, Callable, Dict, List, Optional

SONAME = "libdlock.so.0"

# Status codes (include/dlock.h, DLOCK_STATUS_MAP): only ever appended to,
# never renumbered, so they can be constants here; their names and texts come
# from the library (dlock_status_name(), dlock_strerror()), and the tests
# check these values against dlock_status_name().
OK = 0
EBUSY = -1
ELOST = -2
EINVAL = -3
ECONN = -4
EBACKEND = -5
ENOMEM = -6
ENOTSUP = -7
ECANCELED = -8

WAIT_FOREVER = -1
TTL_MAX_MS = 2_147_483_647
WAIT_MAX_MS = 2_147_483_647


class _Client(ctypes.Structure):
    """Opaque dlock_client: only ever handled through a pointer."""


class _Lock(ctypes.Structure):
    """Opaque dlock_lock: only ever handled through a pointer."""


ClientPtr = POINTER(_Client)
LockPtr = POINTER(_Lock)


class LibraryNotFound(ImportError):
    """The C library libdlock cannot be loaded.  Raised by the first call
    that needs it (Client(), version()), never by ``import dlock``."""


def _candidates() -> List[str]:
    override = os.environ.get("DLOCK_LIBRARY")
    if override:
        return [override]  # an explicit choice is never silently replaced
    found = ctypes.util.find_library("dlock")
    return [name for name in (found, SONAME) if name]


def _load() -> ctypes.CDLL:
    errors = []
    for name in _candidates():
        try:
            return ctypes.CDLL(name)
        except OSError as exc:
            errors.append(f"{name}: {exc}")
    hint = ("install libdlock (Debian: libdlock0) or set DLOCK_LIBRARY="
            "/path/to/libdlock.so.0")
    raise LibraryNotFound("dlock: cannot load the C library libdlock ("
                          + "; ".join(errors or ["not found"]) + "); " + hint)


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    def fn(name: str, restype: Any, *argtypes: Any) -> None:
        f = getattr(lib, name)
        f.restype = restype
        f.argtypes = list(argtypes)

    fn("dlock_version", c_char_p)
    fn("dlock_strerror", c_char_p, c_int)
    fn("dlock_status_name", c_char_p, c_int)
    fn("dlock_last_error", c_char_p)
    fn("dlock_open", c_int, c_char_p, POINTER(ClientPtr))
    fn("dlock_close", None, ClientPtr)
    fn("dlock_backend", c_char_p, ClientPtr)
    fn("dlock_acquire", c_int, ClientPtr, c_char_p, c_uint32, c_int32,
       POINTER(LockPtr))
    fn("dlock_extend", c_int, LockPtr, c_uint32)
    fn("dlock_release", c_int, LockPtr)
    fn("dlock_name", c_char_p, LockPtr)
    fn("dlock_remaining_ms", c_int64, LockPtr)
    fn("dlock_holder", c_int, ClientPtr, c_char_p, c_char_p, c_size_t)
    fn("dlock_cancel", c_int, ClientPtr)
    fn("dlock_fence", c_int, LockPtr, POINTER(c_uint64))
    return lib


_lib: Optional[ctypes.CDLL] = None
_load_guard = threading.Lock()


def get() -> ctypes.CDLL:
    """The loaded library, loading it on first use; LibraryNotFound if it
    cannot be.  A failure is not remembered: installing the library (or
    setting DLOCK_LIBRARY) and trying again works."""
    global _lib
    lib = _lib
    if lib is not None:
        return lib
    with _load_guard:
        if _lib is None:
            _lib = _declare(_load())
        return _lib


def loaded() -> Optional[ctypes.CDLL]:
    """The library if it was loaded already, else None (never loads it)."""
    return _lib


def text(raw: Optional[bytes]) -> str:
    """C text from the library (UTF-8 by contract) as str, never raising."""
    return raw.decode("utf-8", "replace") if raw else ""


def last_error() -> str:
    return text(get().dlock_last_error())


def strerror(status: int) -> str:
    """dlock_strerror(), loading the library if need be; without it, just
    the number (an error message must not fail)."""
    try:
        return text(get().dlock_strerror(status))
    except LibraryNotFound:
        return f"status {status}"


def status_name(status: int) -> str:
    """dlock_status_name(): "DLOCK_EBUSY" for EBUSY, "" for an unknown code."""
    return text(get().dlock_status_name(status))


# A function that takes a C pointer and returns what the call gives.
PtrCall = Callable[[Any], Any]
