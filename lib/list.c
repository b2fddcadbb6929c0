/*
 * Lists of held locks (dlock_list_locks()): a snapshot, owned by the caller,
 * read through accessors by index so that no struct crosses the ABI.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct item {
    char *name; /* NULL: the store keeps none */
    char *key;
    char *holder;
    char *host;
    int64_t pid;
    int64_t since_ms;
    int64_t expires_ms;
    uint64_t fence;
};

struct dlock_list {
    struct item *items;
    size_t count, capacity;
};

struct dlock_list *dlock__list_new(void)
{
    return calloc(1, sizeof(struct dlock_list));
}

static char *dup_or(const char *s, const char *fallback)
{
    return strdup(s ? s : fallback);
}

int dlock__list_add(struct dlock_list *list, const struct dlock_list_entry *e)
{
    struct item *items = dlock__grow(list->items, list->count, &list->capacity, sizeof *items);
    if (!items)
        return dlock__oom();
    list->items = items;
    struct item it = {0};
    it.name = e->name ? strdup(e->name) : NULL;
    it.key = dup_or(e->key ? e->key : e->name, "");
    it.holder = dup_or(e->holder, "");
    it.host = dup_or(e->host, "");
    if ((e->name && !it.name) || !it.key || !it.holder || !it.host) {
        free(it.name);
        free(it.key);
        free(it.holder);
        free(it.host);
        return dlock__oom();
    }
    it.pid = e->pid > 0 ? e->pid : 0;
    it.since_ms = e->since_ms >= 0 ? e->since_ms : -1;
    it.expires_ms = e->expires_ms >= 0 ? e->expires_ms : -1;
    it.fence = e->fence;
    list->items[list->count++] = it;
    return DLOCK_OK;
}

int dlock__list_set_since(struct dlock_list *list, const char *key, int64_t since_ms)
{
    for (size_t i = 0; i < list->count; i++) {
        if (strcmp(list->items[i].key, key) == 0) {
            list->items[i].since_ms = since_ms >= 0 ? since_ms : -1;
            return 1;
        }
    }
    return 0;
}

static int by_key(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    return strcmp(x->key, y->key);
}

void dlock__list_sort(struct dlock_list *list)
{
    if (list->count > 1)
        qsort(list->items, list->count, sizeof *list->items, by_key);
}

DLOCK_API size_t dlock_list_count(const dlock_list *list)
{
    return list ? list->count : 0;
}

static const struct item *at(const dlock_list *list, size_t i)
{
    return list && i < list->count ? &list->items[i] : NULL;
}

DLOCK_API const char *dlock_list_name(const dlock_list *list, size_t i)
{
    const struct item *it = at(list, i);
    return it ? it->name : NULL;
}

DLOCK_API const char *dlock_list_key(const dlock_list *list, size_t i)
{
    const struct item *it = at(list, i);
    return it ? it->key : "";
}

DLOCK_API const char *dlock_list_holder(const dlock_list *list, size_t i)
{
    const struct item *it = at(list, i);
    return it ? it->holder : "";
}

DLOCK_API const char *dlock_list_host(const dlock_list *list, size_t i)
{
    const struct item *it = at(list, i);
    return it ? it->host : "";
}

DLOCK_API int64_t dlock_list_pid(const dlock_list *list, size_t i)
{
    const struct item *it = at(list, i);
    return it ? it->pid : 0;
}

DLOCK_API int64_t dlock_list_since(const dlock_list *list, size_t i)
{
    const struct item *it = at(list, i);
    return it ? it->since_ms : -1;
}

DLOCK_API int64_t dlock_list_expires(const dlock_list *list, size_t i)
{
    const struct item *it = at(list, i);
    return it ? it->expires_ms : -1;
}

DLOCK_API uint64_t dlock_list_fence(const dlock_list *list, size_t i)
{
    const struct item *it = at(list, i);
    return it ? it->fence : 0;
}

DLOCK_API void dlock_list_free(dlock_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].name);
        free(list->items[i].key);
        free(list->items[i].holder);
        free(list->items[i].host);
    }
    free(list->items);
    free(list);
}
