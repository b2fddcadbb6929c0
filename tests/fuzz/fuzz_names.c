/*
 * libFuzzer harness: lock-name validation (lib/util.c).
 *
 * dlock__valid_utf8() is compared with a reference written from RFC 3629's
 * ABNF (section 4), byte range by byte range, and dlock__check_name() with
 * the rule of docs/contract.md: 1 to 255 bytes (up to the first NUL) of valid UTF-8.
 * Any difference aborts, and libFuzzer saves the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* RFC 3629, section 4:
 *   UTF8-1 = %x00-7F
 *   UTF8-2 = %xC2-DF UTF8-tail
 *   UTF8-3 = %xE0 %xA0-BF UTF8-tail / %xE1-EC 2( UTF8-tail ) /
 *            %xED %x80-9F UTF8-tail / %xEE-EF 2( UTF8-tail )
 *   UTF8-4 = %xF0 %x90-BF 2( UTF8-tail ) / %xF1-F3 3( UTF8-tail ) /
 *            %xF4 %x80-8F 2( UTF8-tail )
 *   UTF8-tail = %x80-BF */
struct rule {
    unsigned char lead_lo, lead_hi;     /* the first byte */
    unsigned char second_lo, second_hi; /* the second byte, when there is one */
    int tails;                          /* bytes after the second, all 80-BF */
    int length;
};

static const struct rule rules[] = {
    {0x00, 0x7F, 0, 0, 0, 1},       {0xC2, 0xDF, 0x80, 0xBF, 0, 2}, {0xE0, 0xE0, 0xA0, 0xBF, 1, 3},
    {0xE1, 0xEC, 0x80, 0xBF, 1, 3}, {0xED, 0xED, 0x80, 0x9F, 1, 3}, {0xEE, 0xEF, 0x80, 0xBF, 1, 3},
    {0xF0, 0xF0, 0x90, 0xBF, 2, 4}, {0xF1, 0xF3, 0x80, 0xBF, 2, 4}, {0xF4, 0xF4, 0x80, 0x8F, 2, 4},
};

static int reference_valid_utf8(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        const struct rule *r = NULL;
        for (size_t k = 0; k < sizeof rules / sizeof rules[0]; k++)
            if (s[i] >= rules[k].lead_lo && s[i] <= rules[k].lead_hi)
                r = &rules[k];
        if (!r)
            return 0;
        if (len - i < (size_t)r->length)
            return 0;
        if (r->length > 1) {
            if (s[i + 1] < r->second_lo || s[i + 1] > r->second_hi)
                return 0;
            for (int t = 0; t < r->tails; t++)
                if (s[i + 2 + t] < 0x80 || s[i + 2 + t] > 0xBF)
                    return 0;
        }
        i += (size_t)r->length;
    }
    return 1;
}

static void fail(const char *what, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_names: %s for %zu bytes:", what, size);
    for (size_t i = 0; i < size && i < 300; i++)
        fprintf(stderr, " %02x", data[i]);
    fprintf(stderr, "\n");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes, so that ASan sees any read past it. */
    char *bytes = malloc(size ? size : 1);
    if (!bytes)
        return 0;
    memcpy(bytes, data, size);
    int got = dlock__valid_utf8(bytes, size);
    int want = reference_valid_utf8(data, size);
    if (!got != !want)
        fail(got ? "accepted invalid UTF-8" : "refused valid UTF-8", data, size);
    free(bytes);

    /* As a C string: cut at the first NUL. */
    char *name = malloc(size + 1);
    if (!name)
        return 0;
    memcpy(name, data, size);
    name[size] = '\0';
    size_t len = strlen(name);
    int expect_ok = len >= 1 && len <= 255 && reference_valid_utf8((const unsigned char *)name, len);
    dlock__clear_error();
    int rc = dlock__check_name(name);
    if (rc != DLOCK_OK && rc != DLOCK_EINVAL)
        fail("check_name returned a status other than OK or EINVAL", data, size);
    if ((rc == DLOCK_OK) != expect_ok)
        fail(rc == DLOCK_OK ? "check_name accepted a bad name" : "check_name refused a good name", data, size);
    if (rc == DLOCK_EINVAL && strlen(dlock_last_error()) < 10)
        fail("check_name refused without a message", data, size);
    free(name);
    return 0;
}
