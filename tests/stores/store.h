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
     * exits frees it at once (PostgreSQL/MySQL session mode, ZooKeeper). */
    DLT_RELEASES_ON_EXIT = 1u << 0,
    /* dlock_fence() gives a token at this URL without further options. */
    DLT_FENCES = 1u << 1,
    /* A server reached over the network: the URL has user:password@host:port. */
    DLT_NETWORK = 1u << 2,
    /* The lock outlives the connection that took it (a row, a key, a lease):
     * nothing tells the holder before its next call. */
    DLT_OUTLIVES_CONNECTION = 1u << 3,
    /* dlock_list_locks() shows names (not only keys). */
    DLT_LISTS_NAMES = 1u << 4,
    /* A replicated store whose clients may list several servers. */
    DLT_CLUSTER = 1u << 5,
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
    /* For made-up URLs of the same kind: the default port (NULL: no network)
     * and what follows host:port/ ("postgres", "0", ""). */
    const char *default_port;
    const char *url_path;
    /* A refused login: the userinfo that provokes one on the test server
     * ("dlock:Wr0ngPassw0rd"), and a word of the server's message.  NULL: the
     * store has no logins to refuse. */
    const char *bad_login_userinfo;
    const char *bad_login_word;
    /* Who holds `name`, as the store's own client says, in a form that
     * changes when anything about that holding changes (owner, expiry,
     * token); "" when free. */
    void (*view)(const char *url, const char *name, char *out, size_t outlen);
    /* Take `name` away behind its holder's back, as an operator or the
     * server would (delete the row or key, end the session).  Fails the
     * test (ck_assert) when there was nothing to take. */
    void (*take_away)(const char *url, const char *name);
    /* The server process to SIGSTOP so that the client whose process is
     * `client_pid` stops getting answers; -1 when it cannot be found. */
    pid_t (*server_pid)(const char *url, pid_t client_pid);
};

/* The adapter of `url`'s backend; exits 99 with a message naming
 * tests/stores/BACKEND.c when the store has none. */
const struct dlt_store *dlt_store_of(const char *url);
/* The same for a backend name. */
const struct dlt_store *dlt_store_named(const char *backend);

#endif
