/*
 * Internal interfaces shared by the core (lib/) and the backends (backends/).
 * Nothing here is installed or exported.
 */
#ifndef DLOCK_INTERNAL_H
#define DLOCK_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "dlock.h"

#if defined(__GNUC__)
#define DLOCK_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define DLOCK_PRINTF(f, a)
#endif

/*
 * The typed bases.  Every backend's connection embeds `struct dlock_conn`,
 * and every backend's per-lock state `struct dlock_held`, as its first
 * member (as SQLite's unixFile embeds sqlite3_file, and libgit2's backends
 * embed git_odb_backend): the core passes the base, and each backend
 * recovers its own struct in one place.
 */
struct dlock_conn {
    const struct dlock_backend *backend; /* set by the core after connect */
};

struct dlock_held {
    /* For session stores, kept by lib/session.c; other backends leave them. */
    struct dlock_held *prev, *next; /* the locks held on the current session */
    uint64_t generation;            /* of the session it was taken on */
    uint32_t ttl_ms;                /* its lease */
    int linked;                     /* on the session's list */
    /* Set by the backend's acquire: the fencing token of this acquisition,
     * 0 when the store gives none (dlock_fence() is then DLOCK_ENOTSUP). */
    uint64_t fence;
    /* Set by acquire/extend when the store granted a shorter lease than
     * asked (ZooKeeper clamps a session timeout); 0: as asked.  The core's
     * lease clock follows the shorter one. */
    uint32_t granted_ms;
};

/* One entry of a list (dlock_list_locks()), as a backend reports it to
 * dlock__list_add(), which copies every string.  NULL strings: unknown. */
struct dlock_list_entry {
    const char *name; /* the lock's name, NULL when the store keeps none */
    const char *key;  /* how the store knows it (NULL: the name) */
    const char *holder;
    const char *host;
    int64_t pid;        /* 0 unknown */
    int64_t since_ms;   /* Unix ms on the store's clock, -1 unknown */
    int64_t expires_ms; /* Unix ms on the store's clock, -1 none or unknown */
    uint64_t fence;     /* 0 unknown */
};
struct dlock_list;
/* DLOCK_OK or DLOCK_ENOMEM (with text). */
int dlock__list_add(struct dlock_list *list, const struct dlock_list_entry *entry);
/* The entry whose key is `key` learns its since (ms, >= 0): 1, or 0 when
 * there is no such entry. */
int dlock__list_set_since(struct dlock_list *list, const char *key, int64_t since_ms);
/* The core's side (lib/list.c): a new empty list, and its order (by key). */
struct dlock_list *dlock__list_new(void);
void dlock__list_sort(struct dlock_list *list);

/* One run of a job, as the core hands it to a store's history_add and a
 * store gives it back to dlock__history_add() (which copies the strings).
 * Times are Unix ms on the store's clock. */
struct dlock_history_entry {
    int64_t start_ms, end_ms;
    const char *host; /* NULL: unknown */
    int64_t pid;      /* 0 unknown */
    const char *outcome;
    int exit_status; /* -1 none */
    uint64_t fence;  /* 0 none */
};
struct dlock_history;
int dlock__history_add(struct dlock_history *history, const struct dlock_history_entry *entry);
/* A run as one line of text, for the stores that keep runs as strings
 * (Redis, ZooKeeper, etcd): "START END PID EXIT FENCE OUTCOME HOST".  What
 * snprintf returns. */
int dlock__history_to_text(const struct dlock_history_entry *run, char *out, size_t outlen);
/* Such a line back into an entry pointing into `text` (which is cut): 1,
 * or 0 for anything else (junk someone wrote there is skipped). */
int dlock__history_from_text(char *text, struct dlock_history_entry *e);
struct dlock_history *dlock__history_new(void);

/* One item of a preflight (dlock_check()): `key` names what was checked
 * ("server", "history", "synchronous_commit"), the value says what was
 * found in one line, the verdict is DLOCK_CHECK_*.  DLOCK_OK or
 * DLOCK_ENOMEM. */
struct dlock_check_list;
int dlock__check_add(struct dlock_check_list *list, const char *key, int verdict, const char *fmt, ...)
    DLOCK_PRINTF(4, 5);
