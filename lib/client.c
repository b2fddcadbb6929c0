/*
 * The core: client and lock lifecycle, backend dispatch, the per-client
 * registry of held names, and the client-side lease clock.  No SQL here.
 */
#include "config.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

struct dlock_lock {
    dlock_client *client;
    struct dlock_held *state;          /* the backend's per-lock state */
    _Atomic int64_t lease_deadline_ms; /* monotonic; the lease may have expired from then on */
    atomic_int lost;                   /* LOST_*: the store told us, our lease ran out, or the session
                                            ended; stays lost */
    uint64_t generation;               /* the backend's session generation it was taken in */
    uint32_t hash;
    struct dlock_lock *prev, *next; /* every lock the client holds */
    struct dlock_lock *hash_next;   /* the registry bucket chain */
    char name[];
};

struct dlock_client {
    const struct dlock_backend *backend;
    struct dlock_conn *conn;
    pthread_mutex_t mutex; /* serializes every call on the client */
    dlock_lock *held;
    dlock_lock **buckets;
    size_t bucket_count; /* a power of two */
    size_t held_count;
    /* dlock_cancel() and the start and end of every wait take this short
     * mutex (never held over a round trip to the store), so that a cancel
     * reaches only the wait in progress, never the next one. */
    pthread_mutex_t cancel_mutex;
    int waiting;         /* an acquire with a wait is in progress */
    uint64_t generation; /* the backend's session generation, last seen */
    /* For backends whose session dies when idle: when that may happen. */
    _Atomic int64_t session_deadline_ms;
};

/* Why a lock is lost (dlock_lock.lost). */
enum { LOST_NOT = 0, LOST_LEASE = 1, LOST_SESSION = 2 };

/* The static registry of built-in backends (configure's one list). */
#define BACKEND_ENTRY(name) &dlock__backend_##name,
static const struct dlock_backend *const builtin_backends[] = {DLOCK_BUILTIN_BACKENDS(BACKEND_ENTRY) NULL};
#undef BACKEND_ENTRY

DLOCK_API const char *dlock_version(void)
{
    return DLOCK_VERSION_STRING;
}

static const struct dlock_backend *backend_for_scheme(const char *scheme)
{
    for (size_t i = 0; builtin_backends[i]; i++) {
        const struct dlock_backend *be = builtin_backends[i];
        for (size_t k = 0; be->schemes[k]; k++)
            if (strcmp(be->schemes[k], scheme) == 0)
                return be;
    }
    return NULL;
}

/* Edit distance (insert, delete, substitute, swap two neighbours), letters
 * compared without case; both strings are schemes, under 32 bytes. */
static size_t scheme_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t d[32][32];
    if (la >= 32 || lb >= 32)
        return SIZE_MAX;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            size_t best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* The built-in scheme that `scheme` is most likely a typo of (same letters
 * in another case, or at most two edits away from a scheme of 4 or more
 * letters), or NULL: a scheme far from all of them may be a backend this
 * build does not include. */
static const char *scheme_typo_of(const char *scheme)
{
    const char *best = NULL;
    size_t best_distance = SIZE_MAX;
    for (size_t i = 0; builtin_backends[i]; i++) {
        for (size_t k = 0; builtin_backends[i]->schemes[k]; k++) {
            const char *known = builtin_backends[i]->schemes[k];
            size_t limit = strlen(known) >= 4 ? 2 : 1;
            size_t distance = scheme_distance(scheme, known);
            if (distance <= limit && distance < best_distance) {
                best = known;
                best_distance = distance;
            }
        }
    }
    return best;
}

static void builtin_names(char *buf, size_t buflen)
{
    buf[0] = '\0';
    for (size_t i = 0; builtin_backends[i]; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, buflen - used, "%s%s", i ? ", " : "", builtin_backends[i]->name);
    }
    if (!buf[0])
        dlock__copy_text(buf, buflen, "none");
}

/* --- registry of held names ------------------------------------------------ */

static uint32_t name_hash(const char *name)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

static dlock_lock *registry_find(dlock_client *c, const char *name, uint32_t hash)
{
    for (dlock_lock *l = c->buckets[hash & (c->bucket_count - 1)]; l; l = l->hash_next)
        if (l->hash == hash && strcmp(l->name, name) == 0)
            return l;
    return NULL;
}

