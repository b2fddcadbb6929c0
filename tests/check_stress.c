/*
 * Thread stress, on every URL in $DLOCK_TEST_URLS: 8 threads share one
 * client, 8 more threads each open their own, and all of them acquire (try,
 * short waits, the own-client ones sometimes forever), extend, ask for the
 * holder and release at random over 4 names, while a canceller thread calls
 * dlock_cancel() on the clients at random.  A table of holders, guarded by a
 * mutex, is set right after an acquire returns DLOCK_OK and cleared right
 * before the release: no two threads may ever be in it for one name.
 *
 * Built normally it runs in `make check`; scripts/hardening.sh also runs it
 * under ThreadSanitizer.  $DLOCK_STRESS_SECONDS sets the time per backend
 * (default 5); $DLOCK_STRESS_SEED replays a run's random choices.
 */
#include <check.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define NAME_COUNT 4
#define SHARED_THREADS 8
#define OWN_THREADS 8
#define WORKERS (SHARED_THREADS + OWN_THREADS)
/* TTLs are long next to the hold times: no lease may run out in this test,
 * so an overlap can only be a bug, never an expiry. */
#define TTL_MIN_MS 20000
#define TTL_SPAN_MS 20000
#define NO_HOLDER (-1)

static const char *url;
static const char *backend; /* its URL's scheme, for messages */
static int stress_seconds = 5;
static uint32_t base_seed;

struct stress {
    char *names[NAME_COUNT];
    dlock_client *shared;
    _Atomic(dlock_client *) own[OWN_THREADS]; /* opened by their threads */

    pthread_mutex_t table_mu;
    int holder[NAME_COUNT]; /* worker id holding each name, or NO_HOLDER */
    char first_problem[600];

    atomic_int stop;
    atomic_int workers_running;
    atomic_long acquired_shared, acquired_own, busy, canceled, extended, released;
    atomic_long holder_calls, cancel_calls, forever_waits;
    atomic_long overlaps, problems;
    atomic_llong slowest_cancel_ms;
};

struct worker {
    struct stress *s;
    int id;
    int own; /* 1: opens and uses its own client */
    uint32_t rng;
};

