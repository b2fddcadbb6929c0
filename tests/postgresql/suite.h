/*
 * The parts of the PostgreSQL suite, and the fixtures they share.
 * tests/check_postgresql.c builds the suite; each file adds its cases.
 */
#ifndef DLOCK_TESTS_POSTGRESQL_SUITE_H
#define DLOCK_TESTS_POSTGRESQL_SUITE_H

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
#include "../../backends/postgresql/key.h"
#include "internal.h"
#include "../common.h"

/* The SQL of docs/postgresql.md that derives the key of a name. */
#define DOC_KEY_SQL "('x' || left(encode(sha256(convert_to($1, 'UTF8')), 'hex'), 16))::bit(64)::bigint"
extern const char *pg_url;
PGconn *raw_connect(const char *appname);

/* Run `sql` with one text parameter; the first column of the first row. */
char *raw_value(PGconn *pg, const char *sql, const char *param);
int raw_bool(PGconn *pg, const char *sql, const char *param);

/* The server pid of the session that holds (granted) or waits for (not
 * granted) `name`, or 0. */
int advisory_pid(PGconn *pg, const char *name, int granted);

/* The server pid of the session that holds `name`, or 0. */
int backend_pid_of_holder(PGconn *pg, const char *name);
int wait_for_holder_pid(PGconn *pg, const char *name, int timeout_ms);
void terminate_backend(PGconn *pg, int pid);
dlock_client *open_client(const char *url);
int held_elsewhere(const char *name);
const char *dlock_bin(void);
const char *pg_server_script(void);
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

void proxy_close_pair(int *pair);
void *proxy_main(void *arg);
char *url_escape(const char *s);

/* Starts a proxy to the test server; *url_out is a URL that goes through it. */
proxy *proxy_start(char **url_out);
void proxy_stop(proxy *px);

typedef struct waiter {
    dlock_client *client;
    const char *name;
    int32_t wait_ms;
    _Atomic int rc;
    int64_t took_ms;
    dlock_lock *lock;
} waiter;

void *waiter_main(void *arg);

/* A process that sends SIGCONT to `pid` after `after_ms` whatever becomes of
 * this test (a failed check ends the test process at once). */
pid_t sigcont_guard(int pid, int after_ms);
void sigcont_now(int pid, pid_t guard);

/* pg_url with extra query parameters. */
char *url_with(const char *base, const char *params);

/* A table name of its own for a test: created on first use. */
char *unique_table(const char *prefix);
/* base with OPTIONS and table=<a table of the test's own, named after
 * prefix, into *table>; both malloc'ed. */
char *url_with_table(const char *base, const char *options, const char *prefix, char **table);
/* The end of such a test: its table dropped (through pg, or a connection
 * of its own when pg is NULL), pg closed, table, url and name freed. */
void table_test_done(PGconn *pg, char *table, char *url, char *name);

/* Run one statement with the name as $1 (text, converted to bytes). */
void raw_exec(PGconn *pg, const char *sql, const char *name);
void raw_row(PGconn *pg, const char *table, const char *set, const char *name);

/* PgBouncer's admin console (the database `pgbouncer` of the pooler of
 * `url`): close the server connections of `db` once they are free, so that
 * a test starts from fresh server sessions. */
void pgbouncer_reconnect(const char *url, const char *db);
TCase *tcase(Suite *s, const char *title, int timeout_s);

/* PostgreSQL suite, tcases "key" and "sql": the lock-name to advisory-key vectors (no server needed),
 * the documented key in SQL and psql excludes dlock, hostile names. */
void dlt_pg_add_key(Suite *s);
/* PostgreSQL suite, tcase "sql": the documented key in SQL and psql excludes dlock, hostile names
 * (key.c). */
void dlt_pg_add_sql(Suite *s);
/* PostgreSQL suite, tcase "session": round trips, holder text, URL parameters, close-on-exec, the
 * session lease. */
void dlt_pg_add_session(Suite *s);
/* PostgreSQL suite, tcase "wait": waits granted on release, timeouts, cancel, lock_timeout races,
 * deadlocks. */
void dlt_pg_add_wait(Suite *s);
/* PostgreSQL suite, tcase "faults": pg_terminate_backend, kill -9, SIGSTOP, a silent network and a
 * server restart while a lock is held. */
void dlt_pg_add_faults(Suite *s);
/* PostgreSQL suite, tcase "stalls-and-waits": the lease after a wait, a stopped server, stale cancels,
 * dropped sessions, passwords never shown. */
void dlt_pg_add_stalls(Suite *s);
/* PostgreSQL suite, tcase "lease": lease mode, its row and faults, fencing=on and the
 * list/break/records operations. */
void dlt_pg_add_lease(Suite *s);
/* PostgreSQL suite, tcase "pooler": session mode through PgBouncer. */
void dlt_pg_add_pooler(Suite *s);
/* PostgreSQL suite, tcase "modes-errors-breaks": serialization failures, errors after a grant, breaks,
 * modes seeing each other. */
void dlt_pg_add_modes(Suite *s);
/* PostgreSQL suite, tcase "crash": fencing tokens and leases survive a crash of a durable server. */
void dlt_pg_add_crash(Suite *s);

/* A wait granted and cancelled in the same instant (late_grant.c). */
void dlt_pg_add_late_grant(Suite *s);

#endif
