/*
 * The PostgreSQL backend: its key derivation (no server needed), and against
 * a live server ($DLOCK_TEST_PG_URL): plain SQL and psql take the same lock,
 * one round trip per operation, the lease, waiting and cancel, and real
 * faults (pg_terminate_backend, kill -9, SIGSTOP, a stalled network, a
 * server restart).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../backends/postgresql/key.h"
#include "internal.h"
#include "common.h"
#include "postgresql/suite.h"

/* The SQL of docs/postgresql.md that derives the key of a name. */
#define DOC_KEY_SQL "('x' || left(encode(sha256(convert_to($1, 'UTF8')), 'hex'), 16))::bit(64)::bigint"
/* The same, for psql with the name in the variable `name`. */
#define DOC_PSQL_KEY "('x' || left(encode(sha256(convert_to(:'name', 'UTF8')), 'hex'), 16))::bit(64)::bigint"

static const char *pg_url;

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

/* --- helpers -------------------------------------------------------------------------- */

static PGconn *raw_connect(const char *appname)
{
    const char *keywords[] = {"dbname", "application_name", NULL};
    const char *values[] = {pg_url, appname, NULL};
    PGconn *pg = PQconnectdbParams(keywords, values, 1);
    ck_assert_msg(pg && PQstatus(pg) == CONNECTION_OK, "raw connect: %s", pg ? PQerrorMessage(pg) : "");
    return pg;
}

/* Run `sql` with one text parameter; the first column of the first row. */
static char *raw_value(PGconn *pg, const char *sql, const char *param)
{
    const char *values[1] = {param};
    PGresult *res = PQexecParams(pg, sql, param ? 1 : 0, NULL, values, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(pg));
    char *v = PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) ? strdup(PQgetvalue(res, 0, 0)) : NULL;
    PQclear(res);
    return v;
}

static int raw_bool(PGconn *pg, const char *sql, const char *param)
{
    char *v = raw_value(pg, sql, param);
    int t = v && v[0] == 't';
    free(v);
    return t;
}

/* The server pid of the session that holds (granted) or waits for (not
 * granted) `name`, or 0. */
static int advisory_pid(PGconn *pg, const char *name, int granted)
{
    char *pid = raw_value(pg,
                          granted ? "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
                                    " AND classid = ((" DOC_KEY_SQL " >> 32) & 4294967295)::oid"
                                    " AND objid = (" DOC_KEY_SQL " & 4294967295)::oid"
                                  : "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                                    " AND objsubid = 1 AND classid = ((" DOC_KEY_SQL " >> 32) & 4294967295)::oid"
                                    " AND objid = (" DOC_KEY_SQL " & 4294967295)::oid",
                          name);
    int result = pid ? atoi(pid) : 0;
    free(pid);
    return result;
}

/* The server pid of the session that holds `name`, or 0. */
static int backend_pid_of_holder(PGconn *pg, const char *name)
{
    return advisory_pid(pg, name, 1);
}

static int wait_for_holder_pid(PGconn *pg, const char *name, int timeout_ms)
{
    int64_t deadline = dlt_now_ms() + timeout_ms;
    int pid;
    while ((pid = backend_pid_of_holder(pg, name)) == 0 && dlt_now_ms() < deadline)
        dlt_sleep_ms(20);
    return pid;
}

static void terminate_backend(PGconn *pg, int pid)
{
    char arg[16];
    snprintf(arg, sizeof arg, "%d", pid);
    ck_assert(raw_bool(pg, "SELECT pg_terminate_backend($1::int)", arg));
}

static dlock_client *open_client(const char *url)
{
    dlock_client *c = NULL;
    int rc = dlock_open(url, &c);
    ck_assert_msg(rc == DLOCK_OK, "dlock_open: %d %s", rc, dlock_last_error());
    return c;
}

static int held_elsewhere(const char *name)
{
    dlock_client *c = open_client(pg_url);
    int rc = dlock_holder(c, name, NULL, 0);
    dlock_close(c);
    ck_assert_msg(rc == 0 || rc == 1, "holder: %d %s", rc, dlock_last_error());
    return rc;
}

static const char *dlock_bin(void)
{
    static char path[4096];
    const char *bin = getenv("DLOCK_BIN");
    if (bin && *bin)
        return bin;
    const char *top = getenv("top_builddir");
    snprintf(path, sizeof path, "%s/dlock", top && *top ? top : ".");
    return access(path, X_OK) == 0 ? path : NULL;
}

static const char *pg_server_script(void)
{
    static char path[4096];
    const char *top = getenv("top_srcdir");
    snprintf(path, sizeof path, "%s/tests/pg-server.sh", top && *top ? top : ".");
    return access(path, R_OK) == 0 ? path : NULL;
}

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

/* --- a TCP proxy that counts round trips and can stall or cut ------------------------- */

#define PROXY_MAX_PAIRS 8

typedef struct proxy {
    int listen_fd;
    int port;
    struct sockaddr_storage target;
    socklen_t target_len;
    pthread_t thread;
    atomic_int stop;
    atomic_int stalled; /* forward nothing (a vanished network) */
    atomic_int cut;     /* close every connection */
    atomic_int turns;   /* client->server bursts that follow server data: round trips */
    atomic_int accepted;
    int pairs[PROXY_MAX_PAIRS][2]; /* client fd, server fd; -1 when free */
} proxy;

static void proxy_close_pair(int *pair)
{
    if (pair[0] >= 0)
        close(pair[0]);
    if (pair[1] >= 0)
        close(pair[1]);
    pair[0] = pair[1] = -1;
}

static void *proxy_main(void *arg)
{
    proxy *px = arg;
    int last_direction = 0; /* 1 client->server, 2 server->client */
    char buf[65536];
    while (!atomic_load(&px->stop)) {
        if (atomic_load(&px->cut)) {
            for (int i = 0; i < PROXY_MAX_PAIRS; i++)
                proxy_close_pair(px->pairs[i]);
            atomic_store(&px->cut, 0);
        }
        struct pollfd pfd[1 + 2 * PROXY_MAX_PAIRS];
        int n = 0;
        pfd[n++] = (struct pollfd){px->listen_fd, POLLIN, 0};
        int stalled = atomic_load(&px->stalled);
        for (int i = 0; i < PROXY_MAX_PAIRS; i++)
            for (int side = 0; side < 2; side++)
                pfd[n++] = (struct pollfd){stalled ? -1 : px->pairs[i][side], POLLIN, 0};
        if (poll(pfd, (nfds_t)n, 20) <= 0)
            continue;
        if (pfd[0].revents & POLLIN) {
            int client = accept(px->listen_fd, NULL, NULL);
            if (client >= 0) {
                int server = socket(px->target.ss_family, SOCK_STREAM, 0);
                int slot = -1;
                for (int i = 0; i < PROXY_MAX_PAIRS && slot < 0; i++)
                    if (px->pairs[i][0] < 0)
                        slot = i;
                if (server >= 0 && slot >= 0 && connect(server, (struct sockaddr *)&px->target, px->target_len) == 0) {
                    px->pairs[slot][0] = client;
                    px->pairs[slot][1] = server;
                    atomic_fetch_add(&px->accepted, 1);
                } else {
                    close(client);
                    if (server >= 0)
                        close(server);
                }
            }
        }
        for (int i = 0; i < PROXY_MAX_PAIRS; i++) {
            for (int side = 0; side < 2; side++) {
                struct pollfd *p = &pfd[1 + 2 * i + side];
                if (p->fd < 0 || !p->revents || px->pairs[i][side] < 0)
                    continue;
                ssize_t got = read(px->pairs[i][side], buf, sizeof buf);
                if (got <= 0) {
                    proxy_close_pair(px->pairs[i]);
                    break;
                }
                if (side == 0 && last_direction != 1)
                    atomic_fetch_add(&px->turns, 1);
                last_direction = side == 0 ? 1 : 2;
                ssize_t off = 0;
                while (off < got) {
                    ssize_t w = write(px->pairs[i][!side], buf + off, (size_t)(got - off));
                    if (w <= 0)
                        break;
                    off += w;
                }
            }
        }
    }
    for (int i = 0; i < PROXY_MAX_PAIRS; i++)
        proxy_close_pair(px->pairs[i]);
    close(px->listen_fd);
    return NULL;
}

static char *url_escape(const char *s)
{
    char *out = malloc(3 * strlen(s) + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-._~", *p))
            *o++ = (char)*p;
        else
            o += sprintf(o, "%%%02X", *p);
    }
    *o = '\0';
    return out;
}