static int registry_grow(dlock_client *c)
{
    size_t count = c->bucket_count * 2;
    dlock_lock **buckets = calloc(count, sizeof *buckets);
    if (!buckets)
        return DLOCK_ENOMEM;
    for (dlock_lock *l = c->held; l; l = l->next) {
        size_t b = l->hash & (count - 1);
        l->hash_next = buckets[b];
        buckets[b] = l;
    }
    free(c->buckets);
    c->buckets = buckets;
    c->bucket_count = count;
    return DLOCK_OK;
}

static void registry_insert(dlock_client *c, dlock_lock *l)
{
    if (c->held_count >= c->bucket_count)
        (void)registry_grow(c); /* on failure the chains just get longer */
    size_t b = l->hash & (c->bucket_count - 1);
    l->hash_next = c->buckets[b];
    c->buckets[b] = l;
    l->prev = NULL;
    l->next = c->held;
    if (c->held)
        c->held->prev = l;
    c->held = l;
    c->held_count++;
}

static void registry_remove(dlock_client *c, dlock_lock *l)
{
    dlock_lock **slot = &c->buckets[l->hash & (c->bucket_count - 1)];
    while (*slot && *slot != l)
        slot = &(*slot)->hash_next;
    if (*slot)
        *slot = l->hash_next;
    if (l->prev)
        l->prev->next = l->next;
    else
        c->held = l->next;
    if (l->next)
        l->next->prev = l->prev;
    c->held_count--;
}

/* --- lease clock -------------------------------------------------------------- */

/* After a round trip that the store answered (sent at sent_ms): a session
 * that dies when idle lives at least its idle timeout from then on. */
static void session_touched(dlock_client *c, int64_t sent_ms)
{
    if (!c->backend->session_ttl_ms)
        return;
    uint32_t ttl = c->backend->session_ttl_ms(c->conn);
    atomic_store(&c->session_deadline_ms, ttl ? sent_ms + (int64_t)ttl : INT64_MAX);
}

/* After every backend call: a session the backend dropped or replaced takes
 * every lock of an earlier session with it, at once. */
static void session_check(dlock_client *c)
{
    if (!c->backend->session_generation)
        return;
    uint64_t generation = c->backend->session_generation(c->conn);
    if (generation == c->generation)
        return;
    c->generation = generation;
    for (dlock_lock *l = c->held; l; l = l->next)
        if (l->generation != generation)
            atomic_store(&l->lost, LOST_SESSION);
}

static int64_t lease_remaining(const dlock_lock *lock, int64_t now)
{
    if (atomic_load(&lock->lost))
        return 0;
    int64_t deadline = atomic_load(&lock->lease_deadline_ms);
    int64_t session = atomic_load(&lock->client->session_deadline_ms);
    if (session < deadline)
        deadline = session;
    return deadline > now ? deadline - now : 0;
}

/* The lease the store gave a lock: the TTL asked, or the shorter one it
 * granted (SPEC "The granted lease"). */
static int64_t lease_granted_ms(const dlock_lock *l, uint32_t ttl_ms)
{
    uint32_t granted = l->state ? l->state->granted_ms : 0;
    return (int64_t)(granted && granted < ttl_ms ? granted : ttl_ms);
}

static int session_lost(const dlock_lock *l)
{
    return dlock__error(DLOCK_ELOST, "lock '%s' is lost: the session that held it has ended", l->name);
}

/* A release is bounded by the lease it ends (a store that does not answer
 * before then has let it go anyway), but gets at least a short while to
 * free a lock whose lease already ran out, so that others need not wait. */
#define RELEASE_MIN_MS 1000

static int64_t release_deadline(const dlock_lock *l, int64_t now)
{
    int64_t remaining = lease_remaining(l, now);
    return now + (remaining > RELEASE_MIN_MS ? remaining : RELEASE_MIN_MS);
}

static void wait_begins(dlock_client *c)
{
    pthread_mutex_lock(&c->cancel_mutex);
    c->waiting = 1;
    pthread_mutex_unlock(&c->cancel_mutex);
}

static void wait_ends(dlock_client *c)
{
    pthread_mutex_lock(&c->cancel_mutex);
    c->waiting = 0;
    if (c->backend->cancel_clear)
        c->backend->cancel_clear(c->conn);
    pthread_mutex_unlock(&c->cancel_mutex);
}

/* --- public API ---------------------------------------------------------------- */

