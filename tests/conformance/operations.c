/*
 * The conformance suite, in part: the operations (list, break, store time,
 * run records), through the API and through dlock(1).
 * (tests/check_conformance.c runs every part once per URL.)
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conformance.h"

/* Run `dlock ARGS...` (NULL-terminated); its stdout into out; the exit status. */
static int dlock_cli(char *out, size_t outlen, ...)
{
    const char *bin = getenv("DLOCK_BIN");
    ck_assert_msg(bin != NULL, "DLOCK_BIN is not set (make check sets it)");
    const char *argv[32] = {"dlock"};
    int argc = 1;
    va_list ap;
    va_start(ap, outlen);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && argc < 31)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    size_t used = 0;
    ssize_t n;
    while ((n = read(fds[0], out + used, outlen - 1 - used)) > 0 && used + (size_t)n < outlen - 1)
        used += (size_t)n;
    if (n > 0)
        used += (size_t)n;
    out[used] = '\0';
    close(fds[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* dlock list, status --json and release --force see and break a lock held
 * through the library, on every store (dlock(1)). */
START_TEST(cli_list_status_and_break)
{
    char out[16384];
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 30000, 0, &l), DLOCK_OK);
    ck_assert_msg(dlock_cli(out, sizeof out, "list", "-u", url, "--json", name, NULL) == 0, "list: %s", out);
    char quoted[300];
    snprintf(quoted, sizeof quoted, "\"name\":\"%s\"", name);
    ck_assert_msg(strstr(out, quoted) != NULL, "dlock list --json: %s", out);
    ck_assert_int_eq(dlock_cli(out, sizeof out, "list", "-u", url, name, NULL), 0);
    ck_assert_msg(strstr(out, name) != NULL, "dlock list: %s", out);
    ck_assert_int_eq(dlock_cli(out, sizeof out, "status", "-u", url, "--json", name, NULL), 0);
    ck_assert_msg(strstr(out, "\"held\":true") != NULL, "dlock status --json: %s", out);
    ck_assert_int_eq(dlock_cli(out, sizeof out, "release", "--force", "-u", url, name, NULL), 0);
    ck_assert_int_eq(dlock_extend(l, 30000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_cli(out, sizeof out, "status", "-u", url, "--json", name, NULL), 1);
    ck_assert_msg(strstr(out, "\"held\":false") != NULL, "dlock status --json: %s", out);
    ck_assert_int_eq(dlock_cli(out, sizeof out, "release", "--force", "-u", url, name, NULL), 1);
    (void)dlock_release(l);
}
END_TEST

/* dlock run --once-per and the job's DLOCK_NAME/DLOCK_FENCE, on every store. */
START_TEST(cli_once_per_and_environment)
{
    char out[4096];
    /* a failed run leaves the slot open, a good one closes it */
    ck_assert_int_eq(dlock_cli(out, sizeof out, "run", "-q", "-u", url, "--once-per", "24h", name, "--", "false", NULL),
                     1);
    ck_assert_int_eq(
        dlock_cli(out, sizeof out, "run", "-q", "-u", url, "--once-per", "24h", name, "--", "echo", "ran", NULL), 0);
    ck_assert_str_eq(out, "ran\n");
    ck_assert_int_eq(
        dlock_cli(out, sizeof out, "run", "-q", "-u", url, "--once-per", "24h", name, "--", "echo", "ran", NULL), 75);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(dlock_cli(out, sizeof out, "run", "-q", "-u", url, "-E", "0", "--once-per", "24h", name, "--",
                               "echo", "ran", NULL),
                     0);
    ck_assert_str_eq(out, "");
    /* the job's environment */
    ck_assert_int_eq(dlock_cli(out, sizeof out, "run", "-q", "-u", url, name, "--", "sh", "-c",
                               "echo \"$DLOCK_NAME|${DLOCK_FENCE-none}\"", NULL),
                     0);
    char *bar = strchr(out, '|');
    ck_assert_ptr_nonnull(bar);
    *bar = '\0';
    ck_assert_str_eq(out, name);
    if (!can(DLT_FENCES))
        ck_assert_str_eq(bar + 1, "none\n");
    else
        ck_assert_msg(strtoull(bar + 1, NULL, 10) >= 1, "DLOCK_FENCE=%s", bar + 1);
}
END_TEST

static int64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The entry of `list` for the lock `n` held by this process: by name, by a
 * key that is the name, or (a store that keeps only keys: PostgreSQL and
 * MySQL session mode) a nameless entry of this process.  -1: none. */
static long entry_of(const dlock_list *list, const char *n)
{
    long nameless = -1;
    for (size_t i = 0; i < dlock_list_count(list); i++) {
        const char *ln = dlock_list_name(list, i);
        if ((ln && strcmp(ln, n) == 0) || strcmp(dlock_list_key(list, i), n) == 0)
            return (long)i;
        if (!ln && dlock_list_pid(list, i) == (int64_t)getpid())
            nameless = (long)i;
    }
    return nameless;
}

static dlock_list *list_of(dlock_client *c, const char *prefix)
{
    dlock_list *list = NULL;
    int rc = dlock_list_locks(c, prefix, &list);
    ck_assert_msg(rc == DLOCK_OK, "list: %d %s", rc, dlock_last_error());
    return list;
}

/* A held lock is listed (by another client too) with its holder, pid, times
 * and fence, as far as the store knows them; once released it is gone. */
START_TEST(list_shows_a_held_lock)
{
    int64_t before = 0, after = 0;
    ck_assert_int_eq(dlock_store_time(client, &before), DLOCK_OK);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 30000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_store_time(client, &after), DLOCK_OK);
    dlock_client *other = open_other();
    dlock_list *list = list_of(other, name);
    long i = entry_of(list, name);
    ck_assert_msg(i >= 0, "lock %s not listed (%zu entries)", name, dlock_list_count(list));
    if (dlock_list_name(list, (size_t)i))
        ck_assert_str_eq(dlock_list_name(list, (size_t)i), name);
    ck_assert_str_ne(dlock_list_key(list, (size_t)i), "");
    ck_assert_str_ne(dlock_list_holder(list, (size_t)i), "");
    int64_t pid = dlock_list_pid(list, (size_t)i);
    ck_assert(pid == 0 || pid == (int64_t)getpid());
    int64_t since = dlock_list_since(list, (size_t)i), expires = dlock_list_expires(list, (size_t)i);
    if (since >= 0)
        ck_assert_msg(since >= before - 2000 && since <= after + 2000, "since %lld not in [%lld, %lld]",
                      (long long)since, (long long)before, (long long)after);
    if (expires >= 0)
        ck_assert_msg(expires > after && expires <= after + 30000 + 2000, "expires %lld, store time %lld",
                      (long long)expires, (long long)after);
    uint64_t token = 0, listed = dlock_list_fence(list, (size_t)i);
    if (dlock_fence(l, &token) == DLOCK_OK && listed)
        ck_assert_uint_eq(listed, token);
    dlock_list_free(list);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    list = list_of(other, name);
    ck_assert_msg(entry_of(list, name) < 0, "released lock %s still listed", name);
    dlock_list_free(list);
    dlock_close(other);
}
END_TEST

