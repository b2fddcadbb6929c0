/* The fake store of tests/fake_store.h. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fake_store.h"

struct fake_store fake;
static struct dlock_conn fake_conn;

static int cancel_fd = -1; /* written by cancel, polled by a blocking acquire */

static void drain(void)
{
    uint64_t value;
    while (read(cancel_fd, &value, sizeof value) == (ssize_t)sizeof value) {
    }
}

void fake_reset(void)
{
    memset(&fake, 0, sizeof fake);
    fake.break_status = 1;
    if (cancel_fd < 0)
        cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    drain();
}

/* A call to the store: when it came and its deadline, for the tests to
 * look at, and one more in its own counter. */
static void record(const struct dlock_call *call, atomic_int *calls)
{
    fake.last_deadline_ms = call->deadline_ms;
    fake.last_call_at_ms = dlock__now_ms();
    atomic_fetch_add(calls, 1);
}

/* Sleep ms (ms <= 0: without bound), or until a cancel comes when
 * `until_cancel`.  Returns 1 when a cancel ended it. */
static int pause_for(int64_t ms, int until_cancel)
{
    int64_t end = ms > 0 ? dlock__now_ms() + ms : INT64_MAX;
    for (;;) {
        int64_t now = dlock__now_ms();
        if (end != INT64_MAX && now >= end)
            return 0;
        struct pollfd p = {cancel_fd, POLLIN, 0};
        int r = poll(&p, until_cancel ? 1 : 0, end == INT64_MAX ? -1 : (int)(end - now));
        if (r > 0) {
            drain();
            atomic_store(&fake.pending_cancel, 0);
            return 1;
        }
        if (r < 0 && errno != EINTR)
            return 0;
    }
}

static int fake_connect(const char *url, struct dlock_conn **conn_out)
{
    (void)url;
    atomic_fetch_add(&fake.connects, 1);
    *conn_out = &fake_conn;
    return DLOCK_OK;
}

static void fake_disconnect(struct dlock_conn *conn)
{
    (void)conn;
    atomic_fetch_add(&fake.disconnects, 1);
}

static int fake_acquire(struct dlock_conn *conn, const char *name, uint32_t ttl_ms, int32_t wait_ms,
                        struct dlock_call *call, struct dlock_held **lock_out)
{
    (void)conn;
    (void)ttl_ms;
    int64_t called = dlock__now_ms();
    record(call, &fake.acquires);
    int blocks = fake.acquire_blocks && wait_ms != 0;
    if (blocks || fake.acquire_takes_ms > 0) {
        if (pause_for(fake.acquire_takes_ms, blocks))
            return dlock__error(DLOCK_ECANCELED, "fake: wait for '%s' canceled", name);
    }
    if (fake.acquire_status != DLOCK_OK)
        return dlock__error(fake.acquire_status, "fake: acquire of '%s' answers %d", name, fake.acquire_status);
    if (fake.grant_at_ms > 0)
        call->lease_start_ms = called + fake.grant_at_ms;
    struct dlock_held *state = calloc(1, sizeof *state);
    if (!state)
        return dlock__error(DLOCK_ENOMEM, "out of memory");
    state->granted_ms = fake.granted_ms;
    atomic_fetch_add(&fake.live_locks, 1);
    *lock_out = state;
    return DLOCK_OK;
}

static int fake_extend(struct dlock_conn *conn, struct dlock_held *lock, const char *name, uint32_t ttl_ms,
                       struct dlock_call *call)
{
    (void)conn;
    (void)ttl_ms;
    record(call, &fake.extends);
    if (fake.extend_takes_ms > 0)
        pause_for(fake.extend_takes_ms, 0);
    if (fake.extend_status != DLOCK_OK)
        return dlock__error(fake.extend_status, "fake: extend of '%s' answers %d", name, fake.extend_status);
    lock->granted_ms = fake.granted_ms;
    return DLOCK_OK;
}

static int fake_release(struct dlock_conn *conn, struct dlock_held *lock, const char *name, struct dlock_call *call)
{
    (void)conn;
    record(call, &fake.releases);
    free(lock);
    atomic_fetch_sub(&fake.live_locks, 1);
    if (fake.release_status != DLOCK_OK)
        return dlock__error(fake.release_status, "fake: release of '%s' answers %d", name, fake.release_status);
    return DLOCK_OK;
}