DLOCK_API int dlock_open(const char *url, dlock_client **out)
{
    char scheme[32];
    dlock__clear_error();
    if (!out)
        return dlock__error(DLOCK_EINVAL, "dlock_open: out is NULL");
    *out = NULL;
    int rc = dlock__url_scheme(url, scheme, sizeof scheme);
    if (rc != DLOCK_OK)
        return rc;
    const struct dlock_backend *be = backend_for_scheme(scheme);
    const char *typo_of = be ? NULL : scheme_typo_of(scheme);
    if (typo_of)
        return dlock__error(DLOCK_EINVAL, "unknown URL scheme '%s': did you mean '%s'?%s", scheme, typo_of,
                            strcasecmp(scheme, typo_of) == 0 ? " (schemes are lower case)" : "");
    if (!be) {
        char names[128];
        builtin_names(names, sizeof names);
        return dlock__error(DLOCK_ENOTSUP, "URL scheme '%s' is not built into this libdlock (built in: %s)", scheme,
                            names);
    }
    return dlock__open_backend(be, url, out);
}

int dlock__open_backend(const struct dlock_backend *be, const char *url, dlock_client **out)
{
    dlock_client *c = calloc(1, sizeof *c);
    if (!c)
        return dlock__oom();
    c->bucket_count = 16;
    c->buckets = calloc(c->bucket_count, sizeof *c->buckets);
    if (!c->buckets || pthread_mutex_init(&c->mutex, NULL) != 0) {
        free(c->buckets);
        free(c);
        return dlock__oom();
    }
    if (pthread_mutex_init(&c->cancel_mutex, NULL) != 0) {
        pthread_mutex_destroy(&c->mutex);
        free(c->buckets);
        free(c);
        return dlock__oom();
    }
    c->backend = be;
    atomic_init(&c->session_deadline_ms, INT64_MAX);
    int rc = be->connect(url, &c->conn);
    if (rc != DLOCK_OK) {
        dlock__prefix_error(be->name);
        pthread_mutex_destroy(&c->cancel_mutex);
        pthread_mutex_destroy(&c->mutex);
        free(c->buckets);
        free(c);
        return rc;
    }
    c->conn->backend = be;
    if (be->session_generation)
        c->generation = be->session_generation(c->conn);
    *out = c;
    return DLOCK_OK;
}

DLOCK_API void dlock_close(dlock_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mutex);
    while (c->held) {
        dlock_lock *l = c->held;
        registry_remove(c, l);
        struct dlock_call call = {release_deadline(l, dlock__now_ms()), 0};
        (void)c->backend->release(c->conn, l->state, l->name, &call);
        free(l);
    }
    c->backend->disconnect(c->conn);
    c->conn = NULL;
    pthread_mutex_unlock(&c->mutex);
    pthread_mutex_destroy(&c->cancel_mutex);
    pthread_mutex_destroy(&c->mutex);
    free(c->buckets);
    free(c);
}

DLOCK_API const char *dlock_backend(const dlock_client *c)
{
    return c ? c->backend->name : "";
}