/* The entry named `n` in a list of the test's name as prefix, -1: none. */
static long named_entry(dlock_client *c, const char *n, dlock_list **out)
{
    *out = list_of(c, name);
    for (size_t i = 0; i < dlock_list_count(*out); i++) {
        const char *ln = dlock_list_name(*out, i);
        if (ln && strcmp(ln, n) == 0)
            return (long)i;
    }
    return -1;
}

/* Every store lists a lock by its name, with since and this pid, from its
 * first renewal on at the latest (PostgreSQL and MySQL session mode keep
 * only keys until then, issue 24).  A holder broken behind its back leaves
 * nothing that a new holder is listed with; a released lock is gone. */
START_TEST(list_names_a_renewed_lock)
{
    char n[300];
    snprintf(n, sizeof n, "%s Renewed", name); /* MySQL: not a verbatim GET_LOCK name */
    int64_t before = 0, after = 0;
    dlock_lock *l = NULL, *l2 = NULL;
    ck_assert_int_eq(dlock_store_time(client, &before), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(client, n, 30000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_store_time(client, &after), DLOCK_OK);
    ck_assert_msg(dlock_extend(l, 30000) == DLOCK_OK, "extend: %s", dlock_last_error());
    dlock_client *other = open_other();
    dlock_list *list = NULL;
    long i = named_entry(other, n, &list);
    ck_assert_msg(i >= 0, "renewed lock '%s' not listed by name (%zu entries)", n, dlock_list_count(list));
    int64_t since = dlock_list_since(list, (size_t)i), pid = dlock_list_pid(list, (size_t)i);
    ck_assert_msg(since >= before - 2000 && since <= after + 2000, "since %lld not in [%lld, %lld]", (long long)since,
                  (long long)before, (long long)after);
    ck_assert(pid == 0 || pid == (int64_t)getpid());
    dlock_list_free(list);
    /* dlock_holder (dlock status) says the same in its text, on every store. */
    char who[1024], pid_part[32];
    snprintf(pid_part, sizeof pid_part, "pid=%ld ", (long)getpid());
    ck_assert_int_eq(dlock_holder(other, n, who, sizeof who), 1);
    ck_assert_msg(strncmp(who, "host=", 5) == 0 && strstr(who, pid_part) && strstr(who, " since=20"),
                  "holder text: %s", who);
    dlt_sleep_ms(100);
    ck_assert_int_eq(dlock_break(other, n), 1);
    ck_assert_msg(dlock_acquire(other, n, 30000, 5000, &l2) == DLOCK_OK, "%s", dlock_last_error());
    dlock_client *third = open_other(); /* the break may have ended the first client's session */
    i = named_entry(third, n, &list);
    if (i >= 0)
        ck_assert_msg(dlock_list_since(list, (size_t)i) != since, "the broken holder's since is listed");
    dlock_list_free(list);
    ck_assert_msg(dlock_extend(l2, 30000) == DLOCK_OK, "extend: %s", dlock_last_error());
    i = named_entry(third, n, &list);
    ck_assert_msg(i >= 0, "the new holder of '%s' is not listed by name", n);
    int64_t since2 = dlock_list_since(list, (size_t)i);
    ck_assert_int_gt(since2, since);
    dlock_list_free(list);
    ck_assert_int_eq(dlock_release(l2), DLOCK_OK);
    /* The same client takes it again: not listed with the last since. */
    dlt_sleep_ms(100);
    ck_assert_int_eq(dlock_acquire(other, n, 30000, 0, &l2), DLOCK_OK);
    i = named_entry(third, n, &list);
    if (i >= 0)
        ck_assert_msg(dlock_list_since(list, (size_t)i) != since2, "the last holding's since is listed");
    dlock_list_free(list);
    ck_assert_int_eq(dlock_release(l2), DLOCK_OK);
    /* Lost to the break, and said at once (etcd used to retry the revoke
     * of the broken lease on every member until the call's deadline). */
    int64_t t0 = dlt_now_ms();
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    ck_assert_int_lt(dlt_now_ms() - t0, 2000);
    ck_assert_int_lt(named_entry(third, n, &list), 0);
    dlock_list_free(list);
    dlock_close(third);
    dlock_close(other);
}
END_TEST

/* A prefix lists the names that start with it, and only those (stores that
 * keep names). */
START_TEST(list_prefix_filters)
{
    char a[300], b[300], outside[300];
    snprintf(a, sizeof a, "%s/a", name);
    snprintf(b, sizeof b, "%s/b", name);
    snprintf(outside, sizeof outside, "%sX", name); /* shares the prefix without the slash */
    dlock_lock *la = NULL, *lb = NULL, *lo = NULL;
    ck_assert_int_eq(dlock_acquire(client, a, 30000, 0, &la), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(client, b, 30000, 0, &lb), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(client, outside, 30000, 0, &lo), DLOCK_OK);
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s/", name);
    dlock_list *list = list_of(client, prefix);
    size_t named = 0;
    for (size_t i = 0; i < dlock_list_count(list); i++) {
        const char *n = dlock_list_name(list, i);
        if (!n)
            continue;
        ck_assert_msg(strncmp(n, prefix, strlen(prefix)) == 0, "%s listed under %s", n, prefix);
        named++;
    }
    if (named) {
        ck_assert_uint_eq(named, 2);
        ck_assert_str_eq(dlock_list_name(list, 0), a); /* sorted */
        ck_assert_str_eq(dlock_list_name(list, 1), b);
    }
    dlock_list_free(list);
    /* LIKE-style wildcards in a prefix are plain characters. */
    snprintf(prefix, sizeof prefix, "%s%%", name);
    list = list_of(client, prefix);
    for (size_t i = 0; i < dlock_list_count(list); i++)
        ck_assert_ptr_null(dlock_list_name(list, i));
    dlock_list_free(list);
    ck_assert_int_eq(dlock_release(la), DLOCK_OK);
    ck_assert_int_eq(dlock_release(lb), DLOCK_OK);
    ck_assert_int_eq(dlock_release(lo), DLOCK_OK);
}
END_TEST

/* Breaking another client's lock: its next extend is ELOST, anyone may
 * take the name; breaking a free name answers 0. */
START_TEST(break_frees_a_lock_held_by_another)
{
    dlock_client *other = open_other();
    dlock_lock *theirs = NULL;
    ck_assert_int_eq(dlock_acquire(other, name, 30000, 0, &theirs), DLOCK_OK);
    int rc = dlock_break(client, name);
    ck_assert_msg(rc == 1, "break: %d %s", rc, dlock_last_error());
    ck_assert_int_eq(dlock_extend(theirs, 30000), DLOCK_ELOST);
    dlock_lock *mine = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 30000, 0, &mine), DLOCK_OK);
    ck_assert_int_eq(dlock_release(theirs), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(mine), DLOCK_OK);
    ck_assert_int_eq(dlock_break(client, name), 0);
    dlock_close(other);
}
END_TEST

