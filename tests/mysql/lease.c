/*
 * MySQL suite, tcase "lease": lease mode, fencing=on, list, break and run records.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

static uint64_t fence_of(dlock_lock *l)
{
    uint64_t t = 0;
    ck_assert_msg(dlock_fence(l, &t) == DLOCK_OK, "fence: %s", dlock_last_error());
    return t;
}

START_TEST(url_common_options)
{
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open(url_with(url, "prefix=x"), &c), DLOCK_EINVAL);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "prefix"));
    ck_assert_int_eq(dlock_open(url_with(url, "mode=lock"), &c), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_open(url_with(url, "fencing=yes"), &c), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_open(url_with(url, "table=a-b"), &c), DLOCK_EINVAL);
    ck_assert_ptr_null(strstr(dlock_last_error(), "p@ss"));
    /* A table of its own, created on first use. */
    c = open_url(url_with(url, "mode=lease&table=dlock_leases_other"));
    dlock_lock *l = NULL;
    char *name = unique("tbl");
    ck_assert_int_eq(dlock_acquire(c, name, 5000, 0, &l), DLOCK_OK);
    ck_assert(!busy_at(lease_url, name)); /* another table: another lock */
    ck_assert(busy_at(url_with(url, "table=dlock_leases_other&mode=lease"), name));
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
    /* Session mode without fencing=on gives no token. */
    c = open_client();
    ck_assert_int_eq(dlock_acquire(c, name, 5000, 0, &l), DLOCK_OK);
    uint64_t t = 0;
    ck_assert_int_eq(dlock_fence(l, &t), DLOCK_ENOTSUP);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
    free(name);
}
END_TEST

/* kill -9 of a lease-mode holder: busy until its TTL, free after it. */
START_TEST(lease_kill9_frees_after_the_ttl_not_before)
{
    char *name = unique("lk9");
    const uint32_t ttl = 2000;
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, lease_url, name, ttl, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    int64_t start = dlt_now_ms();
    dlt_child_stop(&holder, SIGKILL);
    ck_assert(busy_at(lease_url, name)); /* nothing ends a lease but its TTL */
    dlt_sleep_ms(ttl / 2);
    ck_assert(busy_at(lease_url, name));
    int64_t took = dlt_acquire_within(lease_url, name, 5000, ttl + 1000);
    int64_t since = dlt_now_ms() - start;
    fprintf(stderr, "FIGURE: lease mode, kill -9 of the holder (TTL %u ms) -> free after %lld ms\n", ttl,
            (long long)since);
    ck_assert_int_ge(took, 0);
    ck_assert_int_ge(since, ttl - 100);
    free(name);
}
END_TEST

/* SIGSTOP past the TTL: the next holder takes it; the woken one is ELOST. */
START_TEST(lease_sigstop_past_the_ttl_loses_the_lock)
{
    char *name = unique("lstop");
    const uint32_t ttl = 1500;
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, lease_url, name, ttl, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    kill(holder.pid, SIGSTOP);
    int64_t start = dlt_now_ms();
    int busy = busy_at(lease_url, name);
    dlock_client *c = open_url(lease_url);
    dlock_lock *l = NULL;
    int rc = dlock_acquire(c, name, 30000, (int32_t)ttl + 1000, &l);
    int64_t since = dlt_now_ms() - start;
    kill(holder.pid, SIGCONT);
    ck_assert(busy);
    ck_assert_msg(rc == DLOCK_OK, "%s", dlock_last_error());
    ck_assert_int_ge(since, ttl - 100);
    ck_assert_int_le(since, ttl + 1000);
    fprintf(stderr, "FIGURE: lease mode, SIGSTOP of the holder (TTL %u ms) -> a waiter got it after %lld ms\n", ttl,
            (long long)since);
    ck_assert_int_eq(dlt_child_cmd(&holder, "extend 5000", 5000), DLOCK_ELOST);
    ck_assert_int_eq(dlt_child_cmd(&holder, "release", 5000), DLOCK_ELOST);
    ck_assert(busy_at(lease_url, name));
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
    dlt_child_stop(&holder, 0);
    free(name);
}
END_TEST