/* Starts a proxy to the test server; *url_out is a URL that goes through it. */
static proxy *proxy_start(char **url_out)
{
    proxy *px = calloc(1, sizeof *px);
    for (int i = 0; i < PROXY_MAX_PAIRS; i++)
        px->pairs[i][0] = px->pairs[i][1] = -1;
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(pg_url, &err);
    ck_assert_msg(opts != NULL, "parse test URL");
    const char *host = NULL, *port = "5432", *user = NULL, *dbname = NULL, *password = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !o->val[0])
            continue;
        if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "user") == 0)
            user = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            dbname = o->val;
        else if (strcmp(o->keyword, "password") == 0)
            password = o->val;
    }
    if (!host)
        host = "/var/run/postgresql";
    if (host[0] == '/') {
        struct sockaddr_un *un = (struct sockaddr_un *)&px->target;
        un->sun_family = AF_UNIX;
        snprintf(un->sun_path, sizeof un->sun_path, "%s/.s.PGSQL.%s", host, port);
        px->target_len = sizeof *un;
    } else {
        struct addrinfo hints = {0}, *ai = NULL;
        hints.ai_socktype = SOCK_STREAM;
        ck_assert_msg(getaddrinfo(host, port, &hints, &ai) == 0 && ai, "resolve %s", host);
        memcpy(&px->target, ai->ai_addr, ai->ai_addrlen);
        px->target_len = ai->ai_addrlen;
        freeaddrinfo(ai);
    }
    px->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert(bind(px->listen_fd, (struct sockaddr *)&addr, sizeof addr) == 0);
    ck_assert(listen(px->listen_fd, 8) == 0);
    socklen_t alen = sizeof addr;
    ck_assert(getsockname(px->listen_fd, (struct sockaddr *)&addr, &alen) == 0);
    px->port = ntohs(addr.sin_port);

    char *euser = url_escape(user ? user : "postgres");
    char *epass = password ? url_escape(password) : NULL;
    char *edb = url_escape(dbname ? dbname : "postgres");
    char buf[1024];
    snprintf(buf, sizeof buf, "postgresql://%s%s%s@127.0.0.1:%d/%s?sslmode=disable", euser, epass ? ":" : "",
             epass ? epass : "", px->port, edb);
    free(euser);
    free(epass);
    free(edb);
    PQconninfoFree(opts);
    *url_out = strdup(buf);
    ck_assert(pthread_create(&px->thread, NULL, proxy_main, px) == 0);
    return px;
}

static void proxy_stop(proxy *px)
{
    atomic_store(&px->stop, 1);
    pthread_join(px->thread, NULL);
    free(px);
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
    } steps[9];
    int n = 0;
#define STEP(label, call)                                                       \
    do {                                                                        \
        atomic_store(&px->turns, 0);                                            \
        ck_assert_msg((call) == DLOCK_OK, "%s: %s", label, dlock_last_error()); \
        steps[n].what = label;                                                  \
        steps[n++].turns = atomic_load(&px->turns);                             \
    } while (0)
    STEP("acquire (first: sets the lease)", dlock_acquire(c, name, 30000, 0, &l));
    STEP("extend", dlock_extend(l, 30000));
    STEP("extend with a new TTL", dlock_extend(l, 20000));
    STEP("acquire a second lock", dlock_acquire(c, other, 60000, 0, &l2));
    STEP("release the second", dlock_release(l2));
    STEP("release (last: clears the lease)", dlock_release(l));
    STEP("acquire again", dlock_acquire(c, name, 30000, 0, &l));
    STEP("release again", dlock_release(l));
    STEP("acquire with a wait", dlock_acquire(c, name, 30000, 1000, &l));
#undef STEP
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    for (int i = 0; i < n; i++) {
        fprintf(stderr, "round trips: %-36s %d\n", steps[i].what, steps[i].turns);
        ck_assert_msg(steps[i].turns == 1, "%s took %d round trips", steps[i].what, steps[i].turns);
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
    ck_assert_msg(strncmp(who, "host=", 5) == 0 && strstr(who, pid_part) && strstr(who, " since=20"), "holder text: %s",
                  who);
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

/* --- waiting ------------------------------------------------------------------------------ */

/* A released lock reaches a server-side waiter in about one round trip. */
START_TEST(test_wait_granted_on_release)
{
    char *name = dlt_unique_name("pg-wait");
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, pg_url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 5000), DLOCK_OK);

    dlock_client *c = open_client(pg_url);
    /* The release comes from another process 400 ms into our wait. */
    fflush(NULL);
    pid_t releaser = fork();
    ck_assert(releaser >= 0);
    if (releaser == 0) {
        dlt_sleep_ms(400);
        _exit(dlt_child_cmd(&holder, "release", 5000) == DLOCK_OK ? 0 : 1);
    }
    dlock_lock *l = NULL;
    int64_t start = dlt_now_ms();
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 10000, &l), DLOCK_OK);
    int64_t granted = dlt_now_ms();
    int status;
    waitpid(releaser, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    fprintf(stderr, "wait: granted %lld ms after the wait began (release at ~400 ms)\n", (long long)(granted - start));
    ck_assert_int_ge(granted - start, 300);
    ck_assert_int_lt(granted - start, 1000);
    ck_assert_int_eq(held_elsewhere(name), 1);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlt_child_stop(&holder, 0);
    dlock_close(c);
    free(name);
}
END_TEST

START_TEST(test_wait_times_out)
{
    char *name = dlt_unique_name("pg-wait-timeout");
    dlock_client *holder = open_client(pg_url), *c = open_client(pg_url);
    dlock_lock *held = NULL, *l = NULL;
    ck_assert_int_eq(dlock_acquire(holder, name, 30000, 0, &held), DLOCK_OK);
    int64_t start = dlt_now_ms();
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 300, &l), DLOCK_EBUSY);
    int64_t took = dlt_now_ms() - start;
    ck_assert_int_ge(took, 290);
    ck_assert_int_lt(took, 1300);
    /* The waiter's session is fine and holds nothing. */
    ck_assert_int_eq(dlock_release(held), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 300, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(holder);
    dlock_close(c);
    free(name);
}
END_TEST

typedef struct waiter {
    dlock_client *client;
    const char *name;
    int32_t wait_ms;
    _Atomic int rc;
    int64_t took_ms;
    dlock_lock *lock;
} waiter;

static void *waiter_main(void *arg)
{
    waiter *w = arg;
    int64_t start = dlt_now_ms();
    w->rc = dlock_acquire(w->client, w->name, 10000, w->wait_ms, &w->lock);
    w->took_ms = dlt_now_ms() - start;
    return NULL;
}

/* dlock_cancel ends a wait (PQcancel), also one cancelled the moment it
 * starts; the session stays usable and holds nothing. */
START_TEST(test_cancel)
{
    char *name = dlt_unique_name("pg-cancel");
    dlock_client *holder = open_client(pg_url), *c = open_client(pg_url);
    dlock_lock *held = NULL;
    ck_assert_int_eq(dlock_acquire(holder, name, 60000, 0, &held), DLOCK_OK);
    int64_t worst = 0;
    for (int round = 0; round < 12; round++) {
        waiter w = {c, name, DLOCK_WAIT_FOREVER, 99, 0, NULL};
        pthread_t t;
        ck_assert(pthread_create(&t, NULL, waiter_main, &w) == 0);
        /* Round 0..3: at once (the cancel may beat the statement to the
         * server); then later, when the wait surely runs. */
        if (round >= 4)
            dlt_sleep_ms(round * 25);
        int64_t deadline = dlt_now_ms() + 3000;
        while (w.rc == 99 && dlt_now_ms() < deadline) {
            ck_assert_int_eq(dlock_cancel(c), DLOCK_OK);
            dlt_sleep_ms(5);
            /* Only one cancel per round once the wait has surely begun. */
            if (round >= 4)
                break;
        }
        int64_t cancel_at = dlt_now_ms();
        pthread_join(t, NULL);
        int64_t late = dlt_now_ms() - cancel_at;
        if (late > worst)
            worst = late;
        ck_assert_msg(w.rc == DLOCK_ECANCELED, "round %d: %d %s", round, w.rc, dlock_last_error());
        ck_assert_ptr_null(w.lock);
    }
    fprintf(stderr, "cancel: slowest wait ended %lld ms after dlock_cancel\n", (long long)worst);
    ck_assert_int_lt(worst, 1500);
    /* Nothing leaked: once released, anyone can take it, and so can c. */
    ck_assert_int_eq(dlock_release(held), DLOCK_OK);
    ck_assert_int_eq(held_elsewhere(name), 0);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 1000, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(holder);
    dlock_close(c);
    free(name);
}
END_TEST

