/*
 * The PostgreSQL backend: its key derivation (no server needed), and against
 * a live server ($DLOCK_TEST_PG_URL): plain SQL and psql take the same lock,
 * one round trip per operation, the lease, waiting and cancel, and real
 * faults (pg_terminate_backend, kill -9, SIGSTOP, a stalled network, a
 * server restart).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "postgresql/suite.h"

const char *pg_url;

/* --- helpers -------------------------------------------------------------------------- */

PGconn *raw_connect(const char *appname)
{
    const char *keywords[] = {"dbname", "application_name", NULL};
    const char *values[] = {pg_url, appname, NULL};
    PGconn *pg = PQconnectdbParams(keywords, values, 1);
    ck_assert_msg(pg && PQstatus(pg) == CONNECTION_OK, "raw connect: %s", pg ? PQerrorMessage(pg) : "");
    return pg;
}

/* Run `sql` with one text parameter; the first column of the first row. */
char *raw_value(PGconn *pg, const char *sql, const char *param)
{
    const char *values[1] = {param};
    PGresult *res = PQexecParams(pg, sql, param ? 1 : 0, NULL, values, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(pg));
    char *v = PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) ? strdup(PQgetvalue(res, 0, 0)) : NULL;
    PQclear(res);
    return v;
}

int raw_bool(PGconn *pg, const char *sql, const char *param)
{
    char *v = raw_value(pg, sql, param);
    int t = v && v[0] == 't';
    free(v);
    return t;
}

/* The server pid of the session that holds (granted) or waits for (not
 * granted) `name`, or 0. */
int advisory_pid(PGconn *pg, const char *name, int granted)
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
int backend_pid_of_holder(PGconn *pg, const char *name)
{
    return advisory_pid(pg, name, 1);
}

int wait_for_holder_pid(PGconn *pg, const char *name, int timeout_ms)
{
    int64_t deadline = dlt_now_ms() + timeout_ms;
    int pid;
    while ((pid = backend_pid_of_holder(pg, name)) == 0 && dlt_now_ms() < deadline)
        dlt_sleep_ms(20);
    return pid;
}

void terminate_backend(PGconn *pg, int pid)
{
    char arg[16];
    snprintf(arg, sizeof arg, "%d", pid);
    ck_assert(raw_bool(pg, "SELECT pg_terminate_backend($1::int)", arg));
}

dlock_client *open_client(const char *url)
{
    dlock_client *c = NULL;
    int rc = dlock_open(url, &c);
    ck_assert_msg(rc == DLOCK_OK, "dlock_open: %d %s", rc, dlock_last_error());
    return c;
}

int held_elsewhere(const char *name)
{
    dlock_client *c = open_client(pg_url);
    int rc = dlock_holder(c, name, NULL, 0);
    dlock_close(c);
    ck_assert_msg(rc == 0 || rc == 1, "holder: %d %s", rc, dlock_last_error());
    return rc;
}

const char *dlock_bin(void)
{
    static char path[4096];
    const char *bin = getenv("DLOCK_BIN");
    if (bin && *bin)
        return bin;
    const char *top = getenv("top_builddir");
    snprintf(path, sizeof path, "%s/dlock", top && *top ? top : ".");
    return access(path, X_OK) == 0 ? path : NULL;
}

const char *pg_server_script(void)
{
    static char path[4096];
    const char *top = getenv("top_srcdir");
    snprintf(path, sizeof path, "%s/tests/pg-server.sh", top && *top ? top : ".");
    return access(path, R_OK) == 0 ? path : NULL;
}

void proxy_close_pair(int *pair)
{
    if (pair[0] >= 0)
        close(pair[0]);
    if (pair[1] >= 0)
        close(pair[1]);
    pair[0] = pair[1] = -1;
}

void *proxy_main(void *arg)
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

char *url_escape(const char *s)
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
proxy *proxy_start(char **url_out)
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

