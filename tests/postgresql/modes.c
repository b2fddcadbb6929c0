/*
 * PostgreSQL suite, tcase "modes-errors-breaks": serialization failures, errors after a grant, breaks,
 * modes seeing each other.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* pg_url (or base) with libpq's options= setting a default isolation level. */
static char *url_isolated(const char *base, const char *more)
{
    char params[256];
    snprintf(params, sizeof params, "options=-c%%20default_transaction_isolation%%3Dserializable%s%s", more[0] ? "&" : "",
             more);
    return url_with(base, params);
}

/* Item 3: session mode, fencing=on, a database whose default isolation is
 * serializable: a waiter granted after another waiter bumped the fence
 * (after its statement's snapshot) gets 40001 from its own bump.  The lock
 * must not stay held by a client that was told "error": either the bump is
 * redone and the acquire succeeds, or the lock is let go. */
START_TEST(test_fence_serialization_failure)
{
    char *table = unique_table("fences_ser");
    char params[160];
    snprintf(params, sizeof params, "fencing=on&table=%s", table);
    char *url = url_isolated(pg_url, params);
    char *name = dlt_unique_name("pg-fence-ser");
    dlock_client *h = open_client(url);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(h, name, 30000, 0, &l), DLOCK_OK);
    dlt_child w1, w2;
    ck_assert_int_eq(dlt_child_start(&w1, url, name, 30000, 10000), 0);
    dlt_sleep_ms(300);
    ck_assert_int_eq(dlt_child_start(&w2, url, name, 30000, 10000), 0);
    dlt_sleep_ms(300);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert_int_eq(dlt_child_read(&w1, 5000), DLOCK_OK);
    ck_assert_int_eq(dlt_child_cmd(&w1, "release", 5000), DLOCK_OK);
    int rc = dlt_child_read(&w2, 5000);
    fprintf(stderr, "serializable, fencing=on: the second waiter's acquire: %d\n", rc);
    if (rc == DLOCK_OK) {
        ck_assert_int_eq(held_elsewhere(name), 1);
        ck_assert_int_eq(dlt_child_cmd(&w2, "release", 5000), DLOCK_OK);
    } else {
        ck_assert_msg(held_elsewhere(name) == 0, "the acquire failed (%d) but its session kept the lock", rc);
    }
    ck_assert_int_eq(held_elsewhere(name), 0);
    /* A try in the same state: never an error with the lock kept. */
    ck_assert_int_eq(dlock_acquire(h, name, 30000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlt_child_stop(&w1, 0);
    dlt_child_stop(&w2, 0);
    dlock_close(h);
    table_test_done(NULL, table, url, name);
}
END_TEST

/* Item 3, any error after a grant: the fence table refuses every counter
 * (a CHECK that fails), so the try's and the wait's upsert fail after the
 * advisory lock was got in the same statement; the client is told
 * DLOCK_EBACKEND, and its session must not keep the lock. */
START_TEST(test_error_after_grant)
{
    char *table;
    char *url = url_with_table(pg_url, "fencing=on", "fences_bad", &table);
    char *name = dlt_unique_name("pg-grant-error");
    PGconn *pg = raw_connect("dlock-test-admin");
    char sql[512];
    snprintf(sql, sizeof sql,
             "CREATE TABLE %s (name bytea PRIMARY KEY, fence bigint NOT NULL DEFAULT 0 CHECK (fence < 0),"
             " last_slot bigint NOT NULL DEFAULT 0)",
             table);
    raw_exec(pg, sql, NULL);
    dlock_client *c = open_client(url);
    for (int wait = 0; wait < 2; wait++) {
        dlock_lock *l = NULL;
        int rc = dlock_acquire(c, name, 30000, wait ? 2000 : 0, &l);
        fprintf(stderr, "error after a grant (%s): %d %s\n", wait ? "wait" : "try", rc, dlock_last_error());
        ck_assert_int_eq(rc, DLOCK_EBACKEND);
        ck_assert_msg(held_elsewhere(name) == 0, "the %s failed but its session kept the lock", wait ? "wait" : "try");
    }
    dlock_close(c);
    table_test_done(pg, table, url, name);
}
END_TEST

struct contender {
    const char *url;
    const char *name;
    atomic_int *backend_errors;
    atomic_int *holders;
    atomic_int *max_holders;
    atomic_int *acquired;
    char error[256];
};

static void *contender_main(void *arg)
{
    struct contender *k = arg;
    dlock_client *c = NULL;
    if (dlock_open(k->url, &c) != DLOCK_OK) {
        atomic_fetch_add(k->backend_errors, 1);
        return NULL;
    }
    for (int i = 0; i < 15; i++) {
        dlock_lock *l = NULL;
        int rc = dlock_acquire(c, k->name, 5000, 3000, &l);
        if (rc != DLOCK_OK) {
            if (rc != DLOCK_EBUSY) {
                atomic_fetch_add(k->backend_errors, 1);
                dlock__copy_text(k->error, sizeof k->error, dlock_last_error());
            }
            continue;
        }
        int now = atomic_fetch_add(k->holders, 1) + 1;
        int seen = atomic_load(k->max_holders);
        while (now > seen && !atomic_compare_exchange_weak(k->max_holders, &seen, now))
            ;
        atomic_fetch_add(k->acquired, 1);
        dlt_sleep_ms(1);
        atomic_fetch_sub(k->holders, 1);
        (void)dlock_release(l);
    }
    dlock_close(c);
    return NULL;
}

/* Item 4: lease mode on a database whose default isolation is serializable:
 * contended takes get 40001 (or 40P01); that is "busy, try again", never
 * DLOCK_EBACKEND. */
START_TEST(test_lease_serialization_failure)
{
    char *url = url_isolated(pg_url, "mode=lease");
    char *name = dlt_unique_name("pg-lease-ser");
    atomic_int errors = 0, holders = 0, max = 0, acquired = 0;
    struct contender k[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        k[i] = (struct contender){url, name, &errors, &holders, &max, &acquired, ""};
        pthread_create(&t[i], NULL, contender_main, &k[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        if (k[i].error[0])
            fprintf(stderr, "lease mode, serializable: %s\n", k[i].error);
    }
    fprintf(stderr, "lease mode, serializable: %d acquired, %d errors, at most %d holder(s)\n", atomic_load(&acquired),
            atomic_load(&errors), atomic_load(&max));
    ck_assert_int_eq(atomic_load(&errors), 0);
    ck_assert_int_le(atomic_load(&max), 1);
    ck_assert_int_ge(atomic_load(&acquired), 10);
    free(name);
    free(url);
}
END_TEST

/* The same, made certain: a transaction of its own updates the free lease
 * row and commits 300 ms later, while a serializable take waits on that row
 * lock. The take then fails with 40001 ("concurrent update"): busy or,
 * after a retry, granted, never DLOCK_EBACKEND. (The contended version
 * above may see no conflict at all in a run.) */
static void *commit_later(void *arg)
{
    dlt_sleep_ms(300);
    PQclear(PQexec(arg, "COMMIT"));
    return NULL;
}

START_TEST(test_lease_concurrent_update_is_busy)
{
    char *url = url_isolated(pg_url, "mode=lease");
    char *name = dlt_unique_name("pg-lease-upd");
    dlock_client *c = NULL;
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_open(url, &c), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c, name, 30000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    PGconn *raw = raw_connect("lease-updater");
    PQclear(PQexec(raw, "BEGIN"));
    const char *params[1] = {name};
    PGresult *res = PQexecParams(raw, "UPDATE dlock_leases SET owner = NULL WHERE name = $1", 1, NULL, params,
                                 NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK && strcmp(PQcmdTuples(res), "1") == 0, "update: %s",
                  PQerrorMessage(raw));
    PQclear(res);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, commit_later, raw), 0);
    int rc = dlock_acquire(c, name, 30000, 0, &l);
    fprintf(stderr, "lease take after a concurrent update: %d %s\n", rc, rc ? dlock_last_error() : "");
    pthread_join(t, NULL);
    ck_assert_msg(rc == DLOCK_EBUSY || rc == DLOCK_OK, "take after a concurrent update: %d %s", rc,
                  dlock_last_error());
    if (rc == DLOCK_OK)
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    PQfinish(raw);
    dlock_close(c);
    free(name);
    free(url);
}
END_TEST

/* Item 6: a break that could not end the holder's server session (stopped:
 * pg_terminate_backend times out) is an error that says so, never "free";
 * the CLI's release --force neither says "free" nor exits 0 or 1. */
START_TEST(test_break_not_yet)
{
    char *name = dlt_unique_name("pg-break-stopped");
    dlock_client *a = open_client(pg_url), *b = open_client(pg_url);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(a, name, 60000, 0, &l), DLOCK_OK);
    PGconn *pg = raw_connect("dlock-test-admin");
    int backend = backend_pid_of_holder(pg, name);
    ck_assert_int_gt(backend, 0);
    ck_assert_int_eq(kill(backend, SIGSTOP), 0);
    pid_t guard = sigcont_guard(backend, 25000);
    int rc = dlock_break(b, name);
    char why[512];
    dlock__copy_text(why, sizeof why, dlock_last_error());
    fprintf(stderr, "break of a stopped holder: %d %s\n", rc, rc < 0 ? why : "");
    int cli_status = -1;
    char out[1024] = "";
    const char *bin = dlock_bin();
    if (bin) {
        char cmd[6000];
        snprintf(cmd, sizeof cmd, "'%s' release --force -u '%s' '%s' 2>&1", bin, pg_url, name);
        FILE *p = popen(cmd, "r");
        ck_assert(p != NULL);
        size_t n = fread(out, 1, sizeof out - 1, p);
        out[n] = '\0';
        cli_status = pclose(p);
        fprintf(stderr, "dlock release --force of a stopped holder: %s", out);
    }
    sigcont_now(backend, guard);
    ck_assert_msg(rc < 0, "break of a holder that did not go away answered %d (1 broken, 0 free)", rc);
    ck_assert_ptr_nonnull(strstr(why, "not broken"));
    if (bin) {
        ck_assert_msg(strstr(out, "free") == NULL, "release --force: %s", out);
        ck_assert(WIFEXITED(cli_status));
        ck_assert_int_gt(WEXITSTATUS(cli_status), 1);
    }
    /* Resumed, the holder's session ends (the terminate signal is pending). */
    int64_t until = dlt_now_ms() + 5000;
    while (held_elsewhere(name) && dlt_now_ms() < until)
        dlt_sleep_ms(50);
    ck_assert_int_eq(held_elsewhere(name), 0);
    (void)dlock_release(l);
    dlock_close(a);
    dlock_close(b);
    PQfinish(pg);
    free(name);
}
END_TEST

