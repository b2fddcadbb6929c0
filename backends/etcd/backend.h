/*
 * The etcd backend's private header (backends/etcd/).  The files:
 *
 *   etcd.c   the table; acquire (grant, guarded put, range), the wait on the
 *            predecessor's key, extend (keep-alive + own-key check), release
 *   conn.c   connect / disconnect, the endpoints, authentication
 *   io.c     one request through the JSON gateway, bounded by the call's
 *            deadline and moving on to the next endpoint; two requests at
 *            once (a waiter's renewal and read); the watch stream
 *   json.c   the request bodies and the answers (json-c), key/value bytes
 *   ops.c    holder, list, break, the store's clock, run records
 *   history.c  dlock run's history (PREFIX!history/NAME/...) and the preflight
 *   url.c    URLs, keys, base64 (pure: no client library; fuzzed)
 *   api.c    libcurl and json-c, loaded at first use (lib/driver.c)
 *
 * docs/etcd.md tells the whole story.
 */
#ifndef DLOCK_ETCD_BACKEND_H
#define DLOCK_ETCD_BACKEND_H

#include <stdint.h>
#include <stddef.h>

#include "internal.h"
#include "api.h"
#include "url.h"

/* A growing byte buffer (answers, the watch stream). */
struct etcd_buf {
    char *data;
    size_t len, cap;
    int overflow; /* more than ETCD_BODY_MAX arrived */
};
#define ETCD_BODY_MAX (16u << 20)

typedef struct etcd_conn {
    struct dlock_conn base; /* first: the core passes this (lib/internal.h) */
    struct dlock_etcd_url url;
    size_t current;         /* the endpoint in use; moves on when one does not answer */
    CURLM *multi;
    CURL *easy;             /* requests (keeps its connection) */
    CURL *easy2;            /* the second of two requests sent at once (dlock__etcd_post_both) */
    CURL *watch;            /* the watch stream of a wait */
    struct etcd_buf body, body2, watch_body;
    char date[64];          /* the Date header of the last answer */
    char *token;            /* the authentication token; NULL: none yet */
    int cancel_fd;          /* eventfd: dlock_cancel() writes, a wait polls */
    int grpc_code;          /* of the last error answer, 0 none */
    int connecting;         /* dlock_open(): one round of endpoints, not the whole deadline */
    int ambiguous;          /* the last request had an attempt whose effect is unknown */
} etcd_conn;

typedef struct etcd_lock {
    struct dlock_held base; /* first; base.fence: the own key's create revision */
    int64_t lease;          /* the lease the own key is attached to */
    int64_t lease_ttl_s;    /* what was asked of it (whole seconds) */
    char key[DLOCK_ETCD_KEY_MAX];
} etcd_lock;

static inline etcd_conn *etcd_of(struct dlock_conn *conn)
{
    return (etcd_conn *)conn;
}

static inline etcd_lock *etcd_lock_of(struct dlock_held *held)
{
    return (etcd_lock *)held;
}

/* gRPC status codes that the gateway passes on. */
enum { GRPC_INVALID_ARGUMENT = 3, GRPC_NOT_FOUND = 5, GRPC_PERMISSION_DENIED = 7, GRPC_UNAUTHENTICATED = 16 };

/* --- io.c --- */
/* POST `body` (consumed) to /v3/<path>.  On DLOCK_OK, *reply is the answer
 * (json_object_put() it), *sent_ms (may be NULL) when the answering attempt
 * was sent.  An error answer is DLOCK_EBACKEND with its text, c->grpc_code
 * its code.  `cancellable`: dlock_cancel() ends it (DLOCK_ECANCELED). */
int dlock__etcd_post(etcd_conn *c, const char *path, json_object *body, int64_t deadline_ms, int cancellable,
                     json_object **reply, int64_t *sent_ms);
/* Two requests at once, each on its own connection to the current
 * endpoint (one round trip instead of two); what the first attempt does
 * not settle is sent again alone, as dlock__etcd_post does.  Both bodies
 * are consumed; on DLOCK_OK both replies are set (json_object_put() them),
 * *sent0_ms when the answering attempt of the first was sent.  Only for
 * requests that may be repeated (a renewal, a read). */
int dlock__etcd_post_both(etcd_conn *c, const char *path0, json_object *body0, const char *path1, json_object *body1,
                          int64_t deadline_ms, int cancellable, json_object *reply[2], int64_t *sent0_ms);
