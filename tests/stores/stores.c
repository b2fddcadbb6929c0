/*
 * The list of store adapters (tests/stores/store.h): one per built-in
 * backend, from configure's list (DLOCK_BUILTIN_BACKENDS).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "common.h"
#include "store.h"

/* One adapter per built-in backend (configure's one list): a backend
 * without one does not link, naming dlt_store_NAME. */
#define STORE_DECLARE(name) extern const struct dlt_store dlt_store_##name;
DLOCK_BUILTIN_BACKENDS(STORE_DECLARE)
#define STORE_ENTRY(name) &dlt_store_##name,
static const struct dlt_store *const stores[] = {DLOCK_BUILTIN_BACKENDS(STORE_ENTRY) NULL};

const struct dlt_store *const *dlt_stores(void)
{
    return stores;
}

const struct dlt_store *dlt_store_named(const char *backend)
{
    for (size_t i = 0; stores[i]; i++)
        if (strcmp(stores[i]->backend, backend) == 0)
            return stores[i];
    fprintf(stderr,
            "no test adapter for the store '%s': add tests/stores/%s.c (see tests/stores/store.h) and list it in "
            "tests/stores/stores.c\n",
            backend, backend);
    exit(DLT_HARD_ERROR);
}

/* Remembered per URL: finding the backend opens a client, which would
 * clear the error text a test is about to read. */
const struct dlt_store *dlt_store_of(const char *url)
{
    static char *last_url;
    static const struct dlt_store *last;
    if (last_url && strcmp(last_url, url) == 0)
        return last;
    const struct dlt_store *store = dlt_store_named(dlt_backend_of(url));
    free(last_url);
    last_url = strdup(url);
    last = store;
    return store;
}

int dlt_url_has(const char *url, const char *option)
{
    const char *q = strchr(url, '?');
    size_t n = strlen(option);
    for (const char *p = q; p && *p;) {
        p++;
        if (strncmp(p, option, n) == 0 && (p[n] == '&' || p[n] == '\0'))
            return 1;
        p += strcspn(p, "&");
    }
    return 0;
}

void dlt_url_without_options(const char *url, char *out, size_t outlen)
{
    const char *q = strchr(url, '?');
    snprintf(out, outlen, "%.*s", (int)(q ? q - url : (ptrdiff_t)strlen(url)), url);
    for (const char *p = q; p && *p;) {
        p++;
        size_t n = strcspn(p, "&");
        if (strncmp(p, "mode=", 5) != 0 && strncmp(p, "table=", 6) != 0 && strncmp(p, "fencing=", 8) != 0 &&
            strncmp(p, "prefix=", 7) != 0)
            snprintf(out + strlen(out), outlen - strlen(out), "%c%.*s", strchr(out, '?') ? '&' : '?', (int)n, p);
        p += n;
    }
}

static pid_t pid_from_file(const char *dir_env, const char *file)
{
    const char *dir = getenv(dir_env);
    if (!dir || !*dir)
        return -1;
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long pid = -1;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = -1;
    fclose(f);
    return (pid_t)pid;
}

pid_t dlt_server_pid(const struct dlt_store *store, const char *url, pid_t client_pid)
{
    if (store->server_pid)
        return store->server_pid(url, client_pid);
    if (store->pid_file_dir_env && store->pid_file)
        return pid_from_file(store->pid_file_dir_env, store->pid_file);
    return -1;
}

unsigned dlt_sql_store_caps(const char *url)
{
    unsigned c = DLT_NETWORK;
    if (dlt_url_has(url, "mode=lease"))
        return c | DLT_FENCES | DLT_OUTLIVES_CONNECTION | DLT_LISTS_NAMES;
    if (dlt_url_has(url, "fencing=on"))
        c |= DLT_FENCES;
    return c | DLT_RELEASES_ON_EXIT;
}
