/*
 * PostgreSQL suite, tcase "session": round trips, holder text, URL parameters, close-on-exec, the
 * session lease.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* --- sessions ----------------------------------------------------------------------------- */

/* Steady state: one round trip per acquire, extend and release, counted
 * at a proxy in front of the server. */
START_TEST(test_one_round_trip)
{
    char *url = NULL;
    proxy *px = proxy_start(&url);
    char *name = dlt_unique_name("pg-rt");
    char *other = dlt_unique_name("pg-rt-other");
    dlock_client *c = open_client(url);
    dlock_lock *l = NULL, *l2 = NULL;
    struct {
        const char *what;
        int turns;
    } steps[10];
    int n = 0;
#define STEP(label, call)                                                       \
    do {                                                                        \
        atomic_store(&px->turns, 0);                                            \
        ck_assert_msg((call) == DLOCK_OK, "%s: %s", label, dlock_last_error()); \
        steps[n].what = label;                                                  \
        steps[n++].turns = atomic_load(&px->turns);                             \
    } while (0)
    STEP("acquire (first: sets the lease)", dlock_acquire(c, name, 30000, 0, &l));
    STEP("extend (first: lists the name)", dlock_extend(l, 30000));
    STEP("extend", dlock_extend(l, 30000));
    STEP("extend with a new TTL", dlock_extend(l, 20000));
    STEP("acquire a second lock", dlock_acquire(c, other, 60000, 0, &l2));
    STEP("release the second", dlock_release(l2));
    STEP("release (last: clears the lease, drops the name)", dlock_release(l));
    STEP("acquire again", dlock_acquire(c, name, 30000, 0, &l));
    STEP("release again", dlock_release(l));
    STEP("acquire with a wait", dlock_acquire(c, name, 30000, 1000, &l));
#undef STEP
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    /* A lock's first renewal writes its name and since into dlock_holders
     * (one more round trip), and the release of such a lock drops the row
     * (one more); every other call is one (issue 24). */
    for (int i = 0; i < n; i++) {
        int want = strstr(steps[i].what, "names") || strstr(steps[i].what, "the name") ? 2 : 1;
        fprintf(stderr, "round trips: %-48s %d\n", steps[i].what, steps[i].turns);
        ck_assert_msg(steps[i].turns == want, "%s took %d round trips", steps[i].what, steps[i].turns);
    }
    ck_assert_int_eq(atomic_load(&px->accepted), 1); /* one session throughout */
    dlock_close(c);
    proxy_stop(px);
    free(url);
    free(name);
    free(other);
}
END_TEST

/* application_name says host and pid; pg_stat_activity and dlock_holder
 * show it. */
START_TEST(test_holder_text)
{
    char *name = dlt_unique_name("pg-holder");
    dlock_client *c = open_client(pg_url);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 0, &l), DLOCK_OK);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    char expect_app[320];
    snprintf(expect_app, sizeof expect_app, "dlock host=%.40s", host);
    char pid_part[32];
    snprintf(pid_part, sizeof pid_part, " pid=%ld", (long)getpid());

    PGconn *pg = raw_connect("dlock-test-holder");
    char sql[512];
    int backend = backend_pid_of_holder(pg, name);
    ck_assert(backend > 0);
    snprintf(sql, sizeof sql, "SELECT application_name FROM pg_stat_activity WHERE pid = %d", backend);
    char *app = raw_value(pg, sql, NULL);
    ck_assert_msg(app && strncmp(app, expect_app, strlen(expect_app)) == 0 && strstr(app, pid_part),
                  "application_name: %s", app ? app : "NULL");
    free(app);

    dlock_client *other = open_client(pg_url);
    char who[512];
    ck_assert_int_eq(dlock_holder(other, name, who, sizeof who), 1);
    fprintf(stderr, "holder: %s\n", who);
    ck_assert_msg(strncmp(who, "host=", 5) == 0 && strstr(who, pid_part) && strstr(who, " session_start=20"),
                  "holder text: %s", who);
    /* The lock's own since is known from its first renewal on (issue 24). */
    ck_assert_msg(!strstr(who, " since="), "holder text: %s", who);
    ck_assert_int_eq(dlock_extend(l, 10000), DLOCK_OK);
    ck_assert_int_eq(dlock_holder(other, name, who, sizeof who), 1);
    ck_assert_msg(strstr(who, " since=20") && strstr(who, " session_start=20"), "holder text: %s", who);
    char backend_part[32];
    snprintf(backend_part, sizeof backend_part, "backend_pid=%d", backend);
    ck_assert_msg(strstr(who, backend_part), "holder text: %s", who);
    /* Truncation is the caller's buffer size. */
    char tiny[8];
    ck_assert_int_eq(dlock_holder(other, name, tiny, sizeof tiny), 1);
    ck_assert_int_eq((int)strlen(tiny), 7);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert_int_eq(dlock_holder(other, name, who, sizeof who), 0);
    dlock_close(other);
    dlock_close(c);
    PQfinish(pg);
    free(name);
}
END_TEST

