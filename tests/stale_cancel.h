/* The stale-cancel case that the session stores share (tests/stale_cancel.c). */
#ifndef DLOCK_TESTS_STALE_CANCEL_H
#define DLOCK_TESTS_STALE_CANCEL_H

/*
 * dlock_cancel() in a tight loop around the moment a wait is granted must
 * never reach the next wait.  Thirty trials on a client of `url`: a wait
 * for a name another client holds, cancels spinning from just before (odd
 * trials) or just after (even ones) that client lets go, then a short wait
 * for a second name that stays held: it must time out (EBUSY), never end
 * cancelled.  Lock names start with `prefix`; a "FIGURE: stale cancel"
 * line on stderr gives the counts.  Fails the running Check test.
 */
void dlt_check_stale_cancel(const char *url, const char *prefix);

#endif