/* The local TCP ports of this process's sockets, as a bitmap by port. */
static void local_ports(unsigned char *seen)
{
    memset(seen, 0, 65536 / 8);
    for (int fd = 0; fd < 1024; fd++) {
        struct sockaddr_storage a;
        socklen_t len = sizeof a;
        if (getsockname(fd, (struct sockaddr *)&a, &len) != 0 || a.ss_family != AF_INET)
            continue;
        unsigned port = ntohs(((struct sockaddr_in *)&a)->sin_port);
        seen[port / 8] |= (unsigned char)(1u << (port % 8));
    }
}

/* The server's connection ids of the TCP sockets this process opened since
 * `before` (a local_ports() snapshot): exactly our client's, whoever else
 * uses the server meanwhile. */
static int connections_since(const unsigned char *before, long long *ids, int max)
{
    static unsigned char now[65536 / 8];
    local_ports(now);
    MYSQL *db = raw_open(url);
    int n = 0;
    for (unsigned port = 1; port < 65536 && n < max; port++) {
        int bit = (int)(1u << (port % 8));
        if (!(now[port / 8] & bit) || (before[port / 8] & bit))
            continue;
        char host[32];
        snprintf(host, sizeof host, "127.0.0.1:%u", port);
        long long id = raw_int(db, "SELECT MAX(ID) FROM information_schema.PROCESSLIST WHERE HOST = ?", host);
        if (id > 0)
            ids[n++] = id;
    }
    mysql_close(db);
    return n;
}

/* KILL of a lease-mode holder's connection: no session held the lock, so it
 * survives; the next call reconnects. */
START_TEST(lease_kill_of_the_connection_keeps_the_lock)
{
    static unsigned char before[65536 / 8];
    local_ports(before);
    dlock_client *c = open_url(lease_url);
    char *name = unique("lkill");
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 0, &l), DLOCK_OK);
    uint64_t token = fence_of(l);
    long long ids[8];
    int n = connections_since(before, ids, 8);
    ck_assert_int_ge(n, 1);
    for (int i = 0; i < n; i++)
        kill_connection(ids[i], 0);
    dlt_sleep_ms(100);
    ck_assert(busy_at(lease_url, name));
    ck_assert_msg(dlock_extend(l, 10000) == DLOCK_OK, "%s", dlock_last_error());
    ck_assert_uint_eq(fence_of(l), token);
    ck_assert_int_gt(dlock_remaining_ms(l), 9000);
    ck_assert(busy_at(lease_url, name));
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert(!busy_at(lease_url, name));
    dlock_close(c);
    free(name);
}
END_TEST

/* A role that may not create the table: a plain error that points to the
 * DDL in the docs. */
START_TEST(lease_table_not_creatable)
{
    if (!root_url)
        return;
    MYSQL *root = raw_open(root_url);
    ck_assert_int_eq(mysql_query(root, "CREATE USER IF NOT EXISTS 'dlock_rw'@'127.0.0.1' IDENTIFIED BY 'rw'"), 0);
    ck_assert_int_eq(mysql_query(root, "GRANT SELECT, INSERT, UPDATE ON dlock_test.* TO 'dlock_rw'@'127.0.0.1'"), 0);
    mysql_close(root);
    char rw_url[8192];
    const char *at = strrchr(url, '@');
    snprintf(rw_url, sizeof rw_url, "mysql://dlock_rw:rw%s%sfencing=on&table=dlock_never_made", at,
             strchr(at, '?') ? "&" : "?");
    const char *modes[2] = {"", "&mode=lease"};
    for (int i = 0; i < 2; i++) {
        char u[8300];
        snprintf(u, sizeof u, "%s%s", rw_url, modes[i]);
        dlock_client *c = open_url(u);
        dlock_lock *l = NULL;
        ck_assert_int_eq(dlock_acquire(c, "not-creatable", 5000, 0, &l), DLOCK_EBACKEND);
        ck_assert_msg(strstr(dlock_last_error(), "docs/mysql.md"), "%s", dlock_last_error());
        ck_assert(!busy_at(url, "not-creatable")); /* session mode let the lock go */
        dlock_close(c);
    }
}
END_TEST

