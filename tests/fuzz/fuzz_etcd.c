/*
 * libFuzzer harness: the etcd backend's pure code (backends/etcd/url.c:
 * URLs, the name escaping of keys, base64) and its reading of the gateway's
 * JSON answers (backends/etcd/json.c, through json-c).
 *
 * The first input byte picks what the rest is:
 *   0: a whole URL;  1: what follows "etcd://u:Zebra-Secret-42@" (the
 *      password must never appear in the error text);
 *   2: an escaped name: when it unescapes, escaping it again gives the
 *      same bytes (one spelling per name); any NUL-free text escapes and
 *      unescapes back to itself;
 *   3: base64: when it decodes, encoding gives it back; any bytes encode
 *      and decode back;
 *   4: a JSON answer: the txn responses, kvs, keys, revisions and values
 *      are read from it as the backend reads them, without a crash or an
 *      overflow.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd/backend.h" /* backends/ */
#include "fuzz.h"

static void fail(const char *what, const char *text, size_t len)
{
    fprintf(stderr, "fuzz_etcd: %s: \"", what);
    for (size_t i = 0; i < len; i++)
        fprintf(stderr, (text[i] >= 0x20 && text[i] < 0x7f) ? "%c" : "\\x%02x", (unsigned char)text[i]);
    fprintf(stderr, "\"\n");
    abort();
}

static void url_case(const char *head, const char *rest, size_t len)
{
    size_t hlen = strlen(head);
    char *url = fuzz_url(head, (const uint8_t *)rest, len);
    if (!url)
        return;
    struct dlock_etcd_url u;
    int rc = dlock__etcd_parse_url(url, &u);
    if (rc == DLOCK_OK) {
        if (u.count < 1 || u.count > DLOCK_ETCD_MAX_ENDPOINTS || !u.prefix || strlen(u.prefix) > 255)
            fail("a parse without endpoints or prefix", url, strlen(url));
        for (size_t i = 0; i < u.count; i++)
            if (u.endpoints[i].port < 1 || u.endpoints[i].port > 65535 || !u.endpoints[i].host[0])
                fail("an endpoint out of range", url, strlen(url));
        if (u.cafile && !u.tls)
            fail("cafile without etcds", url, strlen(url));
        dlock__etcd_url_free(&u);
    } else if (rc != DLOCK_EINVAL && rc != DLOCK_ENOMEM) {
        fail("unexpected status", url, strlen(url));
    } else if (!dlock_last_error()[0]) {
        fail("an error without text", url, strlen(url));
    } else if (hlen && strstr(dlock_last_error(), FUZZ_SECRET)) {
        fail("the password in the error", url, strlen(url));
    }
    free(url);
}

static void name_case(const char *text, size_t len)
{
    char *out = malloc(3 * len + 2), *back = malloc(len + 1);
    if (!out || !back)
        goto done;
    if (dlock__etcd_unescape_name(text, len, back) == DLOCK_OK) {
        size_t n = dlock__etcd_escape_name(back, out);
        if (n != len || memcmp(out, text, len) != 0)
            fail("a name with two spellings", text, len);
    }
    char *plain = strndup(text, len); /* up to the first NUL */
    if (plain && plain[0]) {
        char *again = malloc(strlen(plain) * 3 + 1);
        size_t n = dlock__etcd_escape_name(plain, out);
        if (again && (dlock__etcd_unescape_name(out, n, again) != DLOCK_OK || strcmp(again, plain) != 0))
            fail("escape does not unescape", plain, strlen(plain));
        if (memchr(out, '/', n))
            fail("a '/' left in an escaped name", plain, strlen(plain));
        free(again);
    }
    free(plain);
done:
    free(out);
    free(back);
}

static void base64_case(const char *text, size_t len)
{
    char *dec = malloc(len + 1), *enc = malloc(4 * ((len + 2) / 3) + 1);
    size_t n = 0;
    if (dec && enc && dlock__etcd_unbase64(text, len, dec, &n) == DLOCK_OK) {
        size_t m = dlock__etcd_base64(dec, n, enc);
        if (m != len || memcmp(enc, text, len) != 0)
            fail("base64 that does not encode back", text, len);
    }
    if (dec && enc) {
        size_t m = dlock__etcd_base64(text, len, enc);
        char *back = malloc(len + 1);
        if (back && (dlock__etcd_unbase64(enc, m, back, &n) != DLOCK_OK || n != len || memcmp(back, text, len)))
            fail("bytes that do not decode back", text, len);
        free(back);
    }
    free(dec);
    free(enc);
}

static void json_case(const char *text, size_t len)
{
    if (dlock__etcd_load() != DLOCK_OK)
        return;
    char *copy = strndup(text, len);
    enum json_tokener_error err;
    json_object *reply = copy ? json_tokener_parse_verbose(copy, &err) : NULL;
    free(copy);
    if (!reply)
        return;
    char key[64], value[16];
    (void)dlock__etcd_get_i64(dlock__etcd_get(reply, "header"), "revision", 0);
    (void)json_object_get_boolean(dlock__etcd_get(reply, "succeeded"));
    for (size_t i = 0; i < 3; i++) {
        json_object *r = dlock__etcd_txn_response(reply, i);
        json_object *kvs = dlock__etcd_get(r ? r : reply, "kvs");
        size_t n = kvs && json_object_get_type(kvs) == json_type_array ? json_object_array_length(kvs) : 0;
        for (size_t k = 0; k < n; k++) {
            json_object *kv = json_object_array_get_idx(kvs, k);
            long kl = dlock__etcd_get_bytes(kv, "key", key, sizeof key);
            long vl = dlock__etcd_get_bytes(kv, "value", value, sizeof value);
            if (kl >= (long)sizeof key || vl >= (long)sizeof value)
                fail("bytes longer than their room", text, len);
            (void)dlock__etcd_get_i64(kv, "create_revision", 0);
            (void)dlock__etcd_get_i64(kv, "lease", 0);
        }
    }
    (void)dlock__etcd_get_i64(dlock__etcd_get(reply, "result"), "TTL", 0);
    json_object_put(reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    const char *rest = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 5) {
    case 0:
        if (!memchr(rest, '\0', len))
            url_case("", rest, len);
        break;
    case 1:
        if (!memchr(rest, '\0', len))
            url_case("etcd://u:" FUZZ_SECRET "@", rest, len);
        break;
    case 2:
        name_case(rest, len);
        break;
    case 3:
        base64_case(rest, len);
        break;
    default:
        json_case(rest, len);
        break;
    }
    return 0;
}