/* The lock_timeout race: the holder lets go just as the wait runs out.  The
 * answer may be OK or EBUSY, but it must be true: OK means our session holds
 * the lock, EBUSY means it does not (a lock granted in the last instant and
 * reported busy would be held by nobody's knowledge, forever). */
START_TEST(test_lock_timeout_race)
{
    char *name = dlt_unique_name("pg-race");
    PGconn *holder = raw_connect("race-holder");
    PGconn *observer = raw_connect("race-observer");
    dlock_client *c = open_client(pg_url);
    int ok = 0, busy = 0;
    for (int round = 0; round < 30; round++) {
        ck_assert(raw_bool(holder, "SELECT pg_try_advisory_lock(" DOC_KEY_SQL ")", name));
        /* The holder's unlock lands around the end of the 200 ms wait. */
        char delay[32];
        snprintf(delay, sizeof delay, "%.3f", 0.185 + 0.001 * (round % 30));
        char sql[512];
        snprintf(sql, sizeof sql, "SELECT pg_sleep(%s), pg_advisory_unlock(" DOC_KEY_SQL ")", delay);
        const char *values[1] = {name};
        ck_assert(PQsendQueryParams(holder, sql, 1, NULL, values, NULL, NULL, 0));
        dlock_lock *l = NULL;
        int rc = dlock_acquire(c, name, 10000, 200, &l);
        PGresult *res;
        while ((res = PQgetResult(holder)))
            PQclear(res);
        int pid = backend_pid_of_holder(observer, name);
        if (rc == DLOCK_OK) {
            ok++;
            ck_assert_msg(pid != 0 && pid != PQbackendPID(holder), "round %d: OK but not held", round);
            ck_assert_int_eq(dlock_release(l), DLOCK_OK);
        } else {
            ck_assert_msg(rc == DLOCK_EBUSY, "round %d: %d %s", round, rc, dlock_last_error());
            busy++;
            ck_assert_msg(pid == 0, "round %d: EBUSY, yet the lock is held by backend %d", round, pid);
        }
    }
    fprintf(stderr, "lock_timeout race: %d granted, %d busy, none inconsistent\n", ok, busy);
    dlock_close(c);
    PQfinish(holder);
    PQfinish(observer);
    free(name);
}
END_TEST

/* Two clients waiting for each other: the server's deadlock detector ends
 * one wait, which is reported busy; the other is granted. */
START_TEST(test_deadlock)
{
    char *x = dlt_unique_name("pg-dead-x"), *y = dlt_unique_name("pg-dead-y");
    dlock_client *c1 = open_client(pg_url), *c2 = open_client(pg_url);
    dlock_lock *x1 = NULL, *y2 = NULL;
    ck_assert_int_eq(dlock_acquire(c1, x, 10000, 0, &x1), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c2, y, 10000, 0, &y2), DLOCK_OK);
    waiter w1 = {c1, y, 8000, 99, 0, NULL}, w2 = {c2, x, 8000, 99, 0, NULL};
    pthread_t t1, t2;
    ck_assert(pthread_create(&t1, NULL, waiter_main, &w1) == 0);
    dlt_sleep_ms(100);
    ck_assert(pthread_create(&t2, NULL, waiter_main, &w2) == 0);
    /* The loser gives up its lock so that the winner gets the other. */
    int64_t start = dlt_now_ms();
    while (w1.rc == 99 && w2.rc == 99 && dlt_now_ms() - start < 6000)
        dlt_sleep_ms(10);
    ck_assert_msg(w1.rc == DLOCK_EBUSY || w2.rc == DLOCK_EBUSY, "no wait ended: %d %d", w1.rc, w2.rc);
    if (w1.rc == DLOCK_EBUSY)
        ck_assert_int_eq(dlock_release(x1), DLOCK_OK);
    else
        ck_assert_int_eq(dlock_release(y2), DLOCK_OK);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    ck_assert((w1.rc == DLOCK_EBUSY && w2.rc == DLOCK_OK) || (w2.rc == DLOCK_EBUSY && w1.rc == DLOCK_OK));
    /* What is still held: the winner's new lock and the lock it kept. */
    if (w1.rc == DLOCK_OK) {
        ck_assert_int_eq(dlock_release(w1.lock), DLOCK_OK);
        ck_assert_int_eq(dlock_release(x1), DLOCK_OK);
    } else {
        ck_assert_int_eq(dlock_release(w2.lock), DLOCK_OK);
        ck_assert_int_eq(dlock_release(y2), DLOCK_OK);
    }
    dlock_close(c1);
    dlock_close(c2);
    free(x);
    free(y);
}
END_TEST

/* --- faults -------------------------------------------------------------------------------- */

/* pg_terminate_backend of the holder's session: its next extend is ELOST. */
START_TEST(test_terminate_backend_extend)
{
    char *name = dlt_unique_name("pg-term");
    PGconn *pg = raw_connect("dlock-test-admin");
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, pg_url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 5000), DLOCK_OK);
    int pid = wait_for_holder_pid(pg, name, 2000);
    ck_assert(pid > 0);
    terminate_backend(pg, pid);
    /* Freed at once for everybody else. */
    int64_t took = dlt_acquire_within(pg_url, name, 5000, 1000);
    fprintf(stderr, "pg_terminate_backend: another client acquired after %lld ms\n", (long long)took);
    ck_assert_int_ge(took, 0);
    ck_assert_int_eq(dlt_child_cmd(&holder, "extend 30000", 5000), DLOCK_ELOST);
    ck_assert_int_eq(dlt_child_cmd(&holder, "release", 5000), DLOCK_ELOST);
    dlt_child_stop(&holder, 0);
    PQfinish(pg);
    free(name);
}
END_TEST

/* pg_terminate_backend under dlock run: the job gets SIGTERM, dlock exits 79. */
START_TEST(test_terminate_backend_dlock_run)
{
    const char *bin = dlock_bin();
    if (!bin) {
        fprintf(stderr, "no dlock binary ($DLOCK_BIN): skipping the dlock run part\n");
        return;
    }
    char *name = dlt_unique_name("pg-run");
    char *dir = dlt_tmpdir();
    char started[4200], termed[4200], script[9000];
    snprintf(started, sizeof started, "%s/started", dir);
    snprintf(termed, sizeof termed, "%s/termed", dir);
    snprintf(script, sizeof script,
             "trap 'echo TERM > \"%s\"; exit 7' TERM; echo up > \"%s\"; while :; do sleep 0.05; done", termed, started);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        execl(bin, bin, "run", "-q", "-u", pg_url, "-t", "3s", "-k", "5s", name, "--", "/bin/sh", "-c", script,
              (char *)NULL);
        _exit(127);
    }
    int64_t deadline = dlt_now_ms() + 5000;
    while (access(started, F_OK) != 0 && dlt_now_ms() < deadline)
        dlt_sleep_ms(10);
    ck_assert_msg(access(started, F_OK) == 0, "the job did not start");
    PGconn *pg = raw_connect("dlock-test-admin");
    int backend = wait_for_holder_pid(pg, name, 2000);
    ck_assert(backend > 0);
    int64_t killed_at = dlt_now_ms();
    terminate_backend(pg, backend);
    deadline = dlt_now_ms() + 6000;
    while (access(termed, F_OK) != 0 && dlt_now_ms() < deadline)
        dlt_sleep_ms(10);
    int64_t term_after = dlt_now_ms() - killed_at;
    ck_assert_msg(access(termed, F_OK) == 0, "the job got no SIGTERM");
    int status = 0;
    ck_assert(waitpid(pid, &status, 0) == pid);
    fprintf(stderr, "dlock run: job got SIGTERM %lld ms after pg_terminate_backend (TTL 3 s), exit %d\n",
            (long long)term_after, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 79);
    ck_assert_int_le(term_after, 3000);
    PQfinish(pg);
    free(dir);
    free(name);
}
END_TEST

/* kill -9 of the holder: the server sees the socket close and frees the
 * lock; another process acquires within 1 s. */
START_TEST(test_kill9)
{
    char *name = dlt_unique_name("pg-kill9");
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, pg_url, name, 60000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 5000), DLOCK_OK);
    ck_assert_int_eq(held_elsewhere(name), 1);
    dlt_child_stop(&holder, SIGKILL);
    int64_t took = dlt_acquire_within(pg_url, name, 5000, 1000);
    fprintf(stderr, "kill -9: another process acquired after %lld ms (TTL 60 s)\n", (long long)took);
    ck_assert_int_ge(took, 0);
    ck_assert_int_lt(took, 1000);
    free(name);
}
END_TEST

/* SIGSTOP past the TTL: idle_session_timeout ends the session; another
 * process acquires within TTL + 1 s; after SIGCONT the holder learns ELOST. */