struct dlock_check_list *dlock__check_new(void);

/*
 * The query parameters that libdlock reads on every backend (docs/contract.md,
 * "Stores and URLs"): mode=session|lease, table=NAME, fencing=on|off,
 * prefix=TEXT.  dlock__url_options() parses them out of `url` (values
 * percent-decoded and checked: an unknown value is DLOCK_EINVAL naming the
 * parameter) and gives back in *rest a malloc'ed copy of the URL without them
 * (other parameters, in their order, untouched; no '?' when none is left).
 * A backend then refuses the options it has no use for with
 * dlock__url_options_only().
 */
enum { DLOCK_MODE_DEFAULT = 0, DLOCK_MODE_SESSION, DLOCK_MODE_LEASE };
enum { DLOCK_FENCING_DEFAULT = 0, DLOCK_FENCING_ON, DLOCK_FENCING_OFF };
struct dlock_url_options {
    int mode;     /* DLOCK_MODE_* */
    int fencing;  /* DLOCK_FENCING_* */
    char *table;  /* NULL: not given.  An SQL identifier: [A-Za-z_][A-Za-z0-9_]{0,62} */
    char *prefix; /* NULL: not given.  Any text, 0..255 bytes */
};
int dlock__url_options(const char *url, struct dlock_url_options *opts, char **rest);
/* DLOCK_EINVAL naming the first option given in `opts` that `backend` does
 * not take (bits DLOCK_OPT_*), else DLOCK_OK. */
enum { DLOCK_OPT_MODE = 1, DLOCK_OPT_TABLE = 2, DLOCK_OPT_FENCING = 4, DLOCK_OPT_PREFIX = 8 };
int dlock__url_options_only(const struct dlock_url_options *opts, unsigned allowed, const char *backend);
void dlock__url_options_free(struct dlock_url_options *opts);
/* The common options of a store that has only leases and always fences
 * (Redis, etcd): mode=session and fencing=off refused saying so, table=
 * refused; *prefix (malloc'ed): prefix= or default_prefix; *rest as from
 * dlock__url_options() (the caller frees it, and wipes it: it may hold a
 * password).  On failure nothing is left to free. */
int dlock__url_lease_options(const char *url, const char *backend, const char *default_prefix, char **prefix,
                             char **rest);

/*
 * What the core tells a backend about one call, and what it answers.
 * Every round trip is bounded: a backend that cannot finish by deadline_ms
 * gives up, drops a connection whose state it no longer knows, and returns
 * DLOCK_ECONN (a lock on a dropped session is DLOCK_ELOST).
 */
struct dlock_call {
    int64_t deadline_ms;    /* dlock__now_ms() time; INT64_MAX: no deadline (a wait without bound) */
    int64_t lease_start_ms; /* acquire and extend: see acquire */
};

/* The bound on a call that has no lease to lose (a try, a holder query, the
 * round trips around a wait): long enough for a slow network, short enough
 * that a store that stopped answering is noticed. */
#define DLOCK_CALL_TIMEOUT_MS 10000

/*
 * The backend table.  One const table per backend file, filled with
 * designated initializers.  The tables are compiled in with the core, so
 * the compiler checks every member; there is no version field (an
 * out-of-tree backend interface would bring one back).  Required: connect,
 * disconnect, acquire, extend, release.  Optional (NULL when the store has
 * no such thing; the core checks): holder, cancel, cancel_clear,
 * session_ttl_ms, session_generation.
 *
 * The core has already checked every argument (name: 1..255 bytes of valid
 * UTF-8, NUL-terminated; ttl_ms >= 1; wait_ms >= DLOCK_WAIT_FOREVER) and holds
 * the client's mutex around every call except `cancel`.  Every failure sets
 * the error text with dlock__error() and returns a DLOCK_E* status.
 */
/* NOTE: no typedef, since dlock_backend() is a public function: write
 * `const struct dlock_backend dlock__backend_NAME = { ... };` */
struct dlock_backend {
    const char *name; /* what dlock_backend() returns: "sqlite" */
    /* URL schemes handled, lower case, NULL-terminated */
    const char *const *schemes;