/* A break acts on exactly one name: hold N and N-2 (other clients), break
 * N: N-2 is still held, by its holder (both modes). */
START_TEST(test_break_one_name)
{
    char *lease_url = url_with(pg_url, "mode=lease");
    const char *urls[2] = {pg_url, lease_url};
    for (int mode = 0; mode < 2; mode++) {
        char *n = dlt_unique_name("pg-break-one");
        char n2[256];
        snprintf(n2, sizeof n2, "%s-2", n);
        dlock_client *a = open_client(urls[mode]), *a2 = open_client(urls[mode]), *b = open_client(urls[mode]);
        dlock_lock *l = NULL, *l2 = NULL;
        ck_assert_int_eq(dlock_acquire(a, n, 60000, 0, &l), DLOCK_OK);
        ck_assert_int_eq(dlock_acquire(a2, n2, 60000, 0, &l2), DLOCK_OK);
        ck_assert_int_eq(dlock_break(b, n), 1);
        ck_assert_int_eq(dlock_holder(b, n2, NULL, 0), 1);
        ck_assert_int_eq(dlock_extend(l2, 60000), DLOCK_OK);
        ck_assert_int_eq(dlock_release(l2), DLOCK_OK);
        (void)dlock_release(l);
        dlock_close(a);
        dlock_close(a2);
        dlock_close(b);
        free(n);
    }
    free(lease_url);
}
END_TEST