DLOCK_API int dlock_acquire(dlock_client *c, const char *name, uint32_t ttl_ms, int32_t wait_ms, dlock_lock **out)
{
    dlock__clear_error();
    if (out)
        *out = NULL;
    if (!c)
        return dlock__error(DLOCK_EINVAL, "dlock_acquire: client is NULL");
    if (!out)
        return dlock__error(DLOCK_EINVAL, "dlock_acquire: out is NULL");
    int rc = dlock__check_name(name);
    if (rc != DLOCK_OK)
        return rc;
    if (ttl_ms == 0 || ttl_ms > INT32_MAX)
        return dlock__error(DLOCK_EINVAL, "ttl_ms must be from 1 to 2147483647 (a lock without expiry is not offered)");
    if (wait_ms < DLOCK_WAIT_FOREVER)
        return dlock__error(DLOCK_EINVAL, "wait_ms must be >= 0, or DLOCK_WAIT_FOREVER (-1)");

    size_t len = strlen(name);
    dlock_lock *l = calloc(1, sizeof *l + len + 1);
    if (!l)
        return dlock__oom();
    memcpy(l->name, name, len + 1);
    l->hash = name_hash(name);
    l->client = c;

    pthread_mutex_lock(&c->mutex);
    if (registry_find(c, name, l->hash)) {
        pthread_mutex_unlock(&c->mutex);
        free(l);
        return dlock__error(DLOCK_EBUSY, "this client already holds the lock '%s' (locks are not re-entrant)", name);
    }
    if (wait_ms != 0)
        wait_begins(c);
    int64_t sent_ms = dlock__now_ms();
    struct dlock_call call = {
        wait_ms == DLOCK_WAIT_FOREVER ? INT64_MAX : sent_ms + wait_ms + DLOCK_CALL_TIMEOUT_MS,
        sent_ms,
    };
    rc = c->backend->acquire(c->conn, name, ttl_ms, wait_ms, &call, &l->state);
    if (rc != DLOCK_OK)
        dlock__prefix_error(c->backend->name);
    if (wait_ms != 0)
        wait_ends(c);
    session_check(c);
    if (rc == DLOCK_OK) {
        /* The lease runs from the round trip that was granted, not from the
         * start of the wait; never from a moment this call had not reached. */
        int64_t start_ms = call.lease_start_ms;
        int64_t now_ms = dlock__now_ms();
        if (start_ms < sent_ms || start_ms > now_ms)
            start_ms = sent_ms;
        atomic_init(&l->lease_deadline_ms, start_ms + lease_granted_ms(l, ttl_ms));
        atomic_init(&l->lost, 0);
        l->generation = c->generation;
        registry_insert(c, l);
        session_touched(c, start_ms);
        *out = l;
        l = NULL;
    } else if (rc == DLOCK_EBUSY) {
        session_touched(c, sent_ms);
    }
    pthread_mutex_unlock(&c->mutex);
    free(l);
    return rc;
}

DLOCK_API int dlock_extend(dlock_lock *l, uint32_t ttl_ms)
{
    dlock__clear_error();
    if (!l)
        return dlock__error(DLOCK_EINVAL, "dlock_extend: lock is NULL");
    if (ttl_ms == 0 || ttl_ms > INT32_MAX)
        return dlock__error(DLOCK_EINVAL, "ttl_ms must be from 1 to 2147483647");
    dlock_client *c = l->client;
    pthread_mutex_lock(&c->mutex);
    int rc;
    int64_t sent_ms = dlock__now_ms();
    if (atomic_load(&l->lost) == LOST_SESSION) {
        rc = session_lost(l);
    } else if (atomic_load(&l->lost)) {
        rc = dlock__error(DLOCK_ELOST, "lock '%s' was already lost", l->name);
    } else if (lease_remaining(l, sent_ms) == 0) {
        atomic_store(&l->lost, LOST_LEASE);
        rc = dlock__error(DLOCK_ELOST, "lock '%s': its lease ran out before this extend", l->name);
    } else {
        /* A heartbeat that cannot finish before the lease ends has failed. */
        struct dlock_call call = {sent_ms + lease_remaining(l, sent_ms), sent_ms};
        rc = c->backend->extend(c->conn, l->state, l->name, ttl_ms, &call);
        if (rc != DLOCK_OK)
            dlock__prefix_error(c->backend->name);
        session_check(c);
        if (rc == DLOCK_OK && atomic_load(&l->lost)) {
            rc = session_lost(l);
        } else if (rc == DLOCK_OK) {
            atomic_store(&l->lease_deadline_ms, sent_ms + lease_granted_ms(l, ttl_ms));
            session_touched(c, sent_ms);
        } else if (rc == DLOCK_ELOST) {
            atomic_store(&l->lost, LOST_LEASE);
        } else if (lease_remaining(l, dlock__now_ms()) == 0) {
            char why[256];
            dlock__copy_text(why, sizeof why, dlock_last_error());
            atomic_store(&l->lost, LOST_LEASE);
            rc = dlock__error(DLOCK_ELOST,
                              "lock '%s': the store did not confirm the extend before the lease ran out (%s)", l->name,
                              why);
        }
    }
    pthread_mutex_unlock(&c->mutex);
    return rc;
}