    /* Parse the whole URL and set up a connection (may connect lazily, but an
     * unreachable store must then surface as DLOCK_ECONN on first use).
     * Malformed URL: DLOCK_EINVAL.  The message never contains a password. */
    int (*connect)(const char *url, struct dlock_conn **conn_out);
    /* Release everything still held on the connection and free it. */
    void (*disconnect)(struct dlock_conn *conn);

    /* Take `name` for ttl_ms, waiting as wait_ms says.  On DLOCK_OK, *lock_out
     * is the backend's per-lock state (never NULL), and
     * call->lease_start_ms is the send time of the round trip that started
     * the store's lease (the core presets the time before the call; a wait
     * granted at an unknown moment inside one round trip is confirmed by one
     * more round trip, whose send time is the answer). */
    int (*acquire)(struct dlock_conn *conn, const char *name, uint32_t ttl_ms, int32_t wait_ms, struct dlock_call *call,
                   struct dlock_held **lock_out);
    /* Confirm the lock is still ours and renew it to ttl_ms from now.  Not ours
     * any more: DLOCK_ELOST. */
    int (*extend)(struct dlock_conn *conn, struct dlock_held *lock, const char *name, uint32_t ttl_ms,
                  struct dlock_call *call);
    /* Release and free `lock` (always, whatever the outcome).  DLOCK_ELOST if
     * it was no longer held. */
    int (*release)(struct dlock_conn *conn, struct dlock_held *lock, const char *name, struct dlock_call *call);
    /* 1 held (buf filled with who holds it, NUL-terminated, truncated to
     * buflen; buf may be NULL when buflen is 0), 0 free, <0 error. */
    int (*holder)(struct dlock_conn *conn, const char *name, char *buf, size_t buflen, struct dlock_call *call);
    /* Called from another thread WITHOUT the client mutex while an acquire
     * with a wait is in progress: make it return DLOCK_ECANCELED soon, also
     * when the store does not answer (give up locally).  Must not block on
     * the store for long.  The core serializes it with the start and the end
     * of every wait (its cancel mutex), so it never runs outside a wait. */
    void (*cancel)(struct dlock_conn *conn);
    /* Optional.  Called under the cancel mutex when a wait has ended: forget
     * a cancel that came too late to matter, so that it never reaches the
     * next wait. */
    void (*cancel_clear)(struct dlock_conn *conn);
    /* Optional.  For stores that enforce the lease on the whole session (the
     * session dies when idle for this long): the idle timeout now in force,
     * in ms, 0 for none.  The core uses it so that dlock_remaining_ms() never
     * promises more than the session will live. */
    uint32_t (*session_ttl_ms)(struct dlock_conn *conn);
    /* Optional.  For session stores: a number that changes whenever the
     * backend drops or replaces its server session.  The core reads it after
     * every call and marks every lock taken in an earlier generation lost. */
    uint64_t (*session_generation)(struct dlock_conn *conn);

    /* --- Operations (all optional: NULL is DLOCK_ENOTSUP with a message). */
    /* Add every lock held in the store whose name starts with `prefix` ("" for
     * all) with dlock__list_add().  A store that keeps no names (session
     * mode) lists every lock it can see, with its key. */
    int (*list)(struct dlock_conn *conn, const char *prefix, struct dlock_list *list, struct dlock_call *call);
    /* Break `name`, held by someone else: 1 broken, 0 it was free, <0 error
     * (no privilege: DLOCK_EBACKEND saying so plainly). */
    int (*break_lock)(struct dlock_conn *conn, const char *name, struct dlock_call *call);
    /* The store's clock now, as Unix ms. */
    int (*store_time)(struct dlock_conn *conn, int64_t *unix_ms, struct dlock_call *call);
    /* The step of that clock when coarser than 1 ms (its readings are
     * truncated to it: etcd's Date header, 1000); 0 otherwise. */
    int clock_step_ms;
    /* The run record of `name` (the last slot marked done, 0: none), read
     * and written while `lock` is held: DLOCK_ELOST when it is not (the
     * write happens only while the owner still holds it). */
    int (*record_get)(struct dlock_conn *conn, struct dlock_held *lock, const char *name, int64_t *slot,
                      struct dlock_call *call);
    int (*record_put)(struct dlock_conn *conn, struct dlock_held *lock, const char *name, int64_t slot,
                      struct dlock_call *call);

