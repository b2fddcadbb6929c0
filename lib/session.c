/* What a session store tracks (see session.h). */
#include "config.h"

#include "session.h"

static void min_ttl_add(struct dlock_session *s, uint32_t ttl_ms)
{
    if (s->min_ttl_count == 0 || ttl_ms < s->min_ttl_ms) {
        s->min_ttl_ms = ttl_ms;
        s->min_ttl_count = 1;
    } else if (ttl_ms == s->min_ttl_ms) {
        s->min_ttl_count++;
    }
}

static void min_ttl_rescan(struct dlock_session *s)
{
    s->min_ttl_ms = 0;
    s->min_ttl_count = 0;
    for (const struct dlock_held *l = s->locks; l; l = l->next)
        min_ttl_add(s, l->ttl_ms);
}

/* A lock with ttl_ms is gone from the list: only losing the last lock with
 * the smallest TTL costs a scan. */
static void min_ttl_remove(struct dlock_session *s, uint32_t ttl_ms)
{
    if (s->min_ttl_count > 0 && ttl_ms == s->min_ttl_ms && --s->min_ttl_count == 0)
        min_ttl_rescan(s);
}

void dlock__session_add(struct dlock_session *s, struct dlock_held *l)
{
    l->prev = NULL;
    l->next = s->locks;
    if (s->locks)
        s->locks->prev = l;
    s->locks = l;
    l->linked = 1;
    l->generation = s->generation;
    min_ttl_add(s, l->ttl_ms);
}

void dlock__session_remove(struct dlock_session *s, struct dlock_held *l)
{
    if (!l->linked)
        return;
    if (l->prev)
        l->prev->next = l->next;
    else
        s->locks = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->prev = l->next = NULL;
    l->linked = 0;
    min_ttl_remove(s, l->ttl_ms);
}

void dlock__session_retime(struct dlock_session *s, struct dlock_held *l, uint32_t ttl_ms)
{
    uint32_t old_ttl_ms = l->ttl_ms;
    l->ttl_ms = ttl_ms;
    if (!l->linked)
        return;
    if (s->min_ttl_count == 1 && old_ttl_ms == s->min_ttl_ms) {
        min_ttl_rescan(s); /* it was the only one with the smallest */
        return;
    }
    if (old_ttl_ms == s->min_ttl_ms)
        s->min_ttl_count--;
    min_ttl_add(s, ttl_ms);
}

int dlock__session_holds(const struct dlock_session *s, const struct dlock_held *l)
{
    return l->linked && l->generation == s->generation;
}

uint32_t dlock__session_idle_ms(const struct dlock_session *s, const struct dlock_held *skip, uint32_t extra_ttl_ms)
{
    uint32_t smallest = s->min_ttl_count ? s->min_ttl_ms : 0;
    /* Leaving out the only lock with the smallest TTL: look at the rest. */
    if (skip && skip->linked && s->min_ttl_count == 1 && skip->ttl_ms == s->min_ttl_ms) {
        smallest = 0;
        for (const struct dlock_held *l = s->locks; l; l = l->next)
            if (l != skip && (smallest == 0 || l->ttl_ms < smallest))
                smallest = l->ttl_ms;
    }
    if (extra_ttl_ms && (smallest == 0 || extra_ttl_ms < smallest))
        smallest = extra_ttl_ms;
    return smallest;
}

void dlock__session_new(struct dlock_session *s)
{
    s->generation++;
    while (s->locks) {
        struct dlock_held *l = s->locks;
        s->locks = l->next;
        l->prev = l->next = NULL;
        l->linked = 0;
    }
    s->min_ttl_ms = 0;
    s->min_ttl_count = 0;
}

int dlock__session_may_retry(int attempt, int fresh, int timed_out)
{
    return attempt == 0 && !fresh && !timed_out;
}
