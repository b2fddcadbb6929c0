"""Client and Lock: the Python face of dlock_client and dlock_lock.

Handles and threads
-------------------
libdlock frees a lock handle in dlock_release() and every handle of a client
in dlock_close().  A C pointer used after that is a crash, not an exception,
so each handle here sits behind a small use counter (_Handle): a call
"enters" the handle, and release()/close() first take the pointer away from
new callers, then wait until the calls already inside have left, and only
then hand the pointer to C to be freed.  Lock calls enter their client too,
so a client is never closed under a call on one of its locks.

The C client serializes calls on one client: while one thread waits in
``Client.lock(..., wait=...)``, every other call on that client — including a
heartbeat's extend — waits behind it.  A lock whose heartbeat is stuck like
that runs out of lease and is reported lost.  Give each thread that waits for
a lock its own Client (``synchronized`` and ``alock`` do so by themselves).

fork()
------
A client belongs to the process that opened it.  In a child process every
call on it or on its locks raises UsedAfterFork at once, and the implicit
ones — ``__del__``, leaving a ``with`` block — do nothing: the child never
calls the C library for the parent's connection, so it can neither release
the parent's lock nor disturb its session.  os.register_at_fork marks every
client dead in the child (the heartbeat threads do not exist there).
"""
from __future__ import annotations

import ctypes
import functools
import inspect
import math
import os
import threading
import weakref
from typing import (TYPE_CHECKING, Any, Callable, List, Optional, Set,
                    TypeVar, Union, cast)

from . import _native
from .errors import (DlockError, InvalidArgument, LockBusy, LockLost,
                     UsedAfterFork, check, error_for)

if TYPE_CHECKING:
    from .aio import AsyncLockContext

Text = Union[str, bytes]
LostCallback = Callable[["Lock"], None]
F = TypeVar("F", bound=Callable[..., Any])

HOLDER_BUFFER_BYTES = 1024
DEFAULT_TTL = 60.0


class _Handle:
    """A C pointer with a count of the calls currently using it."""

    def __init__(self, ptr: Any) -> None:
        self._ptr = ptr
        self._users = 0
        self._cond = threading.Condition()

    def enter(self) -> Any:
        """The pointer, counted as in use until leave(); None once retired."""
        with self._cond:
            if self._ptr is None:
                return None
            self._users += 1
            return self._ptr

    def leave(self) -> None:
        with self._cond:
            self._users -= 1
            if self._users == 0:
                self._cond.notify_all()

    @property
    def alive(self) -> bool:
        return self._ptr is not None

    def retire(self, while_waiting: Optional[Callable[[Any], Any]] = None) -> Any:
        """Take the pointer away from new callers and wait until the calls in
        progress have left.  Returns the pointer to the one caller that
        retired it (None to any later one), now free to be given to C."""
        with self._cond:
            ptr, self._ptr = self._ptr, None
            if ptr is None:
                return None
            while self._users:
                if while_waiting is not None:
                    while_waiting(ptr)
                self._cond.wait(0.05)
            return ptr


def _c_text(value: Text, what: str) -> bytes:
    """str or bytes to the NUL-terminated UTF-8 that C receives."""
    if isinstance(value, str):
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidArgument(_native.EINVAL, f"{what} is not valid UTF-8: {exc.reason}", what) from None
    elif isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    else:
        raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")
    if b"\0" in raw:
        # C would silently cut the text at the NUL: a different name.
        raise InvalidArgument(_native.EINVAL, f"{what} contains a NUL byte", what)
    return raw


TTL_MAX_MS = 2_147_483_647  # dlock_acquire's limit, 2^31-1