START_TEST(test_sigstop)
{
    enum { TTL = 2000 };
    char *name = dlt_unique_name("pg-stop");
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, pg_url, name, TTL, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 5000), DLOCK_OK);
    int64_t acquired_at = dlt_now_ms();
    kill(holder.pid, SIGSTOP);
    ck_assert_int_eq(held_elsewhere(name), 1);
    int64_t took = dlt_acquire_within(pg_url, name, 5000, TTL + 2000);
    int64_t since_acquire = dlt_now_ms() - acquired_at;
    fprintf(stderr, "SIGSTOP: another process acquired %lld ms after the holder's acquire (TTL %d ms)\n",
            (long long)since_acquire, TTL);
    ck_assert_int_ge(took, 0);
    ck_assert_int_le(since_acquire, TTL + 1000);
    ck_assert_int_ge(since_acquire, TTL - 100);
    kill(holder.pid, SIGCONT);
    ck_assert_int_eq(dlt_child_cmd(&holder, "extend 2000", 5000), DLOCK_ELOST);
    ck_assert_int_eq(dlt_child_cmd(&holder, "release", 5000), DLOCK_ELOST);
    dlt_child_stop(&holder, 0);
    free(name);
}
END_TEST

/* A holder whose network goes silent (a stalled proxy: no FIN, no RST)
 * loses the lock within its TTL; when the path comes back cut, it learns
 * ELOST, and its next acquire works through a new connection. */
START_TEST(test_silent_network)
{
    enum { TTL = 2000 };
    char *url = NULL;
    proxy *px = proxy_start(&url);
    char *name = dlt_unique_name("pg-net");
    dlock_client *c = open_client(url);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, TTL, 0, &l), DLOCK_OK);
    int64_t acquired_at = dlt_now_ms();
    atomic_store(&px->stalled, 1);
    int64_t took = dlt_acquire_within(pg_url, name, 5000, TTL + 2000);
    int64_t since_acquire = dlt_now_ms() - acquired_at;
    fprintf(stderr, "silent network: another client acquired %lld ms after the holder's acquire (TTL %d ms)\n",
            (long long)since_acquire, TTL);
    ck_assert_int_ge(took, 0);
    ck_assert_int_le(since_acquire, TTL + 1000);
    ck_assert_int_eq(dlock_remaining_ms(l), 0);
    atomic_store(&px->cut, 1);
    atomic_store(&px->stalled, 0);
    dlt_sleep_ms(100);
    ck_assert_int_eq(dlock_extend(l, TTL), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    ck_assert_int_eq(dlock_acquire(c, name, TTL, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
    proxy_stop(px);
    free(url);
    free(name);
}
END_TEST

/* PostgreSQL restarted while a lock is held: ELOST, then new acquires
 * work.  A private server, so that the restart cannot disturb the other
 * suites running against the shared one. */
START_TEST(test_server_restart)
{
    const char *script = pg_server_script();
    ck_assert_msg(script != NULL, "tests/pg-server.sh not found ($top_srcdir)");
    char *dir = dlt_tmpdir();
    chmod(dir, 0755); /* the server runs as the postgres user when we are root */
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "sh '%s' start '%s/pg' >/dev/null", script, dir);
    ck_assert_msg(dlt_system(cmd) == 0, "cannot start a private server");
    char env_path[4200], line[1024], url[1024] = "";
    snprintf(env_path, sizeof env_path, "%s/pg/env", dir);
    FILE *f = fopen(env_path, "r");
    ck_assert(f != NULL);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "export DLOCK_TEST_PG_URL='%1000[^']'", url) == 1)
            break;
    fclose(f);
    ck_assert(url[0] != '\0');

    char *name = dlt_unique_name("pg-restart");
    dlock_client *c = open_client(url);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 30000, 0, &l), DLOCK_OK);
    int64_t start = dlt_now_ms();
    snprintf(cmd, sizeof cmd, "sh '%s' restart '%s/pg' >/dev/null", script, dir);
    int restarted = dlt_system(cmd);
    fprintf(stderr, "server restart took %lld ms\n", (long long)(dlt_now_ms() - start));
    if (restarted == 0) {
        ck_assert_int_eq(dlock_extend(l, 30000), DLOCK_ELOST);
        ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
        ck_assert_int_eq(dlock_acquire(c, name, 30000, 0, &l), DLOCK_OK);
        ck_assert_int_eq(dlock_extend(l, 30000), DLOCK_OK);
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    }
    dlock_close(c);
    snprintf(cmd, sizeof cmd, "sh '%s' stop '%s/pg'; rm -rf '%s'", script, dir, dir);
    dlt_system(cmd);
    ck_assert_msg(restarted == 0, "the restart failed");
    free(name);
    free(dir);
}
END_TEST

/* --- issue 10: leases after a wait, deadlines, stale cancels, passwords, dropped sessions --- */

/* A process that sends SIGCONT to `pid` after `after_ms` whatever becomes of
 * this test (a failed check ends the test process at once). */
static pid_t sigcont_guard(int pid, int after_ms)
{
    fflush(NULL);
    pid_t guard = fork();
    ck_assert(guard >= 0);
    if (guard == 0) {
        dlt_sleep_ms(after_ms);
        kill(pid, SIGCONT);
        _exit(0);
    }
    return guard;
}

static void sigcont_now(int pid, pid_t guard)
{
    kill(pid, SIGCONT);
    kill(guard, SIGKILL);
    waitpid(guard, NULL, 0);
}

/* Another process holds the lock for 3 s with a TTL of 2 s (extending it);
 * a waiter with TTL 2 s granted after ~3 s gets its whole lease. */
