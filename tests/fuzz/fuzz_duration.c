/*
 * libFuzzer harness: the duration parser of dlock(1) (tools/duration.c).
 *
 * The first input byte picks forever_ok and the limit; the rest is the text.
 * The result is compared with a reference that reads the grammar of
 * dlock(1) -- digits, an optional fraction, an optional unit (ms, s, m, h, d;
 * none means seconds), or "forever" -- and computes the exact value with
 * 128-bit integers.  The parser keeps 6 fraction digits, so it may be below
 * the exact value by less than unit/10^6 ms, never above it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"

typedef unsigned __int128 u128;

static const int64_t limits[8] = {0, 1, 999, 1000, 60000, INT32_MAX, INT64_MAX / 4, INT64_MAX};

#define REF_FRACTION_DIGITS 30
#define WHOLE_LIMIT 1000000000000LL /* the parser refuses more than 10^12 units */

/* 1 and the exact value (floor, in ms) when `text` is a duration; 0 if not.
 * *forever for "forever". */
static int reference_parse(const char *text, u128 *ms, int *forever, int64_t *unit_out)
{
    *forever = 0;
    if (strcmp(text, "forever") == 0) {
        *forever = 1;
        return 1;
    }
    const char *p = text;
    u128 whole = 0;
    size_t whole_digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (whole <= (u128)WHOLE_LIMIT * 10)
            whole = whole * 10 + (u128)(*p - '0');
        p++;
        whole_digits++;
    }
    if (whole_digits == 0 || whole > (u128)WHOLE_LIMIT)
        return 0;
    u128 fraction = 0, scale = 1;
    if (*p == '.') {
        p++;
        size_t digits = 0;
        while (*p >= '0' && *p <= '9') {
            if (digits < REF_FRACTION_DIGITS) {
                fraction = fraction * 10 + (u128)(*p - '0');
                scale *= 10;
            }
            digits++;
            p++;
        }
        if (digits == 0)
            return 0;
    }
    int64_t unit;
    if (strcmp(p, "") == 0 || strcmp(p, "s") == 0)
        unit = 1000;
    else if (strcmp(p, "ms") == 0)
        unit = 1;
    else if (strcmp(p, "m") == 0)
        unit = 60000;
    else if (strcmp(p, "h") == 0)
        unit = 3600000;
    else if (strcmp(p, "d") == 0)
        unit = 86400000;
    else
        return 0;
    *unit_out = unit;
    *ms = whole * (u128)unit + fraction * (u128)unit / scale;
    return 1;
}

static void fail(const char *what, const char *text, int64_t max_ms, int forever_ok, int64_t got)
{
    fprintf(stderr, "fuzz_duration: %s: text \"", what);
    for (const char *p = text; *p; p++)
        fprintf(stderr, (*p >= 0x20 && *p < 0x7f) ? "%c" : "\\x%02x", (unsigned char)*p);
    fprintf(stderr, "\" max %lld forever_ok %d got %lld\n", (long long)max_ms, forever_ok, (long long)got);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int forever_ok = data[0] & 1;
    int64_t max_ms = limits[(data[0] >> 1) & 7];
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';

    const int64_t untouched = -12345;
    int64_t got = untouched;
    int rc = dlock_parse_duration(text, max_ms, forever_ok, &got);
    if (rc != 0 && rc != -1)
        fail("returned neither 0 nor -1", text, max_ms, forever_ok, got);
    if (rc != 0 && got != untouched)
        fail("wrote the result although it failed", text, max_ms, forever_ok, got);

    u128 exact = 0;
    int forever = 0;
    int64_t unit = 1;
    int parses = reference_parse(text, &exact, &forever, &unit);
    if (forever) {
        if (rc != (forever_ok ? 0 : -1) || (rc == 0 && got != -1))
            fail("\"forever\" handled wrongly", text, max_ms, forever_ok, got);
    } else if (!parses) {
        if (rc == 0)
            fail("accepted text that is not a duration", text, max_ms, forever_ok, got);
    } else {
        /* Below the exact value by less than what 6 fraction digits lose
         * (unit/10^6 ms, rounded up) plus one for the floor. */
        u128 tolerance = (u128)(unit / 1000000 + 2);
        if (rc == 0) {
            if (got < 0 || got > max_ms)
                fail("result out of range", text, max_ms, forever_ok, got);
            if ((u128)got > exact || exact - (u128)got >= tolerance)
                fail("result differs from the exact value", text, max_ms, forever_ok, got);
        } else if (exact <= (u128)max_ms) {
            fail("refused a duration within the limit", text, max_ms, forever_ok, got);
        } else if (exact - (u128)max_ms < tolerance) {
            /* within the rounding band at the limit: either answer is fine */
        }
        /* The parser may only accept an over-limit value inside that band. */
        if (rc == 0 && exact > (u128)max_ms && exact - (u128)max_ms >= tolerance)
            fail("accepted a duration over the limit", text, max_ms, forever_ok, got);
    }
    free(text);
    return 0;
}