/* Item 7: session mode and lease mode (the default table) on one database
 * see each other's holder of a name, directly and through PgBouncer in
 * transaction pooling; dlock_holder shows a holder in either mode. */
START_TEST(test_modes_exclude)
{
    char *lease_url = url_with(pg_url, "mode=lease");
    const char *tx = getenv("DLOCK_TEST_PGB_TX_URL");
    if ((!tx || !*tx) && dlt_required("pgbouncer"))
        ck_abort_msg("DLOCK_TEST_PGB_TX_URL is not set");
    char *pooled = tx && *tx ? url_with(tx, "mode=lease") : NULL;
    char *name = dlt_unique_name("pg-modes");
    dlock_client *s = open_client(pg_url), *le = open_client(lease_url);
    dlock_client *lp = pooled ? open_client(pooled) : NULL;
    dlock_lock *l = NULL, *l2 = NULL;
    char who[512];

    /* A session-mode holder: lease mode, direct or pooled, is busy. */
    ck_assert_int_eq(dlock_acquire(s, name, 30000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(le, name, 30000, 0, &l2), DLOCK_EBUSY);
    ck_assert_int_eq(dlock_acquire(le, name, 30000, 300, &l2), DLOCK_EBUSY);
    if (lp)
        ck_assert_int_eq(dlock_acquire(lp, name, 30000, 0, &l2), DLOCK_EBUSY);
    ck_assert_int_eq(dlock_holder(le, name, who, sizeof who), 1);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);

    /* A lease-mode holder (direct, then pooled): session mode is busy,
     * tried or waiting, and sees the holder. */
    dlock_client *holders[2] = {le, lp};
    for (int i = 0; i < 2; i++) {
        if (!holders[i])
            continue;
        ck_assert_int_eq(dlock_acquire(holders[i], name, 30000, 0, &l2), DLOCK_OK);
        ck_assert_int_eq(dlock_acquire(s, name, 30000, 0, &l), DLOCK_EBUSY);
        ck_assert_int_eq(dlock_acquire(s, name, 30000, 300, &l), DLOCK_EBUSY);
        ck_assert_int_eq(dlock_holder(s, name, who, sizeof who), 1);
        ck_assert_int_eq(held_elsewhere(name), 1);
        /* Released: session mode takes it at once; a waiter is granted. */
        ck_assert_int_eq(dlock_release(l2), DLOCK_OK);
        ck_assert_int_eq(dlock_acquire(s, name, 30000, 0, &l), DLOCK_OK);
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    }
    /* A waiting session-mode acquire is granted when the lease ends. */
    ck_assert_int_eq(dlock_acquire(le, name, 1000, 0, &l2), DLOCK_OK);
    int64_t start = dlt_now_ms();
    ck_assert_int_eq(dlock_acquire(s, name, 30000, 5000, &l), DLOCK_OK);
    ck_assert_int_ge(dlt_now_ms() - start, 800);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    (void)dlock_release(l2);
    dlock_close(s);
    dlock_close(le);
    if (lp)
        dlock_close(lp);
    free(name);
    free(pooled);
    free(lease_url);
}
END_TEST

