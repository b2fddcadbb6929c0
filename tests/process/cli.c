/*
 * Process suite, tcase "cli": dlock(1) heartbeats, minimum hold, forwarded signals, exit statuses,
 * status output.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* --- heartbeat and --min-hold -------------------------------------------------------- */

START_TEST(heartbeat_keeps_long_job_locked)
{
    char *argv[] = {"dlock", "run", "-t", "900ms", name, "--", "sleep", "2.5", NULL};
    pid_t first = dlock_bg(argv);
    dlt_sleep_ms(2000); /* more than two TTLs into the job */
    ck_assert(!lock_is_free());
    ck_assert_int_eq(wait_exit(first), 0);
    ck_assert(lock_is_free());
}
END_TEST

START_TEST(min_hold_keeps_the_lock)
{
    int64_t start = dlt_now_ms();
    char *argv[] = {"dlock", "run", "-m", "1500ms", "-t", "1s", name, "--", "true", NULL};
    pid_t first = dlock_bg(argv);
    dlt_sleep_ms(800);
    ck_assert_int_eq(dlt_sh("'%s' run -q %s -- true", dlock_bin, name), 75);
    ck_assert_int_eq(wait_exit(first), 0);
    int64_t took = dlt_now_ms() - start;
    ck_assert_int_ge(took, 1450);
    ck_assert_int_lt(took, 4000);
    ck_assert(lock_is_free());
}
END_TEST

/* --- signals --------------------------------------------------------------------------- */

static void forwarded(int sig, const char *signame)
{
    char started[4300], got[4300];
    snprintf(started, sizeof started, "%s/started", dir);
    snprintf(got, sizeof got, "%s/got", dir);
    char job[9000];
    snprintf(job, sizeof job,
             "trap 'echo %s > %s; exit 5' %s; touch %s; i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done",
             signame, got, signame, started);
    char *argv[] = {"dlock", "run", name, "--", "sh", "-c", job, NULL};
    pid_t pid = dlock_bg(argv);
    ck_assert(dlt_wait_for_file(started, 5000));
    kill(pid, sig);
    ck_assert_int_eq(wait_exit(pid), 5);
    ck_assert(file_has(got, signame));
    ck_assert(lock_is_free());
}

START_TEST(forwards_sigint)
{
    forwarded(SIGINT, "INT");
}
END_TEST

START_TEST(forwards_sigterm)
{
    forwarded(SIGTERM, "TERM");
}
END_TEST

START_TEST(forwards_sighup)
{
    forwarded(SIGHUP, "HUP");
}
END_TEST

START_TEST(job_killed_by_signal_gives_128_plus_n)
{
    ck_assert_int_eq(dlt_sh("'%s' run %s -- sh -c 'kill -TERM $$'", dlock_bin, name), 128 + SIGTERM);
    char started[4300];
    snprintf(started, sizeof started, "%s/started", dir);
    char job[4400];
    snprintf(job, sizeof job, "touch %s; exec sleep 30", started);
    char *argv[] = {"dlock", "run", name, "--", "sh", "-c", job, NULL};
    pid_t pid = dlock_bg(argv);
    ck_assert(dlt_wait_for_file(started, 5000));
    kill(pid, SIGTERM);
    ck_assert_int_eq(wait_exit(pid), 128 + SIGTERM);
    ck_assert(lock_is_free());
}
END_TEST

/* A signal while waiting for a busy lock ends the wait; the job never starts. */
START_TEST(signal_while_waiting)
{
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    char ran[4300];
    snprintf(ran, sizeof ran, "%s/ran", dir);
    char *argv[] = {"dlock", "run", "-w", "forever", name, "--", "touch", ran, NULL};
    pid_t pid = dlock_bg(argv);
    dlt_sleep_ms(500);
    int64_t start = dlt_now_ms();
    kill(pid, SIGTERM);
    ck_assert_int_eq(wait_exit(pid), 128 + SIGTERM);
    ck_assert_int_lt(dlt_now_ms() - start, 2000);
    ck_assert_int_ne(access(ran, F_OK), 0);
    dlt_child_stop(&holder, 0);
}
END_TEST

/* --- exit statuses and messages ------------------------------------------------------- */