    /* --- Run history (optional, both or neither: NULL is DLOCK_ENOTSUP).
     * A store adds history by filling these two. */
    /* Append `run` (its end_ms read from store_time by the core, start_ms =
     * end_ms - the duration; host and pid are this process's) to the
     * history of `name`, and drop all but the newest `keep` runs of that
     * name in the same write.  A store that refuses (no rights to the
     * table, the list): DLOCK_EBACKEND saying what the role lacks. */
    int (*history_add)(struct dlock_conn *conn, const char *name, const struct dlock_history_entry *run,
                       unsigned keep, struct dlock_call *call);
    /* Add the newest `max` runs of `name` (max >= 1), newest first, with
     * dlock__history_add().  No history yet (not even the table): DLOCK_OK
     * and nothing added. */
    int (*history_read)(struct dlock_conn *conn, const char *name, size_t max, struct dlock_history *out,
                        struct dlock_call *call);
    /* --- Preflight (optional).  Add what this store is (server, version,
     * database, mode, table, prefix), whether this client has the rights
     * every feature needs, and the settings safety depends on, with
     * dlock__check_add().  The core adds the backend, the clock and, for a
     * `name` (NULL: none), its holder at this URL; a store with more than
     * one mode may add who holds it in the modes the URL does not name.
     * A failure to ask one thing is an item, not an error; <0 only when
     * the store cannot be used at all. */
    int (*check)(struct dlock_conn *conn, const char *name, struct dlock_check_list *out, struct dlock_call *call);
};

/* Set this thread's error text and return `status`.  Never pass a password. */
int dlock__error(int status, const char *fmt, ...) DLOCK_PRINTF(2, 3);
int dlock__verror(int status, const char *fmt, va_list ap) DLOCK_PRINTF(2, 0);
/* DLOCK_EBUSY, saying that `name` is held by someone else, and how long
 * the caller waited (wait_ms; 0: it did not). */
int dlock__busy(const char *name, int64_t wait_ms);
/* "out of memory", as DLOCK_ENOMEM. */
int dlock__oom(void);
/* Put "prefix: " in front of this thread's error text, unless it is empty or
 * there already.  The core does it with the backend's name after every
 * failed backend call, so backends need not. */
void dlock__prefix_error(const char *prefix);
/* Clear this thread's error text. */
void dlock__clear_error(void);

/* Milliseconds on CLOCK_BOOTTIME: monotonic, and it keeps counting while the
 * host is suspended, as the stores' own timers do. */
int64_t dlock__now_ms(void);

/* Validation used by the core (exposed for the unit tests). */
int dlock__valid_utf8(const char *s, size_t len);
int dlock__check_name(const char *name); /* DLOCK_OK or DLOCK_EINVAL with text */

/* URL scheme: copies the lower-cased scheme into buf.  DLOCK_EINVAL with text
 * when there is none. */
int dlock__url_scheme(const char *url, char *buf, size_t buflen);

/* The authority of a URL after its "scheme://" (p): it ends at the first
 * '/' or '?'; its userinfo is what comes before its last '@' (a password
 * may hold one unescaped), its host list what follows. */
struct dlock_url_authority {
    const char *userinfo; /* NULL: none */
    size_t userinfo_len;
    const char *hosts;
    size_t hosts_len;
    const char *end; /* the first '/' or '?', or the end of p */
};
void dlock__url_authority(const char *p, struct dlock_url_authority *a);

/* One HOST[:PORT] of h[0..len), an IPv6 address in brackets: the host
 * without them (bracketed says there were), the port's text (NULL: none).
 * Returns NULL, or what is wrong, for the caller's own message. */
struct dlock_url_host {
    const char *host;
    size_t host_len;
    int bracketed;
    const char *port;
    size_t port_len;
};
const char *dlock__url_host_port(const char *h, size_t len, struct dlock_url_host *out);

/* A decimal number in [min, max] made of s[0..len) (at most 10 digits),
 * else -1: a port, a database number. */