/* Suspected (issue 23): session mode's list and holder must not create the
 * fence table as a side effect. */
START_TEST(test_list_no_side_effect)
{
    char *table;
    char *url = url_with_table(pg_url, "", "nofences", &table);
    dlock_client *c = open_client(url);
    dlock_list *list = NULL;
    ck_assert_int_eq(dlock_list_locks(c, "", &list), DLOCK_OK);
    dlock_list_free(list);
    ck_assert_int_eq(dlock_list_locks(c, "pg-x", &list), DLOCK_OK);
    dlock_list_free(list);
    ck_assert_int_eq(dlock_holder(c, "pg-x", NULL, 0), 0);
    dlock_close(c);
    PGconn *pg = raw_connect("dlock-test-admin");
    ck_assert_msg(!raw_bool(pg, "SELECT to_regclass($1) IS NOT NULL", table), "listing created table %s", table);
    PQfinish(pg);
    free(url);
    free(table);
}
END_TEST

/* Lease mode: an expired lease is lost even when nobody took it since: a
 * late extend (the row's expiry moved into the past behind the holder's
 * back, the owner kept) must not revive it. */
START_TEST(test_lease_late_extend)
{
    char *table;
    char *url = url_with_table(pg_url, "mode=lease", "lease_late", &table);
    char *name = dlt_unique_name("pg-lease-late");
    PGconn *pg = raw_connect("dlock-test-admin");
    dlock_client *a = open_client(url), *b = open_client(url);
    dlock_lock *l = NULL, *l2 = NULL;
    ck_assert_int_eq(dlock_acquire(a, name, 30000, 0, &l), DLOCK_OK);
    raw_row(pg, table, "expires_at = clock_timestamp() - interval '1 second'", name);
    ck_assert_int_eq(dlock_extend(l, 30000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_acquire(b, name, 30000, 0, &l2), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l2), DLOCK_OK);
    (void)dlock_release(l);
    dlock_close(a);
    dlock_close(b);
    table_test_done(pg, table, url, name);
}
END_TEST

