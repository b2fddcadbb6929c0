/* Loads the MySQL/MariaDB client library for the MySQL backend at first use
 * (lib/driver.c). */
#include "config.h"

#define DLOCK_MYSQL_LOADER 1
#include "mysql_api.h"

#include "internal.h"

#ifndef MYSQL_SONAME
#define MYSQL_SONAME "libmariadb.so.3"
#endif

struct dlock_mysql_api dlock__mysql;

static void load_mysql(void);
static dlock_driver mysql_driver = {"mysql", load_mysql, PTHREAD_ONCE_INIT, ""};

static void load_mysql(void)
{
    static const char *const sonames[] = {MYSQL_SONAME, "libmariadb.so.3", "libmysqlclient.so.21", NULL};
    void *handle = dlock__driver_open(&mysql_driver, sonames);
    if (!handle)
        return;
#define DLOCK_MYSQL_RESOLVE(name)                                                        \
    if (!dlock__driver_symbol(&mysql_driver, handle, #name, (void **)&dlock__mysql.name)) \
        return;
    DLOCK_MYSQL_FUNCTIONS(DLOCK_MYSQL_RESOLVE)
#undef DLOCK_MYSQL_RESOLVE
}

int dlock__mysql_load(void)
{
    return dlock__driver_load(&mysql_driver);
}