def _seconds_text(seconds: float) -> str:
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def _milliseconds(seconds: float, what: str, low: int, high: int) -> int:
    """Seconds (int or float) to whole milliseconds, rounded up so that a
    positive duration never becomes 0; out-of-range values are rejected here
    because ctypes would wrap them silently into the C integer type."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(seconds).__name__}")
    if math.isnan(seconds) or math.isinf(seconds):
        raise InvalidArgument(_native.EINVAL, f"{what} must be finite", what)
    exact = seconds * 1000
    nearest = round(exact)
    # 2147483.647 s is 2147483647.0000002 ms in binary floating point.
    ms = nearest if abs(exact - nearest) < 1e-6 else math.ceil(exact)
    if ms < low or ms > high:
        days = high / 86_400_000
        raise InvalidArgument(_native.EINVAL,
                              f"{what}={seconds!r} is out of range: {what} is in seconds, from "
                              f"{_seconds_text(low / 1000)} to {_seconds_text(high / 1000)} "
                              f"(about {days:.1f} days)", what)
    return ms


def ttl_ms(ttl: float) -> int:
    """A TTL in seconds as the C library's milliseconds: from 0.001 s (1 ms)
    to 2147483.647 s (2^31-1 ms, about 24.9 days).  A fraction of a
    millisecond is rounded up (0.0015 is 2 ms), but a TTL under 1 ms is
    refused rather than rounded up to a lease 10 times longer than asked."""
    if isinstance(ttl, (int, float)) and not isinstance(ttl, bool) and 0 < ttl < 0.001:
        raise InvalidArgument(_native.EINVAL,
                              f"ttl={ttl!r} is under 0.001 s (1 ms), the shortest lease; ttl is in seconds",
                              "ttl")
    return _milliseconds(ttl, "ttl", 1, TTL_MAX_MS)


def wait_ms(wait: Optional[float]) -> int:
    """A wait in seconds (None: forever) as the C library's milliseconds."""
    if wait is None:
        return _native.WAIT_FOREVER
    return _milliseconds(wait, "wait", 0, _native.WAIT_MAX_MS)


def _busy_error(lib: Any, client_ptr: Any, raw_name: bytes) -> LockBusy:
    """LockBusy for the acquire that just failed, naming the holder as the
    store tells it (None when it cannot: freed meanwhile, or not offered)."""
    detail = _native.last_error()
    buf = ctypes.create_string_buffer(HOLDER_BUFFER_BYTES)
    holder = None
    if lib.dlock_holder(client_ptr, raw_name, buf, len(buf)) == 1:
        holder = _native.text(buf.value)
    return LockBusy(_native.EBUSY, detail, "dlock_acquire", holder)


def _closed_error(what: str) -> DlockError:
    return InvalidArgument(_native.EINVAL, "the client is closed", what)


def _percent_encode_path(path: str) -> str:
    """Encode what a URL path cannot hold as is, as dlock(1) does."""
    return "".join(f"%{ord(ch):02X}" if ch in "%?#" else ch for ch in path)


def default_url() -> str:
    """The store that dlock(1) uses without -u: $DLOCK_URL when set and not
    empty, else the embedded SQLite default — /var/lib/dlock/dlock.db for
    root, ${XDG_STATE_HOME:-$HOME/.local/state}/dlock/dlock.db for any other
    user (each only when it is an absolute path)."""
    env = os.environ.get("DLOCK_URL")
    if env:
        return env
    if os.geteuid() == 0:
        folder = "/var/lib/dlock"
    else:
        state = os.environ.get("XDG_STATE_HOME", "")
        home = os.environ.get("HOME", "")
        if state.startswith("/"):
            folder = state + "/dlock"
        elif home.startswith("/"):
            folder = home + "/.local/state/dlock"
        else:
            raise InvalidArgument(_native.EINVAL, "no URL: set DLOCK_URL, or set HOME", "default_url")
    return "sqlite://" + _percent_encode_path(folder + "/dlock.db")