/* fencing=on: tokens grow across clients and modes of use; a waiter gets a
 * higher one than the holder it waited for. */
START_TEST(fencing_tokens_increase_across_clients)
{
    char *name = unique("fence");
    const char *urls[2] = {fence_url, lease_url};
    for (int u = 0; u < 2; u++) {
        dlock_client *a = open_url(urls[u]), *b = open_url(urls[u]);
        uint64_t last = 0;
        for (int i = 0; i < 6; i++) {
            dlock_lock *l = NULL;
            ck_assert_int_eq(dlock_acquire(i % 2 ? a : b, name, 5000, 0, &l), DLOCK_OK);
            uint64_t t = fence_of(l);
            ck_assert_msg(t > last, "%s: token %llu after %llu", u ? "lease" : "session", (unsigned long long)t,
                          (unsigned long long)last);
            last = t;
            ck_assert_int_eq(dlock_extend(l, 5000), DLOCK_OK);
            ck_assert_uint_eq(fence_of(l), t);
            ck_assert_int_eq(dlock_release(l), DLOCK_OK);
        }
        dlock_close(a);
        dlock_close(b);
    }
    free(name);
}
END_TEST

static int list_find(const dlock_list *list, const char *name)
{
    for (size_t i = 0; i < dlock_list_count(list); i++)
        if (dlock_list_name(list, i) && strcmp(dlock_list_name(list, i), name) == 0)
            return (int)i;
    return -1;
}

static void print_list(const char *what, const dlock_list *list)
{
    for (size_t i = 0; i < dlock_list_count(list); i++)
        fprintf(stderr, "LIST %s: name=%s key=%s holder=%s since=%lld expires=%lld fence=%llu\n", what,
                dlock_list_name(list, i) ? dlock_list_name(list, i) : "(none)", dlock_list_key(list, i),
                dlock_list_holder(list, i), (long long)dlock_list_since(list, i),
                (long long)dlock_list_expires(list, i), (unsigned long long)dlock_list_fence(list, i));
}