START_TEST(test_wait_longer_than_ttl)
{
    enum { TTL = 2000 };
    char *name = dlt_unique_name("pg-long-wait");
    dlt_child holder;
    pid_t keeper = dlt_hold_then_release(&holder, pg_url, name, TTL, 3000);
    dlock_client *c = open_client(pg_url);
    dlock_lock *l = NULL;
    int64_t start = dlt_now_ms();
    int rc = dlock_acquire(c, name, TTL, 10000, &l);
    int64_t waited = dlt_now_ms() - start;
    int64_t remaining = rc == DLOCK_OK ? dlock_remaining_ms(l) : -1;
    int status;
    waitpid(keeper, &status, 0);
    fprintf(stderr, "wait longer than the TTL: granted after %lld ms, remaining %lld ms of %d\n", (long long)waited,
            (long long)remaining, TTL);
    ck_assert_msg(rc == DLOCK_OK, "%d %s", rc, dlock_last_error());
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_ge(waited, 2500);
    ck_assert_int_gt(remaining, 1500);
    ck_assert_int_eq(dlock_extend(l, TTL), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlt_child_stop(&holder, 0);
    dlock_close(c);
    free(name);
}
END_TEST

/* The server process of our session stopped (SIGSTOP: the kernel still
 * ACKs, keepalives never fire): extend gives up by the end of the lease,
 * never says OK, and the client works again afterwards. */
START_TEST(test_extend_server_stopped)
{
    enum { TTL = 2000 };
    char *name = dlt_unique_name("pg-srv-stop");
    PGconn *pg = raw_connect("dlock-test-admin");
    dlock_client *c = open_client(pg_url);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, TTL, 0, &l), DLOCK_OK);
    int pid = wait_for_holder_pid(pg, name, 2000);
    ck_assert(pid > 0);
    pid_t guard = sigcont_guard(pid, 15000);
    kill(pid, SIGSTOP);
    int64_t remaining = dlock_remaining_ms(l);
    int64_t start = dlt_now_ms();
    int rc = dlock_extend(l, TTL);
    int64_t took = dlt_now_ms() - start;
    char why[512];
    dlock__copy_text(why, sizeof why, dlock_last_error());
    int64_t after = dlock_remaining_ms(l);
    sigcont_now(pid, guard);
    fprintf(stderr, "extend on a stopped server: %d after %lld ms (lease had %lld ms left, TTL %d): %s\n", rc,
            (long long)took, (long long)remaining, TTL, why);
    ck_assert_msg(rc == DLOCK_ELOST || rc == DLOCK_ECONN, "%d %s", rc, why);
    ck_assert_int_le(took, remaining + 1000);
    ck_assert_int_eq(after, 0);
    ck_assert(strstr(why, "answer") != NULL);
    /* The session was dropped: the server lets the lock go. */
    ck_assert_int_ge(dlt_acquire_within(pg_url, name, 5000, 3000), 0);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    ck_assert_int_eq(dlock_acquire(c, name, TTL, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
    PQfinish(pg);
    free(name);
}
END_TEST

/* dlock_cancel of a wait whose server process is stopped: the wait gives
 * up locally within a short while. */
START_TEST(test_cancel_server_stopped)
{
    char *name = dlt_unique_name("pg-cancel-stop");
    PGconn *pg = raw_connect("dlock-test-admin");
    dlock_client *holder = open_client(pg_url), *c = open_client(pg_url);
    dlock_lock *held = NULL;
    ck_assert_int_eq(dlock_acquire(holder, name, 30000, 0, &held), DLOCK_OK);
    waiter w = {c, name, DLOCK_WAIT_FOREVER, 99, 0, NULL};
    pthread_t t;
    ck_assert(pthread_create(&t, NULL, waiter_main, &w) == 0);
    int pid = 0;
    for (int i = 0; i < 100 && !pid; i++) {
        dlt_sleep_ms(20);
        pid = advisory_pid(pg, name, 0);
    }
    ck_assert(pid > 0);
    pid_t guard = sigcont_guard(pid, 15000);
    kill(pid, SIGSTOP);
    dlt_sleep_ms(100);
    int64_t start = dlt_now_ms();
    ck_assert_int_eq(dlock_cancel(c), DLOCK_OK);
    pthread_join(t, NULL);
    int64_t took = dlt_now_ms() - start;
    sigcont_now(pid, guard);
    fprintf(stderr, "cancel with a stopped server: %d after %lld ms\n", w.rc, (long long)took);
    ck_assert_int_eq(w.rc, DLOCK_ECANCELED);
    ck_assert_int_lt(took, 2500);
    ck_assert_int_eq(dlock_release(held), DLOCK_OK);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 1000, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(holder);
    dlock_close(c);
    PQfinish(pg);
    free(name);
}
END_TEST

typedef struct canceler {
    dlock_client *client;
    atomic_int spin;
} canceler;

static void *canceler_main(void *arg)
{
    canceler *k = arg;
    while (atomic_load(&k->spin))
        (void)dlock_cancel(k->client);
    return NULL;
}

/* dlock_cancel in a tight loop around the moment a wait is granted must
 * never reach the next wait. */
START_TEST(test_stale_cancel)
{
    char *first = dlt_unique_name("pg-stale-1"), *second = dlt_unique_name("pg-stale-2");
    dlock_client *h = open_client(pg_url), *c = open_client(pg_url);
    dlock_lock *h2 = NULL;
    ck_assert_int_eq(dlock_acquire(h, second, 60000, 0, &h2), DLOCK_OK);
    int stale = 0, canceled = 0, granted = 0;
    for (int trial = 0; trial < 30; trial++) {
        dlock_lock *h1 = NULL;
        ck_assert_int_eq(dlock_acquire(h, first, 60000, 0, &h1), DLOCK_OK);
        waiter w = {c, first, 5000, 99, 0, NULL};
        pthread_t a, b;
        ck_assert(pthread_create(&a, NULL, waiter_main, &w) == 0);
        dlt_sleep_ms(60);
        canceler k = {c, 1};
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
    fprintf(stderr, "stale cancel: %d granted, %d cancelled, %d of 30 next waits cancelled by a stale cancel\n",
            granted, canceled, stale);
    ck_assert_int_eq(stale, 0);
    ck_assert_int_eq(dlock_release(h2), DLOCK_OK);
    dlock_close(h);
    dlock_close(c);
    free(first);
    free(second);
}
END_TEST

/* After the server ended our session, the next call on the client (here
 * dlock_holder) reconnects: the old session's locks are lost at once. */
START_TEST(test_dropped_session_marks_locks_lost)
{
    char *name = dlt_unique_name("pg-dropped");
    PGconn *pg = raw_connect("dlock-test-admin");
    dlock_client *c = open_client(pg_url);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 30000, 0, &l), DLOCK_OK);
    int pid = wait_for_holder_pid(pg, name, 2000);
    ck_assert(pid > 0);
    terminate_backend(pg, pid);
    dlt_sleep_ms(200);
    ck_assert_int_eq(dlock_holder(c, name, NULL, 0), 0);
    ck_assert_int_eq(dlock_remaining_ms(l), 0);
    ck_assert_int_ge(dlt_acquire_within(pg_url, name, 5000, 1000), 0);
    ck_assert_int_eq(dlock_extend(l, 30000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    dlock_close(c);
    PQfinish(pg);
    free(name);
}
END_TEST

/* `format` with {H} replaced by host and {P} by password. */
static void expand(char *out, size_t len, const char *format, const char *host, const char *password)
{
    size_t o = 0;
    for (const char *p = format; *p && o + 1 < len;) {
        const char *with = strncmp(p, "{H}", 3) == 0 ? host : strncmp(p, "{P}", 3) == 0 ? password : NULL;
        if (with) {
            o += (size_t)snprintf(out + o, len - o, "%s", with);
            p += 3;
        } else {
            out[o++] = *p++;
        }
    }
    out[o < len ? o : len - 1] = '\0';
}

/* No piece of a password in any form libpq accepts shows in an error. */
static void assert_hidden(const char *url, const char *const *secrets, const char *what)
{
    dlock_client *c = NULL;
    int rc = dlock_open(url, &c);
    const char *text = dlock_last_error();
    for (size_t i = 0; secrets[i]; i++)
        ck_assert_msg(strstr(text, secrets[i]) == NULL, "%s (%d): a secret shows: %s", what, rc, text);
    ck_assert_msg(strstr(text, "translate host name") == NULL, "%s: %s", what, text);
    if (rc == DLOCK_OK)
        dlock_close(c);
}

START_TEST(test_passwords_never_shown)
{
    /* host:port of the test server, and an unreachable one. */
    const char *authority = strstr(pg_url, "://");
    ck_assert(authority != NULL);
    authority += 3;
    const char *at = strrchr(authority, '@');
    if (at && at < authority + strcspn(authority, "/?"))
        authority = at + 1;
    char live[256];
    snprintf(live, sizeof live, "%.*s", (int)strcspn(authority, "/?"), authority);
    const char *hosts[2] = {live, "127.0.0.1:1"};
    char long_pw[301];
    for (int i = 0; i < 300; i++)
        long_pw[i] = "S3cr3tXyzLongPw"[i % 15];
    long_pw[300] = '\0';
    const char *at_secrets[] = {"Tr0ub", "dor3Secret", NULL};
    const char *plain_secrets[] = {"S3cr3t", "Xyz", NULL};
    const char *long_secrets[] = {"S3cr3tXyzL", "tXyzLongPw", "ongPwS3cr3", NULL};
    const struct {
        const char *format; /* {H}: host:port, {P}: the long password */
        const char *const *secrets;
    } forms[] = {
        {"postgresql://jobs:Tr0ub@dor3Secret@{H}/app?connect_timeout=3", at_secrets},
        {"postgresql://jobs:Tr0ub@dor3Secret@{H}/app?connect_timeout=3&bogus=1", at_secrets},
        {"postgresql://jobs:S3cr3t@Xyz@{H}/app?connect_timeout=3", plain_secrets},
        {"postgresql://jobs@{H}/app?password=S3cr3tXyz%zz", plain_secrets},
        {"postgresql://jobs@{H}/app?PassWord=S3cr3tXyz%zz", plain_secrets},
        {"postgresql://jobs@{H}/app?pass%77ord=S3cr3tXyz%zz", plain_secrets},
        {"postgresql://jobs@{H}/app?pass%77ord=S3cr3tXyz&connect_timeout=3", plain_secrets},
        {"postgresql://jobs@{H}/app?connect_timeout=3&PASSWORD=S3cr3tXyz", plain_secrets},
        {"postgresql://jobs:S3cr3tXyz@{H}/app?connect_timeout=3&bogus=1", plain_secrets},
        {"postgresql://jobs:{P}@{H}/app?x%zz=1", long_secrets},
        {"postgresql://jobs@{H}/app?password={P}%zz", long_secrets},
        {"postgresql:password='S3cr3t Xyz' host={H}", plain_secrets},
        {"postgresql:host={H} password=S3cr3tXyz", plain_secrets},
    };
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        for (int h = 0; h < 2; h++) {
            char url[1024], what[64];
            expand(url, sizeof url, forms[f].format, hosts[h], long_pw);
            snprintf(what, sizeof what, "form %zu, %s host", f, h ? "unreachable" : "live");
            assert_hidden(url, forms[f].secrets, what);
        }
    }
}
END_TEST

/* --- second wave: lease mode, fencing, pooler detection, operations ---------------------- */

/* pg_url with extra query parameters. */
static char *url_with(const char *base, const char *params)
{
    size_t len = strlen(base) + strlen(params) + 2;
    char *u = malloc(len);
    snprintf(u, len, "%s%c%s", base, strchr(base, '?') ? '&' : '?', params);
    return u;
}

/* A table name of its own for a test: created on first use. */
static char *unique_table(const char *prefix)
{
    char *t = malloc(64);
    snprintf(t, 64, "%s_%d_%lld", prefix, (int)getpid(), (long long)(dlt_now_ms() % 100000000));
    return t;
}

/* Run one statement with the name as $1 (text, converted to bytes). */
static void raw_exec(PGconn *pg, const char *sql, const char *name)
{
    const char *values[1] = {name};
    PGresult *res = PQexecParams(pg, sql, name ? 1 : 0, NULL, values, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQerrorMessage(pg));
    PQclear(res);
}

static void raw_row(PGconn *pg, const char *table, const char *set, const char *name)
{
    char sql[512];
    snprintf(sql, sizeof sql, "UPDATE %s SET %s WHERE name = convert_to($1, 'UTF8')", table, set);
    raw_exec(pg, sql, name);
}

/* Lease mode: every statement checks the owner token and the expiry on the
 * server: a row taken over by another owner is lost for extend, release and
 * the run record; an unexpired row of another owner is busy, an expired
 * one is free; the fence and the record outlive a release. */
START_TEST(test_lease_row)
{
    char *table = unique_table("lease_row");
    char params[160];
    snprintf(params, sizeof params, "mode=lease&table=%s", table);
    char *url = url_with(pg_url, params);
    char *name = dlt_unique_name("pg-lease-row");
    PGconn *pg = raw_connect("dlock-test-admin");
    dlock_client *a = open_client(url), *b = open_client(url);
    ck_assert_ptr_eq(dlock_last_error(), dlock_last_error());
    dlock_lock *l = NULL, *l2 = NULL;
    ck_assert_int_eq(dlock_acquire(a, name, 30000, 0, &l), DLOCK_OK);
    uint64_t f1 = 0, f = 0;
    ck_assert_int_eq(dlock_fence(l, &f1), DLOCK_OK);
    ck_assert_uint_ge(f1, 1);
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT holder FROM %s WHERE name = convert_to($1, 'UTF8') AND owner IS NOT NULL", table);
    char *holder = raw_value(pg, sql, name);
    ck_assert_ptr_nonnull(holder);
    ck_assert_ptr_nonnull(strstr(holder, "pid="));
    free(holder);
    ck_assert_int_eq(dlock_acquire(b, name, 30000, 0, &l2), DLOCK_EBUSY);
    /* The run record: written while ours, kept across holders. */
    ck_assert_int_eq(dlock_record_put(l, 42), DLOCK_OK);
    int64_t slot = 0;
    ck_assert_int_eq(dlock_record_get(l, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 42);

    /* Taken over by another owner (its lease runs): record_put is lost. */
    raw_row(pg, table, "owner = gen_random_uuid()", name);
    ck_assert_int_eq(dlock_record_put(l, 43), DLOCK_ELOST);
    (void)dlock_release(l);
    /* ... and so are extend and release. */
    raw_row(pg, table, "owner = NULL", name);
    ck_assert_int_eq(dlock_acquire(a, name, 30000, 0, &l), DLOCK_OK);
    raw_row(pg, table, "owner = gen_random_uuid()", name);
    ck_assert_int_eq(dlock_extend(l, 30000), DLOCK_ELOST);
    (void)dlock_release(l);
    raw_row(pg, table, "owner = NULL", name);
    ck_assert_int_eq(dlock_acquire(a, name, 30000, 0, &l), DLOCK_OK);
    raw_row(pg, table, "owner = '00000000-0000-0000-0000-000000000001'", name);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    snprintf(sql, sizeof sql,
             "SELECT owner = '00000000-0000-0000-0000-000000000001' FROM %s"
             " WHERE name = convert_to($1, 'UTF8')",
             table);
    ck_assert_msg(raw_bool(pg, sql, name), "a release that was not ours let go of the other owner's row");

    /* Another owner's row that has not expired is busy; an expired one is free. */
    raw_row(pg, table, "expires_at = clock_timestamp() + interval '3 seconds'", name);
    ck_assert_int_eq(dlock_acquire(b, name, 30000, 0, &l2), DLOCK_EBUSY);
    raw_row(pg, table, "expires_at = clock_timestamp() - interval '1 millisecond'", name);
    ck_assert_int_eq(dlock_acquire(b, name, 30000, 0, &l2), DLOCK_OK);
    ck_assert_int_eq(dlock_fence(l2, &f), DLOCK_OK);
    ck_assert_uint_gt(f, f1);
    ck_assert_int_eq(dlock_record_get(l2, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 42);
    ck_assert_int_eq(dlock_release(l2), DLOCK_OK);
    /* Released: the row stays (fence and record), without an owner. */
    snprintf(sql, sizeof sql, "SELECT owner IS NULL AND fence = %llu FROM %s WHERE name = convert_to($1, 'UTF8')",
             (unsigned long long)f, table);
    ck_assert(raw_bool(pg, sql, name));
    dlock_close(a);
    dlock_close(b);
    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    raw_exec(pg, sql, NULL);
    PQfinish(pg);
    free(name);
    free(url);
    free(table);
}
END_TEST

/* Lease mode: a holder whose connection is ended keeps its lock (no server
 * session holds it); killed or stopped, it keeps it until the TTL, not
 * longer. */
START_TEST(test_lease_faults)
{
    char *url = url_with(pg_url, "mode=lease");
    char *name = dlt_unique_name("pg-lease-term");
    PGconn *pg = raw_connect("dlock-test-admin");
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 5000), DLOCK_OK);
    char pattern[64];
    snprintf(pattern, sizeof pattern, "%% pid=%d", (int)holder.pid);
    char *pid = raw_value(pg, "SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1", pattern);
    ck_assert_ptr_nonnull(pid);
    terminate_backend(pg, atoi(pid));
    free(pid);
    dlt_sleep_ms(100);
    dlock_client *c = open_client(url);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 5000, 0, &l), DLOCK_EBUSY);
    ck_assert_int_eq(dlt_child_cmd(&holder, "extend 30000", 5000), DLOCK_OK);
    ck_assert_int_eq(dlt_child_cmd(&holder, "release", 5000), DLOCK_OK);
    dlt_child_stop(&holder, 0);

    /* kill -9 and SIGSTOP: still held well before the TTL, free after it. */
    const uint32_t ttl = 1500;
    for (int stop = 0; stop < 2; stop++) {
        ck_assert_int_eq(dlt_child_start(&holder, url, name, ttl, 0), 0);
        ck_assert_int_eq(dlt_child_read(&holder, 5000), DLOCK_OK);
        int64_t held_at = dlt_now_ms();
        if (stop)
            kill(holder.pid, SIGSTOP);
        else
            dlt_child_stop(&holder, SIGKILL);
        dlt_sleep_ms(ttl - 500 - (dlt_now_ms() - held_at));
        ck_assert_int_eq(dlock_acquire(c, name, 5000, 0, &l), DLOCK_EBUSY);
        ck_assert_int_eq(dlock_acquire(c, name, 5000, 2500, &l), DLOCK_OK);
        int64_t took = dlt_now_ms() - held_at;
        ck_assert_int_ge(took, ttl - 100);
        ck_assert_int_lt(took, ttl + 1000);
        if (stop) {
            kill(holder.pid, SIGCONT);
            ck_assert_int_eq(dlt_child_cmd(&holder, "extend 5000", 5000), DLOCK_ELOST);
            dlt_child_stop(&holder, 0);
        }
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    }
    dlock_close(c);
    PQfinish(pg);
    free(name);
    free(url);
}
END_TEST

