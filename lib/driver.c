/*
 * Client libraries (libpq, libmariadb / libmysqlclient) are loaded when a
 * URL first needs them, not when libdlock is: a process that only ever uses
 * SQLite never maps them and their ~25 dependencies (TLS, Kerberos, LDAP),
 * which would cost every `dlock run` several milliseconds of start-up.
 */
#include "config.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

int dlock__driver_load(dlock_driver *driver)
{
    pthread_once(&driver->once, driver->load);
    if (driver->error[0])
        return dlock__error(DLOCK_ENOTSUP, "%s", driver->error);
    return DLOCK_OK;
}

void *dlock__driver_open(dlock_driver *driver, const char *const *sonames)
{
    char tried[160] = "";
    for (size_t i = 0; sonames[i]; i++) {
        int seen = !sonames[i][0];
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(sonames[i], sonames[j]) == 0;
        if (seen)
            continue; /* the configured soname is often also a fallback */
        void *handle = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL);
        if (handle)
            return handle;
        size_t used = strlen(tried);
        snprintf(tried + used, sizeof tried - used, "%s%s", used ? ", " : "", sonames[i]);
    }
    snprintf(driver->error, sizeof driver->error,
             "the %s backend needs its client library, which cannot be loaded (tried %s): install it", driver->backend,
             tried);
    return NULL;
}

int dlock__driver_symbol(dlock_driver *driver, void *handle, const char *symbol, void **slot)
{
    *slot = dlsym(handle, symbol);
    if (*slot)
        return 1;
    snprintf(driver->error, sizeof driver->error, "the %s backend's client library has no %s(): it is too old",
             driver->backend, symbol);
    return 0;
}
