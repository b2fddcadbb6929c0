/*
 * Loads libcurl and json-c for the etcd backend at first use (lib/driver.c).
 *
 * json-c is loaded like libcurl rather than linked: it is only ever needed
 * beside libcurl, and a libdlock whose package does not depend on it keeps
 * every process that uses another store (and the Debian package's
 * dependencies) as they were.  Both sonames have been stable for years
 * (libcurl.so.4 since 2006, libjson-c.so.5 since json-c 0.14).
 */
#include "config.h"

#define DLOCK_ETCD_LOADER 1
#include "api.h"

#include <stdio.h>

#include "internal.h"

#ifndef CURL_SONAME
#define CURL_SONAME "libcurl.so.4"
#endif
#ifndef JSONC_SONAME
#define JSONC_SONAME "libjson-c.so.5"
#endif

struct dlock_etcd_api dlock__etcd;

static void load_etcd(void);
static dlock_driver etcd_driver = {"etcd", load_etcd, PTHREAD_ONCE_INIT, ""};

static void load_etcd(void)
{
    static const char *const curl_sonames[] = {CURL_SONAME, "libcurl.so.4", "libcurl-gnutls.so.4", NULL};
    static const char *const jsonc_sonames[] = {JSONC_SONAME, "libjson-c.so.5", NULL};
    void *curl = dlock__driver_open(&etcd_driver, curl_sonames);
    if (!curl)
        return;
    void *jsonc = dlock__driver_open(&etcd_driver, jsonc_sonames);
    if (!jsonc)
        return;
#define DLOCK_ETCD_RESOLVE_CURL(name)                                                     \
    if (!dlock__driver_symbol(&etcd_driver, curl, #name, (void **)&dlock__etcd.name)) \
        return;
#define DLOCK_ETCD_RESOLVE_JSONC(name)                                                     \
    if (!dlock__driver_symbol(&etcd_driver, jsonc, #name, (void **)&dlock__etcd.name)) \
        return;
    DLOCK_CURL_FUNCTIONS(DLOCK_ETCD_RESOLVE_CURL)
    DLOCK_JSONC_FUNCTIONS(DLOCK_ETCD_RESOLVE_JSONC)
#undef DLOCK_ETCD_RESOLVE_CURL
#undef DLOCK_ETCD_RESOLVE_JSONC
    /* Once, here: curl_global_init() is not thread-safe in every libcurl. */
    if (dlock__etcd.curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        snprintf(etcd_driver.error, sizeof etcd_driver.error, "the etcd backend could not initialise libcurl");
}

int dlock__etcd_load(void)
{
    return dlock__driver_load(&etcd_driver);
}
