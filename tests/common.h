/* Shared fixtures for the Check suites. */
#ifndef DLOCK_TESTS_COMMON_H
#define DLOCK_TESTS_COMMON_H

#include <check.h>
#include <stdint.h>
#include <sys/types.h>

#include "dlock.h"

/* Exit statuses understood by automake's test driver. */
#define DLT_SKIP 77
#define DLT_HARD_ERROR 99

/* The URL in environment variable `env_var`, or: exit 99 when
 * $DLOCK_TEST_REQUIRE names `backend` (or says "all"), else exit 77. */
const char *dlt_require_url(const char *env_var, const char *backend);
/* 1 when $DLOCK_TEST_REQUIRE names `backend` or "all". */
int dlt_required(const char *backend);

/* The URLs of $DLOCK_TEST_URLS (whitespace-separated); when it is unset, a
 * SQLite database in a fresh temporary folder.  The array ends with NULL. */
char **dlt_conformance_urls(int *count);

/* Run suite `s` (and free it) with Check's normal output; returns the
 * number of tests that failed. */
int dlt_run_suite(Suite *s);

/* Run the suite that make_suite() builds once for every URL of
 * dlt_conformance_urls(), with *url and *backend set to the URL and its
 * backend's name while it runs.  A URL that cannot even be opened counts as
 * a failure (reported as "<what>: URL #n", never with the URL itself, which
 * may hold a password).  Returns the number of failures. */
int dlt_run_per_url(const char *what, Suite *(*make_suite)(void), const char **url, const char **backend);

/* A fresh temporary folder (removed by nobody: it lives under $TMPDIR). */
char *dlt_tmpdir(void);
/* A lock name unique to this run, process and call: "<prefix>-<pid>-<n>-<rand>". */
char *dlt_unique_name(const char *prefix);

/* The fixture of a suite on one store: a client of `url` and a fresh
 * dlt_unique_name(prefix) for each test; closed and freed again after it. */
void dlt_fixture_open(const char *url, const char *prefix, dlock_client **client, char **name);
void dlt_fixture_close(dlock_client **client, char **name);

int64_t dlt_now_ms(void);
void dlt_sleep_ms(int64_t ms);

/* The backend name of a URL's client ("sqlite", ...), opening it once. */
const char *dlt_backend_of(const char *url);

/*
 * A child process that holds a lock, driven over pipes.  It opens `url`,
 * acquires `name` and answers "acq <status>".  Then it reads commands, one a
 * line: "extend <ttl_ms>" -> "ext <status>", "release" -> "rel <status>",
 * "exit" -> exits 0.  dlt_child_read() returns the status of the next
 * answer, or DLT_TIMEOUT when none came in time.
 */
#define DLT_TIMEOUT 1000
typedef struct dlt_child {
    pid_t pid;
    int to_child;
    int from_child;
} dlt_child;

int dlt_child_start(dlt_child *c, const char *url, const char *name, uint32_t ttl_ms, int32_t wait_ms);
int dlt_child_read(dlt_child *c, int timeout_ms);
int dlt_child_cmd(dlt_child *c, const char *cmd, int timeout_ms);
/* Start a holder child of `name` with ttl_ms, and a forked driver that keeps
 * it extended (every 700 ms) for about hold_ms, then releases it.  Returns
 * the driver's pid: it exits 0 when every extend and the release said OK. */
pid_t dlt_hold_then_release(dlt_child *holder, const char *url, const char *name, uint32_t ttl_ms, int64_t hold_ms);

/* A thread of this process that waits for `name` on its own `client`
 * (pthread_create(&t, NULL, dlt_waiter_main, &w)): the wait's status, and
 * when it returned (dlt_now_ms(); 0 until then).  A lock it gets is
 * released at once. */
typedef struct {
    dlock_client *client;
    const char *name;
    int32_t wait_ms;
    int rc;
    _Atomic int64_t done_ms;
} dlt_waiter;
void *dlt_waiter_main(void *arg);

/* dlock_cancel() of a wait without bound on a store that does not answer:
 * a holder child takes `name` (TTL 60 s), a thread of this process waits
 * for it on a client of its own; after waiting() (the wait is in place),
 * stall() stops the store, and 700 ms later the wait is cancelled; resume()
 * lets the store go on once the wait has ended (or after 8 s).  Asserts
 * DLOCK_ECANCELED within 2 s, and that the client takes the lock once the
 * holder lets go; returns how long the cancel took (ms). */
int64_t dlt_cancel_on_stalled_store(const char *url, const char *name, void (*waiting)(void), void (*stall)(void),
                                    void (*resume)(void));
/* The same with the store stopped first: an acquire without bound begins
 * then, and is cancelled 300 ms later, while its first round trips go
 * unanswered.  The same assertions. */
int64_t dlt_cancel_before_stalled_wait(const char *url, const char *name, void (*stall)(void), void (*resume)(void));

/* Send `sig` (0: none) and reap the child; returns its wait status. */
int dlt_child_stop(dlt_child *c, int sig);

/* Try to take `name` from a fresh client until it succeeds or timeout_ms
 * passes: returns the milliseconds it took, or -1.  The lock is released. */
int64_t dlt_acquire_within(const char *url, const char *name, uint32_t ttl_ms, int64_t timeout_ms);

/* Run a command line with /bin/sh -c; returns the exit status (or 128+sig). */
int dlt_system(const char *cmd);

/* dlt_system() of a printf-formatted command line (at most 8 KiB). */
int dlt_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Wait until `path` exists (a job has started, say): 1 when it did within
 * timeout_ms, else 0. */
int dlt_wait_for_file(const char *path, int64_t timeout_ms);

/* A file's text (at most 64 KiB) in a static buffer, "" when unreadable. */
const char *dlt_slurp(const char *path);

/* The two tests of a lock held through a fault of the leader of a store's
 * cluster (etcd, ZooKeeper): leader_killed_lock_stays and
 * leader_stopped_lock_stays, which run the suite's own `fault` with SIGKILL
 * and with SIGSTOP. */
#define DLT_LEADER_FAULT_TESTS(fault)     \
    START_TEST(leader_killed_lock_stays)  \
    {                                     \
        fault(SIGKILL);                   \
    }                                     \
    END_TEST                              \
    START_TEST(leader_stopped_lock_stays) \
    {                                     \
        fault(SIGSTOP);                   \
    }                                     \
    END_TEST

/* The dlock tool to run: $DLOCK_BIN (make check sets it), else ./dlock. */
const char *dlt_dlock_bin(void);

/* On a store with two modes (session and mode=lease): a name held in
 * either is shown by the other mode's `dlock check NAME` as information
 * (files go to dir). */
void dlt_check_other_mode_holder(const char *session_url, const char *dir, const char *name);

/* The newest max runs of lock in a store's history (0: all it keeps), read
 * by a client of its own; the caller frees them. */
dlock_history *dlt_read_history(const char *url, const char *lock, size_t max);

#endif