DLOCK_API int dlock_release(dlock_lock *l)
{
    dlock__clear_error();
    if (!l)
        return dlock__error(DLOCK_EINVAL, "dlock_release: lock is NULL");
    dlock_client *c = l->client;
    pthread_mutex_lock(&c->mutex);
    registry_remove(c, l);
    int64_t sent_ms = dlock__now_ms();
    int was_lost = atomic_load(&l->lost);
    int expired = lease_remaining(l, sent_ms) == 0;
    struct dlock_call call = {release_deadline(l, sent_ms), sent_ms};
    int rc = c->backend->release(c->conn, l->state, l->name, &call);
    if (rc != DLOCK_OK)
        dlock__prefix_error(c->backend->name);
    session_check(c);
    if (rc == DLOCK_OK) {
        session_touched(c, sent_ms);
        if (was_lost == LOST_SESSION)
            rc = session_lost(l);
        else if (was_lost)
            rc = dlock__error(DLOCK_ELOST, "lock '%s' had already been lost before this release", l->name);
        else if (expired)
            rc = dlock__error(DLOCK_ELOST, "lock '%s': its lease ran out before this release", l->name);
    }
    pthread_mutex_unlock(&c->mutex);
    free(l);
    return rc;
}

DLOCK_API const char *dlock_name(const dlock_lock *l)
{
    return l ? l->name : "";
}

DLOCK_API int64_t dlock_remaining_ms(const dlock_lock *l)
{
    if (!l)
        return 0;
    return lease_remaining(l, dlock__now_ms());
}

DLOCK_API int dlock_holder(dlock_client *c, const char *name, char *buf, size_t buflen)
{
    dlock__clear_error();
    if (!c)
        return dlock__error(DLOCK_EINVAL, "dlock_holder: client is NULL");
    if (!buf && buflen)
        return dlock__error(DLOCK_EINVAL, "dlock_holder: buf is NULL but buflen is not 0");
    int rc = dlock__check_name(name);
    if (rc != DLOCK_OK)
        return rc;
    if (buf && buflen)
        buf[0] = '\0';
    if (!c->backend->holder)
        return dlock__error(DLOCK_ENOTSUP, "the %s backend cannot tell who holds a lock", c->backend->name);
    pthread_mutex_lock(&c->mutex);
    int64_t sent_ms = dlock__now_ms();
    struct dlock_call call = {sent_ms + DLOCK_CALL_TIMEOUT_MS, sent_ms};
    rc = c->backend->holder(c->conn, name, buf, buflen, &call);
    if (rc < 0)
        dlock__prefix_error(c->backend->name);
    session_check(c);
    if (rc >= 0)
        session_touched(c, sent_ms);
    pthread_mutex_unlock(&c->mutex);
    return rc;
}

DLOCK_API int dlock_cancel(dlock_client *c)
{
    dlock__clear_error();
    if (!c)
        return dlock__error(DLOCK_EINVAL, "dlock_cancel: client is NULL");
    /* Under the cancel mutex a wait cannot end (or begin) meanwhile: the
     * cancel reaches the wait in progress, or nothing. */
    pthread_mutex_lock(&c->cancel_mutex);
    if (c->waiting && c->backend->cancel)
        c->backend->cancel(c->conn);
    pthread_mutex_unlock(&c->cancel_mutex);
    return DLOCK_OK;
}

/* --- fencing, listing, breaking, run records ----------------------------------- */

DLOCK_API int dlock_fence(const dlock_lock *l, uint64_t *token)
{
    dlock__clear_error();
    if (token)
        *token = 0;
    if (!l || !token)
        return dlock__error(DLOCK_EINVAL, "dlock_fence: %s is NULL", l ? "token" : "lock");
    if (!l->state->fence)
        return dlock__error(DLOCK_ENOTSUP,
                            "%s: this store gives no fencing token for lock '%s' (PostgreSQL and MySQL session mode "
                            "give one with fencing=on in the URL)",
                            l->client->backend->name, l->name);
    *token = l->state->fence;
    return DLOCK_OK;
}

/* Start a call that needs only the client (a list, a break, the clock):
 * checks, the mutex, a bounded call.  DLOCK_OK with the mutex held. */
static int op_begin(dlock_client *c, const char *what, int have, struct dlock_call *call)
{
    /* The statuses are returned here, not through dlock__error(), so that
     * the analyzer (which does not see into error.c) knows that no caller
     * goes on with a NULL client. */
    if (!c) {
        dlock__error(DLOCK_EINVAL, "%s: client is NULL", what);
        return DLOCK_EINVAL;
    }
    if (!have) {
        dlock__error(DLOCK_ENOTSUP, "%s: the %s backend does not offer this", what, c->backend->name);
        return DLOCK_ENOTSUP;
    }
    pthread_mutex_lock(&c->mutex);
    int64_t now = dlock__now_ms();
    call->deadline_ms = now + DLOCK_CALL_TIMEOUT_MS;
    call->lease_start_ms = now;
    return DLOCK_OK;
}

