/*
 * The libcurl and json-c functions the etcd backend calls, through tables
 * filled when the first etcd:// URL is opened (lib/driver.c).  Include this
 * instead of <curl/curl.h> and <json-c/json.h>: the defines at the end send
 * the backend's ordinary calls through the tables.
 */
#ifndef DLOCK_ETCD_API_H
#define DLOCK_ETCD_API_H

/* curl_easy_setopt() is then a plain function, whose type the table takes. */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <json-c/json.h>

#define DLOCK_CURL_FUNCTIONS(X)                                                                            \
    X(curl_global_init)                                                                                    \
    X(curl_easy_init) X(curl_easy_setopt) X(curl_easy_getinfo) X(curl_easy_cleanup) X(curl_easy_strerror) \
    X(curl_multi_init) X(curl_multi_add_handle) X(curl_multi_remove_handle) X(curl_multi_perform)         \
    X(curl_multi_wait) X(curl_multi_info_read) X(curl_multi_cleanup) X(curl_slist_append)                 \
    X(curl_slist_free_all) X(curl_getdate)

#define DLOCK_JSONC_FUNCTIONS(X)                                                                      \
    X(json_tokener_parse_verbose)                                                                     \
    X(json_object_put) X(json_object_object_get_ex) X(json_object_get_type) X(json_object_get_string) \
    X(json_object_get_string_len) X(json_object_get_int64) X(json_object_get_boolean)                 \
    X(json_object_array_length) X(json_object_array_get_idx) X(json_object_new_object)                \
    X(json_object_new_string) X(json_object_new_string_len) X(json_object_new_int64)                  \
    X(json_object_new_boolean) X(json_object_new_array) X(json_object_array_add)                      \
    X(json_object_object_add) X(json_object_to_json_string_ext)

struct dlock_etcd_api {
#define DLOCK_ETCD_SLOT(name) __typeof__(name) *(name);
    DLOCK_CURL_FUNCTIONS(DLOCK_ETCD_SLOT)
    DLOCK_JSONC_FUNCTIONS(DLOCK_ETCD_SLOT)
#undef DLOCK_ETCD_SLOT
};

extern struct dlock_etcd_api dlock__etcd;
/* Load libcurl and json-c once (and run curl_global_init); DLOCK_OK, or
 * DLOCK_ENOTSUP with the reason. */
int dlock__etcd_load(void);

#ifndef DLOCK_ETCD_LOADER
#define curl_global_init dlock__etcd.curl_global_init
#define curl_easy_init dlock__etcd.curl_easy_init
#undef curl_easy_setopt /* curl.h checks its argument count with a macro */
#define curl_easy_setopt dlock__etcd.curl_easy_setopt
#undef curl_easy_getinfo
#define curl_easy_getinfo dlock__etcd.curl_easy_getinfo
#define curl_easy_cleanup dlock__etcd.curl_easy_cleanup
#define curl_easy_strerror dlock__etcd.curl_easy_strerror
#define curl_multi_init dlock__etcd.curl_multi_init
#define curl_multi_add_handle dlock__etcd.curl_multi_add_handle
#define curl_multi_remove_handle dlock__etcd.curl_multi_remove_handle
#define curl_multi_perform dlock__etcd.curl_multi_perform
#define curl_multi_wait dlock__etcd.curl_multi_wait
#define curl_multi_info_read dlock__etcd.curl_multi_info_read
#define curl_multi_cleanup dlock__etcd.curl_multi_cleanup
#define curl_slist_append dlock__etcd.curl_slist_append
#define curl_slist_free_all dlock__etcd.curl_slist_free_all
#define curl_getdate dlock__etcd.curl_getdate
#define json_tokener_parse_verbose dlock__etcd.json_tokener_parse_verbose
#define json_object_put dlock__etcd.json_object_put
#define json_object_object_get_ex dlock__etcd.json_object_object_get_ex
#define json_object_get_type dlock__etcd.json_object_get_type
#define json_object_get_string dlock__etcd.json_object_get_string
#define json_object_get_string_len dlock__etcd.json_object_get_string_len
#define json_object_get_int64 dlock__etcd.json_object_get_int64
#define json_object_get_boolean dlock__etcd.json_object_get_boolean
#define json_object_array_length dlock__etcd.json_object_array_length
#define json_object_array_get_idx dlock__etcd.json_object_array_get_idx
#define json_object_new_object dlock__etcd.json_object_new_object
#define json_object_new_string dlock__etcd.json_object_new_string
#define json_object_new_string_len dlock__etcd.json_object_new_string_len
#define json_object_new_int64 dlock__etcd.json_object_new_int64
#define json_object_new_boolean dlock__etcd.json_object_new_boolean
#define json_object_new_array dlock__etcd.json_object_new_array
#define json_object_array_add dlock__etcd.json_object_array_add
#define json_object_object_add dlock__etcd.json_object_object_add
#define json_object_to_json_string_ext dlock__etcd.json_object_to_json_string_ext
#endif

#endif
