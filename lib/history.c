/*
 * Run histories (dlock_history_read()) and preflight lists (dlock_check()):
 * snapshots owned by the caller, read through accessors by index so that no
 * struct crosses the ABI, as lib/list.c does for held locks.
 */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* --- run history ---------------------------------------------------------------- */

struct run {
    int64_t start_ms, end_ms;
    char *host;
    int64_t pid;
    char *outcome;
    int exit_status;
    uint64_t fence;
};

struct dlock_history {
    struct run *runs;
    size_t count, capacity;
};

struct dlock_history *dlock__history_new(void)
{
    return calloc(1, sizeof(struct dlock_history));
}

int dlock__history_to_text(const struct dlock_history_entry *run, char *out, size_t outlen)
{
    return snprintf(out, outlen, "%" PRId64 " %" PRId64 " %" PRId64 " %d %" PRIu64 " %s %s", run->start_ms, run->end_ms,
                    run->pid, run->exit_status, run->fence, run->outcome ? run->outcome : "",
                    run->host ? run->host : "");
}

int dlock__history_from_text(char *text, struct dlock_history_entry *e)
{
    char *p = text, *end;
    long long v[5];
    for (int i = 0; i < 5; i++) {
        v[i] = strtoll(p, &end, 10);
        if (end == p || *end != ' ')
            return 0;
        p = end + 1;
    }
    char *space = strchr(p, ' ');
    if (!space || space == p)
        return 0;
    *space = '\0';
    for (const char *o = p; *o; o++)
        if (*o < 'a' || *o > 'z')
            return 0;
    if (v[3] < -1 || v[3] > INT32_MAX || v[2] < 0)
        return 0;
    *e = (struct dlock_history_entry){.start_ms = v[0],
                                      .end_ms = v[1],
                                      .pid = v[2],
                                      .exit_status = (int)v[3],
                                      .fence = (uint64_t)v[4],
                                      .outcome = p,
                                      .host = space + 1};
    return 1;
}

int dlock__history_add(struct dlock_history *h, const struct dlock_history_entry *e)
{
    struct run *runs = dlock__grow(h->runs, h->count, &h->capacity, sizeof *runs);
    if (!runs)
        return dlock__oom();
    h->runs = runs;
    struct run r = {0};
    r.host = strdup(e->host ? e->host : "");
    r.outcome = strdup(e->outcome ? e->outcome : "");
    if (!r.host || !r.outcome) {
        free(r.host);
        free(r.outcome);
        return dlock__oom();
    }
    r.start_ms = e->start_ms;
    r.end_ms = e->end_ms;
    r.pid = e->pid > 0 ? e->pid : 0;
    r.exit_status = e->exit_status >= 0 ? e->exit_status : -1;
    r.fence = e->fence;
    h->runs[h->count++] = r;
    return DLOCK_OK;
}

static const struct run *run_at(const dlock_history *h, size_t i)
{
    return h && i < h->count ? &h->runs[i] : NULL;
}

DLOCK_API size_t dlock_history_count(const dlock_history *h)
{
    return h ? h->count : 0;
}

DLOCK_API int64_t dlock_history_start(const dlock_history *h, size_t i)
{
    const struct run *r = run_at(h, i);
    return r ? r->start_ms : -1;
}

DLOCK_API int64_t dlock_history_end(const dlock_history *h, size_t i)
{
    const struct run *r = run_at(h, i);
    return r ? r->end_ms : -1;
}

DLOCK_API const char *dlock_history_host(const dlock_history *h, size_t i)
{
    const struct run *r = run_at(h, i);
    return r ? r->host : "";
}

DLOCK_API int64_t dlock_history_pid(const dlock_history *h, size_t i)
{
    const struct run *r = run_at(h, i);
    return r ? r->pid : 0;
}

DLOCK_API const char *dlock_history_outcome(const dlock_history *h, size_t i)
{
    const struct run *r = run_at(h, i);
    return r ? r->outcome : "";
}

DLOCK_API int dlock_history_exit_status(const dlock_history *h, size_t i)
{
    const struct run *r = run_at(h, i);
    return r ? r->exit_status : -1;
}

DLOCK_API uint64_t dlock_history_fence(const dlock_history *h, size_t i)
{
    const struct run *r = run_at(h, i);
    return r ? r->fence : 0;
}

DLOCK_API void dlock_history_free(dlock_history *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->count; i++) {
        free(h->runs[i].host);
        free(h->runs[i].outcome);
    }
    free(h->runs);
    free(h);
}

/* --- preflight items -------------------------------------------------------------- */

struct item {
    char *key, *value;
    int verdict;
};

struct dlock_check_list {
    struct item *items;
    size_t count, capacity;
};

struct dlock_check_list *dlock__check_new(void)
{
    return calloc(1, sizeof(struct dlock_check_list));
}

int dlock__check_add(struct dlock_check_list *list, const char *key, int verdict, const char *fmt, ...)
{
    struct item *items = dlock__grow(list->items, list->count, &list->capacity, sizeof *items);
    if (!items)
        return dlock__oom();
    list->items = items;
    va_list ap;
    va_start(ap, fmt);
    char *value = NULL;
    int n = vasprintf(&value, fmt, ap);
    va_end(ap);
    char *k = strdup(key);
    if (n < 0 || !k) {
        if (n >= 0)
            free(value);
        free(k);
        return dlock__oom();
    }
    struct item *it = &list->items[list->count++];
    it->key = k;
    it->value = value;
    it->verdict = verdict;
    return DLOCK_OK;
}

static const struct item *item_at(const dlock_check_list *list, size_t i)
{
    return list && i < list->count ? &list->items[i] : NULL;
}

DLOCK_API size_t dlock_check_count(const dlock_check_list *list)
{
    return list ? list->count : 0;
}

DLOCK_API const char *dlock_check_key(const dlock_check_list *list, size_t i)
{
    const struct item *it = item_at(list, i);
    return it ? it->key : "";
}

DLOCK_API const char *dlock_check_value(const dlock_check_list *list, size_t i)
{
    const struct item *it = item_at(list, i);
    return it ? it->value : "";
}

DLOCK_API int dlock_check_verdict(const dlock_check_list *list, size_t i)
{
    const struct item *it = item_at(list, i);
    return it ? it->verdict : DLOCK_CHECK_INFO;
}

DLOCK_API void dlock_check_free(dlock_check_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].key);
        free(list->items[i].value);
    }
    free(list->items);
    free(list);
}