static int fake_holder(struct dlock_conn *conn, const char *name, char *buf, size_t buflen, struct dlock_call *call)
{
    (void)conn;
    (void)name;
    record(call, &fake.holders);
    if (fake.holder_status < 0)
        return dlock__error(fake.holder_status, "fake: holder answers %d", fake.holder_status);
    dlock__copy_text(buf, buflen, fake.holder_status ? "fake holder" : "");
    return fake.holder_status;
}

static void fake_cancel(struct dlock_conn *conn)
{
    (void)conn;
    uint64_t one = 1;
    atomic_fetch_add(&fake.cancels, 1);
    atomic_store(&fake.pending_cancel, 1);
    (void)!write(cancel_fd, &one, sizeof one);
}

static void fake_cancel_clear(struct dlock_conn *conn)
{
    (void)conn;
    atomic_fetch_add(&fake.cancel_clears, 1);
    atomic_store(&fake.pending_cancel, 0);
    drain();
}

static uint32_t fake_session_ttl_ms(struct dlock_conn *conn)
{
    (void)conn;
    return fake.session_ttl_ms;
}

static uint64_t fake_session_generation(struct dlock_conn *conn)
{
    (void)conn;
    return atomic_load(&fake.generation);
}

static int fake_list(struct dlock_conn *conn, const char *prefix, struct dlock_list *list, struct dlock_call *call)
{
    (void)conn;
    record(call, &fake.lists);
    if (fake.list_status != DLOCK_OK)
        return dlock__error(fake.list_status, "fake: list answers %d", fake.list_status);
    static const char *const names[] = {"b", "a", "c/1"};
    for (size_t i = 0; i < 3; i++) {
        if (strncmp(names[i], prefix, strlen(prefix)) != 0)
            continue;
        struct dlock_list_entry e = {.name = names[i],
                                     .holder = "fake holder",
                                     .host = "h",
                                     .pid = (int64_t)i + 1,
                                     .since_ms = 1000,
                                     .expires_ms = 2000,
                                     .fence = i + 1};
        int rc = dlock__list_add(list, &e);
        if (rc != DLOCK_OK)
            return rc;
    }
    return DLOCK_OK;
}

static int fake_break(struct dlock_conn *conn, const char *name, struct dlock_call *call)
{
    (void)conn;
    record(call, &fake.breaks);
    if (fake.break_status < 0)
        return dlock__error(fake.break_status, "fake: break of '%s' answers %d", name, fake.break_status);
    return fake.break_status;
}

static int fake_store_time(struct dlock_conn *conn, int64_t *unix_ms, struct dlock_call *call)
{
    (void)conn;
    record(call, &fake.store_times);
    *unix_ms = fake.store_time_ms;
    return DLOCK_OK;
}

static int fake_record_get(struct dlock_conn *conn, struct dlock_held *lock, const char *name, int64_t *slot,
                           struct dlock_call *call)
{
    (void)conn;
    (void)lock;
    record(call, &fake.record_gets);
    if (fake.record_status != DLOCK_OK)
        return dlock__error(fake.record_status, "fake: record of '%s' answers %d", name, fake.record_status);
    *slot = fake.record_slot;
    return DLOCK_OK;
}

static int fake_record_put(struct dlock_conn *conn, struct dlock_held *lock, const char *name, int64_t slot,
                           struct dlock_call *call)
{
    (void)conn;
    (void)lock;
    record(call, &fake.record_puts);
    if (fake.record_status != DLOCK_OK)
        return dlock__error(fake.record_status, "fake: record of '%s' answers %d", name, fake.record_status);
    fake.record_slot = slot;
    return DLOCK_OK;
}

static const char *const fake_schemes[] = {"fake", NULL};

/* The operations every backend has, which both fakes below answer alike. */
#define FAKE_REQUIRED_OPS                                                                            \
    .name = "fake", .schemes = fake_schemes, .connect = fake_connect, .disconnect = fake_disconnect, \
    .acquire = fake_acquire, .extend = fake_extend, .release = fake_release, .holder = fake_holder

const struct dlock_backend fake_backend = {
    FAKE_REQUIRED_OPS,
    .cancel = fake_cancel,
    .cancel_clear = fake_cancel_clear,
    .session_ttl_ms = fake_session_ttl_ms,
    .session_generation = fake_session_generation,
    .list = fake_list,
    .break_lock = fake_break,
    .store_time = fake_store_time,
    .record_get = fake_record_get,
    .record_put = fake_record_put,
};

const struct dlock_backend fake_backend_no_ops = {
    FAKE_REQUIRED_OPS,
};
