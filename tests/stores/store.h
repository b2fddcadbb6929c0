/*
 * Store adapters: what each store tells the shared suites about itself.
 *
 * The shared suites (conformance, takeover, hostile, stall, process, stress)
 * run against every URL of $DLOCK_TEST_URLS.  They never compare a store's
 * name: they ask the store's adapter what it can do (capability bits), how
 * late a silent holder's lock may be freed, how to look at a lock with the
 * store's own client, and how to take a lock away behind its holder's back.
 *
 * One file per store, tests/stores/STORE.c, defines one
 * `const struct dlt_store dlt_store_STORE`; tests/stores/stores.c lists them
 * (under HAVE_STORE).  dlt_store_of() finds the adapter of a URL's backend and
 * fails the test run loudly, naming the file to add, when there is none.
 */
#ifndef DLOCK_TESTS_STORE_H
#define DLOCK_TESTS_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Capability bits (dlt_store.caps() of a URL: a URL option may change them). */
enum {
    /* The lock ends with the holder's connection or session: a holder that
     * exits frees it at once (PostgreSQL/MySQL session mode; not ZooKeeper,
     * whose session outlives a killed process until its timeout). */
    DLT_RELEASES_ON_EXIT = 1u << 0,
    /* dlock_fence() gives a token at this URL without further options. */
    DLT_FENCES = 1u << 1,
    /* A server reached over the network: the URL has user:password@host:port. */
    DLT_NETWORK = 1u << 2,
    /* The store is a file on this host (symbolic links, sidecar files). */
    DLT_LOCAL_FILE = 1u << 6,
    /* It keeps dlock run's history and describes itself to dlock check
     * (the backend's history_add, history_read and check slots). */
    DLT_HISTORY = 1u << 7,
    /* The lock outlives the connection that took it (a row, a key, a lease),
     * and take_away() leaves the holder's connection as it is: nothing tells
     * the holder before its next call, and its lease still looks alive. */
    DLT_OUTLIVES_CONNECTION = 1u << 3,
    /* dlock_list_locks() shows names (not only keys). */
    DLT_LISTS_NAMES = 1u << 4,
    /* A replicated store whose clients may list several servers. */
    DLT_CLUSTER = 1u << 5,
};

/* A URL of the store's kind that must fail with one of the expect_count
 * statuses of `expect` (DLOCK_OK among them: a server may accept it), never
 * showing a password.  In `url`: {scheme} {user}
 * {secret} (a made-up password) {host} {port} {db} {unused_port}, and
 * {password} (the test server's real one: the entry is used only when the
 * test URL has one). */
struct dlt_bad_url {
    const char *what;
    const char *url;
    int expect[3];
    int expect_count;
};