/* A client whose lock was broken (on session stores: its server session
 * ended) still answers a list, a holder and the store's time at the first
 * try: a read needs nothing from the session that is gone (MySQL session
 * mode's list used to fail once with "connection lost"). */
START_TEST(reads_after_a_break_answer)
{
    dlock_client *other = open_other();
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 30000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_break(other, name), 1);
    dlock_list *list = NULL;
    int rc = dlock_list_locks(client, name, &list);
    ck_assert_msg(rc == DLOCK_OK, "list: %d %s", rc, dlock_last_error());
    ck_assert_int_lt(entry_of(list, name), 0);
    dlock_list_free(list);
    char who[256];
    rc = dlock_holder(client, name, who, sizeof who);
    ck_assert_msg(rc == 0, "holder: %d %s", rc, dlock_last_error());
    int64_t now = 0;
    rc = dlock_store_time(client, &now);
    ck_assert_msg(rc == DLOCK_OK, "store time: %d %s", rc, dlock_last_error());
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    dlock_close(other);
}
END_TEST

/* An expired lease is not "live": breaking it answers 0. */
START_TEST(break_of_an_expired_lock_is_0)
{
    dlock_client *other = open_other();
    dlock_lock *theirs = NULL;
    ck_assert_int_eq(dlock_acquire(other, name, 100, 0, &theirs), DLOCK_OK);
    dlt_sleep_ms(100 + expiry_slack_ms());
    ck_assert_int_eq(dlock_break(client, name), 0);
    dlock_release(theirs);
    dlock_close(other);
}
END_TEST

