/*
 * PostgreSQL suite, tcases "key" and "sql": the lock-name to advisory-key vectors (no server needed),
 * the documented key in SQL and psql excludes dlock, hostile names.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* The same, for psql with the name in the variable `name`. */
#define DOC_PSQL_KEY "('x' || left(encode(sha256(convert_to(:'name', 'UTF8')), 'hex'), 16))::bit(64)::bigint"

/* --- key vectors (also in docs/postgresql.md) ----------------------------------------- */

static const struct {
    const char *name;
    const char *first8_hex; /* first 8 bytes of SHA-256(name) */
    int64_t key;
} key_vectors[] = {
    {"a", "ca978112ca1bbdca", INT64_C(-3848465438864589366)},
    {"abc", "ba7816bf8f01cfea", INT64_C(-5010229573455851542)},
    {"nightly-backup", "38b131d22186765a", INT64_C(4085101115577103962)},
    {"billing/invoice-run", "1db31f52226e6ed9", INT64_C(2140088685556559577)},
    {"it's", "24ceef1cb6b0cbc0", INT64_C(2652320137170963392)},
    {"\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87", "1de36a32af798da0", INT64_C(2153681812738117024)}, /* ключ */
    {"\xf0\x9f\x94\x92 lock", "ad760047a9ecbded", INT64_C(-5947565950102618643)},           /* 🔒 lock */
    {"Robert'); DROP TABLE students;--", "a22dd20f3972ce1b", INT64_C(-6760516502783078885)},
};

static char *repeat_char(char ch, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, ch, n);
    s[n] = '\0';
    return s;
}

START_TEST(test_key_vectors)
{
    for (size_t i = 0; i < sizeof key_vectors / sizeof key_vectors[0]; i++) {
        const char *n = key_vectors[i].name;
        int64_t key = dlock__pg_key(n, strlen(n));
        ck_assert_msg(key == key_vectors[i].key, "key of '%s': %lld, expected %lld", n, (long long)key,
                      (long long)key_vectors[i].key);
        unsigned char digest[32];
        char hex[17];
        dlock__sha256(n, strlen(n), digest);
        for (int b = 0; b < 8; b++)
            snprintf(hex + 2 * b, 3, "%02x", digest[b]);
        ck_assert_str_eq(hex, key_vectors[i].first8_hex);
    }
    char *x255 = repeat_char('x', 255);
    ck_assert(dlock__pg_key(x255, 255) == INT64_C(-3303942443734166164));
    free(x255);
    /* The name's bytes, not a C string: a shorter prefix is another key. */
    ck_assert(dlock__pg_key("abc", 2) != dlock__pg_key("abc", 3));
}
END_TEST

/* --- a psql process driven over pipes ------------------------------------------------- */

typedef struct psql_proc {
    pid_t pid;
    int to_psql, from_psql;
} psql_proc;

static int have_psql(void)
{
    return dlt_system("command -v psql >/dev/null 2>&1") == 0;
}

static void psql_start(psql_proc *p, const char *name)
{
    int down[2], up[2];
    ck_assert(pipe(down) == 0 && pipe(up) == 0);
    char var[600];
    snprintf(var, sizeof var, "name=%s", name);
    fflush(NULL);
    p->pid = fork();
    ck_assert(p->pid >= 0);
    if (p->pid == 0) {
        dup2(down[0], 0);
        dup2(up[1], 1);
        close(down[0]), close(down[1]), close(up[0]), close(up[1]);
        execlp("psql", "psql", "-X", "-q", "-A", "-t", "-v", var, "-v", "ON_ERROR_STOP=0", "-d", pg_url, (char *)NULL);
        _exit(127);
    }
    close(down[0]);
    close(up[1]);
    p->to_psql = down[1];
    p->from_psql = up[0];
}