static uint32_t next_random(uint32_t *state)
{
    uint32_t x = *state; /* xorshift32 */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

static void problem(struct stress *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct stress *s, const char *fmt, ...)
{
    atomic_fetch_add(&s->problems, 1);
    pthread_mutex_lock(&s->table_mu);
    if (!s->first_problem[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->first_problem, sizeof s->first_problem, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&s->table_mu);
}

/* Right after an acquire returned DLOCK_OK: nobody else may be holding. */
static void table_enter(struct stress *s, int name_index, int id)
{
    pthread_mutex_lock(&s->table_mu);
    int other = s->holder[name_index];
    s->holder[name_index] = id;
    pthread_mutex_unlock(&s->table_mu);
    if (other != NO_HOLDER) {
        atomic_fetch_add(&s->overlaps, 1);
        problem(s, "threads %d and %d held '%s' at the same time", other, id, s->names[name_index]);
    }
}

/* Right before the release: we must still be the one in the table. */
static void table_leave(struct stress *s, int name_index, int id)
{
    pthread_mutex_lock(&s->table_mu);
    int current = s->holder[name_index];
    s->holder[name_index] = NO_HOLDER;
    pthread_mutex_unlock(&s->table_mu);
    if (current != id) {
        atomic_fetch_add(&s->overlaps, 1);
        problem(s, "thread %d found thread %d in the table for '%s' while holding it", id, current,
                s->names[name_index]);
    }
}

static void hold_and_release(struct worker *w, dlock_lock *lock, int name_index)
{
    struct stress *s = w->s;
    table_enter(s, name_index, w->id);
    if (strcmp(dlock_name(lock), s->names[name_index]) != 0)
        problem(s, "dlock_name gave '%s' for '%s'", dlock_name(lock), s->names[name_index]);
    int rounds = (int)(next_random(&w->rng) % 3);
    for (int i = 0; i < rounds; i++) {
        dlt_sleep_ms(next_random(&w->rng) % 3);
        if (next_random(&w->rng) % 2) {
            uint32_t ttl = TTL_MIN_MS + next_random(&w->rng) % TTL_SPAN_MS;
            int rc = dlock_extend(lock, ttl);
            if (rc == DLOCK_OK)
                atomic_fetch_add(&s->extended, 1);
            else
                problem(s, "extend of '%s' by thread %d: %s (%s)", s->names[name_index], w->id, dlock_strerror(rc),
                        dlock_last_error());
        }
        if (dlock_remaining_ms(lock) <= 0)
            problem(s, "thread %d: '%s' has no lease left although its TTL is >= %d ms", w->id, s->names[name_index],
                    TTL_MIN_MS);
    }
    table_leave(s, name_index, w->id);
    int rc = dlock_release(lock);
    if (rc == DLOCK_OK)
        atomic_fetch_add(&s->released, 1);
    else
        problem(s, "release of '%s' by thread %d: %s (%s)", s->names[name_index], w->id, dlock_strerror(rc),
                dlock_last_error());
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct stress *s = w->s;
    dlock_client *client = NULL;
    if (!w->own) {
        client = s->shared;
    } else {
        int rc = dlock_open(url, &client);
        if (rc != DLOCK_OK) {
            problem(s, "thread %d: dlock_open: %s (%s)", w->id, dlock_strerror(rc), dlock_last_error());
            atomic_fetch_sub(&s->workers_running, 1);
            return NULL;
        }
        atomic_store(&s->own[w->id - SHARED_THREADS], client);
    }
    while (!atomic_load(&s->stop)) {
        int name_index = (int)(next_random(&w->rng) % NAME_COUNT);
        uint32_t choice = next_random(&w->rng) % 100;
        int32_t wait_ms = 0;
        if (choice >= 55 && choice < 95)
            wait_ms = 1 + (int32_t)(next_random(&w->rng) % 40);
        else if (choice >= 95)
            wait_ms = w->own ? DLOCK_WAIT_FOREVER : 25;
        if (wait_ms == DLOCK_WAIT_FOREVER)
            atomic_fetch_add(&s->forever_waits, 1);
        uint32_t ttl = TTL_MIN_MS + next_random(&w->rng) % TTL_SPAN_MS;
        dlock_lock *lock = NULL;
        int rc = dlock_acquire(client, s->names[name_index], ttl, wait_ms, &lock);
        if (rc == DLOCK_OK) {
            atomic_fetch_add(w->own ? &s->acquired_own : &s->acquired_shared, 1);
            hold_and_release(w, lock, name_index);
        } else if (rc == DLOCK_EBUSY) {
            atomic_fetch_add(&s->busy, 1);
        } else if (rc == DLOCK_ECANCELED && wait_ms != 0) {
            atomic_fetch_add(&s->canceled, 1);
        } else {
            problem(s, "acquire of '%s' (wait %d) by thread %d: %s (%s)", s->names[name_index], (int)wait_ms, w->id,
                    dlock_strerror(rc), dlock_last_error());
        }
        if (rc != DLOCK_OK && lock != NULL)
            problem(s, "acquire failed but set *out");
        if (rc != DLOCK_OK && next_random(&w->rng) % 2)
            dlt_sleep_ms(1); /* come back later, as a real caller would */
        if (next_random(&w->rng) % 10 == 0) {
            char who[256];
            int held = dlock_holder(client, s->names[next_random(&w->rng) % NAME_COUNT], who, sizeof who);
            atomic_fetch_add(&s->holder_calls, 1);
            if (held != 0 && held != 1)
                problem(s, "dlock_holder by thread %d: %s (%s)", w->id, dlock_strerror(held), dlock_last_error());
        }
    }
    atomic_fetch_sub(&s->workers_running, 1);
    return NULL;
}

/* Cancels at random until every worker has finished (so that a wait without
 * bound always ends), and times every dlock_cancel(): it must never block. */
static void *canceller_main(void *arg)
{
    struct stress *s = arg;
    uint32_t rng = base_seed ^ 0x9e3779b9u;
    while (atomic_load(&s->workers_running) > 0) {
        dlt_sleep_ms(1 + next_random(&rng) % 4);
        uint32_t pick = next_random(&rng) % (OWN_THREADS + 2);
        dlock_client *target = pick >= OWN_THREADS ? s->shared : atomic_load(&s->own[pick]);
        if (!target)
            continue;
        int64_t start = dlt_now_ms();
        int rc = dlock_cancel(target);
        int64_t took = dlt_now_ms() - start;
        atomic_fetch_add(&s->cancel_calls, 1);
        if (took > atomic_load(&s->slowest_cancel_ms))
            atomic_store(&s->slowest_cancel_ms, took);
        if (rc != DLOCK_OK)
            problem(s, "dlock_cancel: %s", dlock_strerror(rc));
    }
    return NULL;
}

START_TEST(threads_never_share_a_lock)
{
    struct stress *s = calloc(1, sizeof *s);
    ck_assert_ptr_nonnull(s);
    pthread_mutex_init(&s->table_mu, NULL);
    for (int i = 0; i < NAME_COUNT; i++) {
        s->names[i] = dlt_unique_name("stress");
        s->holder[i] = NO_HOLDER;
    }
    atomic_store(&s->workers_running, WORKERS);

    /* The own-client threads start first, so that the first dlock_open()
     * calls of this process (the test runs in a fresh child) race each other
     * and the shared client's: opening must be thread-safe too. */
    pthread_t threads[WORKERS], canceller;
    struct worker workers[WORKERS];
    for (int i = WORKERS - 1; i >= 0; i--) {
        workers[i] = (struct worker){s, i, i >= SHARED_THREADS, (base_seed + 7919u * (uint32_t)i) | 1u};
        if (i == SHARED_THREADS - 1)
            ck_assert_msg(dlock_open(url, &s->shared) == DLOCK_OK, "open: %s", dlock_last_error());
        ck_assert_int_eq(pthread_create(&threads[i], NULL, worker_main, &workers[i]), 0);
    }
    ck_assert_int_eq(pthread_create(&canceller, NULL, canceller_main, s), 0);

    dlt_sleep_ms((int64_t)stress_seconds * 1000);
    atomic_store(&s->stop, 1);
    /* A worker stuck for a minute after the end is a deadlock: say so
     * instead of hanging (CK_FORK=no runs have no Check timeout). */
    int64_t deadline = dlt_now_ms() + 60000;
    while (atomic_load(&s->workers_running) > 0) {
        if (dlt_now_ms() > deadline) {
            fprintf(stderr, "stress[%s]: %d threads still running 60 s after the end: deadlock?\n", backend,
                    atomic_load(&s->workers_running));
            abort();
        }
        dlt_sleep_ms(10);
    }
    for (int i = 0; i < WORKERS; i++)
        pthread_join(threads[i], NULL);
    pthread_join(canceller, NULL);

    printf("stress[%s]: %ds, acquired %ld (shared client %ld, own clients %ld), busy %ld, "
           "canceled %ld of %ld cancel calls, waits forever %ld, extended %ld, released %ld, "
           "holder calls %ld, slowest cancel %lld ms, seed %u\n",
           backend, stress_seconds, atomic_load(&s->acquired_shared) + atomic_load(&s->acquired_own),
           atomic_load(&s->acquired_shared), atomic_load(&s->acquired_own), atomic_load(&s->busy),
           atomic_load(&s->canceled), atomic_load(&s->cancel_calls), atomic_load(&s->forever_waits),
           atomic_load(&s->extended), atomic_load(&s->released), atomic_load(&s->holder_calls),
           (long long)atomic_load(&s->slowest_cancel_ms), base_seed);
    fflush(stdout);

    /* Everything was given back: a fresh client takes every name at once. */
    dlock_client *check = NULL;
    ck_assert_msg(dlock_open(url, &check) == DLOCK_OK, "open: %s", dlock_last_error());
    for (int i = 0; i < NAME_COUNT; i++) {
        dlock_lock *l = NULL;
        int rc = dlock_acquire(check, s->names[i], 5000, 0, &l);
        ck_assert_msg(rc == DLOCK_OK, "'%s' still held after the run: %s (%s)", s->names[i], dlock_strerror(rc),
                      dlock_last_error());
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    }
    dlock_close(check);

    ck_assert_msg(atomic_load(&s->overlaps) == 0, "%ld overlaps: %s", atomic_load(&s->overlaps), s->first_problem);
    ck_assert_msg(atomic_load(&s->problems) == 0, "%ld problems, the first: %s", atomic_load(&s->problems),
                  s->first_problem);
    ck_assert_int_gt(atomic_load(&s->acquired_shared), 0);
    ck_assert_int_gt(atomic_load(&s->acquired_own), 0);
    ck_assert_int_gt(atomic_load(&s->busy), 0); /* the contention was real */
    ck_assert_int_gt(atomic_load(&s->extended), 0);
    ck_assert_int_gt(atomic_load(&s->cancel_calls), 0);
    ck_assert_int_lt(atomic_load(&s->slowest_cancel_ms), 1000);

    dlock_close(s->shared);
    for (int i = 0; i < OWN_THREADS; i++)
        dlock_close(atomic_load(&s->own[i]));
    for (int i = 0; i < NAME_COUNT; i++)
        free(s->names[i]);
    pthread_mutex_destroy(&s->table_mu);
    free(s);
}
END_TEST

int main(void)
{
    const char *seconds = getenv("DLOCK_STRESS_SECONDS");
    if (seconds && atoi(seconds) > 0)
        stress_seconds = atoi(seconds);
    const char *seed = getenv("DLOCK_STRESS_SEED");
    base_seed = seed && *seed ? (uint32_t)strtoul(seed, NULL, 10) : (uint32_t)time(NULL) ^ (uint32_t)getpid();

    int count = 0, failed = 0;
    char **urls = dlt_conformance_urls(&count);
    for (int i = 0; i < count; i++) {
        url = urls[i];
        /* Named by the URL's scheme, without opening a client here: the
         * test itself must make the process's first dlock_open() calls. */
        static char title[64]; /* Check keeps the pointer */
        static char scheme[32];
        snprintf(scheme, sizeof scheme, "%.*s", (int)strcspn(url, ":"), url);
        backend = scheme;
        snprintf(title, sizeof title, "stress[%s]", backend);
        Suite *s = suite_create(title);
        TCase *t = tcase_create("threads");
        tcase_set_timeout(t, stress_seconds + 120);
        tcase_add_test(t, threads_never_share_a_lock);
        suite_add_tcase(s, t);
        failed += dlt_run_suite(s);
    }
    for (int i = 0; i < count; i++)
        free(urls[i]);
    free(urls);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