/* The store's clock, on loopback, is within a few seconds of this host's. */
START_TEST(store_time_is_near_the_wall_clock)
{
    int64_t t = 0;
    ck_assert_int_eq(dlock_store_time(client, &t), DLOCK_OK);
    int64_t now = wall_now_ms();
    ck_assert_msg(t > now - 5000 && t < now + 5000, "store time %lld, wall clock %lld", (long long)t, (long long)now);
}
END_TEST

/* A record starts at 0, survives the release for the next holder (another
 * client), and is never written once the lock is lost. */
START_TEST(records_follow_the_lock)
{
    dlock_lock *l = NULL;
    int64_t slot = -1;
    ck_assert_int_eq(dlock_acquire(client, name, 30000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_record_get(l, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 0);
    ck_assert_int_eq(dlock_record_put(l, 1795984000000), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_client *other = open_other();
    ck_assert_int_eq(dlock_acquire(other, name, 30000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_record_get(l, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 1795984000000);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    /* Lost by expiry. */
    ck_assert_int_eq(dlock_acquire(other, name, 100, 0, &l), DLOCK_OK);
    dlt_sleep_ms(150);
    ck_assert_int_eq(dlock_record_put(l, 1795987600000), DLOCK_ELOST);
    dlock_release(l);
    dlock_close(other);
}
END_TEST

/* Lost by a break while the holder's own lease clock still runs: only the
 * store can tell, and the record is left as it was. */
START_TEST(record_put_after_a_break_is_lost)
{
    dlock_client *other = open_other();
    dlock_lock *theirs = NULL, *mine = NULL;
    int64_t slot = -1;
    ck_assert_int_eq(dlock_acquire(other, name, 30000, 0, &theirs), DLOCK_OK);
    ck_assert_int_eq(dlock_record_put(theirs, 1000), DLOCK_OK);
    ck_assert_int_eq(dlock_break(client, name), 1);
    ck_assert_int_eq(dlock_acquire(client, name, 30000, 0, &mine), DLOCK_OK);
    ck_assert_int_eq(dlock_record_put(theirs, 2000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_record_get(mine, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 1000);
    ck_assert_int_eq(dlock_release(mine), DLOCK_OK);
    dlock_release(theirs);
    dlock_close(other);
}
END_TEST

void conformance_add_operations(Suite *s)
{
    TCase *t;
    t = tcase_create("operations");
    tcase_add_checked_fixture(t, conformance_setup, conformance_teardown);
    tcase_add_test(t, list_shows_a_held_lock);
    tcase_add_test(t, list_prefix_filters);
    tcase_add_test(t, list_names_a_renewed_lock);
    tcase_add_test(t, break_frees_a_lock_held_by_another);
    tcase_add_test(t, reads_after_a_break_answer);
    tcase_add_test(t, break_of_an_expired_lock_is_0);
    tcase_add_test(t, store_time_is_near_the_wall_clock);
    tcase_add_test(t, records_follow_the_lock);
    tcase_add_test(t, record_put_after_a_break_is_lost);
    suite_add_tcase(s, t);
    t = tcase_create("cli");
    tcase_add_checked_fixture(t, conformance_setup, conformance_teardown);
    tcase_add_test(t, cli_list_status_and_break);
    tcase_add_test(t, cli_once_per_and_environment);
    suite_add_tcase(s, t);
}
