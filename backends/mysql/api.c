/* Loads the MySQL/MariaDB client library for the MySQL backend at first use
 * (lib/driver.c). */
#include "config.h"

#define DLOCK_MYSQL_LOADER 1
#include "api.h"

#include <dlfcn.h>
#include <stdio.h>

#include "internal.h"

#if defined(MARIADB_PACKAGE_VERSION_ID) || defined(MARIADB_BASE_VERSION)
#define BUILT_FOR_MARIADB 1
#endif

#ifndef MYSQL_SONAME
#ifdef BUILT_FOR_MARIADB
#define MYSQL_SONAME "libmariadb.so.3"
#else
#define MYSQL_SONAME "libmysqlclient.so.21"
#endif
#endif

struct dlock_mysql_api dlock__mysql;

static void load_mysql(void);
static dlock_driver mysql_driver = {"mysql", load_mysql, PTHREAD_ONCE_INIT, ""};

/* MariaDB Connector/C and Oracle's libmysqlclient share function names but
 * not their ABI: MYSQL_BIND's layout and the mysql_options() numbers differ
 * (and libmysqlclient's change between major versions).  A library of
 * another family than the headers we were built with would corrupt memory,
 * so only the same family (libmysqlclient: the same major.minor) is used. */
static int abi_matches(void *handle)
{
    int is_mariadb = dlsym(handle, "mariadb_get_infov") != NULL;
#ifdef BUILT_FOR_MARIADB
    if (is_mariadb)
        return 1;
    snprintf(mysql_driver.error, sizeof mysql_driver.error,
             "the mysql backend was built for MariaDB Connector/C, but the client library it loaded"
             " is not Connector/C (different ABI): install libmariadb3");
#else
    unsigned long (*client_version)(void) = NULL;
    *(void **)&client_version = dlsym(handle, "mysql_get_client_version");
    unsigned long version = client_version ? client_version() : 0;
    if (!is_mariadb && version / 100 == MYSQL_VERSION_ID / 100)
        return 1;
    snprintf(mysql_driver.error, sizeof mysql_driver.error,
             "the mysql backend was built for libmysqlclient %d.%d, but the client library it loaded is %s"
             " %lu.%lu (different ABI)",
             MYSQL_VERSION_ID / 10000, MYSQL_VERSION_ID / 100 % 100,
             is_mariadb ? "MariaDB Connector/C" : "libmysqlclient", version / 10000, version / 100 % 100);
#endif
    return 0;
}

static void load_mysql(void)
{
#ifdef BUILT_FOR_MARIADB
    static const char *const sonames[] = {MYSQL_SONAME, "libmariadb.so.3", NULL};
#else
    static const char *const sonames[] = {MYSQL_SONAME, NULL};
#endif
    void *handle = dlock__driver_open(&mysql_driver, sonames);
    if (!handle || !abi_matches(handle))
        return;
#define DLOCK_MYSQL_RESOLVE(name)                                                         \
    if (!dlock__driver_symbol(&mysql_driver, handle, #name, (void **)&dlock__mysql.name)) \
        return;
    DLOCK_MYSQL_FUNCTIONS(DLOCK_MYSQL_RESOLVE)
#undef DLOCK_MYSQL_RESOLVE
}

int dlock__mysql_load(void)
{
    return dlock__driver_load(&mysql_driver);
}
