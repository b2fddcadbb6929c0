/* Loads libpq for the PostgreSQL backend at first use (lib/driver.c). */
#include "config.h"

#define DLOCK_LIBPQ_LOADER 1
#include "api.h"

#include "internal.h"

#ifndef LIBPQ_SONAME
#define LIBPQ_SONAME "libpq.so.5"
#endif

struct dlock_libpq_api dlock__libpq;

static void load_libpq(void);
static dlock_driver libpq_driver = {"postgresql", load_libpq, PTHREAD_ONCE_INIT, ""};

static void load_libpq(void)
{
    static const char *const sonames[] = {LIBPQ_SONAME, "libpq.so.5", NULL};
    void *handle = dlock__driver_open(&libpq_driver, sonames);
    if (!handle)
        return;
#define DLOCK_LIBPQ_RESOLVE(name)                                                         \
    if (!dlock__driver_symbol(&libpq_driver, handle, #name, (void **)&dlock__libpq.name)) \
        return;
    DLOCK_LIBPQ_FUNCTIONS(DLOCK_LIBPQ_RESOLVE)
#undef DLOCK_LIBPQ_RESOLVE
}

int dlock__libpq_load(void)
{
    return dlock__driver_load(&libpq_driver);
}
