/*
 * ZooKeeper URLs and lock-name encoding (backends/zookeeper/url.c): pure
 * code, no client library, so that the unit tests, the fuzzers and the
 * benchmark use it on their own.  Internal.
 *
 *   zookeeper://[user:password@]host:port[,host:port...][/chroot][?prefix=TEXT]
 *   zookeepers://...  TLS: DLOCK_ENOTSUP
 */
#ifndef DLOCK_ZK_URL_H
#define DLOCK_ZK_URL_H

#include <stddef.h>

#define DLOCK_ZK_DEFAULT_BASE "/dlock"
#define DLOCK_ZK_DEFAULT_PORT 2181
/* An encoded name (prefix + name, each byte at most three) and its NUL. */
#define DLOCK_ZK_SEGMENT_MAX (3 * 510 + 1)

/* Strings malloc'ed and percent-decoded; NULL when absent. */
struct dlock_zk_url {
    char *hosts;    /* "host:port,host:port" as the C client takes it */
    char *user;     /* digest authentication: NULL none */
    char *password; /* with user */
    char *base;     /* the folder of the lock folders: the chroot, else "/dlock" */
    char *prefix;   /* prefix= (never NULL after a successful parse) */
};

/* DLOCK_OK; DLOCK_EINVAL (the text never holds the password), DLOCK_ENOTSUP
 * (zookeepers://), DLOCK_ENOMEM.  On failure `out` needs no freeing. */
int dlock__zk_parse_url(const char *url, struct dlock_zk_url *out);
void dlock__zk_url_free(struct dlock_zk_url *url);

/*
 * A lock name as one path segment: the bytes A-Z a-z 0-9 '_' '-' stay, every
 * other byte is %XX (upper-case hex).  Byte by byte, so that the encoding of
 * a prefix is a prefix of the encoding of every name that starts with it
 * (dlock list PREFIX), and never "." or "..", '/', or a control character.
 * Appends to out[0..outlen) at *used; 0 on success, -1 when it does not fit.
 */
int dlock__zk_encode(const char *name, char *out, size_t outlen, size_t *used);
/* The reverse: DLOCK_OK, or DLOCK_EINVAL when `segment` is no encoding
 * (a node that libdlock did not make).  out has room for strlen(segment)+1. */
int dlock__zk_decode(const char *segment, char *out, size_t outlen);

#endif