/* A URL's own application_name wins over ours. */
START_TEST(test_url_parameters)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%sapplication_name=my-cron&sslmode=disable&connect_timeout=5", pg_url,
             strchr(pg_url, '?') ? "&" : "?");
    char *name = dlt_unique_name("pg-url");
    dlock_client *c = open_client(url);
    ck_assert_str_eq(dlock_backend(c), "postgresql");
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 0, &l), DLOCK_OK);
    char who[512];
    ck_assert_int_eq(dlock_holder(c, name, who, sizeof who), 1);
    ck_assert_msg(strncmp(who, "application=my-cron ", 20) == 0, "holder: %s", who);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);

    /* postgres:// is the same backend. */
    if (strncmp(pg_url, "postgresql://", 13) == 0) {
        snprintf(url, sizeof url, "postgres://%s", pg_url + 13);
        c = open_client(url);
        ck_assert_int_eq(dlock_acquire(c, name, 10000, 0, &l), DLOCK_OK);
        ck_assert_int_eq(held_elsewhere(name), 1);
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
        dlock_close(c);
        /* Schemes are case-insensitive (RFC 3986), libpq's are not: we fix that. */
        snprintf(url, sizeof url, "PostgreSQL://%s", pg_url + 13);
        c = open_client(url);
        ck_assert_int_eq(dlock_acquire(c, name, 10000, 0, &l), DLOCK_OK);
        ck_assert_int_eq(held_elsewhere(name), 1);
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
        dlock_close(c);
    }
    free(name);
}
END_TEST

START_TEST(test_bad_urls)
{
    dlock_client *c = NULL;
    /* Unreachable: ECONN, and the password never shows. */
    ck_assert_int_eq(dlock_open("postgresql://someone:Sup3rSecretPw@127.0.0.1:1/db?connect_timeout=3", &c),
                     DLOCK_ECONN);
    ck_assert_ptr_null(c);
    fprintf(stderr, "unreachable: %s\n", dlock_last_error());
    ck_assert(strstr(dlock_last_error(), "Sup3rSecretPw") == NULL);
    ck_assert(strstr(dlock_last_error(), "connect") != NULL);

    /* Malformed: EINVAL, and the quoted piece (here the password) is dropped. */
    ck_assert_int_eq(dlock_open("postgresql://someone:Pw%zzSecret@127.0.0.1/db", &c), DLOCK_EINVAL);
    ck_assert(strstr(dlock_last_error(), "Secret") == NULL);
    ck_assert_int_eq(dlock_open("postgresql://127.0.0.1:99999/db", &c), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_open("postgresql://127.0.0.1:12ab/db", &c), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_open("postgresql://u:Pw@127.0.0.1/db?password=ab%zzcd", &c), DLOCK_EINVAL);
    ck_assert(strstr(dlock_last_error(), "ab%zzcd") == NULL);
    ck_assert_int_eq(dlock_open("postgresql:u:Sup3rSecretPw@host/db", &c), DLOCK_EINVAL);
    ck_assert(strstr(dlock_last_error(), "Sup3rSecretPw") == NULL);
    /* What is not secret stays, so that a typo can be found. */
    ck_assert_int_eq(dlock_open("postgresql://127.0.0.1/db?no_such_parameter=1", &c), DLOCK_EINVAL);
    ck_assert_msg(strstr(dlock_last_error(), "no_such_parameter") != NULL, "%s", dlock_last_error());
    ck_assert_int_eq(dlock_open("postgresql:no-slashes", &c), DLOCK_EINVAL);
    ck_assert_ptr_null(c);
}
END_TEST

