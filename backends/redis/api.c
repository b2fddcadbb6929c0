/* Loads hiredis for the Redis backend at first use (lib/driver.c), and the
 * SHA-1 that names a script for EVALSHA. */
#include "config.h"

#define DLOCK_REDIS_LOADER 1
#include "api.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#ifndef REDIS_SONAME
#define REDIS_SONAME "libhiredis.so.0.14"
#endif

struct dlock_redis_api dlock__redis;

static void load_redis(void);
static dlock_driver redis_driver = {"redis", load_redis, PTHREAD_ONCE_INIT, ""};

/* hiredis changes its ABI (redisContext, redisReply) with its minor version
 * before 1.0: only the soname of the headers we were built with is tried. */
static void load_redis(void)
{
    static const char *const sonames[] = {REDIS_SONAME, NULL};
    void *handle = dlock__driver_open(&redis_driver, sonames);
    if (!handle)
        return;
#define DLOCK_REDIS_RESOLVE(name)                                                         \
    if (!dlock__driver_symbol(&redis_driver, handle, #name, (void **)&dlock__redis.name)) \
        return;
    DLOCK_REDIS_FUNCTIONS(DLOCK_REDIS_RESOLVE)
#undef DLOCK_REDIS_RESOLVE
}

int dlock__redis_load(void)
{
    return dlock__driver_load(&redis_driver);
}

/* --- SHA-1 (FIPS 180-4), only to name scripts: no security rests on it. --- */

static uint32_t rol(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

void dlock__redis_sha1_hex(const char *text, char hex[41])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t len = strlen(text), i = 0;
    for (; i + 64 <= len; i += 64)
        sha1_block(h, (const unsigned char *)text + i);
    unsigned char tail[128] = {0};
    size_t rest = len - i;
    memcpy(tail, text + i, rest);
    tail[rest] = 0x80;
    size_t total = rest + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int j = 0; j < 8; j++)
        tail[total - 1 - j] = (unsigned char)(bits >> (8 * j));
    sha1_block(h, tail);
    if (total == 128)
        sha1_block(h, tail + 64);
    for (int j = 0; j < 5; j++)
        snprintf(hex + 8 * j, 9, "%08x", (unsigned)h[j]);
}
