/*
 * The MySQL client functions the MySQL backend calls, through a table filled
 * when the first mysql:// URL is opened (see lib/driver.c).  Include after
 * <mysql.h>: the defines at the end make the backend's ordinary mysql_xxx()
 * calls go through the table.
 */
#ifndef DLOCK_MYSQL_API_H
#define DLOCK_MYSQL_API_H

#include <mysql.h>

#define DLOCK_MYSQL_FUNCTIONS(X)                                                                                  \
    X(mysql_close)                                                                                                \
    X(mysql_errno)                                                                                                \
    X(mysql_error)                                                                                                \
    X(mysql_fetch_row)                                                                                            \
    X(mysql_free_result)                                                                                          \
    X(mysql_get_socket) X(mysql_get_ssl_cipher) X(mysql_info) X(mysql_init) X(mysql_options) X(mysql_query)       \
        X(mysql_real_connect) X(mysql_server_init) X(mysql_stmt_bind_param) X(mysql_stmt_bind_result)             \
            X(mysql_stmt_close) X(mysql_stmt_errno) X(mysql_stmt_error) X(mysql_stmt_execute) X(mysql_stmt_fetch) \
                X(mysql_stmt_free_result) X(mysql_stmt_init) X(mysql_stmt_prepare) X(mysql_stmt_affected_rows)    \
                    X(mysql_stmt_insert_id) X(mysql_store_result) X(mysql_thread_end) X(mysql_thread_init)

struct dlock_mysql_api {
#define DLOCK_MYSQL_SLOT(name) __typeof__(name) *(name);
    DLOCK_MYSQL_FUNCTIONS(DLOCK_MYSQL_SLOT)
#undef DLOCK_MYSQL_SLOT
};

extern struct dlock_mysql_api dlock__mysql;
/* Load the client library once; DLOCK_OK, or DLOCK_ENOTSUP with the reason. */
int dlock__mysql_load(void);

#ifndef DLOCK_MYSQL_LOADER
#define mysql_close dlock__mysql.mysql_close
#define mysql_errno dlock__mysql.mysql_errno
#define mysql_error dlock__mysql.mysql_error
#define mysql_fetch_row dlock__mysql.mysql_fetch_row
#define mysql_free_result dlock__mysql.mysql_free_result
#define mysql_get_socket dlock__mysql.mysql_get_socket
#define mysql_get_ssl_cipher dlock__mysql.mysql_get_ssl_cipher
#define mysql_info dlock__mysql.mysql_info
#define mysql_init dlock__mysql.mysql_init
#define mysql_options dlock__mysql.mysql_options
#define mysql_query dlock__mysql.mysql_query
#define mysql_real_connect dlock__mysql.mysql_real_connect
#define mysql_server_init dlock__mysql.mysql_server_init
#define mysql_stmt_bind_param dlock__mysql.mysql_stmt_bind_param
#define mysql_stmt_bind_result dlock__mysql.mysql_stmt_bind_result
#define mysql_stmt_close dlock__mysql.mysql_stmt_close
#define mysql_stmt_errno dlock__mysql.mysql_stmt_errno
#define mysql_stmt_error dlock__mysql.mysql_stmt_error
#define mysql_stmt_execute dlock__mysql.mysql_stmt_execute
#define mysql_stmt_fetch dlock__mysql.mysql_stmt_fetch
#define mysql_stmt_free_result dlock__mysql.mysql_stmt_free_result
#define mysql_stmt_init dlock__mysql.mysql_stmt_init
#define mysql_stmt_prepare dlock__mysql.mysql_stmt_prepare
#define mysql_stmt_affected_rows dlock__mysql.mysql_stmt_affected_rows
#define mysql_stmt_insert_id dlock__mysql.mysql_stmt_insert_id
#define mysql_store_result dlock__mysql.mysql_store_result
#define mysql_thread_end dlock__mysql.mysql_thread_end
#define mysql_thread_init dlock__mysql.mysql_thread_init
#endif

#endif
