"""The binding against real lock stores: one test class per URL in
DLOCK_TEST_URLS (SQLite, PostgreSQL, MySQL/MariaDB), real threads and real
processes, no mocks."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

import support
from support import RACER, backend_of, fences, take_away, test_urls, unique_name

import dlock

TTL_MAX_SECONDS = 2_147_483_647 / 1000
FORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "forker.py")


class BackendTests:
    """Mixed into one unittest.TestCase per URL (see the end of the file)."""

    url = ""
    backend = ""

    # --- helpers ----------------------------------------------------------
    def client(self) -> dlock.Client:
        c = dlock.Client(self.url)
        self.addCleanup(c.close)
        return c

    def name(self, label: str) -> str:
        return unique_name(label)

    def run_racer(self, *args: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, RACER, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.addCleanup(self._reap, proc)
        return proc

    @staticmethod
    def _reap(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()

    def finish(self, proc: subprocess.Popen, timeout: float = 60) -> str:
        out, err = proc.communicate(timeout=timeout)
        self.assertEqual(proc.returncode, 0, f"racer failed: {err}")
        return out.strip()

    # --- basics -----------------------------------------------------------
    def test_backend_name(self):
        c = self.client()
        self.assertEqual(c.backend, self.backend)
        self.assertIn(self.backend, repr(c))

    def test_with_block_holds_then_releases(self):
        a, b = self.client(), self.client()
        n = self.name("with")
        with a.lock(n, ttl=30) as lock:
            self.assertEqual(lock.name, n)
            self.assertFalse(lock.released)
            with self.assertRaises(dlock.LockBusy) as cm:
                b.lock(n, ttl=30, wait=0)
            self.assertEqual(cm.exception.status, dlock.EBUSY)
            self.assertIsInstance(cm.exception, dlock.DlockError)
        self.assertTrue(lock.released)
        self.assertFalse(lock.lost)
        with b.lock(n, ttl=30, wait=0):
            pass

    def test_not_reentrant(self):
        c = self.client()
        n = self.name("reentrant")
        with c.lock(n, ttl=30):
            started = time.monotonic()
            with self.assertRaises(dlock.LockBusy):
                c.lock(n, ttl=30, wait=5)  # at once, not after the wait
            self.assertLess(time.monotonic() - started, 2)

    def test_release_is_idempotent(self):
        c = self.client()
        lock = c.lock(self.name("idem"), ttl=30)
        lock.release()
        lock.release()
        self.assertTrue(lock.released)
        self.assertEqual(lock.remaining, 0.0)
        with self.assertRaises(dlock.InvalidArgument):
            lock.extend()

    def test_holder(self):
        a, b = self.client(), self.client()
        n = self.name("holder")
        self.assertIsNone(b.holder(n))
        with a.lock(n, ttl=30):
            who = b.holder(n)
            self.assertIsInstance(who, str)
            self.assertIsNotNone(who)
            self.assertIsNotNone(a.holder(n))  # this client included
        self.assertIsNone(b.holder(n))

    def test_fence(self):
        a, b = self.client(), self.client()
        n = self.name("fence")
        with a.lock(n, ttl=30) as first:
            token = first.fence
            if token is None:  # session mode without fencing=on
                self.assertFalse(fences(self.url), "the store fences at this URL, but no token")
                return
            self.assertGreaterEqual(token, 1)
            first.extend()
            self.assertEqual(first.fence, token)
        with b.lock(n, ttl=30) as second:
            self.assertIsNotNone(second.fence)
            self.assertGreater(second.fence, token)
        self.assertIsNotNone(second.fence)  # kept after release

    # --- waiting ------------------------------------------------------------
    def test_wait_runs_out(self):
        a, b = self.client(), self.client()
        n = self.name("waitout")
        with a.lock(n, ttl=30):
            started = time.monotonic()
            with self.assertRaises(dlock.LockBusy):
                b.lock(n, ttl=30, wait=0.6)
            elapsed = time.monotonic() - started
        self.assertGreaterEqual(elapsed, 0.5)
        self.assertLess(elapsed, 10)

    def test_wait_is_granted_on_release(self):
        a, b = self.client(), self.client()
        n = self.name("handoff")
        held = a.lock(n, ttl=30)
        timer = threading.Timer(0.4, held.release)
        timer.start()
        self.addCleanup(timer.join)
        started = time.monotonic()
        with b.lock(n, ttl=30, wait=20):
            elapsed = time.monotonic() - started
        self.assertGreaterEqual(elapsed, 0.3)
        self.assertLess(elapsed, 10)

    def _wait_in_thread(self, client: dlock.Client, name: str):
        outcome: dict = {}

        def wait_forever():
            try:
                outcome["lock"] = client.lock(name, ttl=30, wait=None)
            except BaseException as exc:  # noqa: BLE001 - reported below
                outcome["error"] = exc

        thread = threading.Thread(target=wait_forever)
        thread.start()
        time.sleep(0.3)
        self.assertTrue(thread.is_alive(), f"the wait ended early: {outcome}")
        return thread, outcome

    def test_cancel_interrupts_a_wait_forever(self):
        a, b = self.client(), self.client()
        n = self.name("cancel")
        with a.lock(n, ttl=30):
            thread, outcome = self._wait_in_thread(b, n)
            deadline = time.monotonic() + 10
            # A cancel in the instant before the wait starts may be missed
            # (docs/semantics.md): repeat it until the wait ends.
            while thread.is_alive() and time.monotonic() < deadline:
                b.cancel()
                thread.join(0.2)
            self.assertFalse(thread.is_alive(), "cancel() did not end the wait")
        self.assertIsInstance(outcome.get("error"), dlock.Canceled, outcome)
        self.assertEqual(outcome["error"].status, dlock.ECANCELED)
        # The client still works afterwards.
        with b.lock(n, ttl=30, wait=0):
            pass

    def test_close_cancels_a_wait_and_frees(self):
        a = self.client()
        b = dlock.Client(self.url)
        n = self.name("closewait")
        with a.lock(n, ttl=30):
            thread, outcome = self._wait_in_thread(b, n)
            b.close()
            thread.join(10)
            self.assertFalse(thread.is_alive())
        self.assertIsInstance(outcome.get("error"), dlock.Canceled, outcome)
        self.assertTrue(b.closed)
        with self.assertRaises(dlock.InvalidArgument):
            b.lock(n, ttl=30)

    # --- leases -----------------------------------------------------------
    def test_extend_and_remaining(self):
        c = self.client()
        with c.lock(self.name("extend"), ttl=2) as lock:
            first = lock.remaining
            self.assertGreater(first, 0)
            self.assertLessEqual(first, 2)
            lock.extend(ttl=20)
            self.assertEqual(lock.ttl, 20)
            # A store whose lease is set at the acquire (ZooKeeper's session
            # timeout) grants an extend no more than that (SPEC "The granted
            # lease"): the lock's clock follows the grant.
            fixed = getattr(support.store_of(self.url), "LEASE_SET_AT_ACQUIRE", False)
            self.assertGreater(lock.remaining, 1.5 if fixed else 2)
            self.assertLessEqual(lock.remaining, 2 if fixed else 20)
            lock.extend()  # the lock's own TTL again
            self.assertGreater(lock.remaining, 1.5 if fixed else 2)
            with self.assertRaises(dlock.InvalidArgument):
                lock.extend(ttl=0)
            self.assertFalse(lock.lost)

    def test_lease_runs_out(self):
        a, b = self.client(), self.client()
        n = self.name("expire")
        lock = a.lock(n, ttl=0.3)
        time.sleep(0.5)
        self.assertEqual(lock.remaining, 0.0)
        self.assertTrue(lock.lost)
        with self.assertRaises(dlock.LockLost) as cm:
            lock.extend()
        self.assertEqual(cm.exception.status, dlock.ELOST)
        with self.assertRaises(dlock.LockLost):
            lock.release()
        self.assertTrue(lock.released)
        self.assertTrue(lock.lost)
        with b.lock(n, ttl=30, wait=5):
            pass

    def test_store_frees_an_expired_lease_for_others(self):
        a, b = self.client(), self.client()
        n = self.name("takeover")
        lock = a.lock(n, ttl=0.5)
        started = time.monotonic()
        # Within TTL plus the backend's granularity (MySQL: whole seconds).
        with b.lock(n, ttl=30, wait=5):
            elapsed = time.monotonic() - started
        self.assertGreaterEqual(elapsed, 0.3)
        with self.assertRaises(dlock.LockLost):
            lock.release()

    def test_with_block_reports_a_lost_lease(self):
        c = self.client()
        with self.assertRaises(dlock.LockLost):
            with c.lock(self.name("withlost"), ttl=0.2):
                time.sleep(0.4)
        # An exception from the block wins over the loss, which stays readable.
        with self.assertRaises(KeyError):
            with c.lock(self.name("withlost2"), ttl=0.2) as lock:
                time.sleep(0.4)
                raise KeyError("job failed")
        self.assertTrue(lock.lost)
        self.assertTrue(lock.released)

    # --- heartbeat --------------------------------------------------------
    def test_heartbeat_keeps_the_lock(self):
        a, b = self.client(), self.client()
        n = self.name("heartbeat")
        lock = a.lock(n, ttl=1.2, heartbeat=True)
        self.assertTrue(lock.heartbeat_running)
        time.sleep(2.6)  # more than two TTLs: renewed every 0.4 s
        self.assertFalse(lock.lost)
        self.assertGreater(lock.remaining, 0)
        self.assertIsNone(lock.heartbeat_error)
        with self.assertRaises(dlock.LockBusy):
            b.lock(n, ttl=30, wait=0)
        lock.release()  # no LockLost: the lease held without a gap
        self.assertFalse(lock.heartbeat_running)
        with b.lock(n, ttl=30, wait=0):
            pass

    def test_heartbeat_reports_loss(self):
        # A real way to starve a heartbeat: the same client is busy for
        # longer than the TTL in a wait on another lock (calls on one client
        # are serialized), so the lease runs out before the next extend.
        shared, other = self.client(), self.client()
        watched, blocker = self.name("hb-watched"), self.name("hb-blocker")
        lost_event = threading.Event()
        seen: list = []

        def on_lost(lock: dlock.Lock) -> None:
            seen.append(lock)
            lost_event.set()

        lock = shared.lock(watched, ttl=0.6, heartbeat=True, on_lost=on_lost)
        with other.lock(blocker, ttl=30):
            with self.assertRaises(dlock.LockBusy):
                shared.lock(blocker, ttl=30, wait=2.0)
        self.assertTrue(lost_event.wait(10), "on_lost was not called")
        self.assertEqual(seen, [lock])
        self.assertTrue(lock.lost)
        self.assertIsInstance(lock.heartbeat_error, dlock.LockLost)
        deadline = time.monotonic() + 5
        while lock.heartbeat_running and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(lock.heartbeat_running)
        with self.assertRaises(dlock.LockLost):
            lock.release()

    # --- arguments --------------------------------------------------------
    def test_names(self):
        c = self.client()
        base = self.name("n")
        long_name = (base + "x" * 255)[:255]
        with c.lock(long_name, ttl=30):
            pass
        with self.assertRaises(dlock.InvalidArgument):
            c.lock(long_name + "x", ttl=30)
        with self.assertRaises(dlock.InvalidArgument):
            c.lock("", ttl=30)
        with self.assertRaises(dlock.InvalidArgument):
            c.lock(base + "\0tail", ttl=30)  # C would cut it at the NUL
        with self.assertRaises(dlock.InvalidArgument):
            c.lock(base + "\udc80", ttl=30)  # a lone surrogate is no UTF-8
        with self.assertRaises(dlock.InvalidArgument) as cm:
            c.lock(base.encode() + b"\xff", ttl=30)  # checked by the C library
        self.assertTrue(cm.exception.detail)
        # Unicode names are bytes-distinct locks, str and bytes alike.
        with c.lock(base + "-\u00e9", ttl=30) as accented:
            with c.lock(base + "-e", ttl=30):
                pass
            self.assertEqual(accented.name, base + "-\u00e9")
            with self.assertRaises(dlock.LockBusy):
                c.lock((base + "-\u00e9").encode(), ttl=30)

    def test_ttl_and_wait_ranges(self):
        c = self.client()
        n = self.name("ranges")
        with c.lock(n, ttl=TTL_MAX_SECONDS) as lock:  # every backend takes the largest TTL
            # (and may grant a shorter lease: ZooKeeper's maxSessionTimeout)
            most = getattr(support.store_of(self.url), "MAX_LEASE_SECONDS", None)
            self.assertGreater(lock.remaining, most - 5 if most else 1000)
        for bad in (0, -1, TTL_MAX_SECONDS + 0.001, float("nan"), float("inf"), 0.0001, 0.0009):
            with self.subTest(ttl=bad), self.assertRaises(dlock.InvalidArgument):
                c.lock(n, ttl=bad)
        # The message gives the real range, in seconds: 0 is not in it.
        with self.assertRaises(dlock.InvalidArgument) as cm:
            c.lock(n, ttl=-1)
        self.assertIn("from 0.001 to 2147483.647", str(cm.exception))
        self.assertNotIn("4.29497e+06", str(cm.exception))
        with self.assertRaises(dlock.InvalidArgument) as cm:
            c.lock(n, ttl=0.0001)
        self.assertIn("under 0.001 s (1 ms)", str(cm.exception))
        # A fraction of a millisecond above 1 ms is rounded up.
        least = getattr(support.store_of(self.url), "MIN_LEASE_SECONDS", None)
        if least and least > 0.002:
            # A store that cannot grant a lease that short (ZooKeeper's
            # minSessionTimeout) says so, naming its minimum.
            with self.assertRaises(dlock.InvalidArgument) as cm:
                c.lock(n, ttl=0.0015)
            self.assertIn("ttl_ms 2 is below", str(cm.exception))
            self.assertIn(f"{round(least * 1000)} ms", str(cm.exception))
        else:
            lock = c.lock(n, ttl=0.0015)
            self.assertEqual(lock.ttl, 0.002)
            try:
                lock.release()
            except dlock.LockLost:
                pass  # a 2 ms lease may well have run out by now
        for bad in (-0.001, -1, float("nan")):
            with self.subTest(wait=bad), self.assertRaises(dlock.InvalidArgument):
                c.lock(n, ttl=5, wait=bad)
        with self.assertRaises(TypeError):
            c.lock(n, ttl="5")  # type: ignore[arg-type]

    def test_busy_names_the_holder(self):
        a, b = self.client(), self.client()
        n = self.name("busy-holder")
        with a.lock(n, ttl=30):
            shown = a.holder(n)
            with self.assertRaises(dlock.LockBusy) as cm:
                b.lock(n, ttl=5)
            if shown is None:
                self.assertIsNone(cm.exception.holder)
            else:
                self.assertIsNotNone(cm.exception.holder)
                self.assertIn("held by ", str(cm.exception))
                self.assertIn(str(cm.exception.holder), str(cm.exception))
        self.assertEqual(cm.exception.status, dlock.EBUSY)

    def test_refused_login_is_its_own_exception(self):
        refused = support.store_of(self.url).refused_logins(self.url)
        if not refused:
            return  # a store without logins (SQLite): nothing to refuse (not a skip: CI counts those)
        for url in refused:
            with self.subTest(url=url.split("@")[-1]):
                with self.assertRaises(dlock.LoginRefused) as cm:
                    with dlock.Client(url) as c:  # a backend may connect on first use
                        c.lock(self.name("refused"), ttl=5)
                self.assertIsInstance(cm.exception, dlock.StoreUnreachable)  # old handlers still catch it
                self.assertEqual(cm.exception.status, dlock.ECONN)
                self.assertNotIn("dlock-wrong-password", str(cm.exception))

    # --- threads ----------------------------------------------------------
    def test_threads_share_one_client(self):
        c = self.client()
        errors: list = []
        prefix = self.name("threads")

        def work(k: int) -> None:
            try:
                for i in range(15):
                    with c.lock(f"{prefix}-{k}", ttl=10) as lock:
                        if lock.remaining <= 0:
                            errors.append(f"thread {k}: no lease")
                        c.holder(f"{prefix}-{k}")
                        if i % 5 == 0:
                            lock.extend()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])

    def test_threads_with_own_clients_exclude_each_other(self):
        n = self.name("mutex")
        inside = 0
        peak = 0
        entries = 0
        guard = threading.Lock()
        errors: list = []

        def work() -> None:
            nonlocal inside, peak, entries
            try:
                with dlock.Client(self.url) as c:
                    for _ in range(3):
                        with c.lock(n, ttl=10, wait=30):
                            with guard:
                                inside += 1
                                entries += 1
                                peak = max(peak, inside)
                            time.sleep(0.02)
                            with guard:
                                inside -= 1
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        self.assertEqual(errors, [])
        self.assertEqual(entries, 12)
        self.assertEqual(peak, 1)

    # --- processes --------------------------------------------------------
    def test_two_processes_race_one_wins(self):
        for racers in (2, 4):
            with self.subTest(racers=racers):
                n = self.name(f"race{racers}")
                start_at = time.time() + 1.5  # after every interpreter has started
                procs = [self.run_racer("race", self.url, n, f"{start_at:.6f}", "1.5")
                         for _ in range(racers)]
                results = sorted(self.finish(p) for p in procs)
                self.assertEqual(results, ["BUSY"] * (racers - 1) + ["WON"])

    def test_processes_that_wait_never_overlap(self):
        n = self.name("queue")
        procs = [self.run_racer("queue", self.url, n, "0.3") for _ in range(3)]
        spans = []
        for p in procs:
            word, start, end = self.finish(p).split()
            self.assertEqual(word, "RAN")
            spans.append((float(start), float(end)))
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:]):
            self.assertLessEqual(end, start, f"critical sections overlap: {spans}")

    def test_killed_holder_frees_the_lock(self):
        c = self.client()
        n = self.name("kill9")
        proc = self.run_racer("hold", self.url, n)
        line = proc.stdout.readline().strip()
        self.assertEqual(line, "HELD")
        with self.assertRaises(dlock.LockBusy):
            c.lock(n, ttl=30, wait=0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        started = time.monotonic()
        # Session stores release at once; SQLite when the 2 s lease ends.
        with c.lock(n, ttl=30, wait=10):
            elapsed = time.monotonic() - started
        self.assertLess(elapsed, 8)

    # --- closing ----------------------------------------------------------
    def test_close_releases_every_lock(self):
        a, b = dlock.Client(self.url), self.client()
        n1, n2 = self.name("close1"), self.name("close2")
        l1 = a.lock(n1, ttl=30)
        l2 = a.lock(n2, ttl=30, heartbeat=True)
        a.close()
        a.close()  # idempotent
        self.assertTrue(a.closed)
        self.assertTrue(l1.released and l2.released)
        self.assertFalse(l2.heartbeat_running)
        self.assertEqual(l1.remaining, 0.0)
        l1.release()  # nothing left to do: no error
        with self.assertRaises(dlock.InvalidArgument):
            l2.extend()
        with self.assertRaises(dlock.InvalidArgument):
            a.holder(n1)
        a.cancel()  # a no-op on a closed client
        with b.lock(n1, ttl=30, wait=0), b.lock(n2, ttl=30, wait=0):
            pass

    # --- try_lock, locked(), owned() ---------------------------------------
    def test_try_lock(self):
        a, b = self.client(), self.client()
        n = self.name("try")
        lock = a.try_lock(n, ttl=30)
        self.assertIsInstance(lock, dlock.Lock)
        self.assertIsNone(b.try_lock(n, ttl=30))
        self.assertIsNone(a.try_lock(n, ttl=30))  # not re-entrant
        lock.release()
        again = b.try_lock(n, ttl=30, heartbeat=True)
        self.assertIsNotNone(again)
        self.assertTrue(again.heartbeat_running)
        again.release()
        with self.assertRaises(dlock.InvalidArgument):
            a.try_lock("", ttl=30)  # other failures still raise

    def test_locked_and_owned(self):
        a = self.client()
        lock = a.lock(self.name("owned"), ttl=30)
        self.assertTrue(lock.locked())
        self.assertTrue(lock.owned())
        lock.release()
        self.assertFalse(lock.locked())
        self.assertFalse(lock.owned())
        short = a.lock(self.name("owned-expired"), ttl=0.3)
        time.sleep(0.5)
        self.assertFalse(short.locked())  # the lease ran out: no round trip needed
        self.assertFalse(short.owned())   # and the store agrees
        self.assertTrue(short.lost)

    def test_owned_sees_a_lock_taken_away(self):
        a = self.client()
        n = self.name("taken")
        lock = a.lock(n, ttl=30)
        self.assertTrue(lock.locked())
        take_away(self.url, n)
        self.assertTrue(lock.locked())   # the holder's own view cannot know ...
        self.assertFalse(lock.owned())   # ... the store does
        self.assertTrue(lock.lost)
        with self.assertRaises(dlock.LockLost):
            lock.release()

    # --- synchronized ------------------------------------------------------
    def test_synchronized_holds_the_lock_during_the_call(self):
        a, b = self.client(), self.client()
        n = self.name("sync")
        seen = []

        @a.synchronized(n, ttl=30)
        def job(x: int) -> int:
            """the job"""
            seen.append(b.try_lock(n, ttl=5))
            return x * 2

        self.assertEqual(job(21), 42)
        self.assertEqual(seen, [None])
        self.assertEqual(job.__doc__, "the job")
        self.assertIsNone(a.holder(n))  # released after the call

        @a.synchronized(n, ttl=30)
        def failing() -> None:
            raise KeyError("job failed")

        with self.assertRaises(KeyError):
            failing()
        self.assertIsNone(a.holder(n))

    def test_synchronized_busy_and_wait(self):
        a, b = self.client(), self.client()
        n = self.name("sync-busy")
        ran = []

        @a.synchronized(n, ttl=30, wait=0)
        def once() -> None:
            ran.append(1)

        @a.synchronized(n, ttl=30, wait=0.4)
        def briefly() -> None:
            ran.append(2)

        with b.lock(n, ttl=30):
            with self.assertRaises(dlock.LockBusy):
                once()
            started = time.monotonic()
            with self.assertRaises(dlock.LockBusy):
                briefly()
            self.assertGreaterEqual(time.monotonic() - started, 0.35)
        self.assertEqual(ran, [])
        once()
        briefly()
        self.assertEqual(ran, [1, 2])

    def test_synchronized_threads_never_overlap(self):
        a = self.client()
        n = self.name("sync-threads")
        inside = []
        overlaps = []

        @a.synchronized(n, ttl=30, wait=30)
        def critical() -> None:
            inside.append(1)
            if len(inside) > 1:
                overlaps.append(len(inside))
            time.sleep(0.05)
            inside.pop()

        threads = [threading.Thread(target=critical) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(overlaps, [])
        self.assertIsNone(a.holder(n))

    # --- fork ------------------------------------------------------------
    def _forker(self, mode: str) -> None:
        n = self.name(f"fork-{mode}")
        proc = subprocess.Popen([sys.executable, FORKER, mode, self.url, n], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(self._reap, proc)
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline().strip()
        if line != "PARENT OK":
            out, err = proc.communicate(timeout=30)
            self.fail(f"forker: {line} {out} {err}")
        # From a third process too: the parent still holds it.
        c = self.client()
        self.assertIsNone(c.try_lock(n, ttl=5))
        proc.stdin.write("\n")
        proc.stdin.flush()
        self.assertEqual(self.finish(proc), "RELEASED")
        with c.lock(n, ttl=5, wait=5):
            pass

    def test_fork_child_exiting_keeps_the_parents_lock(self):
        self._forker("exit")

    def test_fork_child_leaving_with_blocks_keeps_the_parents_lock(self):
        self._forker("with")

    def test_fork_handler_marks_clients_in_the_child(self):
        c = self.client()
        lock = c.lock(self.name("fork-mark"), ttl=30, heartbeat=True)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                ok = c._forked and not lock.heartbeat_running and "another process" in repr(c)
                os.write(w, b"1" if ok else b"0")
            finally:
                os._exit(0)
        os.close(w)
        answer = os.read(r, 1)
        os.close(r)
        os.waitpid(pid, 0)
        self.assertEqual(answer, b"1")
        self.assertFalse(c._forked)
        self.assertTrue(lock.owned())
        lock.release()

    # --- asyncio ---------------------------------------------------------
    def test_alock_holds_and_releases(self):
        a, b = self.client(), self.client()
        n = self.name("alock")

        async def main() -> None:
            async with a.alock(n, ttl=30) as lock:
                self.assertTrue(lock.locked())
                self.assertIsNone(b.try_lock(n, ttl=5))
                self.assertTrue(lock.heartbeat_running is False)  # the heartbeat is a task
            self.assertTrue(lock.released)

        asyncio.run(main())
        with b.lock(n, ttl=5):
            pass

    def test_alock_wait_runs_out_and_is_granted(self):
        a, b = self.client(), self.client()
        n = self.name("alock-wait")

        async def main() -> None:
            holder = b.lock(n, ttl=30)
            with self.assertRaises(dlock.LockBusy):
                async with a.alock(n, ttl=30, wait=0.3):
                    pass
            # Released while the alock waits: granted.
            asyncio.get_running_loop().call_later(0.3, holder.release)
            started = time.monotonic()
            async with a.alock(n, ttl=30, wait=10) as lock:
                self.assertTrue(lock.owned())
            self.assertLess(time.monotonic() - started, 5)

        asyncio.run(main())

    def test_alock_cancel_interrupts_the_wait(self):
        a, b = self.client(), self.client()
        n = self.name("alock-cancel")
        holder = b.lock(n, ttl=30)

        async def waiter() -> None:
            async with a.alock(n, ttl=30, wait=None):
                raise AssertionError("granted while held")

        async def main() -> float:
            task = asyncio.ensure_future(waiter())
            await asyncio.sleep(0.5)
            self.assertFalse(task.done())
            started = time.monotonic()
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            return time.monotonic() - started

        self.assertLess(asyncio.run(main()), 3)
        self.assertTrue(holder.owned())
        holder.release()
        # The cancelled wait left nothing behind: the lock is free at once.
        with b.lock(n, ttl=5, wait=0):
            pass

    def test_alock_lost_lock_cancels_the_task(self):
        a = self.client()
        n = self.name("alock-lost")
        reached_end = []

        async def job() -> None:
            async with a.alock(n, ttl=1.5) as lock:
                await asyncio.get_running_loop().run_in_executor(None, take_away, self.url, n)
                await asyncio.sleep(30)
                reached_end.append(lock)

        async def main() -> float:
            started = time.monotonic()
            with self.assertRaises(dlock.LockLost):
                await job()
            return time.monotonic() - started

        self.assertLess(asyncio.run(main()), 10)  # one heartbeat (0.5 s) and its retries
        self.assertEqual(reached_end, [])
        with a.lock(n, ttl=5, wait=5):  # the store gave it up for real
            pass

    def test_synchronized_coroutine(self):
        a, b = self.client(), self.client()
        n = self.name("async-sync")

        @a.synchronized(n, ttl=30, wait=5)
        async def job() -> str:
            await asyncio.sleep(0.05)
            return "busy" if b.try_lock(n, ttl=5) is None else "free"

        self.assertEqual(asyncio.run(job()), "busy")
        self.assertIsNone(a.holder(n))


def _make_cases() -> None:
    seen: dict = {}
    for url in test_urls():
        backend = backend_of(url)
        seen[backend] = seen.get(backend, 0) + 1
        suffix = "" if seen[backend] == 1 else str(seen[backend])
        cls_name = f"Test{backend.capitalize()}{suffix}"
        globals()[cls_name] = type(cls_name, (BackendTests, unittest.TestCase),
                                   {"url": url, "backend": backend})


_make_cases()

if __name__ == "__main__":
    unittest.main()
