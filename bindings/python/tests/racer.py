"""A separate process for the multi-process tests: python3 racer.py MODE URL NAME [ARG]

  race START_AT HOLD   at wall-clock START_AT try once; print WON (holding HOLD s) or BUSY
  queue HOLD           wait for the lock; print "RAN start end" (wall clock) around HOLD s
  hold                 take the lock (ttl 2 s, heartbeat), print HELD, then sleep until killed
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dlock  # noqa: E402


def main() -> int:
    mode, url, name = sys.argv[1:4]
    with dlock.Client(url) as client:
        if mode == "race":
            start_at, hold = float(sys.argv[4]), float(sys.argv[5])
            time.sleep(max(0.0, start_at - time.time()))
            try:
                lock = client.lock(name, ttl=30, wait=0)
            except dlock.LockBusy:
                print("BUSY", flush=True)
                return 0
            with lock:
                print("WON", flush=True)
                time.sleep(hold)
            return 0
        if mode == "queue":
            hold = float(sys.argv[4])
            with client.lock(name, ttl=30, wait=60):
                start = time.time()
                time.sleep(hold)
                end = time.time()
            print(f"RAN {start:.6f} {end:.6f}", flush=True)
            return 0
        if mode == "hold":
            client.lock(name, ttl=2, wait=0, heartbeat=True)
            print("HELD", flush=True)
            time.sleep(60)
            return 1
    print(f"unknown mode {mode}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