/* Send one line; the next line psql prints (empty string on timeout). */
static void psql_query(psql_proc *p, const char *sql, char *answer, size_t len)
{
    ck_assert(write(p->to_psql, sql, strlen(sql)) == (ssize_t)strlen(sql));
    ck_assert(write(p->to_psql, "\n", 1) == 1);
    size_t used = 0;
    int64_t deadline = dlt_now_ms() + 5000;
    answer[0] = '\0';
    while (used + 1 < len && dlt_now_ms() < deadline) {
        struct pollfd pfd = {p->from_psql, POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        char ch;
        if (read(p->from_psql, &ch, 1) != 1)
            break;
        if (ch == '\n')
            break;
        answer[used++] = ch;
    }
    answer[used] = '\0';
}

static void psql_stop(psql_proc *p)
{
    close(p->to_psql);
    close(p->from_psql);
    int status;
    waitpid(p->pid, &status, 0);
}

/* --- plain SQL and psql take the same lock -------------------------------------------- */

START_TEST(test_sql_key_matches)
{
    PGconn *pg = raw_connect("dlock-test-sql");
    for (size_t i = 0; i < sizeof key_vectors / sizeof key_vectors[0]; i++) {
        char *v = raw_value(pg, "SELECT " DOC_KEY_SQL, key_vectors[i].name);
        ck_assert_msg(v && strtoll(v, NULL, 10) == key_vectors[i].key, "SQL key of '%s': %s", key_vectors[i].name,
                      v ? v : "NULL");
        free(v);
    }
    PQfinish(pg);
}
END_TEST

/* A session holding the documented SQL lock makes dlock_acquire busy, and
 * the other way round. */
START_TEST(test_sql_lock_vs_dlock)
{
    char *name = dlt_unique_name("pg-sql");
    PGconn *pg = raw_connect("sql-holder");
    dlock_client *c = open_client(pg_url);
    dlock_lock *l = NULL;

    ck_assert(raw_bool(pg, "SELECT pg_try_advisory_lock(" DOC_KEY_SQL ")", name));
    ck_assert_int_eq(dlock_acquire(c, name, 5000, 0, &l), DLOCK_EBUSY);
    char who[256];
    ck_assert_int_eq(dlock_holder(c, name, who, sizeof who), 1);
    ck_assert_msg(strstr(who, "application=sql-holder") != NULL, "holder: %s", who);
    ck_assert(raw_bool(pg, "SELECT pg_advisory_unlock(" DOC_KEY_SQL ")", name));
    ck_assert_int_eq(dlock_acquire(c, name, 5000, 0, &l), DLOCK_OK);

    ck_assert(!raw_bool(pg, "SELECT pg_try_advisory_lock(" DOC_KEY_SQL ")", name));
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert(raw_bool(pg, "SELECT pg_try_advisory_lock(" DOC_KEY_SQL ")", name));
    ck_assert(raw_bool(pg, "SELECT pg_advisory_unlock(" DOC_KEY_SQL ")", name));
    dlock_close(c);
    PQfinish(pg);
    free(name);
}
END_TEST

/* The same with the real psql and the exact text of docs/postgresql.md. */
START_TEST(test_psql_lock_vs_dlock)
{
    if (!have_psql()) {
        fprintf(stderr, "psql not found: the plain-SQL test above covers the same SQL\n");
        return;
    }
    const char *names[] = {"pg-psql-it's \"quoted\" \\ back", "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87"};
    for (size_t i = 0; i < 2; i++) {
        char *name = dlt_unique_name(names[i]);
        psql_proc p;
        char answer[64];
        psql_start(&p, name);
        dlock_client *c = open_client(pg_url);
        dlock_lock *l = NULL;

        psql_query(&p, "SELECT pg_try_advisory_lock(" DOC_PSQL_KEY ");", answer, sizeof answer);
        ck_assert_str_eq(answer, "t");
        ck_assert_int_eq(dlock_acquire(c, name, 5000, 0, &l), DLOCK_EBUSY);
        psql_query(&p, "SELECT pg_advisory_unlock(" DOC_PSQL_KEY ");", answer, sizeof answer);
        ck_assert_str_eq(answer, "t");
        ck_assert_int_eq(dlock_acquire(c, name, 5000, 0, &l), DLOCK_OK);
        psql_query(&p, "SELECT pg_try_advisory_lock(" DOC_PSQL_KEY ");", answer, sizeof answer);
        ck_assert_str_eq(answer, "f");
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
        psql_query(&p, "SELECT pg_try_advisory_lock(" DOC_PSQL_KEY ");", answer, sizeof answer);
        ck_assert_str_eq(answer, "t");
        psql_stop(&p);
        dlock_close(c);
        free(name);
    }
}
END_TEST

/* Names full of quotes, backslashes and SQL are just names. */
START_TEST(test_hostile_names)
{
    char *long_quotes = repeat_char('\'', 255);
    const char *names[] = {
        "'; DROP TABLE pg_class; --",
        "Robert'); DROP TABLE students;--",
        "\"; SELECT pg_terminate_backend(pg_backend_pid()); --",
        "back\\slash\\'\\\\",
        "$1",
        "$$ dollar $$",
        "%s%n%x",
        ":'name'",
        "E'\\x00'",
        "line\nbreak\ttab",
        "\xe2\x80\x8b zero width",
        long_quotes,
    };
    dlock_client *c = open_client(pg_url);
    PGconn *pg = raw_connect("dlock-test-hostile");
    PGresult *before = PQexec(pg, "SELECT count(*) FROM pg_class");
    ck_assert(PQresultStatus(before) == PGRES_TUPLES_OK);
    dlock_lock *locks[sizeof names / sizeof names[0]];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        ck_assert_msg(dlock_acquire(c, names[i], 10000, 0, &locks[i]) == DLOCK_OK, "acquire '%s': %s", names[i],
                      dlock_last_error());
        /* Held as exactly this key: plain SQL cannot take it. */
        ck_assert_msg(!raw_bool(pg, "SELECT pg_try_advisory_lock(" DOC_KEY_SQL ")", names[i]), "SQL took '%s'",
                      names[i]);
        ck_assert_int_eq(held_elsewhere(names[i]), 1);
        ck_assert_int_eq(dlock_extend(locks[i], 10000), DLOCK_OK);
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        ck_assert_int_eq(dlock_release(locks[i]), DLOCK_OK);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        ck_assert_int_eq(held_elsewhere(names[i]), 0);
    PGresult *after = PQexec(pg, "SELECT count(*) FROM pg_class");
    ck_assert(PQresultStatus(after) == PGRES_TUPLES_OK);
    ck_assert_str_eq(PQgetvalue(before, 0, 0), PQgetvalue(after, 0, 0));
    PQclear(before);
    PQclear(after);
    PQfinish(pg);
    dlock_close(c);
    free(long_quotes);
}
END_TEST

void dlt_pg_add_key(Suite *s)
{
    TCase *tc = tcase(s, "key", 30);
    tcase_add_test(tc, test_key_vectors);
}

void dlt_pg_add_sql(Suite *s)
{
    TCase *tc = tcase(s, "sql", 30);
    tcase_add_test(tc, test_sql_key_matches);
    tcase_add_test(tc, test_sql_lock_vs_dlock);
    tcase_add_test(tc, test_psql_lock_vs_dlock);
    tcase_add_test(tc, test_hostile_names);
}
