/*
 * etcd's JSON gateway speaks the v3 protobuf messages as JSON: bytes in
 * base64, int64 as strings, enums by name.  The bodies are built and the
 * answers read with json-c (api.h); nothing here parses JSON by hand.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

json_object *dlock__etcd_obj(void)
{
    return json_object_new_object();
}

void dlock__etcd_add_bytes(json_object *o, const char *field, const char *bytes, size_t len)
{
    char *text = malloc(4 * ((len + 2) / 3) + 1);
    if (!text)
        return; /* the request then lacks a field: the server refuses it */
    size_t n = dlock__etcd_base64(bytes, len, text);
    json_object_object_add(o, field, json_object_new_string_len(text, (int)n));
    free(text);
}

void dlock__etcd_add_i64(json_object *o, const char *field, int64_t v)
{
    json_object_object_add(o, field, json_object_new_int64(v));
}

void dlock__etcd_add_str(json_object *o, const char *field, const char *v)
{
    json_object_object_add(o, field, json_object_new_string(v));
}

json_object *dlock__etcd_get(json_object *o, const char *field)
{
    json_object *v = NULL;
    if (!o || json_object_get_type(o) != json_type_object || !json_object_object_get_ex(o, field, &v))
        return NULL;
    return v;
}

int64_t dlock__etcd_get_i64(json_object *o, const char *field, int64_t otherwise)
{
    json_object *v = dlock__etcd_get(o, field);
    if (!v)
        return otherwise;
    if (json_object_get_type(v) == json_type_int)
        return json_object_get_int64(v);
    if (json_object_get_type(v) != json_type_string)
        return otherwise;
    const char *s = json_object_get_string(v);
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    return end == s || *end || errno ? otherwise : (int64_t)n;
}

long dlock__etcd_get_bytes(json_object *o, const char *field, char *out, size_t outlen)
{
    json_object *v = dlock__etcd_get(o, field);
    if (!v || json_object_get_type(v) != json_type_string)
        return -1;
    size_t len = (size_t)json_object_get_string_len(v), n = 0;
    if (3 * (len / 4) + 1 > outlen)
        return -1;
    if (dlock__etcd_unbase64(json_object_get_string(v), len, out, &n) != DLOCK_OK)
        return -1;
    return (long)n;
}

json_object *dlock__etcd_cmp_create(const char *key, int64_t rev)
{
    json_object *c = dlock__etcd_obj();
    dlock__etcd_add_bytes(c, "key", key, strlen(key));
    dlock__etcd_add_str(c, "target", "CREATE");
    dlock__etcd_add_str(c, "result", "EQUAL");
    dlock__etcd_add_i64(c, "create_revision", rev);
    return c;
}

static json_object *wrap(const char *field, json_object *inner)
{
    json_object *o = dlock__etcd_obj();
    json_object_object_add(o, field, inner);
    return o;
}

json_object *dlock__etcd_range_req(const char *key, size_t klen, const char *end, size_t elen, int keys_only)
{
    json_object *r = dlock__etcd_obj();
    dlock__etcd_add_bytes(r, "key", key, klen);
    if (end) {
        dlock__etcd_add_bytes(r, "range_end", end, elen);
        dlock__etcd_add_str(r, "sort_order", "ASCEND");
        dlock__etcd_add_str(r, "sort_target", "CREATE");
    }
    if (keys_only)
        json_object_object_add(r, "keys_only", json_object_new_boolean(1));
    return r;
}

json_object *dlock__etcd_op_range(const char *key, size_t klen, const char *end, size_t elen, int keys_only)
{
    return wrap("request_range", dlock__etcd_range_req(key, klen, end, elen, keys_only));
}

json_object *dlock__etcd_op_put(const char *key, const char *value, int64_t lease, int ignore_value)
{
    json_object *p = dlock__etcd_obj();
    dlock__etcd_add_bytes(p, "key", key, strlen(key));
    if (ignore_value)
        json_object_object_add(p, "ignore_value", json_object_new_boolean(1));
    else
        dlock__etcd_add_bytes(p, "value", value, strlen(value));
    if (lease)
        dlock__etcd_add_i64(p, "lease", lease);
    return wrap("request_put", p);
}

json_object *dlock__etcd_op_delete(const char *key)
{
    json_object *d = dlock__etcd_obj();
    dlock__etcd_add_bytes(d, "key", key, strlen(key));
    return wrap("request_delete_range", d);
}

json_object *dlock__etcd_txn(json_object *compare, json_object *success, json_object *failure)
{
    json_object *t = dlock__etcd_obj();
    if (compare)
        json_object_object_add(t, "compare", compare);
    if (success)
        json_object_object_add(t, "success", success);
    if (failure)
        json_object_object_add(t, "failure", failure);
    return t;
}

json_object *dlock__etcd_array_of(json_object *const *items, size_t n)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < n; i++)
        json_object_array_add(a, items[i]);
    return a;
}

json_object *dlock__etcd_txn_response(json_object *reply, size_t i)
{
    json_object *responses = dlock__etcd_get(reply, "responses");
    if (!responses || json_object_get_type(responses) != json_type_array || i >= json_object_array_length(responses))
        return NULL;
    json_object *r = json_object_array_get_idx(responses, i);
    static const char *const kinds[] = {"response_range", "response_put", "response_delete_range", "response_txn"};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        json_object *inner = dlock__etcd_get(r, kinds[k]);
        if (inner)
            return inner;
    }
    return NULL;
}