START_TEST(exit_statuses)
{
    ck_assert_int_eq(dlt_sh("'%s' run %s -- sh -c 'exit 3'", dlock_bin, name), 3);
    ck_assert_int_eq(dlt_sh("'%s' run %s -- true", dlock_bin, name), 0);
    ck_assert_int_eq(dlt_sh("'%s' run %s -- /nonexistent/command 2>/dev/null", dlock_bin, name), 127);
    ck_assert_int_eq(dlt_sh("'%s' run %s -- /etc/passwd 2>/dev/null", dlock_bin, name), 126);
    ck_assert_int_eq(dlt_sh("'%s' 2>/dev/null", dlock_bin), 64);
    ck_assert_int_eq(dlt_sh("'%s' frobnicate 2>/dev/null", dlock_bin), 64);
    ck_assert_int_eq(dlt_sh("'%s' run 2>/dev/null", dlock_bin), 64);
    ck_assert_int_eq(dlt_sh("'%s' run %s 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(dlt_sh("'%s' run %s -- 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(dlt_sh("'%s' run -t 0 %s -- true 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(dlt_sh("'%s' run -t 10x %s -- true 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(dlt_sh("'%s' run -t 2147484s %s -- true 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(dlt_sh("'%s' run -w soon %s -- true 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(dlt_sh("'%s' run -E 300 %s -- true 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(dlt_sh("'%s' run --bogus %s -- true 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(dlt_sh("'%s' run -t 2>/dev/null", dlock_bin), 64);
    ck_assert_int_eq(dlt_sh("'%s' run a b -- true 2>/dev/null", dlock_bin), 64);
    ck_assert_int_eq(dlt_sh("'%s' run '' -- true 2>/dev/null", dlock_bin), 64);
    ck_assert_int_eq(dlt_sh("'%s' run \"$(printf 'a\\377b')\" -- true 2>/dev/null", dlock_bin), 64);
    /* A well-formed URL of a backend not built in: unavailable here, not a usage error. */
    ck_assert_int_eq(dlt_sh("'%s' run -u 'zookeeper://x/0' %s -- true 2>/dev/null", dlock_bin, name), 69);
    ck_assert_int_eq(dlt_sh("'%s' run -u 'nonsense' %s -- true 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(dlt_sh("'%s' run -u 'sqlite:///proc/no/such/dir/x.db' %s -- true 2>/dev/null", dlock_bin, name),
                     69);
    ck_assert_int_eq(dlt_sh("'%s' status -u 'sqlite:///proc/no/such/dir/x.db' %s 2>/dev/null", dlock_bin, name), 69);
    ck_assert_int_eq(dlt_sh("'%s' --version | grep -q '^dlock (libdlock) [0-9]*\\.[0-9]*\\.[0-9]*$'", dlock_bin), 0);
    ck_assert_int_eq(dlt_sh("'%s' --help | grep -q 'dlock run'", dlock_bin), 0);
    ck_assert_int_eq(dlt_sh("'%s' run --help | grep -q 'dlock run'", dlock_bin), 0);
    /* Options may also come after NAME when '--' ends them; no '--' works too. */
    ck_assert_int_eq(dlt_sh("'%s' run %s -t 5s -- sh -c 'exit 4'", dlock_bin, name), 4);
    ck_assert_int_eq(dlt_sh("'%s' run %s sh -c 'exit 6'", dlock_bin, name), 6);
}
END_TEST

/* The URL with its user and password replaced (the URL has a "user@" part). */
static void url_with_login(char *out, size_t outlen, const char *server_url, const char *login)
{
    const char *scheme_end = strstr(server_url, "://");
    const char *at = scheme_end ? strchr(scheme_end + 3, '@') : NULL;
    ck_assert_msg(at != NULL, "test URL without a user part");
    snprintf(out, outlen, "%.*s%s%s", (int)(scheme_end + 3 - server_url), server_url, login, at);
}

/* dlock run with `store_url` (which must not open): its exit status, and
 * its stderr in dir/stderr. */
static int run_against(const char *store_url, const char *env)
{
    return dlt_sh("%s '%s' run -u '%s' %s -- true 2>'%s/stderr'", env, dlock_bin, store_url, name, dir);
}

/* With the server of $env_var, logging in as `login` (a wrong password) is
 * refused: dlock run and dlock status exit 69, the message says what the
 * server said, and never the password.  0 when no such server is set. */
static int refused_login_exits_69(const char *env_var, const char *backend, const char *login, const char *server_says)
{
    const char *server = getenv(env_var);
    if (!server || !*server) {
        ck_assert_msg(!dlt_required(backend), "%s is not set", env_var);
        return 0;
    }
    char bad[4400], path[4300];
    snprintf(path, sizeof path, "%s/stderr", dir);
    url_with_login(bad, sizeof bad, server, login);
    ck_assert_int_eq(run_against(bad, ""), 69);
    ck_assert_msg(file_has(path, server_says), "%s: no '%s' in the message", backend, server_says);
    ck_assert(!file_has(path, "Wr0ngPassw0rd"));
    ck_assert_int_eq(dlt_sh("'%s' status -u '%s' %s >/dev/null 2>&1", dlock_bin, bad, name), 69);
    return 1;
}

/* One mistake, one status: a refused login, an unknown host and a wrong
 * database exit 69 on every backend (PostgreSQL could not tell them apart). */
START_TEST(refused_login_exits_69_on_every_backend)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/stderr", dir);
    ck_assert_int_eq(run_against("postgresql://jobs@no-such-host.invalid/app", ""), 69);
    ck_assert_int_eq(run_against("mysql://jobs:Secr3t@no-such-host.invalid/app", ""), 69);
    ck_assert(!file_has(path, "Secr3t"));

    int tried = 0, logins = 0;
    for (const struct dlt_store *const *st = dlt_stores(); *st; st++) {
        const struct dlt_store *store = *st;
        if (!store->bad_login_userinfo)
            continue; /* no logins to refuse */
        logins++;
        tried += refused_login_exits_69(store->login_url_env ? store->login_url_env : store->url_env, store->backend,
                                        store->bad_login_userinfo, store->bad_login_word);
    }
    if (tried < logins)
        fprintf(stderr, "refused_login: %d of %d servers configured\n", tried, logins);
}
END_TEST

/* A host without the client library (Debian's --no-install-recommends can
 * drop libpq5): the store is unavailable (69), not a usage error (64).  A
 * file that is not a library, first on LD_LIBRARY_PATH, makes dlopen() fail
 * as a missing one does. */
START_TEST(missing_client_library_exits_69)
{
    const char *sonames[] = {"libpq.so.5", "libmariadb.so.3", "libmysqlclient.so.21", "libhiredis.so.0.14"};
    char env[4400], path[4300];
    for (size_t i = 0; i < sizeof sonames / sizeof sonames[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, sonames[i]);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs("not a shared library\n", f);
        fclose(f);
    }
    snprintf(env, sizeof env, "LD_LIBRARY_PATH='%s'", dir);
    snprintf(path, sizeof path, "%s/stderr", dir);
    const char *urls[] = {"postgresql://jobs@127.0.0.1:1/app", "mysql://jobs:Secr3t@127.0.0.1:1/app",
                          "redis://jobs:Secr3t@127.0.0.1:1/0"};
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        ck_assert_int_eq(run_against(urls[i], env), 69);
        ck_assert_msg(file_has(path, "client library") || file_has(path, "not built into"), "no reason given for %s",
                      urls[i]);
        ck_assert(!file_has(path, "Secr3t"));
        ck_assert_int_eq(dlt_sh("%s '%s' status -u '%s' %s >/dev/null 2>&1", env, dlock_bin, urls[i], name), 69);
    }
}
END_TEST

START_TEST(busy_exit_and_conflict_code)
{
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    char out[4300], ran[4300];
    snprintf(out, sizeof out, "%s/stderr", dir);
    snprintf(ran, sizeof ran, "%s/ran", dir);
    ck_assert_int_eq(dlt_sh("'%s' run %s -- touch %s 2>%s", dlock_bin, name, ran, out), 75);
    ck_assert(file_has(out, "busy"));
    ck_assert(file_has(out, "pid="));
    ck_assert_int_eq(dlt_sh("'%s' run -E 9 %s -- touch %s 2>/dev/null", dlock_bin, name, ran), 9);
    ck_assert_int_eq(dlt_sh("'%s' run -q -E 0 %s -- touch %s 2>%s", dlock_bin, name, ran, out), 0);
    ck_assert_int_eq(count_lines(out), 0);
    ck_assert_int_ne(access(ran, F_OK), 0); /* the job never ran */
    int64_t start = dlt_now_ms();
    ck_assert_int_eq(dlt_sh("'%s' run -w 600ms %s -- touch %s 2>/dev/null", dlock_bin, name, ran), 75);
    ck_assert_int_ge(dlt_now_ms() - start, 550);
    ck_assert_int_eq(dlt_sh("'%s' status %s > %s", dlock_bin, name, out), 0);
    ck_assert(file_has(out, "held by"));
    dlt_child_stop(&holder, 0);
    dlt_sleep_ms(50);
}
END_TEST

START_TEST(status_free_and_held)
{
    char out[4300];
    snprintf(out, sizeof out, "%s/out", dir);
    ck_assert_int_eq(dlt_sh("'%s' status %s > %s", dlock_bin, name, out), 1);
    ck_assert(file_has(out, "free"));
    ck_assert_int_eq(dlt_sh("'%s' status 2>/dev/null", dlock_bin), 64);
    ck_assert_int_eq(dlt_sh("'%s' status a b 2>/dev/null", dlock_bin), 64);
}
END_TEST

/* Holder text comes from the store, where anyone may have written it: no
 * control character of it reaches the terminal. */
START_TEST(status_output_has_no_control_characters)
{
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    if (dlt_sh("command -v sqlite3 >/dev/null") != 0) {
        dlt_child_stop(&holder, 0);
        return; /* the sqlite3 shell is part of the test dependencies; no way to plant the text */
    }
    ck_assert_int_eq(
        dlt_sh("sqlite3 '%s/locks.db' \"UPDATE dlock_locks SET holder_host = char(27) || '[2J' || char(7) || 'evil'\"",
               dir),
        0);
    char out[4300];
    snprintf(out, sizeof out, "%s/out", dir);
    ck_assert_int_eq(dlt_sh("'%s' status %s > %s 2>&1", dlock_bin, name, out), 0);
    ck_assert(file_has(out, "evil"));
    ck_assert(!file_has(out, "\033"));
    ck_assert(!file_has(out, "\007"));
    ck_assert_int_eq(dlt_sh("'%s' run %s -- true > %s 2>&1", dlock_bin, name, out), 75);
    ck_assert(file_has(out, "evil"));
    ck_assert(!file_has(out, "\033"));
    dlt_child_stop(&holder, 0);
}
END_TEST

/* No DLOCK_URL: the default is an owner-only SQLite file in the user's state folder. */
START_TEST(default_url_for_a_user)
{
    char home[4300], db[4400];
    snprintf(home, sizeof home, "%s/home", dir);
    mkdir(home, 0755);
    snprintf(db, sizeof db, "%s/.local/state/dlock/dlock.db", home);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (geteuid() == 0) {
            struct passwd *nobody = getpwnam("nobody");
            if (!nobody || chown(home, nobody->pw_uid, nobody->pw_gid) != 0 || setgid(nobody->pw_gid) != 0 ||
                setuid(nobody->pw_uid) != 0)
                _exit(98);
        }
        unsetenv("DLOCK_URL");
        unsetenv("XDG_STATE_HOME");
        setenv("HOME", home, 1);
        execl(dlock_bin, "dlock", "run", name, "--", "true", (char *)NULL);
        _exit(97);
    }
    ck_assert_int_eq(wait_exit(pid), 0);
    struct stat st;
    ck_assert_int_eq(stat(db, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    char state_dir[4400];
    snprintf(state_dir, sizeof state_dir, "%s/.local/state/dlock", home);
    ck_assert_int_eq(stat(state_dir, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);
}
END_TEST

/* SQLite database files are never reached through a symbolic link. */
START_TEST(sqlite_refuses_symlinked_database)
{
    char target[4300], link_path[4300], link_url[4400];
    snprintf(target, sizeof target, "%s/real.db", dir);
    snprintf(link_path, sizeof link_path, "%s/link.db", dir);
    snprintf(link_url, sizeof link_url, "sqlite://%s", link_path);
    ck_assert_int_eq(symlink(target, link_path), 0);
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open(link_url, &c), DLOCK_EINVAL);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "symbolic link"));
    ck_assert_int_ne(access(target, F_OK), 0); /* nothing was written through it */
}
END_TEST

void dlt_process_add_cli(Suite *s)
{
    TCase *t = tcase_create("cli");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, heartbeat_keeps_long_job_locked);
    tcase_add_test(t, min_hold_keeps_the_lock);
    tcase_add_test(t, forwards_sigint);
    tcase_add_test(t, forwards_sigterm);
    tcase_add_test(t, forwards_sighup);
    tcase_add_test(t, job_killed_by_signal_gives_128_plus_n);
    tcase_add_test(t, signal_while_waiting);
    tcase_add_test(t, exit_statuses);
    tcase_add_test(t, refused_login_exits_69_on_every_backend);
    tcase_add_test(t, missing_client_library_exits_69);
    tcase_add_test(t, busy_exit_and_conflict_code);
    tcase_add_test(t, status_free_and_held);
    tcase_add_test(t, status_output_has_no_control_characters);
    tcase_add_test(t, default_url_for_a_user);
    tcase_add_test(t, sqlite_refuses_symlinked_database);
    suite_add_tcase(s, t);
}
