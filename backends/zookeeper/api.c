/* Loads the single-threaded ZooKeeper C client at first use (lib/driver.c). */
#include "config.h"

#define DLOCK_ZK_LOADER 1
#include "api.h"

#include <stdio.h>
#include <string.h>

#include "internal.h"

#ifndef ZOOKEEPER_SONAME
#define ZOOKEEPER_SONAME "libzookeeper_st.so.2"
#endif

struct dlock_zk_api dlock__zk;

static void load_zk(void);
static dlock_driver zk_driver = {"zookeeper", load_zk, PTHREAD_ONCE_INIT, ""};

/* A constant of the library (a data symbol) must equal the backend's copy. */
static int same_constant(void *handle, const char *symbol, int expected)
{
    void *slot = NULL;
    if (!dlock__driver_symbol(&zk_driver, handle, symbol, &slot))
        return 0;
    if (*(const int *)slot == expected)
        return 1;
    snprintf(zk_driver.error, sizeof zk_driver.error,
             "the zookeeper client library's %s is %d, not %d: an unknown version", symbol, *(const int *)slot,
             expected);
    return 0;
}

/* Only the single-threaded library: the multi-threaded one pings the server
 * from its own thread, so a holder whose threads hang would keep its
 * session, and its locks, for ever. */
static void load_zk(void)
{
    static const char *const sonames[] = {ZOOKEEPER_SONAME, "libzookeeper_st.so.2", NULL};
    void *handle = dlock__driver_open(&zk_driver, sonames);
    if (!handle)
        return;
#define DLOCK_ZK_RESOLVE(name)                                                        \
    if (!dlock__driver_symbol(&zk_driver, handle, #name, (void **)&dlock__zk.name)) \
        return;
    DLOCK_ZK_FUNCTIONS(DLOCK_ZK_RESOLVE)
#undef DLOCK_ZK_RESOLVE
    static const struct {
        const char *symbol;
        int value;
    } constants[] = {{"ZOO_EPHEMERAL_SEQUENTIAL", ZK_EPHEMERAL_SEQUENTIAL},
                     {"ZOO_CONTAINER", ZK_CONTAINER},
                     {"ZOO_PERSISTENT", ZK_PERSISTENT},
                     {"ZOO_PERSISTENT_SEQUENTIAL", ZK_PERSISTENT_SEQUENTIAL},
                     {"ZOO_CONNECTED_STATE", ZK_CONNECTED_STATE},
                     {"ZOO_EXPIRED_SESSION_STATE", ZK_EXPIRED_SESSION_STATE},
                     {"ZOO_AUTH_FAILED_STATE", ZK_AUTH_FAILED_STATE},
                     {"ZOO_SESSION_EVENT", ZK_SESSION_EVENT},
                     {"ZOO_DELETED_EVENT", ZK_DELETED_EVENT},
                     {"ZOOKEEPER_WRITE", ZK_WRITE},
                     {"ZOOKEEPER_READ", ZK_READ},
                     {"ZOO_PERM_ALL", ZK_PERM_ALL}};
    for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++)
        if (!same_constant(handle, constants[i].symbol, constants[i].value))
            return;
    /* The library formats every log line into one static buffer, even for a
     * callback that discards it: clients of two threads then race on it
     * (ThreadSanitizer saw it).  Level 0 turns its logging off before any
     * line is formatted; libdlock reports errors itself. */
    dlock__zk.zoo_set_debug_level((ZooLogLevel)0);
}

int dlock__zk_load(void)
{
    return dlock__driver_load(&zk_driver);
}
