/*
 * PostgreSQL session mode: a wait that is granted and cancelled in the same
 * instant does not leave the lock held.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "../common.h"
#include "../stores/store.h"
#include "suite.h"

static const char *url;

typedef struct late_waiter {
    dlock_client *client;
    const char *name;
    dlock_lock *lock;
    int rc;
} late_waiter;

static void *late_waiter_main(void *arg)
{
    late_waiter *w = arg;
    w->rc = dlock_acquire(w->client, w->name, 30000, DLOCK_WAIT_FOREVER, &w->lock);
    return NULL;
}

/*
 * The waiting session is granted the lock and cancelled in the same instant:
 * its server process is stopped (SIGSTOP) while the holder lets go (which
 * grants the lock to it) and while dlock_cancel() sends the cancel request;
 * then it runs on and answers "canceling statement" with the lock held.  The
 * caller is told DLOCK_ECANCELED, so the lock must not stay held by its
 * session: the backend gives it back.
 */
START_TEST(pg_cancel_after_the_grant)
{
    char *name = dlt_unique_name("pg-late-grant");
    PGconn *holder = dlt_pg_connect(url);
    char answer[32];
    ck_assert_int_eq(dlt_pg_key_query(holder, "SELECT pg_catalog.pg_advisory_lock($1::bigint)", name, NULL, 0), 0);
    late_waiter w = {open_client(url), name, NULL, 99};
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, late_waiter_main, &w), 0);
    PGconn *observer = dlt_pg_connect(url);
    int pid = 0;
    for (int i = 0; i < 500 && pid == 0; i++) {
        ck_assert_int_eq(dlt_pg_key_query(observer, DLT_PG_LOCKS_OF_KEY " AND NOT granted", name, answer, sizeof answer), 0);
        pid = atoi(answer);
        if (pid == 0)
            dlt_sleep_ms(10);
    }
    ck_assert_msg(pid > 0, "the wait did not show in pg_locks");
    if (kill(pid, SIGSTOP) != 0) {
        /* A server on another host, or of another user: nothing to stop. */
        fprintf(stderr, "cannot stop PostgreSQL backend %d: the late-grant case is not tested\n", pid);
        ck_assert_int_eq(dlt_pg_key_query(holder, "SELECT pg_catalog.pg_advisory_unlock($1::bigint)", name, NULL, 0), 0);
        pthread_join(thread, NULL);
        ck_assert_int_eq(w.rc, DLOCK_OK);
        ck_assert_int_eq(dlock_release(w.lock), DLOCK_OK);
    } else {
        /* No assertion until SIGCONT: a stopped backend would outlive the test. */
        int unlocked = dlt_pg_key_query(holder, "SELECT pg_catalog.pg_advisory_unlock($1::bigint)", name, NULL, 0);
        int granted_pid = dlt_pg_key_query(observer, DLT_PG_LOCKS_OF_KEY " AND granted", name, answer, sizeof answer) == 0
                              ? atoi(answer)
                              : -1;
        int cancel_rc = dlock_cancel(w.client);
        dlt_sleep_ms(600); /* the cancel request reaches the stopped backend */
        kill(pid, SIGCONT);
        ck_assert_int_eq(unlocked, 0);
        ck_assert_int_eq(cancel_rc, DLOCK_OK);
        ck_assert_msg(granted_pid == pid, "the stopped waiter %d was not granted the lock (%d)", pid, granted_pid);
        pthread_join(thread, NULL);
        ck_assert_msg(w.rc == DLOCK_ECANCELED, "acquire: %d %s", w.rc, dlock_last_error());
        char now_held_by[32];
        dlt_pg_holder_pid(url, name, now_held_by, sizeof now_held_by);
        ck_assert_msg(now_held_by[0] == '\0', "cancelled, yet backend %s holds the lock", now_held_by);
    }
    dlock_close(w.client);
    PQfinish(observer);
    PQfinish(holder);
    free(name);
}
END_TEST

static void setup(void)
{
    url = getenv("DLOCK_TEST_PG_URL");
}

void dlt_pg_add_late_grant(Suite *s)
{
    TCase *tc = tcase_create("late-grant");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, pg_cancel_after_the_grant);
    suite_add_tcase(s, tc);
}
