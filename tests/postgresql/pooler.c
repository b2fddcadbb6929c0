/*
 * PostgreSQL suite, tcase "pooler": session mode through PgBouncer.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* Several clients hammer one name through a pooler; the number of clients
 * that believe they hold it never exceeds one. */
struct hammer {
    const char *url;
    const char *name;
    atomic_int *holders;
    atomic_int *max_holders;
    atomic_int *pooler_errors;
    atomic_int *raw_errors;
    atomic_int *acquired;
    int64_t until_ms;
    char other_error[256];
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    while (dlt_now_ms() < h->until_ms) {
        dlock_client *c = NULL;
        char first_error[512] = "";
        int rc = dlock_open(h->url, &c);
        for (int i = 0; rc == DLOCK_OK && i < 20 && dlt_now_ms() < h->until_ms; i++) {
            dlock_lock *l = NULL;
            rc = dlock_acquire(c, h->name, 5000, 0, &l);
            if (rc == DLOCK_EBUSY) {
                rc = DLOCK_OK;
                continue;
            }
            if (rc != DLOCK_OK)
                break;
            int now = atomic_fetch_add(h->holders, 1) + 1;
            atomic_fetch_add(h->acquired, 1);
            int seen = atomic_load(h->max_holders);
            while (now > seen && !atomic_compare_exchange_weak(h->max_holders, &seen, now))
                ;
            dlt_sleep_ms(2);
            rc = dlock_extend(l, 5000);
            atomic_fetch_sub(h->holders, 1);
            if (rc != DLOCK_OK)
                dlock__copy_text(first_error, sizeof first_error, dlock_last_error());
            int rrc = dlock_release(l);
            if (rc == DLOCK_OK)
                rc = rrc;
            if (rc != DLOCK_OK)
                break;
        }
        if (rc != DLOCK_OK) {
            const char *e = first_error[0] ? first_error : dlock_last_error();
            if (strstr(e, "transaction pooler") && strstr(e, "mode=lease"))
                atomic_fetch_add(h->pooler_errors, 1);
            else {
                atomic_fetch_add(h->raw_errors, 1);
                dlock__copy_text(h->other_error, sizeof h->other_error, e);
            }
        }
        dlock_close(c);
    }
    return NULL;
}

static void hammer(const char *url, int clients, int64_t ms, int *max_holders, int *pooler_errors, int *raw_errors,
                   int *acquired)
{
    char *name = dlt_unique_name("pg-pooler");
    atomic_int holders = 0, max = 0, perr = 0, rerr = 0, acq = 0;
    struct hammer h[8];
    pthread_t t[8];
    for (int i = 0; i < clients; i++) {
        h[i] = (struct hammer){url, name, &holders, &max, &perr, &rerr, &acq, dlt_now_ms() + ms, ""};
        pthread_create(&t[i], NULL, hammer_main, &h[i]);
    }
    for (int i = 0; i < clients; i++) {
        pthread_join(t[i], NULL);
        if (h[i].other_error[0])
            fprintf(stderr, "pooler test: another error: %s\n", h[i].other_error);
    }
    *max_holders = atomic_load(&max);
    *pooler_errors = atomic_load(&perr);
    *raw_errors = atomic_load(&rerr);
    *acquired = atomic_load(&acq);
    free(name);
}

/* Session mode through PgBouncer in transaction pooling (pools of 1 and of
 * 2 server connections): the clear error, never a raw SQLSTATE, and never
 * two holders.  Lease mode through the same pools: no error at all. */
START_TEST(test_pooler)
{
    const char *envs[2] = {"DLOCK_TEST_PGB_TX1_URL", "DLOCK_TEST_PGB_TX2_URL"};
    for (int i = 0; i < 2; i++) {
        const char *tx = getenv(envs[i]);
        if (!tx || !*tx) {
            ck_assert_msg(!dlt_required("pgbouncer"), "%s is not set", envs[i]);
            fprintf(stderr, "%s is not set: no pooler test\n", envs[i]);
            return;
        }
        int max = 0, perr = 0, rerr = 0, acq = 0;
        /* Tokens left in the pool's server sessions by earlier clients
         * would refuse every setup: start from fresh ones. */
        pgbouncer_reconnect(tx, strrchr(tx, '/') + 1);
        hammer(tx, 4, 1500, &max, &perr, &rerr, &acq);
        fprintf(stderr,
                "session mode through a transaction pool of %d: %d acquired, at most %d holder(s),"
                " %d pooler errors, %d other errors\n",
                i + 1, acq, max, perr, rerr);
        ck_assert_int_le(max, 1);
        ck_assert_int_ge(perr, 1);
        ck_assert_int_eq(rerr, 0);
        if (i == 0) /* one server session: its first client works on */
            ck_assert_int_ge(acq, 1);
        char *lease = url_with(tx, "mode=lease");
        hammer(lease, 4, 1000, &max, &perr, &rerr, &acq);
        fprintf(stderr,
                "lease mode through a transaction pool of %d: %d acquired, at most %d holder(s),"
                " %d pooler errors, %d other errors\n",
                i + 1, acq, max, perr, rerr);
        ck_assert_int_le(max, 1);
        ck_assert_int_ge(acq, 10);
        ck_assert_int_eq(perr + rerr, 0);
        free(lease);
    }
}
END_TEST

void dlt_pg_add_pooler(Suite *s)
{
    TCase *tc = tcase(s, "pooler", 60);
    tcase_add_test(tc, test_pooler);
}