struct dlt_store {
    const char *backend; /* what dlock_backend() says of its clients: "redis" */
    /* The environment variable with its test server's URL
     * (tests/servers.sh prints it); NULL: no server (SQLite). */
    const char *url_env;
    unsigned (*caps)(const char *url);
    /* How late after its TTL a silent holder's lock may be freed: the
     * store's granularity (whole seconds, a session tick) plus slack. */
    int64_t expiry_slack_ms;
    /* The longest lease the test server grants (SPEC "The granted lease":
     * ZooKeeper's maxSessionTimeout); 0: any TTL is granted whole. */
    int64_t max_lease_ms;
    /* For made-up URLs of the same kind: the default port (NULL: no network)
     * and what follows host:port/ ("postgres", "0", ""). */
    const char *default_port;
    const char *url_path;
    /* A database that does not exist on the test server (NULL: none). */
    const char *missing_db;
    /* URLs that only this store's kind has (TLS options, sockets...),
     * ending with {NULL}: hostile tries each. */
    const struct dlt_bad_url *bad_urls;
    /* A refused login: the userinfo that provokes one on the test server
     * ("dlock:Wr0ngPassw0rd"), and a word of the server's message.  NULL: the
     * store has no logins to refuse. */
    const char *bad_login_userinfo;
    const char *bad_login_word;
    /* The environment variable of a URL whose user has a password, for the
     * refused login (NULL: url_env's). */
    const char *login_url_env;
    /* A URL option that takes a value of any length ("application_name="),
     * to test that a long URL is never cut; NULL: none. */
    const char *padding_option;
    /* An option that makes the open fail ("sslmode=no-such-mode"). */
    const char *padding_bad_tail;
    /* Who holds `name`, as the store's own client says, in a form that
     * changes when anything about that holding changes (owner, expiry,
     * token); "" when free. */
    void (*view)(const char *url, const char *name, char *out, size_t outlen);
    /* Take `name` away behind its holder's back, as an operator or the
     * server would (delete the row or key, end the session).  Fails the
     * test (ck_assert) when there was nothing to take. */
    void (*take_away)(const char *url, const char *name);
    /* The server process to SIGSTOP so that the client whose process is
     * `client_pid` stops getting answers; -1 when it cannot be found.  Or,
     * for a server whose one process serves every client, its pid file:
     * $pid_file_dir_env/pid_file.  (dlt_server_pid() asks either.) */
    pid_t (*server_pid)(const char *url, pid_t client_pid);
    const char *pid_file_dir_env;
    const char *pid_file;
    /* For a store with DLT_HISTORY (NULL: the cases that need them pass
     * over the store): how many entries the store itself keeps in the run
     * history of `name`, runs or not, as its own client sees them; and
     * junk written there as someone else might (values that are no run,
     * an entry of a shape libdlock never writes), `count` entries that the
     * count above then includes. */
    int (*history_entries)(const char *url, const char *name);
    void (*history_junk)(const char *url, const char *name, int *count);
};

/* The adapter of `url`'s backend; exits 99 with a message naming
 * tests/stores/BACKEND.c when the store has none. */
const struct dlt_store *dlt_store_of(const char *url);
/* Every store built in, ending with NULL. */
const struct dlt_store *const *dlt_stores(void);
/* The same for a backend name. */
const struct dlt_store *dlt_store_named(const char *backend);

/* 1 when the query of `url` has `option` ("mode=lease") exactly. */
int dlt_url_has(const char *url, const char *option);
/* `url` without libdlock's own options (mode, table, fencing, prefix), for
 * a store's own client. */
void dlt_url_without_options(const char *url, char *out, size_t outlen);
/* The server process that serves `client_pid` at `url`, as the store's
 * adapter says (server_pid, or its pid file); -1 when none is known. */
pid_t dlt_server_pid(const struct dlt_store *store, const char *url, pid_t client_pid);
/* The capabilities of a SQL store with a session mode (the default) and
 * mode=lease, whose session mode fences with fencing=on. */
unsigned dlt_sql_store_caps(const char *url);

/* --- Helpers of one store's adapter that its own suites use too. */
#ifdef HAVE_SQLITE
/* Run `sql` with ?1 bound to `name` on the database of an sqlite: URL; the
 * first column of the first row into out ("" none).  The rows changed. */
int dlt_sqlite_run(const char *url, const char *sql, const char *name, char *out, size_t outlen);
#endif
#ifdef HAVE_POSTGRESQL
#include <libpq-fe.h>
/* A plain libpq connection to the URL's server (libdlock's options dropped). */
PGconn *dlt_pg_connect(const char *url);
/* Run `sql` with $1 the advisory key of `name`; the first column of the
 * first row into out.  0, or -1 on an error. */
int dlt_pg_key_query(PGconn *pg, const char *sql, const char *name, char *out, size_t outlen);
/* How pg_locks shows the advisory lock of key $1. */
#define DLT_PG_LOCKS_OF_KEY                                                            \
    "SELECT pid FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND objsubid = 1" \
    " AND classid = (($1::bigint >> 32) & 4294967295)::oid AND objid = ($1::bigint & 4294967295)::oid"
/* The server pid of the session that holds `name` ("" when free). */
void dlt_pg_holder_pid(const char *url, const char *name, char *out, size_t outlen);
#endif

#endif