/* A role that may not create the table is pointed to the DDL. */
START_TEST(test_lease_table_denied)
{
    const char *pw_url = getenv("DLOCK_TEST_PG_PASSWORD_URL");
    if (!pw_url || !*pw_url)
        return;
    char *table = unique_table("denied");
    char params[160];
    snprintf(params, sizeof params, "mode=lease&table=%s", table);
    char *url = url_with(pw_url, params);
    dlock_client *c = open_client(url);
    dlock_lock *l = NULL;
    int rc = dlock_acquire(c, "pg-denied", 5000, 0, &l);
    ck_assert_msg(rc == DLOCK_EBACKEND, "%d %s", rc, dlock_last_error());
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "docs/postgresql.md"));
    ck_assert_ptr_null(strstr(dlock_last_error(), "Right-Passw0rd"));
    dlock_close(c);
    free(url);
    free(table);
}
END_TEST

START_TEST(test_url_options)
{
    const char *bad[] = {"mode=lock", "fencing=maybe", "table=1abc", "prefix=x", "mode=lease&mode=session"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *url = url_with(pg_url, bad[i]);
        dlock_client *c = NULL;
        int rc = dlock_open(url, &c);
        ck_assert_msg(rc == DLOCK_EINVAL, "%s: %d", bad[i], rc);
        char param[16];
        snprintf(param, sizeof param, "%.*s", (int)strcspn(bad[i], "="), bad[i]);
        ck_assert_msg(strstr(dlock_last_error(), param), "%s: %s", bad[i], dlock_last_error());
        free(url);
    }
    /* Without fencing=on, session mode gives no fence. */
    dlock_client *c = open_client(pg_url);
    dlock_lock *l = NULL;
    uint64_t f = 7;
    ck_assert_int_eq(dlock_acquire(c, "pg-no-fence", 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_fence(l, &f), DLOCK_ENOTSUP);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "fencing=on"));
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
}
END_TEST