START_TEST(lease_list_break_and_records)
{
    dlock_client *c = open_url(lease_url), *other = open_url(lease_url);
    char *prefix = unique("llist"), name_a[300], name_b[300];
    snprintf(name_a, sizeof name_a, "%s/a", prefix);
    snprintf(name_b, sizeof name_b, "%s/B \xc3\xa9", prefix); /* any bytes: the name is the key */
    dlock_lock *la = NULL, *lb = NULL;
    ck_assert_int_eq(dlock_acquire(c, name_a, 30000, 0, &la), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c, name_b, 30000, 0, &lb), DLOCK_OK);
    int64_t now = 0;
    ck_assert_int_eq(dlock_store_time(other, &now), DLOCK_OK);
    ck_assert_int_lt(llabs(now - (int64_t)time(NULL) * 1000), 5000);
    dlock_list *list = NULL;
    ck_assert_msg(dlock_list_locks(other, prefix, &list) == DLOCK_OK, "%s", dlock_last_error());
    print_list("lease", list);
    ck_assert_uint_eq(dlock_list_count(list), 2);
    int i = list_find(list, name_b);
    ck_assert_int_ge(i, 0);
    ck_assert_int_eq(dlock_list_pid(list, (size_t)i), (int64_t)getpid());
    ck_assert_uint_eq(dlock_list_fence(list, (size_t)i), fence_of(lb));
    ck_assert_int_gt(dlock_list_expires(list, (size_t)i), now + 25000);
    ck_assert_int_le(dlock_list_since(list, (size_t)i), now);
    dlock_list_free(list);
    /* Run records: kept across acquisitions, written only by the owner. */
    int64_t slot = -1;
    ck_assert_int_eq(dlock_record_get(la, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 0);
    ck_assert_int_eq(dlock_record_put(la, 42), DLOCK_OK);
    ck_assert_int_eq(dlock_record_put(la, 42), DLOCK_OK); /* the same value again */
    ck_assert_int_eq(dlock_record_get(la, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 42);
    /* Taken away while its own lease still runs (broken, then taken by
     * another): the old handle's record write, extend and release are each
     * refused by the owner check (one handle each: ELOST is sticky). */
    for (int op = 0; op < 3; op++) {
        dlock_lock *old = NULL, *taker = NULL;
        char name_c[300];
        snprintf(name_c, sizeof name_c, "%s/c%d", prefix, op);
        ck_assert_int_eq(dlock_acquire(c, name_c, 30000, 0, &old), DLOCK_OK);
        ck_assert_int_eq(dlock_break(other, name_c), 1);
        ck_assert_int_eq(dlock_acquire(other, name_c, 30000, 0, &taker), DLOCK_OK);
        int rc = op == 0 ? dlock_record_put(old, 99) : op == 1 ? dlock_extend(old, 30000) : dlock_release(old);
        ck_assert_msg(rc == DLOCK_ELOST, "op %d: %d %s", op, rc, dlock_last_error());
        ck_assert_int_eq(dlock_record_get(taker, &slot), DLOCK_OK);
        ck_assert_int_eq(slot, 0); /* not 99 */
        ck_assert_int_eq(dlock_release(taker), DLOCK_OK);
        if (op != 2)
            (void)dlock_release(old);
    }
    /* Break: the holder learns it at its next call. */
    ck_assert_int_eq(dlock_break(other, name_a), 1);
    ck_assert_int_eq(dlock_break(other, name_a), 0);
    ck_assert_int_eq(dlock_record_put(la, 43), DLOCK_ELOST);
    ck_assert_int_eq(dlock_extend(la, 5000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(la), DLOCK_ELOST);
    ck_assert_int_eq(dlock_acquire(other, name_a, 5000, 0, &la), DLOCK_OK);
    ck_assert_int_eq(dlock_record_get(la, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 42);
    ck_assert_int_eq(dlock_release(la), DLOCK_OK);
    ck_assert_int_eq(dlock_list_locks(other, prefix, &list), DLOCK_OK);
    ck_assert_uint_eq(dlock_list_count(list), 1);
    dlock_list_free(list);
    ck_assert_int_eq(dlock_release(lb), DLOCK_OK);
    dlock_close(c);
    dlock_close(other);
    free(prefix);
}
END_TEST

START_TEST(session_list_break_and_records)
{
    dlock_client *c = open_url(fence_url), *other = open_client();
    char *name = unique("slist");
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 30000, 0, &l), DLOCK_OK);
    int64_t slot = -1;
    ck_assert_int_eq(dlock_record_get(l, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 0);
    ck_assert_int_eq(dlock_record_put(l, 7), DLOCK_OK);
    ck_assert_int_eq(dlock_record_put(l, 7), DLOCK_OK);
    ck_assert_int_eq(dlock_record_get(l, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 7);
    /* Without the metadata_lock_info plugin: the names of the fence table. */
    MYSQL *root = root_url ? raw_open(root_url) : NULL;
    int had_plugin = root && mysql_query(root, "UNINSTALL SONAME 'metadata_lock_info'") == 0;
    dlock_list *list = NULL;
    ck_assert_msg(dlock_list_locks(other, name, &list) == DLOCK_OK, "%s", dlock_last_error());
    print_list("session (fence table)", list);
    ck_assert_uint_eq(dlock_list_count(list), 1);
    ck_assert_str_eq(dlock_list_name(list, 0), name);
    ck_assert_uint_eq(dlock_list_fence(list, 0), fence_of(l));
    dlock_list_free(list);
    /* Without the plugin and without a database in the URL (the quick
     * start's): the same message and status as with one (issue 24), not
     * "No database selected". */
    if (had_plugin) {
        char bare[8192];
        const char *path = strchr(strstr(url, "://") + 3, '/');
        ck_assert_ptr_nonnull(path);
        snprintf(bare, sizeof bare, "%.*s/", (int)(path - url), url);
        dlock_client *nodb = open_url(bare);
        list = NULL;
        ck_assert_int_eq(dlock_list_locks(nodb, "", &list), DLOCK_ENOTSUP);
        ck_assert_msg(strstr(dlock_last_error(), "metadata_lock_info") && strstr(dlock_last_error(), "/DBNAME"), "%s",
                      dlock_last_error());
        ck_assert_msg(!strstr(dlock_last_error(), "No database"), "%s", dlock_last_error());
        dlock_close(nodb);
    }
    /* With it (when root can install it): every user lock. */
    if (root) {
        if (mysql_query(root, "INSTALL SONAME 'metadata_lock_info'") == 0) {
            int rc = dlock_list_locks(other, name, &list);
            if (!had_plugin)
                mysql_query(root, "UNINSTALL SONAME 'metadata_lock_info'");
            ck_assert_msg(rc == DLOCK_OK, "%s", dlock_last_error());
            print_list("session (metadata_lock_info)", list);
            ck_assert_uint_eq(dlock_list_count(list), 1);
            ck_assert_str_eq(dlock_list_name(list, 0), name);
            dlock_list_free(list);
        }
        mysql_close(root);
    }
    /* A user who may not end another's session: a plain error. */
    char weak_url[8192];
    const char *at = strrchr(url, '@');
    snprintf(weak_url, sizeof weak_url, "mysql://dlock2:p%%40ss%%3Aw%%2Frd%%25%s", at);
    dlock_client *weak = open_url(weak_url);
    ck_assert_int_eq(dlock_break(weak, name), DLOCK_EBACKEND);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "privilege"));
    ck_assert_ptr_null(strstr(dlock_last_error(), "p@ss"));
    dlock_close(weak);
    ck_assert_int_eq(dlock_extend(l, 30000), DLOCK_OK);
    /* The same user may: the holder's session ends. */
    ck_assert_int_eq(dlock_break(other, name), 1);
    ck_assert_int_eq(dlock_extend(l, 30000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_record_put(l, 8), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    ck_assert_int_eq(dlock_break(other, name), 0);
    /* The record survives the holder, and only a holder writes it. */
    ck_assert_int_eq(dlock_acquire(other, name, 30000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_record_get(l, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 7);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    /* A plain session lock (digest name, no fence table entry). */
    int64_t now = 0;
    ck_assert_int_eq(dlock_store_time(other, &now), DLOCK_OK);
    ck_assert_int_lt(llabs(now - (int64_t)time(NULL) * 1000), 5000);
    dlock_close(c);
    dlock_close(other);
    free(name);
}
END_TEST

void dlt_mysql_add_lease(Suite *s)
{
    TCase *tc = tcase_create("lease");
    tcase_add_checked_fixture(tc, wave_setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, url_common_options);
    tcase_add_test(tc, lease_kill9_frees_after_the_ttl_not_before);
    tcase_add_test(tc, lease_sigstop_past_the_ttl_loses_the_lock);
    tcase_add_test(tc, lease_kill_of_the_connection_keeps_the_lock);
    tcase_add_test(tc, fencing_tokens_increase_across_clients);
    tcase_add_test(tc, lease_table_not_creatable);
    tcase_add_test(tc, lease_list_break_and_records);
    tcase_add_test(tc, session_list_break_and_records);
    suite_add_tcase(s, tc);
}
