/* The timing decisions of `dlock run` (see run_policy.h). */
#include "config.h"

#include "run_policy.h"

void run_state_init(struct run_state *s, int64_t min_hold_ms, int64_t grace_ms, int64_t let_go_ms,
                    int64_t cancel_every_ms)
{
    *s = (struct run_state){0};
    s->min_hold_ms = min_hold_ms;
    s->grace_ms = grace_ms;
    s->let_go_ms = let_go_ms;
    s->cancel_every_ms = cancel_every_ms;
    s->lease_ends_at = INT64_MAX;
    s->kill_at = -1;
    s->let_go_at = -1;
}

static void earliest(int64_t *wake_at, int64_t when)
{
    if (when < *wake_at)
        *wake_at = when;
}

/* Nothing is left to protect once the release was asked for a lock that is
 * lost or a run that was told to stop, or once a signal came before the
 * lock did: from then on, the library gets let_go_ms to finish. */
static int nothing_left_to_protect(const struct run_state *s)
{
    if (s->release_asked && (s->lost || s->told_to_stop))
        return 1;
    return s->got_signal && !s->acquired;
}

static int64_t hold_until(const struct run_state *s)
{
    return s->acquired_at + s->min_hold_ms;
}

/* When nothing is due now: the earliest moment something will be. */
static int64_t next_wake(const struct run_state *s)
{
    int64_t wake_at = INT64_MAX;
    if (s->let_go_at >= 0)
        earliest(&wake_at, s->let_go_at);
    if (s->acquired && !s->lost && !s->release_asked)
        earliest(&wake_at, s->lease_ends_at);
    if (s->job_running && s->kill_at >= 0)
        earliest(&wake_at, s->kill_at);
    if (s->job_done && !s->release_asked)
        earliest(&wake_at, hold_until(s));
    if (s->got_signal && !s->acquired)
        earliest(&wake_at, s->next_cancel_at);
    return wake_at;
}

enum run_action run_next(struct run_state *s, int64_t now, int64_t *wake_at)
{
    if (s->let_go_at < 0 && nothing_left_to_protect(s))
        s->let_go_at = now + s->let_go_ms;
    if (s->let_go_at >= 0 && now >= s->let_go_at)
        return RUN_ABANDON;
    if (s->acquired && !s->lost && !s->release_asked && now >= s->lease_ends_at) {
        s->lost = 1;
        return RUN_LEASE_RAN_OUT;
    }
    if (s->lost && s->job_running && !s->term_sent) {
        s->term_sent = 1;
        s->kill_at = now + s->grace_ms;
        return RUN_TERM_JOB;
    }
    if (s->job_running && s->kill_at >= 0 && now >= s->kill_at) {
        s->kill_at = -1;
        return RUN_KILL_JOB;
    }
    if (s->job_done && !s->release_asked && (s->lost || s->got_signal || now >= hold_until(s))) {
        s->release_asked = 1;
        return RUN_RELEASE;
    }
    if (s->got_signal && !s->acquired && now >= s->next_cancel_at) {
        s->next_cancel_at = now + s->cancel_every_ms;
        return RUN_CANCEL_WAIT;
    }
    *wake_at = next_wake(s);
    return RUN_WAIT;
}

int run_once_done(int64_t last_success_start_ms, int64_t store_now_ms, int64_t period_ms)
{
    if (last_success_start_ms <= 0)
        return 0; /* no success recorded */
    /* Less than PERIOD/2 ago (or in the future of the store's clock). */
    return 2 * (store_now_ms - last_success_start_ms) < period_ms;
}

int run_slot_marks_done(int exit_status)
{
    return exit_status == 0;
}
