/*
 * libFuzzer harness: the Redis backend's URL parser (backends/redis/url.c),
 * built without hiredis.
 *
 * The first input byte picks what the rest is:
 *   even: a whole URL, parsed as is;
 *   odd:  what follows "redis://u:Zebra-Secret-42@" -- the password then
 *         must never appear in the error text.
 * Properties: DLOCK_OK, DLOCK_EINVAL or DLOCK_ENOTSUP (rediss only) with a
 * message; on success either a host (port 1..65535) or an absolute socket
 * path, a database >= 0 and a prefix of at most 255 bytes; the same input
 * parses the same way twice; a decoded password never shows in an error.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "internal.h"
#include "redis/url.h" /* backends/: pure, no client library */

#define fail(what, text) fuzz_fail("fuzz_redis", what, text)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    int with_secret = data[0] & 1;
    const char *head = with_secret ? "redis://u:" FUZZ_SECRET "@" : "";
    char *url = fuzz_url(head, data + 1, size - 1);
    if (!url)
        return 0;

    struct dlock_redis_url a, b;
    int rc = dlock__redis_parse_url(url, &a);
    if (rc != DLOCK_OK) {
        fuzz_check_refusal("fuzz_redis", rc, url);
        static const struct dlock_redis_url zero;
        if (memcmp(&a, &zero, sizeof zero) != 0)
            fail("a failed parse left something behind", url);
        free(url);
        return 0;
    }
    if (!a.prefix || strlen(a.prefix) > 255)
        fail("no prefix, or too long", url);
    if (!!a.host == !!a.socket)
        fail("not exactly one of host and socket", url);
    if (a.host && (a.port < 1 || a.port > 65535 || !a.host[0]))
        fail("bad host or port", url);
    if (a.socket && a.socket[0] != '/')
        fail("a relative socket path", url);
    if (a.db < 0)
        fail("a negative database", url);
    if (with_secret && a.password && strchr(a.password, '@') == NULL && strcmp(a.password, FUZZ_SECRET) != 0)
        fail("the password changed", url);
    if (dlock__redis_parse_url(url, &b) != DLOCK_OK || !fuzz_same_text(a.host, b.host) || a.port != b.port ||
        !fuzz_same_text(a.socket, b.socket) || !fuzz_same_text(a.user, b.user) || !fuzz_same_text(a.password, b.password) ||
        a.db != b.db || !fuzz_same_text(a.prefix, b.prefix))
        fail("parsed differently twice", url);
    dlock__redis_url_free(&b);
    dlock__redis_url_free(&a);
    free(url);
    return 0;
}
