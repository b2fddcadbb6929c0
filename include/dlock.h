/*
 * libdlock - run a scheduled job on exactly one server at a time.
 *
 * A client is one connection to one lock store, chosen by URL: SQLite on one
 * host, PostgreSQL, MySQL/MariaDB or Redis (docs/contract.md has the list and
 * what each store guarantees).  A lock is a named lease held through a client.
 *
 * Threads: different clients are independent; one client may be shared by
 * threads, and calls on it are serialized.  dlock_cancel() may be called from
 * any thread and never blocks.  A client must not be used in a child after
 * fork().
 *
 * Every function that can fail returns an int status (DLOCK_OK or a negative
 * DLOCK_E* code); dlock_last_error() gives this thread's detail text.
 */
#ifndef DLOCK_H
#define DLOCK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DLOCK_VERSION_MAJOR 0
#define DLOCK_VERSION_MINOR 2
#define DLOCK_VERSION_PATCH 0
#define DLOCK_VERSION_STRING "0.2.0"
/* One number that grows with every release: 0xMMmmpp. */
#define DLOCK_VERSION_NUMBER ((DLOCK_VERSION_MAJOR << 16) | (DLOCK_VERSION_MINOR << 8) | DLOCK_VERSION_PATCH)

#if defined(_WIN32) && defined(DLOCK_BUILDING)
#define DLOCK_API __declspec(dllexport)
#elif defined(__GNUC__) && __GNUC__ >= 4
#define DLOCK_API __attribute__((visibility("default")))
#else
#define DLOCK_API
#endif

typedef struct dlock_client dlock_client; /* one connection to one lock store */
typedef struct dlock_lock dlock_lock;     /* one held lock */

#define DLOCK_WAIT_FOREVER (-1)

/*
 * Status codes: one list feeds the enum, dlock_strerror() and
 * dlock_status_name().  Only ever appended to; never renumbered or reused.
 *   XX(name, value, text)
 */
#define DLOCK_STATUS_MAP(XX)                                                         \
    XX(OK, 0, "success")                                                             \
    /* held by someone else: the try failed or the wait ran out */                   \
    XX(EBUSY, -1, "lock is held by someone else")                                    \
    /* this lock is no longer held: lease expired, session ended, store restarted */ \
    XX(ELOST, -2, "lock is no longer held")                                          \
    /* bad argument: NULL, bad name, ttl out of range, malformed URL */              \
    XX(EINVAL, -3, "invalid argument")                                               \
    /* store unreachable, or the connection broke during the call */                 \
    XX(ECONN, -4, "lock store unreachable or connection broken")                     \
    /* the store answered with an error (permissions, SQL error, ...) */             \
    XX(EBACKEND, -5, "lock store reported an error")                                 \
    XX(ENOMEM, -6, "out of memory")                                                  \
    /* URL scheme not built in, or operation not offered by this backend */          \
    XX(ENOTSUP, -7, "not supported")                                                 \
    /* a wait was interrupted by dlock_cancel() */                                   \
    XX(ECANCELED, -8, "wait canceled")

enum {
#define DLOCK_STATUS_ENUM(name, value, text) DLOCK_##name = (value),
    DLOCK_STATUS_MAP(DLOCK_STATUS_ENUM)
#undef DLOCK_STATUS_ENUM
};

DLOCK_API const char *dlock_version(void);           /* "MAJOR.MINOR.PATCH" */
DLOCK_API const char *dlock_strerror(int status);    /* static text, never NULL, also for unknown codes */
DLOCK_API const char *dlock_status_name(int status); /* "DLOCK_EBUSY"; "" for an unknown code */
DLOCK_API const char *dlock_last_error(void);        /* this thread's last failure detail, "" if none */

DLOCK_API int dlock_open(const char *url, dlock_client **out);
DLOCK_API void dlock_close(dlock_client *client); /* releases every lock still held; frees their handles */
DLOCK_API const char *dlock_backend(const dlock_client *client); /* "postgresql", "mysql", "redis" or "sqlite" */

DLOCK_API int dlock_acquire(dlock_client *client, const char *name, uint32_t ttl_ms, int32_t wait_ms, dlock_lock **out);
DLOCK_API int dlock_extend(dlock_lock *lock, uint32_t ttl_ms);
DLOCK_API int dlock_release(dlock_lock *lock); /* always frees the handle */

DLOCK_API const char *dlock_name(const dlock_lock *lock);
DLOCK_API int64_t dlock_remaining_ms(const dlock_lock *lock); /* client-side lease view, 0 once it may have expired */
DLOCK_API int dlock_holder(dlock_client *client, const char *name, char *buf, size_t buflen);
/* 1 held (buf: who, as far as the store tells), 0 free, <0 error */
DLOCK_API int dlock_cancel(dlock_client *client); /* from another thread: a wait in progress returns DLOCK_ECANCELED */

/* Fencing (dlock_fence(3)): a number >= 1, strictly greater than that of every
 * earlier acquisition of the same name in the same store, durable before the
 * acquire returned, constant for the handle.  DLOCK_ENOTSUP when the store
 * gives none (PostgreSQL and MySQL session mode without fencing=on). */
DLOCK_API int dlock_fence(const dlock_lock *lock, uint64_t *token);

/* Listing and breaking (dlock_list_locks(3)).  A list is a snapshot of the
 * locks held in the store whose name starts with `prefix` (NULL or "": all),
 * read through accessors by index; it grows by new accessor functions only
 * (docs/ABI.md). */
typedef struct dlock_list dlock_list;
DLOCK_API int dlock_list_locks(dlock_client *client, const char *prefix, dlock_list **out);
DLOCK_API size_t dlock_list_count(const dlock_list *list);
DLOCK_API const char *dlock_list_name(const dlock_list *list, size_t i);   /* NULL when the store keeps no name */
DLOCK_API const char *dlock_list_key(const dlock_list *list, size_t i);    /* how the store knows it, never NULL */
DLOCK_API const char *dlock_list_holder(const dlock_list *list, size_t i); /* as dlock_holder() says, "" unknown */
DLOCK_API const char *dlock_list_host(const dlock_list *list, size_t i);   /* holder's host, "" unknown */
DLOCK_API int64_t dlock_list_pid(const dlock_list *list, size_t i);        /* holder's pid, 0 unknown */
DLOCK_API int64_t dlock_list_since(const dlock_list *list, size_t i);      /* Unix ms, store's clock; -1 unknown */
DLOCK_API int64_t dlock_list_expires(const dlock_list *list, size_t i);    /* Unix ms, store's clock; -1 none/unknown */
DLOCK_API uint64_t dlock_list_fence(const dlock_list *list, size_t i);     /* 0 unknown */
DLOCK_API void dlock_list_free(dlock_list *list);
/* Break a lock held by someone else: 1 broken, 0 it was free, <0 error.  Its
 * holder gets DLOCK_ELOST at its next extend.  Session stores end the
 * holder's server session, which needs the privilege to. */
DLOCK_API int dlock_break(dlock_client *client, const char *name);

/* Run records (dlock_store_time(3)), for jobs that run once per schedule slot. */
DLOCK_API int dlock_store_time(dlock_client *client, int64_t *unix_ms); /* the store's clock, Unix ms */
/* The last slot recorded for the lock's name (0: none), read and written
 * only while the lock is held (else DLOCK_ELOST). */
DLOCK_API int dlock_record_get(dlock_lock *lock, int64_t *slot);
DLOCK_API int dlock_record_put(dlock_lock *lock, int64_t slot);

#ifdef __cplusplus
}
#endif

#endif /* DLOCK_H */