/* A pooled server session that no libdlock client has set up is never
 * taken for ours: a client's setup lands on one server session of a
 * transaction pool of 2, another client keeps that one busy in a
 * transaction, and the client's acquire runs on the other, fresh one.  That
 * one is given copies of the client's prepared statements (as a pooler
 * that forwards prepared statements would, PgBouncer >= 1.21), so that only
 * the session token can tell: the pooler error, and no lock left there. */
START_TEST(test_pooled_session_not_ours)
{
    const char *tx = getenv("DLOCK_TEST_PGB_TX2_URL");
    if (!tx || !*tx) {
        ck_assert_msg(!dlt_required("pgbouncer"), "DLOCK_TEST_PGB_TX2_URL is not set");
        return;
    }
    pgbouncer_reconnect(tx, strrchr(tx, '/') + 1);
    char *name = dlt_unique_name("pg-pooled-fresh");
    dlock_client *c = open_client(tx);
    const char *keywords[] = {"dbname", NULL};
    const char *values[] = {tx, NULL};
    PGconn *busy = PQconnectdbParams(keywords, values, 1);
    PGconn *copier = PQconnectdbParams(keywords, values, 1);
    ck_assert(PQstatus(busy) == CONNECTION_OK && PQstatus(copier) == CONNECTION_OK);
    PGresult *res = PQexec(busy, "BEGIN; SELECT pg_catalog.current_setting('dlock.session', true)");
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    int on_setup = !PQgetisnull(res, 0, 0) && PQgetvalue(res, 0, 0)[0];
    PQclear(res);
    int copied = 0;
    if (on_setup) {
        res = PQexec(busy, "SELECT pg_catalog.format('PREPARE %I(%s) AS %s', name,"
                           " pg_catalog.array_to_string(parameter_types::text[], ','), statement)"
                           " FROM pg_catalog.pg_prepared_statements WHERE name LIKE 'dlock%'");
        ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
        for (int i = 0; i < PQntuples(res); i++) {
            PGresult *p = PQexec(copier, PQgetvalue(res, i, 0)); /* runs in the other, fresh server session */
            ck_assert_msg(PQresultStatus(p) == PGRES_COMMAND_OK, "%s", PQerrorMessage(copier));
            PQclear(p);
            copied++;
        }
        PQclear(res);
        res = PQexec(copier, "SELECT pg_catalog.current_setting('dlock.session', true)");
        ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
        ck_assert_msg(PQgetisnull(res, 0, 0) || !PQgetvalue(res, 0, 0)[0], "the copies went to the set-up session");
        PQclear(res);
    }
    dlock_lock *l = NULL;
    int rc = dlock_acquire(c, name, 30000, 0, &l);
    fprintf(stderr, "a fresh pooled server session with %d copied statements (the set-up one %s): acquire %d %s\n",
            copied, on_setup ? "kept busy" : "not caught", rc, rc ? dlock_last_error() : "");
    if (on_setup) {
        ck_assert_msg(rc != DLOCK_OK, "a server session that no client set up was taken for ours");
        ck_assert_ptr_nonnull(strstr(dlock_last_error(), "mode=lease"));
    } else if (rc == DLOCK_OK) {
        (void)dlock_release(l);
    }
    PQclear(PQexec(busy, "COMMIT"));
    PQfinish(busy);
    PQfinish(copier);
    ck_assert_int_eq(held_elsewhere(name), 0);
    dlock_close(c);
    free(name);
}
END_TEST

/* A PostgreSQL role that may not create tables (its search_path names a
 * schema it may only use): check warns (exit 1) naming dlock_runs and
 * dlock_holders, and a run keeps its job's status with one line that says
 * why; the lock's renewal, which cannot list its name, goes on silently. */