void proxy_stop(proxy *px)
{
    atomic_store(&px->stop, 1);
    pthread_join(px->thread, NULL);
    free(px);
}

void *waiter_main(void *arg)
{
    waiter *w = arg;
    int64_t start = dlt_now_ms();
    w->rc = dlock_acquire(w->client, w->name, 10000, w->wait_ms, &w->lock);
    w->took_ms = dlt_now_ms() - start;
    return NULL;
}

/* --- issue 10: leases after a wait, deadlines, stale cancels, passwords, dropped sessions --- */

/* A process that sends SIGCONT to `pid` after `after_ms` whatever becomes of
 * this test (a failed check ends the test process at once). */
pid_t sigcont_guard(int pid, int after_ms)
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

void sigcont_now(int pid, pid_t guard)
{
    kill(pid, SIGCONT);
    kill(guard, SIGKILL);
    waitpid(guard, NULL, 0);
}

/* --- second wave: lease mode, fencing, pooler detection, operations ---------------------- */

/* pg_url with extra query parameters. */
char *url_with(const char *base, const char *params)
{
    size_t len = strlen(base) + strlen(params) + 2;
    char *u = malloc(len);
    snprintf(u, len, "%s%c%s", base, strchr(base, '?') ? '&' : '?', params);
    return u;
}

void table_test_done(PGconn *pg, char *table, char *url, char *name)
{
    if (!pg)
        pg = raw_connect("dlock-test-admin");
    char sql[256];
    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    raw_exec(pg, sql, NULL);
    PQfinish(pg);
    free(name);
    free(url);
    free(table);
}

char *url_with_table(const char *base, const char *options, const char *prefix, char **table)
{
    *table = unique_table(prefix);
    char params[160];
    snprintf(params, sizeof params, "%s%stable=%s", options, options[0] ? "&" : "", *table);
    return url_with(base, params);
}

/* A table name of its own for a test: created on first use. */
char *unique_table(const char *prefix)
{
    char *t = malloc(64);
    snprintf(t, 64, "%s_%d_%lld", prefix, (int)getpid(), (long long)(dlt_now_ms() % 100000000));
    return t;
}

/* Run one statement with the name as $1 (text, converted to bytes). */
void raw_exec(PGconn *pg, const char *sql, const char *name)
{
    const char *values[1] = {name};
    PGresult *res = PQexecParams(pg, sql, name ? 1 : 0, NULL, values, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQerrorMessage(pg));
    PQclear(res);
}

void raw_row(PGconn *pg, const char *table, const char *set, const char *name)
{
    char sql[512];
    snprintf(sql, sizeof sql, "UPDATE %s SET %s WHERE name = convert_to($1, 'UTF8')", table, set);
    raw_exec(pg, sql, name);
}

/* PgBouncer's admin console (the database `pgbouncer` of the pooler of
 * `url`): close the server connections of `db` once they are free, so that
 * a test starts from fresh server sessions. */
void pgbouncer_reconnect(const char *url, const char *db)
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

/* --- main ----------------------------------------------------------------------------------- */

TCase *tcase(Suite *s, const char *title, int timeout_s)
{
    TCase *tc = tcase_create(title);
    tcase_set_timeout(tc, timeout_s);
    suite_add_tcase(s, tc);
    return tc;
}

int main(void)
{
    Suite *s = suite_create("postgresql");
    dlt_pg_add_key(s);

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
        dlt_pg_add_sql(s);
        dlt_pg_add_session(s);
        dlt_pg_add_wait(s);
        dlt_pg_add_faults(s);
        dlt_pg_add_stalls(s);
        dlt_pg_add_lease(s);
        dlt_pg_add_pooler(s);
        dlt_pg_add_late_grant(s);
        dlt_pg_add_modes(s);
        dlt_pg_add_crash(s);
    }
    int failed = dlt_run_suite(s);
    return failed == 0 ? 0 : 1;
}