/* A new fd of ours must be close-on-exec; and under dlock run the job
 * inherits no socket. */
START_TEST(test_close_on_exec)
{
    int before[1024] = {0};
    DIR *d = opendir("/proc/self/fd");
    ck_assert(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)))
        if (atoi(e->d_name) > 0 && atoi(e->d_name) < 1024)
            before[atoi(e->d_name)] = 1;
    before[dirfd(d)] = 0; /* closed just below */
    closedir(d);
    dlock_client *c = open_client(pg_url);
    char *name = dlt_unique_name("pg-cloexec");
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 0, &l), DLOCK_OK);
    int checked = 0;
    for (int fd = 3; fd < 1024; fd++) {
        if (before[fd] || fcntl(fd, F_GETFD) < 0)
            continue;
        ck_assert_msg(fcntl(fd, F_GETFD) & FD_CLOEXEC, "fd %d is not close-on-exec", fd);
        checked++;
    }
    ck_assert_int_ge(checked, 2); /* the socket and the eventfd */
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);

    const char *bin = dlock_bin();
    if (bin) {
        char cmd[8192];
        char *dir = dlt_tmpdir();
        snprintf(cmd, sizeof cmd,
                 "'%s' run -q -u '%s' -t 10s '%s' -- sh -c 'ls -l /proc/$$/fd | grep -c socket: ; true'"
                 " > '%s/sockets.txt'",
                 bin, pg_url, name, dir);
        ck_assert_int_eq(dlt_system(cmd), 0);
        char path[4200];
        snprintf(path, sizeof path, "%s/sockets.txt", dir);
        FILE *f = fopen(path, "r");
        ck_assert(f != NULL);
        int sockets = -1;
        ck_assert(fscanf(f, "%d", &sockets) == 1);
        fclose(f);
        ck_assert_msg(sockets == 0, "the job inherited %d sockets", sockets);
        free(dir);
    }
    free(name);
}
END_TEST

/* The session carries the smallest TTL of the locks it holds; releasing
 * the short lock gives the long one its own lease back. */
START_TEST(test_smallest_ttl)
{
    char *long_name = dlt_unique_name("pg-ttl-long");
    char *short_name = dlt_unique_name("pg-ttl-short");
    dlock_client *c = open_client(pg_url);
    dlock_lock *long_lock = NULL, *short_lock = NULL;

    /* Release of the short lock: the long one lives on past the short TTL. */
    ck_assert_int_eq(dlock_acquire(c, long_name, 60000, 0, &long_lock), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c, short_name, 800, 0, &short_lock), DLOCK_OK);
    ck_assert_int_le(dlock_remaining_ms(long_lock), 800);
    ck_assert_int_eq(dlock_release(short_lock), DLOCK_OK);
    dlt_sleep_ms(1500);
    ck_assert_int_eq(dlock_extend(long_lock, 60000), DLOCK_OK);
    ck_assert_int_gt(dlock_remaining_ms(long_lock), 50000);

    /* Both held and silent past the short TTL: the session ends, both go. */
    ck_assert_int_eq(dlock_acquire(c, short_name, 800, 0, &short_lock), DLOCK_OK);
    dlt_sleep_ms(1800);
    ck_assert_int_eq(held_elsewhere(long_name), 0);
    ck_assert_int_eq(held_elsewhere(short_name), 0);
    ck_assert_int_eq(dlock_extend(long_lock, 60000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(short_lock), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(long_lock), DLOCK_ELOST);

    /* The next acquire opens a new session. */
    ck_assert_int_eq(dlock_acquire(c, long_name, 60000, 0, &long_lock), DLOCK_OK);
    ck_assert_int_eq(held_elsewhere(long_name), 1);
    ck_assert_int_eq(dlock_release(long_lock), DLOCK_OK);
    dlock_close(c);
    free(long_name);
    free(short_name);
}
END_TEST

