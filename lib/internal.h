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
 * The backend vtable.  One const table per backend file, filled with
 * designated initializers.  Members are only ever appended; a member added
 * after version 1 is looked at only when `version` says it is there.
 * Optional members may be NULL.
 *
 * The core has already checked every argument (name: 1..255 bytes of valid
 * UTF-8, NUL-terminated; ttl_ms >= 1; wait_ms >= DLOCK_WAIT_FOREVER) and holds
 * the client's mutex around every call except `cancel`.  Every failure sets
 * the error text with dlock__error() and returns a DLOCK_E* status.
 */
#define DLOCK_BACKEND_VERSION 1

/* NOTE: no typedef, since dlock_backend() is a public function: write
 * `const struct dlock_backend dlock__backend_NAME = { ... };` */
struct dlock_backend {
    unsigned int version; /* DLOCK_BACKEND_VERSION the table was written for */
    const char *name;     /* what dlock_backend() returns: "sqlite" */
    /* URL schemes handled, lower case, NULL-terminated */
    const char *const *schemes;

    /* Parse the whole URL and set up a connection (may connect lazily, but an
     * unreachable store must then surface as DLOCK_ECONN on first use).
     * Malformed URL: DLOCK_EINVAL.  The message never contains a password. */
    int (*connect)(const char *url, void **conn_out);
    /* Release everything still held on the connection and free it. */
    void (*disconnect)(void *conn);

    /* Take `name` for ttl_ms, waiting as wait_ms says.  On DLOCK_OK, *lock_out
     * is the backend's per-lock state (may be NULL if it needs none). */
    int (*acquire)(void *conn, const char *name, uint32_t ttl_ms, int32_t wait_ms,
                   void **lock_out);
    /* Confirm the lock is still ours and renew it to ttl_ms from now.  Not ours
     * any more: DLOCK_ELOST. */
    int (*extend)(void *conn, void *lock, const char *name, uint32_t ttl_ms);
    /* Release and free `lock` (always, whatever the outcome).  DLOCK_ELOST if
     * it was no longer held. */
    int (*release)(void *conn, void *lock, const char *name);
    /* 1 held (buf filled with who holds it, NUL-terminated, truncated to
     * buflen; buf may be NULL when buflen is 0), 0 free, <0 error. */
    int (*holder)(void *conn, const char *name, char *buf, size_t buflen);
    /* Called from another thread WITHOUT the client mutex while an acquire
     * with a wait may be in progress: make it return DLOCK_ECANCELED soon.
     * Must not block and must be safe against a concurrent acquire/release. */
    void (*cancel)(void *conn);
    /* Optional.  For stores that enforce the lease on the whole session (the
     * session dies when idle for this long): the idle timeout now in force,
     * in ms, 0 for none.  The core uses it so that dlock_remaining_ms() never
     * promises more than the session will live. */
    uint32_t (*session_ttl_ms)(void *conn);
};

/* Set this thread's error text and return `status`.  Never pass a password. */
int dlock__error(int status, const char *fmt, ...) DLOCK_PRINTF(2, 3);
int dlock__verror(int status, const char *fmt, va_list ap) DLOCK_PRINTF(2, 0);
/* Clear this thread's error text. */
void dlock__clear_error(void);

/* Monotonic milliseconds (CLOCK_MONOTONIC). */
int64_t dlock__now_ms(void);

/* Validation used by the core (exposed for the unit tests). */
int dlock__valid_utf8(const char *s, size_t len);
int dlock__check_name(const char *name); /* DLOCK_OK or DLOCK_EINVAL with text */

/* URL scheme: copies the lower-cased scheme into buf.  DLOCK_EINVAL with text
 * when there is none. */
int dlock__url_scheme(const char *url, char *buf, size_t buflen);

/* Percent-decoding for URL parts: writes a NUL-terminated copy of
 * src[0..len) into a new malloc'ed string.  DLOCK_EINVAL on a bad escape or
 * an embedded NUL; DLOCK_ENOMEM. */
int dlock__percent_decode(const char *src, size_t len, char **out);

/* Holder text ("host=... pid=...") for this process; `host` is gethostname(). */
const char *dlock__hostname(void);

/* SHA-256 of data[0..len) (lib/sha256.c). */
void dlock__sha256(const void *data, size_t len, unsigned char digest[32]);

/* Copy `src` into buf (truncating, always NUL-terminating when buflen > 0). */
void dlock__copy_text(char *buf, size_t buflen, const char *src);

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

/* The built-in backends. */
#ifdef HAVE_SQLITE
extern const struct dlock_backend dlock__backend_sqlite;
#endif
#ifdef HAVE_POSTGRESQL
extern const struct dlock_backend dlock__backend_postgresql;
#endif
#ifdef HAVE_MYSQL
extern const struct dlock_backend dlock__backend_mysql;
#endif

#endif /* DLOCK_INTERNAL_H */