static int op_end(dlock_client *c, int rc, const struct dlock_call *call)
{
    if (rc < 0)
        dlock__prefix_error(c->backend->name);
    session_check(c);
    if (rc >= 0)
        session_touched(c, call->lease_start_ms);
    pthread_mutex_unlock(&c->mutex);
    return rc;
}

DLOCK_API int dlock_list_locks(dlock_client *c, const char *prefix, dlock_list **out)
{
    dlock__clear_error();
    if (out)
        *out = NULL;
    if (!out)
        return dlock__error(DLOCK_EINVAL, "dlock_list_locks: out is NULL");
    if (!prefix)
        prefix = "";
    if (strlen(prefix) > 255 || !dlock__valid_utf8(prefix, strlen(prefix)))
        return dlock__error(DLOCK_EINVAL, "dlock_list_locks: prefix must be at most 255 bytes of valid UTF-8");
    struct dlock_call call;
    int rc = op_begin(c, "dlock_list_locks", c && c->backend->list, &call);
    if (rc != DLOCK_OK)
        return rc;
    struct dlock_list *list = dlock__list_new();
    if (!list)
        rc = dlock__oom();
    else
        rc = c->backend->list(c->conn, prefix, list, &call);
    rc = op_end(c, rc, &call);
    if (rc < 0) {
        dlock_list_free(list);
        return rc;
    }
    dlock__list_sort(list);
    *out = list;
    return DLOCK_OK;
}

DLOCK_API int dlock_break(dlock_client *c, const char *name)
{
    dlock__clear_error();
    int rc = dlock__check_name(name);
    if (rc != DLOCK_OK)
        return rc;
    struct dlock_call call;
    rc = op_begin(c, "dlock_break", c && c->backend->break_lock, &call);
    if (rc != DLOCK_OK)
        return rc;
    if (registry_find(c, name, name_hash(name))) {
        pthread_mutex_unlock(&c->mutex);
        return dlock__error(DLOCK_EBUSY, "dlock_break: this client holds '%s' itself: release it instead", name);
    }
    rc = c->backend->break_lock(c->conn, name, &call);
    return op_end(c, rc, &call);
}

DLOCK_API int dlock_store_time(dlock_client *c, int64_t *unix_ms)
{
    dlock__clear_error();
    if (unix_ms)
        *unix_ms = 0;
    if (!unix_ms)
        return dlock__error(DLOCK_EINVAL, "dlock_store_time: unix_ms is NULL");
    struct dlock_call call;
    int rc = op_begin(c, "dlock_store_time", c && c->backend->store_time, &call);
    if (rc != DLOCK_OK)
        return rc;
    rc = c->backend->store_time(c->conn, unix_ms, &call);
    return op_end(c, rc, &call);
}

/* A record call on a held lock: bounded by the lease, refused once lost. */
static int record_call(dlock_lock *l, const char *what, int put, int64_t *slot)
{
    dlock__clear_error();
    if (!l || !slot)
        return dlock__error(DLOCK_EINVAL, "%s: %s is NULL", what, l ? "slot" : "lock");
    dlock_client *c = l->client;
    if (put ? !c->backend->record_put : !c->backend->record_get)
        return dlock__error(DLOCK_ENOTSUP, "%s: the %s backend keeps no run records", what, c->backend->name);
    pthread_mutex_lock(&c->mutex);
    int rc;
    int64_t now = dlock__now_ms();
    int64_t remaining = lease_remaining(l, now);
    if (atomic_load(&l->lost) == LOST_SESSION) {
        rc = session_lost(l);
    } else if (remaining == 0) {
        rc = dlock__error(DLOCK_ELOST, "lock '%s' is no longer held", l->name);
    } else {
        struct dlock_call call = {now + remaining, now};
        rc = put ? c->backend->record_put(c->conn, l->state, l->name, *slot, &call)
                 : c->backend->record_get(c->conn, l->state, l->name, slot, &call);
        if (rc != DLOCK_OK)
            dlock__prefix_error(c->backend->name);
        session_check(c);
        if (rc == DLOCK_OK && atomic_load(&l->lost))
            rc = session_lost(l);
        else if (rc == DLOCK_ELOST)
            atomic_store(&l->lost, LOST_LEASE);
    }
    pthread_mutex_unlock(&c->mutex);
    return rc;
}

