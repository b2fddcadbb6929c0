"""A process that forks while it holds a lock: python3 forker.py MODE URL NAME

The parent takes NAME (heartbeat on) through a client kept in module
globals, forks, and waits for the child.  The child then, by MODE:

  exit   drops the client and exits: Client.__del__ runs — in the
         parent's process that would release;
  with   leaves `with lock:` and `with client:` blocks, then checks that
         every explicit use of the parent's client or lock raises
         UsedAfterFork at once, and exits normally too.

Then the parent checks that it still holds the lock — its own view, the
store's answer (owned()), and a second client that cannot take it — prints
"PARENT OK" and waits for a line on stdin (the test tries the lock from its
own process meanwhile) before it releases and prints "RELEASED".
A child's failed check shows as its exit status and "CHILD ..." lines.
"""
from __future__ import annotations

import gc
import os
import sys
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dlock  # noqa: E402

mode, url, name = sys.argv[1:4]
client = dlock.Client(url)
lock = client.lock(name, ttl=3, wait=0, heartbeat=True)


def raises_used_after_fork(what: str, call: Callable[[], object]) -> bool:
    try:
        call()
    except dlock.UsedAfterFork:
        return True
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        print(f"CHILD {what}: {type(exc).__name__}: {exc}", flush=True)
        return False
    print(f"CHILD {what}: no exception", flush=True)
    return False


sys.stdout.flush()
pid = os.fork()
if pid == 0:
    if mode == "with":
        with lock:
            pass
        with client:
            pass
        checks = [
            raises_used_after_fork("extend", lock.extend),
            raises_used_after_fork("release", lock.release),
            raises_used_after_fork("remaining", lambda: lock.remaining),
            raises_used_after_fork("locked", lock.locked),
            raises_used_after_fork("owned", lock.owned),
            raises_used_after_fork("lock", lambda: client.lock(name + "-child", ttl=5)),
            raises_used_after_fork("try_lock", lambda: client.try_lock(name + "-child", ttl=5)),
            raises_used_after_fork("holder", lambda: client.holder(name)),
            raises_used_after_fork("close", client.close),
            raises_used_after_fork("alock", lambda: client.alock(name, ttl=5)),
            not lock.heartbeat_running,
        ]
        if not all(checks):
            sys.exit(3)
    # Both end as a child that drops what it inherited and exits: the
    # garbage collector runs Client.__del__ (called here too, in case a
    # reference cycle keeps the collector from it before the exit).
    client.__del__()
    del lock, client
    gc.collect()
    sys.exit(0)

_, status = os.waitpid(pid, 0)
code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
if code != 0:
    print(f"PARENT child exited {code}", flush=True)
    sys.exit(1)
failures = []
if lock.lost:
    failures.append("lock.lost")
if not lock.locked():
    failures.append("not locked()")
if not lock.owned():
    failures.append("not owned()")
with dlock.Client(url) as other:
    if other.try_lock(name, ttl=5) is not None:
        failures.append("another client took it")
if failures:
    print("PARENT " + ", ".join(failures), flush=True)
    sys.exit(1)
print("PARENT OK", flush=True)
sys.stdin.readline()
lock.release()  # LockLost here would fail the process
client.close()
print("RELEASED", flush=True)
