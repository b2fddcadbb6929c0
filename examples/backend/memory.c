/*
 * A minimal worked backend: the shortest true answer to "how do I add a
 * store?" (docs/internals.md, "Adding a backend").  Like SQLite's
 * test_demovfs.c, it leaves out everything optional.
 *
 * The "store" is a table in this process's memory, shared by every client
 * of the process and guarded by one mutex: a lock is a row (name, owner,
 * expiry on the store's clock).  That makes it useless across servers, and
 * so it is not a built-in backend; tests/check_example_backend.c opens
 * clients on it with dlock__open_backend() and runs the core's rules on it.
 *
 * What a real backend adds, in the order docs/internals.md gives: a URL
 * parser of its own (url.c), a client library loaded at first use (api.c),
 * round trips bounded by call->deadline_ms (io.c), waits that dlock_cancel()
 * can end (the cancel slot), and the operations (list, break, store time,
 * run records).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define ROWS 64

/* The store: what a server would keep. */
struct row {
    char name[256]; /* "" free */
    uint64_t owner;
    int64_t expires_ms; /* on the store's clock */
    uint64_t fence;     /* grows with every grant of the name */
};
static struct row rows[ROWS];
static uint64_t next_owner = 1;
static pthread_mutex_t store_mu = PTHREAD_MUTEX_INITIALIZER;

/* The typed bases (lib/internal.h): the core passes the base, the backend
 * recovers its own struct in one place. */
struct mem_conn {
    struct dlock_conn base; /* first */
};
struct mem_lock {
    struct dlock_held base; /* first */
    uint64_t owner;
};

static struct row *find(const char *name, int create)
{
    struct row *free_row = NULL;
    for (int i = 0; i < ROWS; i++) {
        if (strcmp(rows[i].name, name) == 0)
            return &rows[i];
        if (!free_row && rows[i].name[0] == '\0')
            free_row = &rows[i];
    }
    if (create && free_row)
        dlock__copy_text(free_row->name, sizeof free_row->name, name);
    return create ? free_row : NULL;
}

static int mem_connect(const char *url, struct dlock_conn **conn_out)
{
    if (strcmp(url, "memory:") != 0)
        return dlock__error(DLOCK_EINVAL, "the memory store's URL is \"memory:\"");
    struct mem_conn *c = calloc(1, sizeof *c);
    if (!c)
        return dlock__oom();
    *conn_out = &c->base;
    return DLOCK_OK;
}

static void mem_disconnect(struct dlock_conn *conn)
{
    /* The core has released every lock of the client already. */
    free((struct mem_conn *)conn);
}

/* One try, under the store's mutex: a free or expired row is ours. */
static int try_take(const char *name, uint32_t ttl_ms, struct mem_lock *l)
{
    int64_t now = dlock__now_ms();
    pthread_mutex_lock(&store_mu);
    struct row *r = find(name, 1);
    int rc = DLOCK_EBUSY;
    if (!r) {
        rc = dlock__error(DLOCK_EBACKEND, "the memory store is full (%d names)", ROWS);
    } else if (r->owner == 0 || r->expires_ms <= now) {
        r->owner = l->owner = next_owner++;
        r->expires_ms = now + ttl_ms;
        l->base.fence = ++r->fence;
        rc = DLOCK_OK;
    }
    pthread_mutex_unlock(&store_mu);
    return rc;
}

static int mem_acquire(struct dlock_conn *conn, const char *name, uint32_t ttl_ms, int32_t wait_ms,
                       struct dlock_call *call, struct dlock_held **lock_out)
{
    (void)conn;
    struct mem_lock *l = calloc(1, sizeof *l);
    if (!l)
        return dlock__oom();
    int64_t give_up = wait_ms == DLOCK_WAIT_FOREVER ? INT64_MAX : dlock__now_ms() + wait_ms;
    for (;;) {
        /* The lease starts when the try that wins is sent. */
        call->lease_start_ms = dlock__now_ms();
        int rc = try_take(name, ttl_ms, l);
        if (rc != DLOCK_EBUSY || dlock__now_ms() >= give_up) {
            if (rc != DLOCK_OK) {
                free(l);
                return rc == DLOCK_EBUSY ? dlock__error(rc, "held by another client") : rc;
            }
            *lock_out = &l->base;
            return DLOCK_OK;
        }
        /* A real store waits for a wake-up and honours dlock_cancel(). */
        struct timespec pause = {0, 2 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

/* The row is still ours and unexpired: the check every write makes. */
static struct row *ours(const char *name, const struct mem_lock *l, int64_t now)
{
    struct row *r = find(name, 0);
    return r && r->owner == l->owner && r->expires_ms > now ? r : NULL;
}

static int mem_extend(struct dlock_conn *conn, struct dlock_held *held, const char *name, uint32_t ttl_ms,
                      struct dlock_call *call)
{
    (void)conn;
    struct mem_lock *l = (struct mem_lock *)held;
    call->lease_start_ms = dlock__now_ms();
    pthread_mutex_lock(&store_mu);
    struct row *r = ours(name, l, call->lease_start_ms);
    if (r)
        r->expires_ms = call->lease_start_ms + ttl_ms;
    pthread_mutex_unlock(&store_mu);
    return r ? DLOCK_OK : dlock__error(DLOCK_ELOST, "the lease ran out or was taken");
}

static int mem_release(struct dlock_conn *conn, struct dlock_held *held, const char *name, struct dlock_call *call)
{
    (void)conn;
    (void)call;
    struct mem_lock *l = (struct mem_lock *)held;
    pthread_mutex_lock(&store_mu);
    struct row *r = ours(name, l, dlock__now_ms());
    if (r)
        r->owner = 0; /* the fence stays with the name */
    pthread_mutex_unlock(&store_mu);
    free(l); /* always, whatever the outcome */
    return r ? DLOCK_OK : dlock__error(DLOCK_ELOST, "it was no longer held");
}

static const char *const mem_schemes[] = {"memory", NULL};

const struct dlock_backend dlock_example_backend_memory = {
    .name = "memory",
    .schemes = mem_schemes,
    .connect = mem_connect,
    .disconnect = mem_disconnect,
    .acquire = mem_acquire,
    .extend = mem_extend,
    .release = mem_release,
};