DLOCK_API int dlock_record_get(dlock_lock *l, int64_t *slot)
{
    if (slot)
        *slot = 0;
    return record_call(l, "dlock_record_get", 0, slot);
}

DLOCK_API int dlock_record_put(dlock_lock *l, int64_t slot)
{
    if (slot <= 0) {
        dlock__clear_error();
        return dlock__error(DLOCK_EINVAL, "dlock_record_put: slot must be > 0");
    }
    return record_call(l, "dlock_record_put", 1, &slot);
}

/* --- run history, preflight --------------------------------------------------------- */

static int64_t clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t wall_clock_ms(void)
{
    return clock_us(CLOCK_REALTIME) / 1000;
}

/* An outcome is a short lower-case word ("ran", "busy", "done", "lost",
 * "error"): what a store can keep in a small column. */
static int valid_outcome(const char *outcome)
{
    size_t n = outcome ? strlen(outcome) : 0;
    if (n < 1 || n > 15)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (outcome[i] < 'a' || outcome[i] > 'z')
            return 0;
    return 1;
}

DLOCK_API int dlock_history_add(dlock_client *c, const char *name, const char *outcome, int exit_status,
                                int64_t duration_ms, uint64_t fence)
{
    dlock__clear_error();
    int rc = dlock__check_name(name);
    if (rc != DLOCK_OK)
        return rc;
    if (!valid_outcome(outcome))
        return dlock__error(DLOCK_EINVAL, "dlock_history_add: the outcome must be a lower-case word of 1 to 15 letters");
    if (duration_ms < 0)
        return dlock__error(DLOCK_EINVAL, "dlock_history_add: duration_ms must be >= 0");
    struct dlock_call call;
    rc = op_begin(c, "dlock_history_add", c && c->backend->history_add, &call);
    if (rc != DLOCK_OK)
        return rc;
    struct dlock_history_entry run = {.host = dlock__hostname(),
                                      .pid = (int64_t)getpid(),
                                      .outcome = outcome,
                                      .exit_status = exit_status >= 0 ? exit_status : -1,
                                      .fence = fence};
    /* The end is the store's clock, so that the runs of every host line up
     * on one clock; a store without one uses this host's. */
    if (c->backend->store_time)
        rc = c->backend->store_time(c->conn, &run.end_ms, &call);
    else
        run.end_ms = wall_clock_ms();
    if (rc == DLOCK_OK) {
        run.start_ms = run.end_ms - duration_ms;
        rc = c->backend->history_add(c->conn, name, &run, DLOCK_HISTORY_KEEP, &call);
    }
    return op_end(c, rc, &call);
}

DLOCK_API int dlock_history_read(dlock_client *c, const char *name, size_t max, dlock_history **out)
{
    dlock__clear_error();
    if (out)
        *out = NULL;
    if (!out)
        return dlock__error(DLOCK_EINVAL, "dlock_history_read: out is NULL");
    int rc = dlock__check_name(name);
    if (rc != DLOCK_OK)
        return rc;
    /* 0: all that the store holds (normally at most DLOCK_HISTORY_KEEP,
     * more after a history written with a larger bound). */
    if (max == 0 || max > INT32_MAX)
        max = INT32_MAX;
    struct dlock_call call;
    rc = op_begin(c, "dlock_history_read", c && c->backend->history_read, &call);
    if (rc != DLOCK_OK)
        return rc;
    struct dlock_history *h = dlock__history_new();
    rc = h ? c->backend->history_read(c->conn, name, max, h, &call) : dlock__oom();
    rc = op_end(c, rc, &call);
    if (rc < 0) {
        dlock_history_free(h);
        return rc;
    }
    *out = h;
    return DLOCK_OK;
}

/* This host's clock against the store's: the store's reading is taken to
 * be of the middle of the round trip, so the error is at most half of it,
 * plus half the step of the store's clock (a reading in whole milliseconds,
 * or whole seconds, is read as the middle of its step). The host's side is
 * measured in microseconds: rounding both sides to milliseconds once put
 * a true skew of 0 outside the error shown. */