/* The deadline of one request of `call`: at most DLOCK_CALL_TIMEOUT_MS away. */
int64_t dlock__etcd_deadline(const struct dlock_call *call);
/* Watch `key` from `revision` for its deletion, until `until_ms`: 1 deleted
 * (or the watch ended: look again), 0 time is up, DLOCK_ECANCELED. */
int dlock__etcd_watch_delete(etcd_conn *c, const char *key, int64_t revision, int64_t until_ms);
void dlock__etcd_buf_free(struct etcd_buf *b);

/* --- conn.c --- */
int dlock__etcd_connect(const char *url, struct dlock_conn **conn_out);
void dlock__etcd_disconnect(struct dlock_conn *conn);
/* A fresh token from /v3/auth/authenticate (the URL has a user). */
int dlock__etcd_authenticate(etcd_conn *c, int64_t deadline_ms);
/* Set up an easy handle: no signals, close-on-exec sockets, TLS options. */
int dlock__etcd_easy_setup(etcd_conn *c, CURL *easy);

/* --- json.c --- */
json_object *dlock__etcd_obj(void);
void dlock__etcd_add_bytes(json_object *o, const char *field, const char *bytes, size_t len);
void dlock__etcd_add_i64(json_object *o, const char *field, int64_t v);
void dlock__etcd_add_str(json_object *o, const char *field, const char *v);
json_object *dlock__etcd_get(json_object *o, const char *field);
/* An int64 field (the gateway writes them as strings), else `otherwise`. */
int64_t dlock__etcd_get_i64(json_object *o, const char *field, int64_t otherwise);
/* A bytes field, decoded into out (room: outlen, NUL-ended): its length, or
 * -1 when absent or not base64 or too long. */
long dlock__etcd_get_bytes(json_object *o, const char *field, char *out, size_t outlen);
/* The compare "the create revision of key is rev" (rev 0: absent). */
json_object *dlock__etcd_cmp_create(const char *key, int64_t rev);
/* A RangeRequest (end NULL: the key alone; else sorted by creation), bare
 * for kv/range or wrapped as a txn op. */
json_object *dlock__etcd_range_req(const char *key, size_t klen, const char *end, size_t elen, int keys_only);
json_object *dlock__etcd_op_range(const char *key, size_t klen, const char *end, size_t elen, int keys_only);
json_object *dlock__etcd_op_put(const char *key, const char *value, int64_t lease, int ignore_value);
json_object *dlock__etcd_op_delete(const char *key);
/* A transaction: its compares, success and failure ops (each may be NULL). */
json_object *dlock__etcd_txn(json_object *compare, json_object *success, json_object *failure);
/* An array of the objects given (one or more), in order.  A macro over a
 * compound literal rather than a NULL-terminated variadic function: NULL
 * passed through "..." is undefined behaviour where NULL is a plain 0. */
json_object *dlock__etcd_array_of(json_object *const *items, size_t n);
#define dlock__etcd_array(...)                                   \
    dlock__etcd_array_of((json_object *const[]){__VA_ARGS__}, \
                         sizeof((json_object *const[]){__VA_ARGS__}) / sizeof(json_object *))
/* responses[i] of a txn answer: the inner object of its one field
 * ("response_range", ...), or NULL. */
json_object *dlock__etcd_txn_response(json_object *reply, size_t i);

/* --- ops.c --- */
int dlock__etcd_holder(struct dlock_conn *conn, const char *name, char *buf, size_t buflen, struct dlock_call *call);
int dlock__etcd_store_time(struct dlock_conn *conn, int64_t *unix_ms, struct dlock_call *call);
int dlock__etcd_list(struct dlock_conn *conn, const char *prefix, struct dlock_list *list, struct dlock_call *call);
int dlock__etcd_break(struct dlock_conn *conn, const char *name, struct dlock_call *call);
int dlock__etcd_record_get(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t *slot,
                           struct dlock_call *call);
int dlock__etcd_record_put(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t slot,
                           struct dlock_call *call);
/* The holder text a lock key's value holds: "host=H pid=P since=UNIX_MS". */
void dlock__etcd_holder_value(char *out, size_t outlen);

/* --- history.c --- */
int dlock__etcd_history_add(struct dlock_conn *conn, const char *name, const struct dlock_history_entry *run,
                            unsigned keep, struct dlock_call *call);
int dlock__etcd_history_read(struct dlock_conn *conn, const char *name, size_t max, struct dlock_history *out,
                             struct dlock_call *call);
int dlock__etcd_check(struct dlock_conn *conn, const char *name, struct dlock_check_list *out,
                      struct dlock_call *call);

#endif