static void pg_role_without_create_in(const char *work_dir, const char *lock_name, const char *dlock_bin)
{
    const char *pg = getenv("DLOCK_TEST_PG_URL");
    if (!pg || !*pg) {
        ck_assert_msg(!dlt_required("postgresql"), "DLOCK_TEST_PG_URL is required");
        return;
    }
    ck_assert_int_eq(dlt_sh("PGOPTIONS='-c client_min_messages=warning' psql -q -X -v ON_ERROR_STOP=1 '%s' -c \"DROP SCHEMA IF EXISTS ops2_nocreate CASCADE;"
                        " DROP ROLE IF EXISTS ops2_nocreate; CREATE ROLE ops2_nocreate LOGIN;"
                        " CREATE SCHEMA ops2_nocreate; GRANT USAGE ON SCHEMA ops2_nocreate TO ops2_nocreate;"
                        " ALTER ROLE ops2_nocreate SET search_path = ops2_nocreate\" >/dev/null",
                        pg),
                     0);
    /* The same server and database, as that role (trust authentication). */
    const char *at = strrchr(pg, '@');
    ck_assert_ptr_nonnull(at);
    char u[4400], out[4400];
    snprintf(u, sizeof u, "postgresql://ops2_nocreate%s", at);
    snprintf(out, sizeof out, "%s/out", work_dir);
    int rc = dlt_sh("'%s' check -u '%s' >'%s'", dlock_bin, u, out);
    const char *text = dlt_slurp(out);
    ck_assert_msg(rc == 1, "exit %d: %s", rc, text);
    ck_assert_msg(strstr(text, "warn  history") && strstr(text, "may not create it"), "%s", text);
    ck_assert_msg(strstr(text, "warn  names") && strstr(text, "dlock_holders"), "%s", text);
    /* TTL 3 s: renewed at 1 s, while the job runs. */
    ck_assert_int_eq(
        dlt_sh("'%s' run -u '%s' -t 3s '%s' -- sh -c 'sleep 1.6; exit 6' 2>'%s'", dlock_bin, u, lock_name, out), 6);
    text = dlt_slurp(out);
    ck_assert_msg(strstr(text, "is not in the run history") && strstr(text, "cannot create it"), "%s", text);
    ck_assert_msg(!strstr(text, "dlock_holders") && !strstr(text, "lost"), "%s", text);
    ck_assert_msg(strstr(text, "--no-history") != NULL, "%s", text);
    /* In lease mode the lock table itself is needed: check says unusable. */
    char lease[4500];
    snprintf(lease, sizeof lease, "%s%smode=lease&table=ops2_leases", u, strchr(u, '?') ? "&" : "?");
    rc = dlt_sh("'%s' check -u '%s' >'%s'", dlock_bin, lease, out);
    ck_assert_msg(rc == 69, "exit %d: %s", rc, dlt_slurp(out));
    ck_assert_msg(strstr(dlt_slurp(out), "fail  table") != NULL, "%s", dlt_slurp(out));
    dlt_sh("psql -q -X '%s' -c 'DROP SCHEMA ops2_nocreate CASCADE; DROP ROLE ops2_nocreate' >/dev/null 2>&1", pg);
}
START_TEST(pg_role_without_create)
{
    char *work_dir = dlt_tmpdir(), *lock_name = dlt_unique_name("hist");
    pg_role_without_create_in(work_dir, lock_name, dlt_dlock_bin());
    dlt_sh("rm -rf '%s'", work_dir);
    free(work_dir);
    free(lock_name);
}
END_TEST

/* dlock check shows the holder of the other mode (issue 23's modes exclude
 * each other). */
START_TEST(pg_holder_in_the_other_mode)
{
    ck_assert_ptr_nonnull(pg_url);
    char *dir = dlt_tmpdir(), *name = dlt_unique_name("hist");
    dlt_check_other_mode_holder(pg_url, dir, name);
    dlt_sh("rm -rf '%s'", dir);
    free(dir);
    free(name);
}
END_TEST

void dlt_pg_add_modes(Suite *s)
{
    TCase *tc = tcase(s, "modes-errors-breaks", 90);
    tcase_add_test(tc, test_fence_serialization_failure);
    tcase_add_test(tc, test_error_after_grant);
    tcase_add_test(tc, test_lease_serialization_failure);
    tcase_add_test(tc, test_lease_concurrent_update_is_busy);
    tcase_add_test(tc, test_break_not_yet);
    tcase_add_test(tc, test_break_one_name);
    tcase_add_test(tc, test_modes_exclude);
    tcase_add_test(tc, test_list_no_side_effect);
    tcase_add_test(tc, test_lease_late_extend);
    tcase_add_test(tc, test_pooled_session_not_ours);
    tcase_add_test(tc, pg_role_without_create);
    tcase_add_test(tc, pg_holder_in_the_other_mode);
}
