/*
 * The ZooKeeper C client functions the backend calls (the single-threaded
 * libzookeeper_st), through a table filled when the first zookeeper:// URL
 * is opened (lib/driver.c).  <zookeeper/zookeeper.h> gives the types only.
 * Include after it: the defines at the end send the backend's ordinary calls
 * through the table.
 */
#ifndef DLOCK_ZK_API_H
#define DLOCK_ZK_API_H

#include <zookeeper/zookeeper.h>

#define DLOCK_ZK_FUNCTIONS(X)                                                                                      \
    X(zookeeper_init2)                                                                                             \
    X(zookeeper_close)                                                                                             \
    X(zookeeper_interest)                                                                                          \
    X(zookeeper_process)                                                                                           \
    X(zoo_state) X(zoo_client_id) X(zoo_recv_timeout) X(zoo_add_auth) X(zoo_acreate2) X(zoo_adelete) X(zoo_aexists) \
        X(zoo_awexists) X(zoo_aget) X(zoo_aget_children) X(zoo_async) X(zoo_aset) X(zoo_amulti) X(zoo_check_op_init) \
            X(zoo_set_op_init) X(zoo_create_op_init) X(zoo_delete_op_init) X(zoo_get_current_server) X(zerror)   \
                X(zoo_set_debug_level)

struct dlock_zk_api {
#define DLOCK_ZK_SLOT(name) __typeof__(name) *(name);
    DLOCK_ZK_FUNCTIONS(DLOCK_ZK_SLOT)
#undef DLOCK_ZK_SLOT
};

extern struct dlock_zk_api dlock__zk;
/* Load the client library once; DLOCK_OK, or DLOCK_ENOTSUP with the reason. */
int dlock__zk_load(void);

/* The library's constants are data symbols; the loader checks that these
 * copies match the library it loaded. */
enum {
    ZK_EPHEMERAL_SEQUENTIAL = 3,
    ZK_CONTAINER = 4,
    ZK_PERSISTENT = 0,
    ZK_PERSISTENT_SEQUENTIAL = 2,
    ZK_CONNECTED_STATE = 3,
    ZK_EXPIRED_SESSION_STATE = -112,
    ZK_AUTH_FAILED_STATE = -113,
    ZK_SESSION_EVENT = -1,
    ZK_DELETED_EVENT = 2,
    ZK_WRITE = 1,
    ZK_READ = 2,
    ZK_PERM_ALL = 31
};

#ifndef DLOCK_ZK_LOADER
#define zookeeper_init2 dlock__zk.zookeeper_init2
#define zookeeper_close dlock__zk.zookeeper_close
#define zookeeper_interest dlock__zk.zookeeper_interest
#define zookeeper_process dlock__zk.zookeeper_process
#define zoo_state dlock__zk.zoo_state
#define zoo_client_id dlock__zk.zoo_client_id
#define zoo_recv_timeout dlock__zk.zoo_recv_timeout
#define zoo_add_auth dlock__zk.zoo_add_auth
#define zoo_acreate2 dlock__zk.zoo_acreate2
#define zoo_adelete dlock__zk.zoo_adelete
#define zoo_aexists dlock__zk.zoo_aexists
#define zoo_awexists dlock__zk.zoo_awexists
#define zoo_aget dlock__zk.zoo_aget
#define zoo_aget_children dlock__zk.zoo_aget_children
#define zoo_async dlock__zk.zoo_async
#define zoo_aset dlock__zk.zoo_aset
#define zoo_amulti dlock__zk.zoo_amulti
#define zoo_check_op_init dlock__zk.zoo_check_op_init
#define zoo_set_op_init dlock__zk.zoo_set_op_init
#define zoo_create_op_init dlock__zk.zoo_create_op_init
#define zoo_delete_op_init dlock__zk.zoo_delete_op_init
#define zoo_get_current_server dlock__zk.zoo_get_current_server
#define zerror dlock__zk.zerror
#endif

#endif
