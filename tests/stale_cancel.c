/*
 * The stale-cancel case, written once for the store suites that run it
 * (PostgreSQL and MySQL, tcase "stalls-and-waits").
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "stale_cancel.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "dlock.h"

struct stale_waiter {
    dlock_client *client;
    const char *name;
    _Atomic int rc;
    dlock_lock *lock;
};

static void *stale_waiter_main(void *arg)
{
    struct stale_waiter *w = arg;
    w->rc = dlock_acquire(w->client, w->name, 10000, 5000, &w->lock);
    return NULL;
}

struct canceler {
    dlock_client *client;
    atomic_int spin;
};

static void *canceler_main(void *arg)
{
    struct canceler *k = arg;
    while (atomic_load(&k->spin))
        (void)dlock_cancel(k->client);
    return NULL;
}

static dlock_client *open_client(const char *url)
{
    dlock_client *c = NULL;
    int rc = dlock_open(url, &c);
    ck_assert_msg(rc == DLOCK_OK, "dlock_open: %d %s", rc, dlock_last_error());
    return c;
}

/* A name joined to `prefix`: "<prefix>-<suffix>". */
static char *name_with(const char *prefix, const char *suffix)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s-%s", prefix, suffix);
    return dlt_unique_name(buf);
}

void dlt_check_stale_cancel(const char *url, const char *prefix)
{
    char *first = name_with(prefix, "1"), *second = name_with(prefix, "2");
    dlock_client *h = open_client(url), *c = open_client(url);
    dlock_lock *h2 = NULL;
    ck_assert_int_eq(dlock_acquire(h, second, 60000, 0, &h2), DLOCK_OK);
    int stale = 0, canceled = 0, granted = 0;
    for (int trial = 0; trial < 30; trial++) {
        dlock_lock *h1 = NULL;
        ck_assert_int_eq(dlock_acquire(h, first, 60000, 0, &h1), DLOCK_OK);
        struct stale_waiter w = {c, first, 99, NULL};
        pthread_t a, b;
        ck_assert(pthread_create(&a, NULL, stale_waiter_main, &w) == 0);
        dlt_sleep_ms(60);
        struct canceler k = {c, 1};
        /* Odd trials: the cancels start just before the release (the
         * cancel and the grant race); even ones: just after it. */
        if (trial % 2)
            ck_assert(pthread_create(&b, NULL, canceler_main, &k) == 0);
        ck_assert_int_eq(dlock_release(h1), DLOCK_OK);
        if (!(trial % 2))
            ck_assert(pthread_create(&b, NULL, canceler_main, &k) == 0);
        pthread_join(a, NULL);
        atomic_store(&k.spin, 0);
        pthread_join(b, NULL);
        ck_assert_msg(w.rc == DLOCK_OK || w.rc == DLOCK_ECANCELED, "trial %d: %d", trial, w.rc);
        if (w.rc == DLOCK_OK) {
            granted++;
            ck_assert_int_eq(dlock_release(w.lock), DLOCK_OK);
        } else {
            canceled++;
        }
        dlock_lock *l = NULL;
        int rc = dlock_acquire(c, second, 10000, 200, &l);
        ck_assert_msg(rc == DLOCK_EBUSY || rc == DLOCK_ECANCELED, "trial %d: %d %s", trial, rc, dlock_last_error());
        if (rc == DLOCK_ECANCELED)
            stale++;
    }
    fprintf(stderr, "FIGURE: stale cancel: %d granted, %d cancelled, %d of 30 next waits cancelled by a stale cancel\n",
            granted, canceled, stale);
    ck_assert_int_eq(stale, 0);
    ck_assert_int_eq(dlock_release(h2), DLOCK_OK);
    dlock_close(h);
    dlock_close(c);
    free(first);
    free(second);
}