# Every client that may still hold a C pointer, for the fork handler.
_clients: "weakref.WeakSet[Client]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # Runs in the child right after fork(), with only this thread alive: no
    # lock of the parent's threads may be taken (one may be held forever).
    for client in list(_clients):
        client._mark_forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Lock:
    """One held lock.  Created by Client.lock() / try_lock(); use it as a
    context manager (released on exit) or call release().

    ``remaining``, ``lost`` and ``locked()`` are the holder's own view of
    its lease, read without asking the store; ``owned()`` asks the store.
    With ``heartbeat=True`` a background thread extends the lease every
    ttl/3; when the store says the lock was lost it sets ``lost``, calls
    ``on_lost(lock)`` in that thread, and stops.
    """

    def __init__(self, client: "Client", ptr: Any, name: str, ttl_ms_: int,
                 on_lost: Optional[LostCallback]) -> None:
        self._client = client
        self._handle = _Handle(ptr)
        self._name = name
        self._ttl_ms = ttl_ms_
        self._on_lost = on_lost
        self._lost = False
        self._fence: Optional[int] = None
        self._stop = threading.Event()
        self._heartbeat: Optional[threading.Thread] = None
        self.heartbeat_error: Optional[DlockError] = None
        """The last error of a heartbeat extend that did not (yet) mean a
        lost lock, e.g. a broken connection; cleared by the next success."""

    # --- reading ---------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def fence(self) -> Optional[int]:
        """The fencing token of this acquisition (dlock_fence): >= 1, greater
        than that of every earlier holder of the name in this store, the
        same for the life of the lock.  Hand it to what the job writes to,
        which rejects a lower one.  None when the store gives none
        (PostgreSQL and MySQL session mode without fencing=on)."""
        return self._fence

    @property
    def ttl(self) -> float:
        """The lease length (seconds) used by extend() and the heartbeat."""
        return self._ttl_ms / 1000

    @property
    def released(self) -> bool:
        """True after release(), or after the client was closed."""
        return not self._handle.alive

    @property
    def remaining(self) -> float:
        """Seconds of lease left by the holder's own clock; 0.0 once the
        lease may have expired, and after release."""
        ms = self._with_handle(_native.get().dlock_remaining_ms, "remaining", missing=0)
        return cast(int, ms) / 1000

    @property
    def lost(self) -> bool:
        """The lock is known to be lost: the store said so, or the lease ran
        out (remaining reached 0) while still held."""
        self._client._check_process("lost")
        if self._lost:
            return True
        return self._handle.alive and self._with_handle(
            _native.get().dlock_remaining_ms, "lost", missing=1) == 0

    def locked(self) -> bool:
        """Held, by this process's own view and without a round trip: not
        released, not known to be lost, and lease time left."""
        return not self.released and not self.lost

    def owned(self) -> bool:
        """Asks the store, in one round trip, whether this lock is still
        ours: it renews the lease for ``ttl`` seconds (dlock_extend, as the
        heartbeat does).  False when the store says it is lost, or when it
        was released; other failures (the store unreachable) raise."""
        if self.released:
            return False
        try:
            self.extend()
        except LockLost:
            return False
        return True

    @property
    def heartbeat_running(self) -> bool:
        return self._heartbeat is not None and self._heartbeat.is_alive()

    # --- acting ----------------------------------------------------------
    def extend(self, ttl: Optional[float] = None) -> None:
        """Renew the lease to ``ttl`` seconds from now (default: the lock's
        current TTL, which a given ttl replaces).  LockLost if it is gone."""
        new_ttl_ms = self._ttl_ms if ttl is None else ttl_ms(ttl)
        lib = _native.get()
        rc = cast(int, self._with_handle(lambda p: lib.dlock_extend(p, new_ttl_ms), "dlock_extend"))
        if rc == _native.ELOST:
            self._lost = True
        check(rc, "dlock_extend")
        self._ttl_ms = new_ttl_ms

    def release(self) -> None:
        """Release the lock (idempotent).  Raises LockLost if the lease had
        been lost before: the critical section may have overlapped another
        holder's.  The handle is gone afterwards either way."""
        self._client._check_process("dlock_release")
        self._stop_heartbeat()
        client_ptr = self._client._handle.enter()
        if client_ptr is None:
            return  # the client was closed: it released this lock already
        try:
            ptr = self._handle.retire()
            if ptr is None:
                return
            self._client._forget(self)
            lib = _native.get()
            rc = lib.dlock_release(ptr)
            detail = _native.last_error() if rc < 0 else ""
        finally:
            self._client._handle.leave()
        if rc == _native.ELOST:
            self._lost = True
        if rc < 0:
            raise error_for(rc, detail, "dlock_release")

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._client._in_other_process():
            return  # a forked child leaving the parent's block: not its lock
        try:
            self.release()
        except LockLost:
            if exc_type is None:
                raise
            # An exception is already on its way out of the block: let it
            # through; ``lost`` still tells what happened to the lease.

    def __repr__(self) -> str:
        if self._client._in_other_process():
            return f"<dlock.Lock {self._name!r} of another process>"
        state = "released" if self.released else ("lost" if self._lost else f"{self.remaining:.3f}s left")
        return f"<dlock.Lock {self._name!r} ttl={self.ttl:g}s {state}>"

    # --- internals -------------------------------------------------------
    def _with_handle(self, fn: _native.PtrCall, what: str, missing: Any = None) -> Any:
        """Call fn(lock pointer) while both the client and the lock are
        entered; ``missing`` is returned when either is gone, or, without
        it, an error is raised."""
        self._client._check_process(what)
        client_ptr = self._client._handle.enter()
        if client_ptr is None:
            if missing is not None:
                return missing
            raise _closed_error(what)
        try:
            ptr = self._handle.enter()
            if ptr is None:
                if missing is not None:
                    return missing
                raise InvalidArgument(_native.EINVAL, "the lock was released", what)
            try:
                return fn(ptr)
            finally:
                self._handle.leave()
        finally:
            self._client._handle.leave()

    def _start_heartbeat(self) -> None:
        self._heartbeat = threading.Thread(target=self._beat, daemon=True,
                                           name=f"dlock-heartbeat-{self._name}")
        self._heartbeat.start()

    def _stop_heartbeat(self) -> None:
        self._stop.set()
        thread = self._heartbeat
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _beat(self) -> None:
        lib = _native.get()
        delay = self._ttl_ms / 3000
        while not self._stop.wait(delay):
            beat_ttl_ms = self._ttl_ms
            delay = beat_ttl_ms / 3000
            client_ptr = self._client._handle.enter()
            if client_ptr is None:
                return
            try:
                ptr = self._handle.enter()
                if ptr is None:
                    return
                try:
                    rc = lib.dlock_extend(ptr, beat_ttl_ms)
                    detail = _native.last_error() if rc < 0 else ""
                finally:
                    self._handle.leave()
            finally:
                self._client._handle.leave()
            if rc == _native.OK:
                self.heartbeat_error = None
                continue
            if self._stop.is_set():
                return  # released meanwhile: nothing to report
            self.heartbeat_error = error_for(rc, detail, "heartbeat dlock_extend")
            if rc == _native.ELOST:
                self._lost = True
                if self._on_lost is not None:
                    self._on_lost(self)
                return
            # Not (yet) lost, e.g. a broken connection: try again soon; once
            # the lease has run out, the library itself answers ELOST.
            delay = min(delay, 0.25)