/* An extend that changes a lock's TTL changes what the session keeps as
 * the smallest: after 800 ms became 60 s, a later acquire must not bring
 * the old 800 ms back as the session's idle limit. */
START_TEST(test_extend_moves_lease)
{
    char *first_name = dlt_unique_name("pg-retime-first");
    char *second_name = dlt_unique_name("pg-retime-second");
    dlock_client *c = open_client(pg_url);
    dlock_lock *first = NULL, *second = NULL;
    ck_assert_int_eq(dlock_acquire(c, first_name, 800, 0, &first), DLOCK_OK);
    ck_assert_int_eq(dlock_extend(first, 60000), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c, second_name, 60000, 0, &second), DLOCK_OK);
    ck_assert_int_gt(dlock_remaining_ms(second), 50000);
    dlt_sleep_ms(1500);
    ck_assert_int_eq(dlock_extend(first, 60000), DLOCK_OK);
    ck_assert_int_eq(held_elsewhere(second_name), 1);
    ck_assert_int_eq(dlock_release(second), DLOCK_OK);
    ck_assert_int_eq(dlock_release(first), DLOCK_OK);
    dlock_close(c);
    free(first_name);
    free(second_name);
}
END_TEST

/* With no lock held the session has no idle limit: it is reused, not
 * reopened, after a pause longer than the last TTL. */
START_TEST(test_session_kept_without_locks)
{
    char *url = NULL;
    proxy *px = proxy_start(&url);
    char *name = dlt_unique_name("pg-keep");
    dlock_client *c = open_client(url);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 500, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlt_sleep_ms(1200);
    ck_assert_int_eq(dlock_acquire(c, name, 500, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert_int_eq(atomic_load(&px->accepted), 1);
    dlock_close(c);
    proxy_stop(px);
    free(url);
    free(name);
}
END_TEST

/* 10,000 locks on one session (max_locks_per_transaction of the test
 * server: see docs/postgresql.md). */
START_TEST(test_many_locks)
{
    enum { COUNT = 10000 };
    dlock_client *c = open_client(pg_url);
    char *prefix = dlt_unique_name("pg-many");
    int64_t start = dlt_now_ms();
    for (int i = 0; i < COUNT; i++) {
        char name[300];
        dlock_lock *l = NULL;
        snprintf(name, sizeof name, "%s-%d", prefix, i);
        int rc = dlock_acquire(c, name, 60000, 0, &l);
        ck_assert_msg(rc == DLOCK_OK, "lock %d: %d %s", i, rc, dlock_last_error());
    }
    fprintf(stderr, "10,000 acquires on one session: %lld ms\n", (long long)(dlt_now_ms() - start));
    char last[300];
    snprintf(last, sizeof last, "%s-%d", prefix, COUNT - 1);
    ck_assert_int_eq(held_elsewhere(last), 1);
    dlock_close(c); /* releases them all */
    ck_assert_int_eq(held_elsewhere(last), 0);
    free(prefix);
}
END_TEST

void dlt_pg_add_session(Suite *s)
{
    TCase *tc = tcase(s, "session", 60);
    tcase_add_test(tc, test_one_round_trip);
    tcase_add_test(tc, test_holder_text);
    tcase_add_test(tc, test_url_parameters);
    tcase_add_test(tc, test_bad_urls);
    tcase_add_test(tc, test_close_on_exec);
    tcase_add_test(tc, test_smallest_ttl);
    tcase_add_test(tc, test_extend_moves_lease);
    tcase_add_test(tc, test_session_kept_without_locks);
    tcase_add_test(tc, test_many_locks);
}
