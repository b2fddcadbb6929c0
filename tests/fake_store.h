/*
 * A fake store for the core's unit tests: a backend table whose answers the
 * test scripts, and which counts and records its calls.  It scripts the
 * core's view of a store (grant after N ms, answer ELOST, fail the
 * connection, block until cancelled) — things a real server cannot be
 * steered into on demand.  Linked only into tests/check_core; it is not a
 * database, and the real-store suites stay as they are.
 */
#ifndef DLOCK_TESTS_FAKE_STORE_H
#define DLOCK_TESTS_FAKE_STORE_H

#include <stdatomic.h>
#include <stdint.h>

#include "internal.h"

struct fake_store {
    /* The script: what the next calls answer. */
    int acquire_status;       /* DLOCK_OK, DLOCK_EBUSY, DLOCK_ECONN ... */
    int64_t acquire_takes_ms; /* acquire answers this long after it was called */
    int64_t grant_at_ms;      /* > 0: report the lease started this long after the call */
    int acquire_blocks;       /* acquire waits until dlock_cancel() (or acquire_takes_ms) */
    uint32_t granted_ms;      /* acquire and extend grant this lease (0: as asked) */
    int extend_status;
    int64_t extend_takes_ms;
    int release_status;
    int holder_status;
    uint32_t session_ttl_ms;         /* 0: not a session store (session_ttl_ms member answers 0) */
    atomic_uint_fast64_t generation; /* what session_generation answers */
    int list_status;                 /* list: adds "b", "a", "c/1" (those matching the prefix) on DLOCK_OK */
    int break_status;                /* break: 1, 0 or an error */
    int64_t store_time_ms;           /* what store_time answers */
    int record_status;               /* record_get and record_put */
    int64_t record_slot;             /* the stored run record */

    /* What the core did. */
    atomic_int connects, disconnects, acquires, extends, releases, holders, cancels, cancel_clears;
    atomic_int lists, breaks, store_times, record_gets, record_puts;
    int64_t last_deadline_ms;  /* of the last acquire, extend, release or holder */
    int64_t last_call_at_ms;   /* when that call came */
    atomic_int pending_cancel; /* a cancel not yet consumed or cleared */
    atomic_int live_locks;     /* per-lock states handed out and not yet freed */
};

extern struct fake_store fake;
extern const struct dlock_backend fake_backend;
/* The same store without the operations (list, break, store_time, records). */
extern const struct dlock_backend fake_backend_no_ops;

/* Reset the script and the counters: every call succeeds at once. */
void fake_reset(void);

#endif
