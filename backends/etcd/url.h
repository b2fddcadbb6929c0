/*
 * etcd URLs (backends/etcd/url.c): pure code, no client library, so that
 * the unit tests, the fuzzer and the benchmark use it on their own.
 *
 *   etcd://[USER:PASSWORD@]HOST[:PORT][,HOST[:PORT]...][/][?prefix=TEXT]
 *   etcds://...[?cafile=/path/ca.pem]     HTTPS, the server verified
 *
 * And the keys: PREFIX/NAME/LEASEID, the name escaped so that no key of one
 * name is ever inside the range of another (docs/etcd.md).
 */
#ifndef DLOCK_ETCD_URL_H
#define DLOCK_ETCD_URL_H

#include <stddef.h>
#include <stdint.h>

#define DLOCK_ETCD_DEFAULT_PREFIX "dlock"
#define DLOCK_ETCD_DEFAULT_PORT 2379
#define DLOCK_ETCD_MAX_ENDPOINTS 16

struct dlock_etcd_endpoint {
    char *host; /* as written in a URL: an IPv6 address keeps its brackets */
    int port;
};

/* Strings malloc'ed and percent-decoded; NULL when absent. */
struct dlock_etcd_url {
    int tls; /* etcds:// */
    struct dlock_etcd_endpoint endpoints[DLOCK_ETCD_MAX_ENDPOINTS];
    size_t count;
    char *user;
    char *password;
    char *cafile; /* etcds only */
    char *prefix; /* never NULL after a successful parse */
};

/* DLOCK_OK; DLOCK_EINVAL (text never holds the password), DLOCK_ENOMEM.  On
 * failure `out` needs no freeing. */
int dlock__etcd_parse_url(const char *url, struct dlock_etcd_url *out);
void dlock__etcd_url_free(struct dlock_etcd_url *url);

/* A name as it appears in a key: '%', '/' and the bytes below 0x20 and 0x7f
 * become %XX (upper-case hex), everything else is itself.  Returns the
 * length written (out needs 3 * strlen(name) + 1 bytes). */
size_t dlock__etcd_escape_name(const char *name, char *out);
/* The reverse: DLOCK_OK, or DLOCK_EINVAL when `key` is no escaped name
 * (a bad escape, a raw '/'); out needs len + 1 bytes. */
int dlock__etcd_unescape_name(const char *key, size_t len, char *out);
/* The room a key needs: prefix, '/', escaped name, '/', 16 hex digits. */
#define DLOCK_ETCD_KEY_MAX (255 + 1 + 3 * 255 + 1 + 16 + 1)
/* "PREFIX/NAME/" (the range of one lock's contenders), and with the lease
 * in lower-case hex "PREFIX/NAME/LEASEID" (as etcdctl lock writes it). */
size_t dlock__etcd_name_prefix(const char *prefix, const char *name, char *out);
size_t dlock__etcd_lock_key(const char *prefix, const char *name, int64_t lease, char *out);
/* The key of a name's run record: "PREFIX!record/NAME" (outside every
 * lock's range, and outside the range "PREFIX/" that lists the locks). */
size_t dlock__etcd_record_key(const char *prefix, const char *name, char *out);
/* The end of the range of keys that start with key[0..len): the key with
 * its last byte below 0xff incremented (etcd's prefix range_end). */
size_t dlock__etcd_range_end(const char *key, size_t len, char *out);

/* Base64 (RFC 4648, with padding), as etcd's JSON gateway carries bytes. */
size_t dlock__etcd_base64(const void *data, size_t len, char *out); /* out: 4 * ((len + 2) / 3) + 1 */
/* DLOCK_OK or DLOCK_EINVAL; out needs 3 * (len / 4) + 1 bytes, NUL-ended. */
int dlock__etcd_unbase64(const char *text, size_t len, char *out, size_t *outlen);

#endif
