/*
 * The query parameters that libdlock itself reads on every backend
 * (mode, table, fencing, prefix): parsed out of the URL before a backend
 * hands the rest to its client library.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int valid_table(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = t[i];
        int alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
        if (!alpha && !(i > 0 && ch >= '0' && ch <= '9'))
            return 0;
    }
    return 1;
}

void dlock__url_options_free(struct dlock_url_options *o)
{
    if (!o)
        return;
    free(o->table);
    free(o->prefix);
    o->table = o->prefix = NULL;
}

/* One parameter: key[0..klen) = value[0..vlen).  1 taken, 0 not ours, <0 error. */
static int take(struct dlock_url_options *o, const char *key, size_t klen, const char *value, size_t vlen)
{
    static const char *const names[] = {"mode", "table", "fencing", "prefix"};
    int which = -1;
    for (int i = 0; i < 4; i++)
        if (klen == strlen(names[i]) && memcmp(key, names[i], klen) == 0)
            which = i;
    if (which < 0)
        return 0;
    char *v;
    int rc = dlock__percent_decode(value, vlen, &v);
    if (rc != DLOCK_OK)
        return dlock__error(rc, "URL option %s: %s", names[which], rc == DLOCK_ENOMEM ? "out of memory" : "bad value");
    /* A value is never echoed: a password pasted in the wrong place would show. */
    switch (which) {
    case 0:
        if (o->mode != DLOCK_MODE_DEFAULT)
            rc = dlock__error(DLOCK_EINVAL, "URL option mode is given twice");
        else if (strcmp(v, "session") == 0)
            o->mode = DLOCK_MODE_SESSION;
        else if (strcmp(v, "lease") == 0)
            o->mode = DLOCK_MODE_LEASE;
        else
            rc = dlock__error(DLOCK_EINVAL, "URL option mode: must be session or lease");
        break;
    case 1:
        if (o->table)
            rc = dlock__error(DLOCK_EINVAL, "URL option table is given twice");
        else if (!valid_table(v))
            rc = dlock__error(DLOCK_EINVAL, "URL option table: must be an SQL name of 1 to 63 letters, digits and _ "
                                            "(not starting with a digit)");
        else {
            o->table = v;
            v = NULL;
        }
        break;
    case 2:
        if (o->fencing != DLOCK_FENCING_DEFAULT)
            rc = dlock__error(DLOCK_EINVAL, "URL option fencing is given twice");
        else if (strcmp(v, "on") == 0)
            o->fencing = DLOCK_FENCING_ON;
        else if (strcmp(v, "off") == 0)
            o->fencing = DLOCK_FENCING_OFF;
        else
            rc = dlock__error(DLOCK_EINVAL, "URL option fencing: must be on or off");
        break;
    default:
        if (o->prefix)
            rc = dlock__error(DLOCK_EINVAL, "URL option prefix is given twice");
        else if (strlen(v) > 255)
            rc = dlock__error(DLOCK_EINVAL, "URL option prefix: at most 255 bytes");
        else {
            o->prefix = v;
            v = NULL;
        }
        break;
    }
    free(v);
    return rc == DLOCK_OK ? 1 : rc;
}

int dlock__url_options(const char *url, struct dlock_url_options *o, char **rest)
{
    memset(o, 0, sizeof *o);
    *rest = NULL;
    if (!url)
        return dlock__error(DLOCK_EINVAL, "URL is NULL");
    size_t len = strlen(url);
    const char *hash = strchr(url, '#');
    const char *end = hash ? hash : url + len;
    const char *q = memchr(url, '?', (size_t)(end - url));
    char *out = malloc(len + 1);
    if (!out)
        return dlock__oom();
    if (!q) {
        memcpy(out, url, len + 1);
        *rest = out;
        return DLOCK_OK;
    }
    size_t n = (size_t)(q - url);
    memcpy(out, url, n);
    int kept = 0;
    for (const char *p = q + 1; p <= end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if (stop > p) {
            const char *eq = memchr(p, '=', (size_t)(stop - p));
            size_t klen = eq ? (size_t)(eq - p) : (size_t)(stop - p);
            const char *value = eq ? eq + 1 : stop;
            int rc = take(o, p, klen, value, (size_t)(stop - value));
            if (rc < 0) {
                free(out);
                dlock__url_options_free(o);
                return rc;
            }
            if (rc == 0) {
                out[n++] = kept++ ? '&' : '?';
                memcpy(out + n, p, (size_t)(stop - p));
                n += (size_t)(stop - p);
            }
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    size_t tail = (size_t)(url + len - end);
    memcpy(out + n, end, tail);
    out[n + tail] = '\0';
    *rest = out;
    return DLOCK_OK;
}

int dlock__url_options_only(const struct dlock_url_options *o, unsigned allowed, const char *backend)
{
    if (o->mode != DLOCK_MODE_DEFAULT && !(allowed & DLOCK_OPT_MODE))
        return dlock__error(DLOCK_EINVAL, "URL option mode is not taken by the %s backend", backend);
    if (o->table && !(allowed & DLOCK_OPT_TABLE))
        return dlock__error(DLOCK_EINVAL, "URL option table is not taken by the %s backend", backend);
    if (o->fencing != DLOCK_FENCING_DEFAULT && !(allowed & DLOCK_OPT_FENCING))
        return dlock__error(DLOCK_EINVAL, "URL option fencing is not taken by the %s backend", backend);
    if (o->prefix && !(allowed & DLOCK_OPT_PREFIX))
        return dlock__error(DLOCK_EINVAL, "URL option prefix is not taken by the %s backend (only redis)", backend);
    return DLOCK_OK;
}

int dlock__url_lease_options(const char *url, const char *backend, const char *default_prefix, char **prefix,
                             char **rest)
{
    struct dlock_url_options opts;
    *prefix = NULL;
    *rest = NULL;
    int rc = dlock__url_options(url, &opts, rest);
    if (rc != DLOCK_OK)
        return rc;
    if (opts.mode == DLOCK_MODE_SESSION)
        rc = dlock__error(DLOCK_EINVAL, "URL option mode=session: the %s backend has only leases (mode=lease)",
                          backend);
    else if (opts.fencing == DLOCK_FENCING_OFF)
        rc = dlock__error(DLOCK_EINVAL, "URL option fencing=off: the %s backend always gives fencing tokens", backend);
    else
        rc = dlock__url_options_only(&opts, DLOCK_OPT_MODE | DLOCK_OPT_FENCING | DLOCK_OPT_PREFIX, backend);
    if (rc == DLOCK_OK) {
        *prefix = opts.prefix ? opts.prefix : strdup(default_prefix);
        opts.prefix = NULL;
        if (!*prefix)
            rc = dlock__oom();
    }
    dlock__url_options_free(&opts);
    if (rc != DLOCK_OK && *rest) {
        memset(*rest, 0, strlen(*rest));
        free(*rest);
        *rest = NULL;
    }
    return rc;
}
