"""asyncio support: ``async with client.alock(name, ttl=…, wait=…) as lock``.

The C calls block, so none of them runs on the event loop's thread:

- the wait runs in a thread of its own, on a client of its own (a new
  connection to the same store, which then holds the lock and is closed when
  the block is left), so that waiting never holds up the caller's client;
- cancelling the task that waits becomes dlock_cancel() on that client: the
  wait ends at once, and a lock granted in the same instant is released;
- the heartbeat is an asyncio task that extends the lease every ttl/3 (each
  extend in a thread); when the store says the lock is lost, the task that
  entered the block is cancelled, and the block then raises LockLost instead
  of CancelledError (the loss, not a cancel, is what happened).

Leaving the block releases the lock in a thread and waits for it even when
the task is being cancelled meanwhile (the cancellation is passed on after).
"""
from __future__ import annotations

import asyncio
import sys
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

from . import _native
from .errors import DlockError, LockLost

if TYPE_CHECKING:
    from .client import Client, Lock

T = TypeVar("T")

# A failed extend that does not mean a lost lock (a broken connection) is
# tried again this often until the library itself says ELOST.
HEARTBEAT_RETRY_SECONDS = 0.25
# How often a waiting acquire is told to stop while it has not stopped yet
# (a dlock_cancel() that arrives just before the wait begins does nothing).
CANCEL_REPEAT_SECONDS = 0.05


def _in_thread(fn: Callable[[], T], label: str) -> "asyncio.Future[T]":
    """fn() in a new daemon thread; its result or exception in a future of
    the running loop.  The thread is never interrupted by the future's
    cancellation."""
    loop = asyncio.get_running_loop()
    future: "asyncio.Future[T]" = loop.create_future()

    def deliver(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def run() -> None:
        try:
            outcome: Any = fn()
            ok = True
        except BaseException as exc:  # delivered to the awaiting task
            outcome, ok = exc, False
        try:
            loop.call_soon_threadsafe(deliver, ok, outcome)
        except RuntimeError:
            pass  # the loop is closed: nobody waits any more

    threading.Thread(target=run, daemon=True, name=f"dlock-{label}").start()
    return future


async def _finish(future: "asyncio.Future[T]") -> "tuple[asyncio.Future[T], bool]":
    """Wait until ``future`` is done even if the awaiting task is cancelled
    meanwhile; returns it and whether a cancellation arrived."""
    interrupted = False
    while not future.done():
        try:
            await asyncio.wait([future])
        except asyncio.CancelledError:
            interrupted = True
    return future, interrupted


class AsyncLockContext:
    """What Client.alock() returns: an async context manager whose
    ``__aenter__`` gives the held Lock (see the module's documentation)."""

    def __init__(self, client: "Client", raw_name: bytes, ttl: float, wait: Optional[float],
                 heartbeat: bool) -> None:
        from .client import ttl_ms, wait_ms
        ttl_ms(ttl), wait_ms(wait)  # bad values fail here, before any thread
        self._client = client
        self._raw_name = raw_name
        self._ttl = ttl
        self._wait = wait
        self._heartbeat = heartbeat
        self._own: Optional["Client"] = None
        self._lock: Optional["Lock"] = None
        self._task: Optional["asyncio.Task[Any]"] = None
        self._beat_task: Optional["asyncio.Task[None]"] = None
        self._lost_cancel = False

    async def __aenter__(self) -> "Lock":
        if self._lock is not None:
            raise RuntimeError("this alock() is already entered; call alock() again")
        self._task = asyncio.current_task()
        own: "Client" = await self._opened()
        self._own = own
        waiting = _in_thread(lambda: own.lock(self._raw_name, self._ttl, self._wait), "wait")
        try:
            self._lock = await asyncio.shield(waiting)
        except asyncio.CancelledError:
            await self._abandon(waiting, own)
            raise
        except BaseException:
            await _finish(_in_thread(own.close, "close"))
            raise
        if self._heartbeat:
            self._beat_task = asyncio.ensure_future(self._beat(self._lock))
        return self._lock

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        lock, own = self._lock, self._own
        self._lock = self._own = None
        if lock is None or own is None:
            return
        beat = self._beat_task
        if beat is not None:
            beat.cancel()
            await _finish(beat)
        release_error: Optional[BaseException] = None
        done, interrupted = await _finish(_in_thread(lock.release, "release"))
        if done.exception() is not None:
            release_error = done.exception()
        _, closing_interrupted = await _finish(_in_thread(own.close, "close"))
        interrupted = interrupted or closing_interrupted

        if self._lost_cancel and (exc_type is asyncio.CancelledError or interrupted):
            # The cancel was ours, sent because the lock was lost: report
            # the loss, and take the cancel back where asyncio counts them.
            if sys.version_info >= (3, 11) and self._task is not None:
                self._task.uncancel()
            raise LockLost(_native.ELOST, "the lock was lost while the block ran",
                           "alock") from exc
        if interrupted:
            raise asyncio.CancelledError()
        if release_error is not None and (exc_type is None or not isinstance(release_error, LockLost)):
            # As in a `with` block: an exception already leaving the block
            # wins over a loss found at release; ``lock.lost`` still says so.
            raise release_error

    # --- internals -------------------------------------------------------
    async def _opened(self) -> "Client":
        """A new client of the same store, opened in a thread (PostgreSQL and
        MySQL connect at once)."""
        opening = _in_thread(self._client._sibling, "open")
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            done, _ = await _finish(opening)
            if done.exception() is None:
                await _finish(_in_thread(done.result().close, "close"))
            raise

    async def _abandon(self, waiting: "asyncio.Future[Lock]", own: "Client") -> None:
        """The waiting task was cancelled: stop the wait (dlock_cancel), and
        release a lock that was granted in the same instant."""
        while not waiting.done():
            own.cancel()
            try:
                await asyncio.wait([waiting], timeout=CANCEL_REPEAT_SECONDS)
            except asyncio.CancelledError:
                pass
        if not waiting.cancelled() and waiting.exception() is None:
            granted = waiting.result()
            await _finish(_in_thread(granted.release, "release"))
        await _finish(_in_thread(own.close, "close"))

    async def _beat(self, lock: "Lock") -> None:
        delay = lock.ttl / 3
        while True:
            await asyncio.sleep(delay)
            delay = lock.ttl / 3
            try:
                await asyncio.shield(_in_thread(lock.extend, "heartbeat"))
                lock.heartbeat_error = None
            except LockLost as exc:
                lock.heartbeat_error = exc
                self._lost_cancel = True
                if self._task is not None:
                    self._task.cancel()
                return
            except DlockError as exc:
                # Not (yet) lost: try again soon; once the lease has run out
                # the library itself answers ELOST.
                lock.heartbeat_error = exc
                delay = min(delay, HEARTBEAT_RETRY_SECONDS)
