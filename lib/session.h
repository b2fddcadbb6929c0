/*
 * What a session store must track (lib/session.c), once for PostgreSQL and
 * MySQL: which locks the current server session holds, the smallest TTL
 * among them (the session's idle limit, kept incrementally), the session's
 * generation, and when a failed round trip may be retried on a new session.
 *
 * A backend embeds `struct dlock_session` in its connection; each lock's
 * `struct dlock_held` base carries the links.  Call it with the client's
 * mutex held (the core holds it around every backend call).
 */
#ifndef DLOCK_SESSION_H
#define DLOCK_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

struct dlock_session {
    struct dlock_held *locks; /* held on the current session */
    uint64_t generation;      /* grows whenever a session ends or begins */
    uint32_t min_ttl_ms;      /* the smallest ttl_ms among locks (0: none) */
    size_t min_ttl_count;     /* how many locks have it */
};

/* A lock was taken on the current session with its ttl_ms set: track it. */
void dlock__session_add(struct dlock_session *s, struct dlock_held *l);
/* A lock leaves the session (released, or found gone); no-op when it is not
 * on it. */
void dlock__session_remove(struct dlock_session *s, struct dlock_held *l);
/* A lock's lease changes (an extend with another TTL). */
void dlock__session_retime(struct dlock_session *s, struct dlock_held *l, uint32_t ttl_ms);
/* 1 when `l` was taken on the current session and is still on it. */
int dlock__session_holds(const struct dlock_session *s, const struct dlock_held *l);
/* The idle limit the session must enforce: the smallest TTL of its locks,
 * with `skip` left out (NULL: none) and `extra_ttl_ms` (0: none) added. */
uint32_t dlock__session_idle_ms(const struct dlock_session *s, const struct dlock_held *skip, uint32_t extra_ttl_ms);
/* The server session ended, or a new one begins: every lock on the old one
 * is lost (the core sees the new generation and says so at once). */
void dlock__session_new(struct dlock_session *s);
/* A round trip failed on a session that was already open (not fresh): may
 * it be retried once on a new one?  Only a first attempt, and only after a
 * broken connection, not a missed deadline (its time is spent).  The locks
 * of the broken session are lost either way; the core says so. */
int dlock__session_may_retry(int attempt, int fresh, int timed_out);

#endif
