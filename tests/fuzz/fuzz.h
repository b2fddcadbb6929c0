/*
 * What the libFuzzer harnesses of tests/fuzz share: how a finding is
 * reported, the made-up password that must never show in a message, and
 * the input as a URL behind an optional userinfo with that password.
 */
#ifndef DLOCK_TESTS_FUZZ_H
#define DLOCK_TESTS_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlock.h"

/* A password no parser may ever quote (nor its tail). */
#define FUZZ_SECRET "Zebra-Secret-42"

/* Report a finding: `what`, then `text` with control bytes escaped; abort
 * (libFuzzer keeps the input). */
static inline void fuzz_fail(const char *harness, const char *what, const char *text)
{
    fprintf(stderr, "%s: %s: \"", harness, what);
    for (const char *p = text; *p; p++)
        fprintf(stderr, (*p >= 0x20 && *p < 0x7f) ? "%c" : "\\x%02x", (unsigned char)*p);
    fprintf(stderr, "\"\n");
    abort();
}

/* Two optional strings that are equal (both NULL, or the same text). */
static inline int fuzz_same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* `head` then data[0..size), NUL-terminated, malloc'ed (NULL: no memory). */
static inline char *fuzz_url(const char *head, const uint8_t *data, size_t size)
{
    size_t hlen = strlen(head);
    char *url = malloc(hlen + size + 1);
    if (url) {
        memcpy(url, head, hlen);
        memcpy(url + hlen, data, size);
        url[hlen + size] = '\0';
    }
    return url;
}

/* A refused URL: a usage status with a message, never the password. */
static inline void fuzz_check_refusal(const char *harness, int rc, const char *url)
{
    const char *error = dlock_last_error();
    if (rc != DLOCK_EINVAL && rc != DLOCK_ENOTSUP && rc != DLOCK_ENOMEM)
        fuzz_fail(harness, "unexpected status", url);
    if (!error[0])
        fuzz_fail(harness, "failure without a message", url);
    if (strstr(error, FUZZ_SECRET) || strstr(error, "Secret-42"))
        fuzz_fail(harness, "the password shows in the error", error);
}

#endif
