/*
 * The timing decisions of `dlock run`, as a pure function of its state and
 * the clock: when the lease has run out, when the job gets SIGTERM and
 * SIGKILL, when --min-hold ends, when to cancel a wait again, when to stop
 * waiting for a store that does not answer.  No I/O here: the run loop
 * (tools/run.c) performs what run_next() returns, and the unit tests
 * (tests/check_run_policy.c) drive it with made-up states and times.
 */
#ifndef DLOCK_RUN_POLICY_H
#define DLOCK_RUN_POLICY_H

#include <stdint.h>

struct run_state {
    /* Settings. */
    int64_t min_hold_ms;     /* -m: hold at least this long after taking the lock */
    int64_t grace_ms;        /* -k: SIGKILL this long after SIGTERM */
    int64_t let_go_ms;       /* how long to wait for the library once nothing is left to protect */
    int64_t cancel_every_ms; /* a signal while waiting: dlock_cancel() this often until the wait ends */

    /* What has happened (set by the loop's handlers). */
    int acquired; /* the lock was granted */
    int64_t acquired_at;
    int64_t lease_ends_at; /* now + dlock_remaining_ms(), refreshed by the loop before each step */
    int job_running;
    int job_done;     /* the job ended (or never started after the lock came) */
    int lost;         /* the store said lost, or the lease ran out */
    int got_signal;   /* a signal for dlock itself (no job was running): its number */
    int told_to_stop; /* a signal came, for dlock or forwarded to the job */

    /* Decided by run_next(). */
    int release_asked;      /* the heartbeat was asked to release */
    int term_sent;          /* the job got SIGTERM for a lost lock */
    int64_t kill_at;        /* when the job gets SIGKILL; -1: not planned */
    int64_t let_go_at;      /* when dlock exits without waiting for the library; -1: not planned */
    int64_t next_cancel_at; /* when to cancel the wait again */
};

enum run_action {
    RUN_WAIT,          /* nothing to do before *wake_at or the next event */
    RUN_LEASE_RAN_OUT, /* the lease ran out unconfirmed: the lock is lost (say so) */
    RUN_TERM_JOB,      /* the lock is lost while the job runs: SIGTERM its group */
    RUN_KILL_JOB,      /* the grace period is over: SIGKILL its group */
    RUN_RELEASE,       /* the job is over (and --min-hold passed, or it does not matter): release */
    RUN_CANCEL_WAIT,   /* a signal came while waiting for the lock: dlock_cancel() */
    RUN_ABANDON,       /* the library did not let go in time: exit without it */
};

/* A state with the given settings, before anything happened. */
void run_state_init(struct run_state *s, int64_t min_hold_ms, int64_t grace_ms, int64_t let_go_ms,
                    int64_t cancel_every_ms);

/* The next thing to do at `now`, with the state updated as if it were done.
 * Call it again until it answers RUN_WAIT; then *wake_at is when to call it
 * next at the latest (INT64_MAX: only after an event). */
enum run_action run_next(struct run_state *s, int64_t now, int64_t *wake_at);

/*
 * --once-per PERIOD.  The store keeps one run record per lock: the start,
 * in Unix ms on the store's clock, of the last run whose job succeeded
 * (0: none yet).  A run is done already when that start is less than
 * PERIOD/2 before its own start, on the same clock: two servers that fire
 * the same schedule less than PERIOD/2 apart run the job once, wherever the
 * schedule falls within the period, and the next period's run (about PERIOD
 * after the last) is never skipped.  A record in the future of the store's
 * clock (the clock was stepped back) counts as done: never a second run.
 * The record of an earlier dlock, a slot (the multiple of PERIOD nearest to
 * that run's start), reads as a start within PERIOD/2 of the real one.
 */
int run_once_done(int64_t last_success_start_ms, int64_t store_now_ms, int64_t period_ms);

/* Whether a job that ended with `exit_status` marks its slot done: only a
 * success does, so that a failed run can be retried in the same slot. */
int run_slot_marks_done(int exit_status);

#endif