static int check_clock(dlock_client *c, struct dlock_check_list *list, struct dlock_call *call)
{
    if (!c->backend->store_time)
        return dlock__check_add(list, "clock", DLOCK_CHECK_INFO, "this store has no clock of its own");
    int64_t store_ms = 0, before_us = clock_us(CLOCK_REALTIME), mono_us = clock_us(CLOCK_BOOTTIME);
    int rc = c->backend->store_time(c->conn, &store_ms, call);
    int64_t rtt_us = clock_us(CLOCK_BOOTTIME) - mono_us;
    if (rc != DLOCK_OK) {
        const char *why = dlock_last_error();
        char text[256];
        dlock__copy_text(text, sizeof text, why);
        return dlock__check_add(list, "clock", DLOCK_CHECK_FAIL, "cannot read the store's clock: %s", text);
    }
    int64_t step = c->backend->clock_step_ms > 1 ? c->backend->clock_step_ms : 1;
    int64_t skew_us = store_ms * 1000 + step * 500 - (before_us + rtt_us / 2);
    int64_t error_us = rtt_us / 2 + step * 500 + 1;
    int64_t size_us = skew_us < 0 ? -skew_us : skew_us;
    /* Rounded so that a skew within the error is shown within it. */
    int64_t size = (size_us + 500) / 1000, error = (error_us + 999) / 1000;
    int verdict = size > 1000 + error ? DLOCK_CHECK_WARN : DLOCK_CHECK_OK;
    return dlock__check_add(list, "clock", verdict, "the store's clock is %s this host's by %lld ms (+/- %lld ms%s);%s",
                            skew_us < 0 ? "behind" : "ahead of", (long long)size, (long long)error,
                            step > 1 ? ": the store tells its time in whole seconds" : "",
                            verdict == DLOCK_CHECK_OK
                                ? " --once-per counts on the store's clock, and -m covers cron starts that differ by less"
                                  " than MIN_HOLD"
                                : " more than 1 s: servers' cron starts differ by this much too, so give -m at least"
                                  " this skew plus the job's start-up, and keep --once-per PERIOD/2 above it");
}

DLOCK_API int dlock_check(dlock_client *c, const char *name, dlock_check_list **out)
{
    dlock__clear_error();
    if (out)
        *out = NULL;
    if (!out)
        return dlock__error(DLOCK_EINVAL, "dlock_check: out is NULL");
    if (name) {
        int rc = dlock__check_name(name);
        if (rc != DLOCK_OK)
            return rc;
    }
    struct dlock_call call;
    int rc = op_begin(c, "dlock_check", 1, &call);
    if (rc != DLOCK_OK)
        return rc;
    struct dlock_check_list *list = dlock__check_new();
    if (!list) {
        rc = dlock__oom();
    } else {
        rc = dlock__check_add(list, "backend", DLOCK_CHECK_INFO, "%s (libdlock %s)", c->backend->name,
                              DLOCK_VERSION_STRING);
        if (rc == DLOCK_OK && c->backend->check)
            rc = c->backend->check(c->conn, name, list, &call);
        if (rc == DLOCK_OK)
            rc = check_clock(c, list, &call);
        if (rc == DLOCK_OK && !c->backend->history_add)
            rc = dlock__check_add(list, "history", DLOCK_CHECK_INFO, "this store keeps no run history");
        if (rc == DLOCK_OK && name && c->backend->holder) {
            char who[512];
            call.deadline_ms = dlock__now_ms() + DLOCK_CALL_TIMEOUT_MS;
            int held = c->backend->holder(c->conn, name, who, sizeof who, &call);
            if (held == 1)
                rc = dlock__check_add(list, "holder", DLOCK_CHECK_INFO, "'%s' is held by %s", name, who);
            else if (held == 0)
                rc = dlock__check_add(list, "holder", DLOCK_CHECK_INFO, "'%s' is free", name);
            else {
                char text[256];
                dlock__copy_text(text, sizeof text, dlock_last_error());
                rc = dlock__check_add(list, "holder", DLOCK_CHECK_FAIL, "cannot tell who holds '%s': %s", name, text);
            }
        }
    }
    rc = op_end(c, rc, &call);
    if (rc < 0) {
        dlock_check_free(list);
        return rc;
    }
    *out = list;
    return DLOCK_OK;
}