long dlock__url_number(const char *s, size_t len, long min, long max);

/* USER:PASSWORD, a URL's userinfo s[0..len): each part percent-decoded
 * into a new string (*user stays NULL when USER is empty, which
 * user_required refuses).  DLOCK_EINVAL with *problem, what is wrong (never
 * the password), or NULL when there is no ':' or no required user: the
 * caller names the shape it wants.  DLOCK_ENOMEM. */
int dlock__url_userinfo(const char *s, size_t len, int user_required, char **user, char **password,
                        const char **problem);

/* Free a string that holds a secret, wiped first. */
void dlock__free_secret(char *secret);
/* n random bytes from the kernel into buf: DLOCK_OK, or DLOCK_EBACKEND
 * saying why (owner tokens, session tokens, nonces). */
int dlock__random(void *buf, size_t n);
/* The same as 2 * nbytes lower-case hex digits and a NUL into hex. */
int dlock__random_hex(char *hex, size_t nbytes);
/* Unix ms as UTC "YYYY-MM-DDTHH:MM:SSZ" into buf (at least 21 bytes); "?"
 * when it cannot be shown. */
void dlock__utc_text(char *buf, size_t size, int64_t unix_ms);

/* Percent-decoding for URL parts: writes a NUL-terminated copy of
 * src[0..len) into a new malloc'ed string.  DLOCK_EINVAL on a bad escape or
 * an embedded NUL; DLOCK_ENOMEM. */
int dlock__percent_decode(const char *src, size_t len, char **out);

/* Holder text ("host=... pid=...") for this process; `host` is gethostname(). */
const char *dlock__hostname(void);

/* SHA-256 of data[0..len) (lib/sha256.c). */
void dlock__sha256(const void *data, size_t len, unsigned char digest[32]);

/* Fill a template of the caller's own that is not a string literal (an SQL
 * text with the table's name in it): into buf (truncated, NUL-terminated;
 * returns buf), or into a new malloc'ed string (NULL: out of memory). */
char *dlock__format_into(char *buf, size_t len, const char *fmt, ...);
char *dlock__format_alloc(const char *fmt, ...);

/* Copy `src` into buf (truncating, always NUL-terminating when buflen > 0). */
void dlock__copy_text(char *buf, size_t buflen, const char *src);

/* Room for one more element in a growing array of `size`-byte elements,
 * `count` of *capacity in use: `items` itself when there is room, else the
 * array grown (to 16 elements, then twice as many) with *capacity updated;
 * NULL when out of memory, the array then untouched. */
void *dlock__grow(void *items, size_t count, size_t *capacity, size_t size);

/*
 * Client libraries loaded at first use (lib/driver.c).  A backend keeps one
 * static dlock_driver whose `load` resolves its functions through
 * dlock__driver_open() and dlock__driver_symbol(), leaving `error` empty on
 * success; dlock__driver_load() runs it once and returns DLOCK_OK or
 * DLOCK_ENOTSUP with the reason.
 */
typedef struct dlock_driver {
    const char *backend;
    void (*load)(void);
    pthread_once_t once;
    char error[256];
} dlock_driver;

int dlock__driver_load(dlock_driver *driver);
void *dlock__driver_open(dlock_driver *driver, const char *const *sonames);
int dlock__driver_symbol(dlock_driver *driver, void *handle, const char *symbol, void **slot);

/* dlock_open() with a given backend table: the unit tests open clients on a
 * fake store with it (tests/fake_store.c). */
int dlock__open_backend(const struct dlock_backend *backend, const char *url, dlock_client **out);

/* The built-in backends: DLOCK_BUILTIN_BACKENDS(X) in config.h is configure's
 * one list of them (DLOCK_STORE in configure.ac), as X(name) for each. */
#ifdef DLOCK_BUILTIN_BACKENDS
#define DLOCK_DECLARE_BACKEND(name) extern const struct dlock_backend dlock__backend_##name;
DLOCK_BUILTIN_BACKENDS(DLOCK_DECLARE_BACKEND)
#undef DLOCK_DECLARE_BACKEND
#endif

#endif /* DLOCK_INTERNAL_H */