/* Session mode, fencing=on: the counter is bumped by a try and by a wait,
 * in the same statement, and kept in the table under the name's bytes. */
START_TEST(test_fencing_session)
{
    char *table = unique_table("fences");
    char params[160];
    snprintf(params, sizeof params, "fencing=on&table=%s", table);
    char *url = url_with(pg_url, params);
    char *name = dlt_unique_name("pg-fence");
    dlock_client *a = open_client(url), *b = open_client(url);
    dlock_lock *l = NULL;
    uint64_t f1 = 0, f2 = 0, f3 = 0;
    ck_assert_int_eq(dlock_acquire(a, name, 30000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_fence(l, &f1), DLOCK_OK);
    ck_assert_uint_eq(f1, 1);
    /* a fwaiter gets the next one when the holder lets go */
    dlt_child fwaiter;
    ck_assert_int_eq(dlt_child_start(&fwaiter, url, name, 30000, 10000), 0);
    dlt_sleep_ms(300);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert_int_eq(dlt_child_read(&fwaiter, 10000), DLOCK_OK);
    dlt_child_stop(&fwaiter, 0);
    ck_assert_int_eq(dlock_acquire(b, name, 30000, 2000, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_fence(l, &f3), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    PGconn *pg = raw_connect("dlock-test-admin");
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT fence FROM %s WHERE name = convert_to($1, 'UTF8')", table);
    char *v = raw_value(pg, sql, name);
    ck_assert_ptr_nonnull(v);
    f2 = strtoull(v, NULL, 10);
    free(v);
    ck_assert_uint_eq(f2, f3);
    ck_assert_uint_eq(f3, 3); /* the fwaiter took 2 */
    /* the run record of session mode: only while held */
    ck_assert_int_eq(dlock_acquire(a, name, 30000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_record_put(l, 7), DLOCK_OK);
    int64_t slot = 0;
    ck_assert_int_eq(dlock_record_get(l, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 7);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(a);
    dlock_close(b);
    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    raw_exec(pg, sql, NULL);
    PQfinish(pg);
    free(name);
    free(url);
    free(table);
}
END_TEST

/* list, break and the store's clock in both modes. */
START_TEST(test_operations)
{
    char *lease_url = url_with(pg_url, "mode=lease");
    const char *urls[2] = {pg_url, lease_url};
    for (int mode = 0; mode < 2; mode++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "pg-ops-%d-%d-", mode, (int)getpid());
        char name[96];
        snprintf(name, sizeof name, "%sone", prefix);
        dlock_client *a = open_client(urls[mode]), *b = open_client(urls[mode]);
        int64_t t = 0;
        ck_assert_int_eq(dlock_store_time(a, &t), DLOCK_OK);
        ck_assert_int_lt(llabs(t - (int64_t)time(NULL) * 1000), 5000);
        dlock_lock *l = NULL;
        ck_assert_int_eq(dlock_acquire(a, name, 30000, 0, &l), DLOCK_OK);
        dlock_list *list = NULL;
        ck_assert_int_eq(dlock_list_locks(b, mode ? prefix : "", &list), DLOCK_OK);
        int found = 0;
        char key[24];
        snprintf(key, sizeof key, "%lld", (long long)dlock__pg_key(name, strlen(name)));
        for (size_t i = 0; i < dlock_list_count(list); i++) {
            const char *n = dlock_list_name(list, i);
            if ((n && strcmp(n, name) == 0) || (!mode && strcmp(dlock_list_key(list, i), key) == 0)) {
                found++;
                ck_assert_int_eq(dlock_list_pid(list, i), (int64_t)getpid());
            }
        }
        dlock_list_free(list);
        ck_assert_int_eq(found, 1);
        ck_assert_int_eq(dlock_break(b, name), 1);
        ck_assert_int_eq(dlock_break(b, name), 0);
        dlock_lock *l2 = NULL;
        ck_assert_int_eq(dlock_acquire(b, name, 30000, 2000, &l2), DLOCK_OK);
        ck_assert_int_eq(dlock_extend(l, 30000), DLOCK_ELOST);
        (void)dlock_release(l);
        ck_assert_int_eq(dlock_release(l2), DLOCK_OK);
        dlock_close(a);
        dlock_close(b);
    }
    free(lease_url);
}
END_TEST

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

/* PgBouncer's admin console (the database `pgbouncer` of the pooler of
 * `url`): close the server connections of `db` once they are free, so that
 * a test starts from fresh server sessions. */
static void pgbouncer_reconnect(const char *url, const char *db)
{
    char admin[512], cmd[64];
    const char *slash = strrchr(url, '/');
    snprintf(admin, sizeof admin, "%.*s/pgbouncer", (int)(slash - url), url);
    snprintf(cmd, sizeof cmd, "RECONNECT %s", db);
    PGconn *pg = PQconnectdb(admin);
    ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "pgbouncer admin: %s", PQerrorMessage(pg));
    PGresult *res = PQexec(pg, cmd);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", cmd, PQerrorMessage(pg));
    PQclear(res);
    PQfinish(pg);
    dlt_sleep_ms(200);
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

/* --- issue 23: durability, errors after a grant, serialization failures, break results,
 *     the two modes on one database, side effects, late extends, pooled sessions ---------- */

/* A private server in dir/pg (DLOCK_PG_FSYNC=on: fsync on); its URL. */
static void private_server(const char *dir, const char *action, char *url, size_t len)
{
    const char *script = pg_server_script();
    ck_assert_msg(script != NULL, "tests/pg-server.sh not found ($top_srcdir)");
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "DLOCK_PG_FSYNC=on sh '%s' %s '%s/pg' >/dev/null", script, action, dir);
    ck_assert_msg(dlt_system(cmd) == 0, "pg-server.sh %s failed", action);
    if (!url)
        return;
    char env_path[4200], line[1024];
    snprintf(env_path, sizeof env_path, "%s/pg/env", dir);
    FILE *f = fopen(env_path, "r");
    ck_assert(f != NULL);
    url[0] = '\0';
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "export DLOCK_TEST_PG_URL='%1000[^']'", url) == 1)
            break;
    fclose(f);
    ck_assert(url[0] != '\0');
    (void)len;
}

static void private_server_remove(char *dir)
{
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "sh '%s' stop '%s/pg'; rm -rf '%s'", pg_server_script(), dir, dir);
    dlt_system(cmd);
    free(dir);
}

static uint64_t fence_of(dlock_lock *l)
{
    uint64_t f = 0;
    ck_assert_int_eq(dlock_fence(l, &f), DLOCK_OK);
    return f;
}

/* Item 2: a postmaster crash (kill -QUIT) right after the last take must
 * lose neither a fencing=on token nor a lease-mode row: the server runs with
 * synchronous_commit=off, fsync on, and a WAL writer that flushes every 10 s;
 * every statement that takes, bumps, extends or releases asks for a
 * synchronous commit of its own. */
