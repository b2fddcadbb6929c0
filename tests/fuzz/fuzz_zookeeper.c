/*
 * libFuzzer harness: the ZooKeeper backend's URL parser and lock-name
 * encoding (backends/zookeeper/url.c), built without the C client.
 *
 * The first input byte picks what the rest is:
 *   0 mod 3: a whole URL, parsed as is;
 *   1 mod 3: what follows "zookeeper://u:Zebra-Secret-42@" -- the password
 *            must never appear in the error text;
 *   2 mod 3: a lock name (up to 255 bytes, cut at the first NUL) split in
 *            two at a byte the next input byte picks: the encoding is one
 *            path segment of safe bytes, never "." or "..", it decodes back
 *            to the name, and the prefix's encoding is a prefix of the
 *            name's (dlock list PREFIX).
 * Properties of a parse: DLOCK_OK, DLOCK_EINVAL, DLOCK_ENOTSUP (zookeepers)
 * or DLOCK_ENOMEM with a message; on success a non-empty host list, a base
 * path that starts with '/' and does not end with one, a prefix; the same
 * input parses the same way twice.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "internal.h"
#include "zookeeper/url.h" /* backends/: pure, no client library */

#define fail(what, text) fuzz_fail("fuzz_zookeeper", what, text)

static void names(const uint8_t *data, size_t size)
{
    char name[256], enc[DLOCK_ZK_SEGMENT_MAX], part[DLOCK_ZK_SEGMENT_MAX], back[DLOCK_ZK_SEGMENT_MAX];
    size_t cut = size ? data[0] : 0, len = 0;
    for (size_t i = 1; i < size && len < 255 && data[i]; i++)
        name[len++] = (char)data[i];
    name[len] = '\0';
    if (cut > len)
        cut = len;
    size_t used = 0, pused = 0;
    if (dlock__zk_encode(name, enc, sizeof enc, &used) != 0)
        fail("a name of at most 255 bytes does not fit", name);
    if (used != strlen(enc) || strchr(enc, '/') || strchr(enc, '.') || strchr(enc, '~'))
        fail("an encoding with '/', '.' or '~'", enc);
    if (len && (dlock__zk_decode(enc, back, sizeof back) != DLOCK_OK || strcmp(back, name) != 0))
        fail("the encoding does not decode back", enc);
    memcpy(part, name, cut);
    part[cut] = '\0';
    char penc[DLOCK_ZK_SEGMENT_MAX];
    if (dlock__zk_encode(part, penc, sizeof penc, &pused) != 0 || strncmp(enc, penc, pused) != 0)
        fail("a prefix's encoding is not a prefix", name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    if (data[0] % 3 == 2) {
        names(data + 1, size - 1);
        return 0;
    }
    int with_secret = data[0] % 3 == 1;
    const char *head = with_secret ? "zookeeper://u:" FUZZ_SECRET "@" : "";
    char *url = fuzz_url(head, data + 1, size - 1);
    if (!url)
        return 0;

    struct dlock_zk_url a, b;
    int rc = dlock__zk_parse_url(url, &a);
    if (rc != DLOCK_OK) {
        fuzz_check_refusal("fuzz_zookeeper", rc, url);
        free(url);
        return 0;
    }
    if (!a.hosts || !a.hosts[0] || !a.prefix || !a.base || a.base[0] != '/')
        fail("no hosts, prefix or base", url);
    size_t blen = strlen(a.base);
    if (blen > 1 && a.base[blen - 1] == '/')
        fail("a base that ends with '/'", url);
    if (dlock__zk_parse_url(url, &b) != DLOCK_OK || !fuzz_same_text(a.hosts, b.hosts) || !fuzz_same_text(a.user, b.user) ||
        !fuzz_same_text(a.password, b.password) || !fuzz_same_text(a.base, b.base) || !fuzz_same_text(a.prefix, b.prefix))
        fail("parsed differently twice", url);
    dlock__zk_url_free(&b);
    dlock__zk_url_free(&a);
    free(url);
    return 0;
}