class Client:
    """One connection to one lock store, chosen by URL:
    ``postgresql://…``, ``mysql://…`` / ``mariadb://…``, ``sqlite:///path``.
    ``Client.from_env()`` picks the store as dlock(1) does.

    Thread-safe: calls on one client are serialized by the C library.
    close() (or leaving the ``with`` block) releases every lock still held
    through it, interrupting a wait in progress.  A client belongs to the
    process that opened it (see fork() in the module's documentation).
    """

    def __init__(self, url: Text) -> None:
        # Set first: __del__ runs even when the rest fails.
        self._pid = os.getpid()
        self._forked = False
        self._handle = _Handle(None)
        raw_url = _c_text(url, "url")
        lib = _native.get()  # LibraryNotFound, with its hint, on first use
        ptr = _native.ClientPtr()
        check(lib.dlock_open(raw_url, ctypes.byref(ptr)), "dlock_open")
        self._url = raw_url  # for the clients of synchronized() and alock(); never shown
        self._handle = _Handle(ptr)
        self._locks: Set[Lock] = set()
        self._locks_guard = threading.Lock()
        _clients.add(self)

    @classmethod
    def from_env(cls) -> "Client":
        """A client of the store that dlock(1) would use: $DLOCK_URL, else
        the embedded SQLite default (see default_url())."""
        return cls(default_url())

    @property
    def backend(self) -> str:
        """"postgresql", "mysql" or "sqlite"."""
        return _native.text(self._call(_native.get().dlock_backend, "dlock_backend"))

    @property
    def closed(self) -> bool:
        return not self._handle.alive

    def lock(self, name: Text, ttl: float = DEFAULT_TTL, wait: Optional[float] = 0.0, *,
             heartbeat: bool = False, on_lost: Optional[LostCallback] = None) -> Lock:
        """Acquire ``name`` for ``ttl`` seconds.  ``wait``: 0 tries once,
        > 0 waits up to that many seconds, None waits until granted or
        cancel()ed.  LockBusy when someone else holds it (or this client
        already does: locks are not re-entrant).  ``heartbeat=True`` extends
        the lease every ttl/3 in a background thread; ``on_lost`` is called
        there if the lock is lost anyway."""
        raw_name = _c_text(name, "name")
        lock_ttl_ms = ttl_ms(ttl)
        lock_wait_ms = wait_ms(wait)
        out = _native.LockPtr()
        lib = _native.get()

        def acquire(client_ptr: Any) -> Lock:
            rc = lib.dlock_acquire(client_ptr, raw_name, lock_ttl_ms, lock_wait_ms, ctypes.byref(out))
            if rc == _native.EBUSY:
                raise _busy_error(lib, client_ptr, raw_name)
            check(rc, "dlock_acquire")
            # Registered while the client is still entered, so that a
            # concurrent close() sees this lock and frees it only after.
            text_name = raw_name.decode("utf-8", "replace")
            held = Lock(self, out, text_name, lock_ttl_ms, on_lost)
            token = ctypes.c_uint64(0)
            frc = lib.dlock_fence(out, ctypes.byref(token))
            if frc == _native.OK:
                held._fence = token.value
            elif frc != _native.ENOTSUP:
                check(frc, "dlock_fence")
            with self._locks_guard:
                self._locks.add(held)
            return held

        held = cast(Lock, self._call(acquire, "dlock_acquire"))
        if heartbeat:
            held._start_heartbeat()
        return held

    def try_lock(self, name: Text, ttl: float = DEFAULT_TTL, *, heartbeat: bool = False,
                 on_lost: Optional[LostCallback] = None) -> Optional[Lock]:
        """Try once: the Lock, or None when someone else holds ``name`` (or
        this client already does).  Every other failure raises."""
        try:
            return self.lock(name, ttl, 0, heartbeat=heartbeat, on_lost=on_lost)
        except LockBusy:
            return None

    def synchronized(self, name: Text, ttl: float = DEFAULT_TTL, wait: Optional[float] = None, *,
                     heartbeat: bool = True) -> Callable[[F], F]:
        """Decorator: every call of the function runs while holding ``name``
        (taken with ``ttl``, extended by a heartbeat, released on return or
        exception).  ``wait``: None (the default) waits until granted, a
        number waits that many seconds, 0 tries once; a lock still busy then
        raises LockBusy and the function does not run.  A call that may wait
        does so on a client of its own (a new connection to the same store,
        closed after the call), so that waiting never holds up this client
        and threads of one process exclude each other too.  A coroutine
        function is wrapped with ``alock()``."""
        raw_name = _c_text(name, "name")
        ttl_ms(ttl), wait_ms(wait)  # bad values fail at decoration time

        def decorate(fn: F) -> F:
            if inspect.iscoroutinefunction(fn):
                @functools.wraps(fn)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    async with self.alock(raw_name, ttl=ttl, wait=wait, heartbeat=heartbeat):
                        return await fn(*args, **kwargs)
                return cast(F, async_wrapper)

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if wait == 0:
                    with self.lock(raw_name, ttl, 0, heartbeat=heartbeat):
                        return fn(*args, **kwargs)
                with self._sibling() as own:
                    with own.lock(raw_name, ttl, wait, heartbeat=heartbeat):
                        return fn(*args, **kwargs)
            return cast(F, wrapper)
        return decorate

    def alock(self, name: Text, ttl: float = DEFAULT_TTL, wait: Optional[float] = 0.0, *,
              heartbeat: bool = True) -> "AsyncLockContext":
        """``async with client.alock(name, ttl=…, wait=…) as lock:`` — the
        lock for asyncio.  The wait runs in a thread on a client of its own
        (a new connection to this client's store, which then holds the lock
        and is closed on exit); cancelling the waiting task interrupts the
        wait (dlock_cancel).  The heartbeat is an asyncio task that extends
        every ttl/3 in a thread; if the store says the lock is lost, the
        task inside the block is cancelled and the block raises LockLost.
        See dlock.aio."""
        self._check_process("alock")
        if self.closed:
            raise _closed_error("alock")
        from .aio import AsyncLockContext
        return AsyncLockContext(self, _c_text(name, "name"), ttl, wait, heartbeat)

    def holder(self, name: Text) -> Optional[str]:
        """Who holds ``name`` as far as the store tells (diagnostic text, not
        a stable format), or None when it is free."""
        raw_name = _c_text(name, "name")
        buf = ctypes.create_string_buffer(HOLDER_BUFFER_BYTES)
        lib = _native.get()
        rc = cast(int, self._call(lambda p: lib.dlock_holder(p, raw_name, buf, len(buf)), "dlock_holder"))
        check(rc, "dlock_holder")
        return _native.text(buf.value) if rc == 1 else None

    def cancel(self) -> None:
        """Interrupt a wait in progress on this client (from another thread):
        that lock() raises Canceled.  Never blocks; does nothing when no wait
        is in progress or the client is closed."""
        self._check_process("dlock_cancel")
        ptr = self._handle.enter()
        if ptr is None:
            return
        try:
            _native.get().dlock_cancel(ptr)
        finally:
            self._handle.leave()

    def close(self) -> None:
        """Release every lock still held through this client and disconnect
        (idempotent).  A wait in progress on another thread is canceled."""
        self._check_process("dlock_close")
        self._close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._in_other_process():
            return  # a forked child leaving the parent's block
        self._close()

    def __del__(self) -> None:
        try:
            if not self._in_other_process():
                self._close()
        except Exception:  # interpreter shutdown: the library may be gone
            pass

    def __repr__(self) -> str:
        if self._in_other_process():
            return "<dlock.Client of another process>"
        if self.closed:
            return "<dlock.Client closed>"
        return f"<dlock.Client {self.backend}>"

    # --- internals -------------------------------------------------------
    def _close(self) -> None:
        lib = _native.loaded()
        if lib is None:
            return  # never opened
        ptr = self._handle.retire(while_waiting=lib.dlock_cancel)
        if ptr is None:
            return
        with self._locks_guard:
            locks, self._locks = list(self._locks), set()
        for held in locks:
            held._stop_heartbeat()
            held._handle.retire()  # dlock_close() frees these handles
        lib.dlock_close(ptr)

    def _in_other_process(self) -> bool:
        return self._forked or self._pid != os.getpid()

    def _check_process(self, what: str) -> None:
        if self._in_other_process():
            self._forked = True
            raise UsedAfterFork(_native.EINVAL,
                                f"this client was opened by process {self._pid}; after fork() "
                                "open a new Client in the child", what)

    def _mark_forked(self) -> None:
        self._forked = True
        for held in list(self._locks):
            held._heartbeat = None  # the thread does not exist in the child

    def _sibling(self) -> "Client":
        """A new client of the same store (for a wait that must not hold up
        this one)."""
        self._check_process("dlock_open")
        if self.closed:
            raise _closed_error("dlock_open")
        return Client(self._url)

    def _call(self, fn: _native.PtrCall, what: str) -> Any:
        self._check_process(what)
        ptr = self._handle.enter()
        if ptr is None:
            raise _closed_error(what)
        try:
            return fn(ptr)
        finally:
            self._handle.leave()

    def _forget(self, held: Lock) -> None:
        with self._locks_guard:
            self._locks.discard(held)


def version() -> str:
    """The version of the loaded C library, "MAJOR.MINOR.PATCH" (loads it:
    LibraryNotFound when it cannot be)."""
    return _native.text(_native.get().dlock_version())


__all__: List[str] = ["Client", "Lock", "default_url", "version"]