START_TEST(test_crash_durability)
{
    char *dir = dlt_tmpdir();
    chmod(dir, 0755);
    char url[1024];
    private_server(dir, "start", url, sizeof url);
    char *fence_url = url_with(url, "fencing=on");
    char *lease_url = url_with(url, "mode=lease");
    char *name = dlt_unique_name("pg-crash");
    char lease_name[256];
    snprintf(lease_name, sizeof lease_name, "%s-lease", name); /* the modes exclude each other */
    /* The tables exist and are checkpointed before the takes under test. */
    dlock_client *c = open_client(fence_url), *lc = open_client(lease_url);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, "pg-crash-warmup", 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(lc, "pg-crash-warmup", 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    {
        const char *keywords[] = {"dbname", NULL};
        const char *values[] = {url, NULL};
        PGconn *pg = PQconnectdbParams(keywords, values, 1);
        ck_assert(PQstatus(pg) == CONNECTION_OK);
        PQclear(PQexec(pg, "CHECKPOINT"));
        PQfinish(pg);
    }
    dlock_close(lc);
    /* Two rounds of each: a round whose WAL crossed a page boundary may
     * have woken the WAL writer, which then flushes the lot. */
    for (int round = 0; round < 2; round++) {
        /* fencing=on: three takes, a crash (nothing else commits in
         * between: a later synchronous commit would flush these too). */
        uint64_t last = 0;
        for (int i = 0; i < 3; i++) {
            ck_assert_int_eq(dlock_acquire(c, name, 5000, 0, &l), DLOCK_OK);
            last = fence_of(l);
            ck_assert_int_eq(dlock_release(l), DLOCK_OK);
        }
        dlock_close(c);
        private_server(dir, "crash", NULL, 0);
        private_server(dir, "start", NULL, 0);
        c = open_client(fence_url);
        ck_assert_int_eq(dlock_acquire(c, name, 5000, 0, &l), DLOCK_OK);
        uint64_t after = fence_of(l);
        fprintf(stderr, "crash: fencing=on token %llu before the crash, %llu after\n", (unsigned long long)last,
                (unsigned long long)after);
        ck_assert_msg(after > last, "fencing=on: token %llu handed out again after a crash (last %llu)",
                      (unsigned long long)after, (unsigned long long)last);
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    }
    dlock_lock *leased = NULL;
    dlock_client *lc2 = NULL;
    for (int round = 0; round < 2; round++) {
        /* Lease mode: a take, a crash. */
        if (lc2)
            dlock_close(lc2);
        lc = open_client(lease_url);
        snprintf(lease_name, sizeof lease_name, "%s-lease-%d", name, round);
        ck_assert_int_eq(dlock_acquire(lc, lease_name, 60000, 0, &leased), DLOCK_OK);
        uint64_t lease_fence = fence_of(leased);
        private_server(dir, "crash", NULL, 0);
        private_server(dir, "start", NULL, 0);
        lc2 = open_client(lease_url);
        dlock_lock *l2 = NULL;
        int rc = dlock_acquire(lc2, lease_name, 60000, 0, &l2);
        fprintf(stderr, "crash: lease-mode take after the crash: %d (the holder's fence %llu)\n", rc,
                (unsigned long long)lease_fence);
        if (rc == DLOCK_OK) {
            uint64_t f2 = fence_of(l2);
            ck_assert_msg(0,
                          "lease mode: the holder's row (fence %llu) was lost in the crash; another took it (fence %llu)",
                          (unsigned long long)lease_fence, (unsigned long long)f2);
        }
        ck_assert_int_eq(rc, DLOCK_EBUSY);
        /* The holder's lease survived the crash: it extends and releases. */
        ck_assert_int_eq(dlock_extend(leased, 60000), DLOCK_OK);
        ck_assert_int_eq(dlock_release(leased), DLOCK_OK);
        dlock_close(lc);
    }
    dlock_close(c);
    dlock_close(lc2);
    free(name);
    free(fence_url);
    free(lease_url);
    private_server_remove(dir);
}
END_TEST

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
    PGconn *pg = raw_connect("dlock-test-admin");
    char sql[256];
    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    raw_exec(pg, sql, NULL);
    PQfinish(pg);
    free(name);
    free(url);
    free(table);
}
END_TEST

/* Item 3, any error after a grant: the fence table refuses every counter
 * (a CHECK that fails), so the try's and the wait's upsert fail after the
 * advisory lock was got in the same statement; the client is told
 * DLOCK_EBACKEND, and its session must not keep the lock. */
START_TEST(test_error_after_grant)
{
    char *table = unique_table("fences_bad");
    char params[160];
    snprintf(params, sizeof params, "fencing=on&table=%s", table);
    char *url = url_with(pg_url, params);
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
    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    raw_exec(pg, sql, NULL);
    PQfinish(pg);
    free(name);
    free(url);
    free(table);
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
    char *table = unique_table("nofences");
    char params[160];
    snprintf(params, sizeof params, "table=%s", table);
    char *url = url_with(pg_url, params);
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
    char *table = unique_table("lease_late");
    char params[160];
    snprintf(params, sizeof params, "mode=lease&table=%s", table);
    char *url = url_with(pg_url, params);
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
    char sql[256];
    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    raw_exec(pg, sql, NULL);
    PQfinish(pg);
    free(name);
    free(url);
    free(table);
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

/* --- main ----------------------------------------------------------------------------------- */

static TCase *tcase(Suite *s, const char *title, int timeout_s)
{
    TCase *tc = tcase_create(title);
    tcase_set_timeout(tc, timeout_s);
    suite_add_tcase(s, tc);
    return tc;
}

int main(void)
{
    Suite *s = suite_create("postgresql");
    TCase *tc = tcase(s, "key", 30);
    tcase_add_test(tc, test_key_vectors);

    pg_url = getenv("DLOCK_TEST_PG_URL");
    if (pg_url && !*pg_url)
        pg_url = NULL;
    if (!pg_url && dlt_required("postgresql")) {
        fprintf(stderr, "DLOCK_TEST_PG_URL is not set but DLOCK_TEST_REQUIRE requires the postgresql backend\n");
        return DLT_HARD_ERROR;
    }
    if (!pg_url) {
        fprintf(stderr, "DLOCK_TEST_PG_URL is not set: only the key tests run (no server tests)\n");
    } else {
        tc = tcase(s, "sql", 30);
        tcase_add_test(tc, test_sql_key_matches);
        tcase_add_test(tc, test_sql_lock_vs_dlock);
        tcase_add_test(tc, test_psql_lock_vs_dlock);
        tcase_add_test(tc, test_hostile_names);
        tc = tcase(s, "session", 60);
        tcase_add_test(tc, test_one_round_trip);
        tcase_add_test(tc, test_holder_text);
        tcase_add_test(tc, test_url_parameters);
        tcase_add_test(tc, test_bad_urls);
        tcase_add_test(tc, test_close_on_exec);
        tcase_add_test(tc, test_smallest_ttl);
        tcase_add_test(tc, test_extend_moves_lease);
        tcase_add_test(tc, test_session_kept_without_locks);
        tcase_add_test(tc, test_many_locks);
        tc = tcase(s, "wait", 60);
        tcase_add_test(tc, test_wait_granted_on_release);
        tcase_add_test(tc, test_wait_times_out);
        tcase_add_test(tc, test_cancel);
        tcase_add_test(tc, test_lock_timeout_race);
        tcase_add_test(tc, test_deadlock);
        tc = tcase(s, "faults", 60);
        tcase_add_test(tc, test_terminate_backend_extend);
        tcase_add_test(tc, test_terminate_backend_dlock_run);
        tcase_add_test(tc, test_kill9);
        tcase_add_test(tc, test_sigstop);
        tcase_add_test(tc, test_silent_network);
        tcase_add_test(tc, test_server_restart);
        tc = tcase(s, "stalls-and-waits", 90);
        tcase_add_test(tc, test_wait_longer_than_ttl);
        tcase_add_test(tc, test_extend_server_stopped);
        tcase_add_test(tc, test_cancel_server_stopped);
        tcase_add_test(tc, test_stale_cancel);
        tcase_add_test(tc, test_dropped_session_marks_locks_lost);
        tcase_add_test(tc, test_passwords_never_shown);
        tc = tcase(s, "lease", 60);
        tcase_add_test(tc, test_url_options);
        tcase_add_test(tc, test_lease_row);
        tcase_add_test(tc, test_lease_faults);
        tcase_add_test(tc, test_lease_table_denied);
        tcase_add_test(tc, test_fencing_session);
        tcase_add_test(tc, test_operations);
        tc = tcase(s, "pooler", 60);
        tcase_add_test(tc, test_pooler);
        dlt_pg_add_late_grant(s);
        tc = tcase(s, "modes-errors-breaks", 90);
        tcase_add_test(tc, test_fence_serialization_failure);
        tcase_add_test(tc, test_error_after_grant);
        tcase_add_test(tc, test_lease_serialization_failure);
        tcase_add_test(tc, test_break_not_yet);
        tcase_add_test(tc, test_break_one_name);
        tcase_add_test(tc, test_modes_exclude);
        tcase_add_test(tc, test_list_no_side_effect);
        tcase_add_test(tc, test_lease_late_extend);
        tcase_add_test(tc, test_pooled_session_not_ours);
        tc = tcase(s, "crash", 120);
        tcase_add_test(tc, test_crash_durability);
    }
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
