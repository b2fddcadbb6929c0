/* Status codes, their text, and the thread-local error detail. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "internal.h"

#define DLOCK_ERRBUF_SIZE 512

static _Thread_local char last_error[DLOCK_ERRBUF_SIZE];

/* Both generated from DLOCK_STATUS_MAP in dlock.h. */
DLOCK_API const char *dlock_strerror(int status)
{
    switch (status) {
#define DLOCK_STRERROR_CASE(name, value, text) \
    case DLOCK_##name:                         \
        return text;
        DLOCK_STATUS_MAP(DLOCK_STRERROR_CASE)
#undef DLOCK_STRERROR_CASE
    default:
        return "unknown status code";
    }
}

DLOCK_API const char *dlock_status_name(int status)
{
    switch (status) {
#define DLOCK_NAME_CASE(name, value, text) \
    case DLOCK_##name:                     \
        return "DLOCK_" #name;
        DLOCK_STATUS_MAP(DLOCK_NAME_CASE)
#undef DLOCK_NAME_CASE
    default:
        return "";
    }
}

DLOCK_API const char *dlock_last_error(void)
{
    return last_error;
}

int dlock__verror(int status, const char *fmt, va_list ap)
{
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    return status;
}

int dlock__error(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dlock__verror(status, fmt, ap);
    va_end(ap);
    return status;
}

int dlock__busy(const char *name, int64_t wait_ms)
{
    if (wait_ms == 0)
        return dlock__error(DLOCK_EBUSY, "lock '%s' is held by someone else", name);
    return dlock__error(DLOCK_EBUSY, "lock '%s' is held by someone else (waited %ld ms)", name, (long)wait_ms);
}

int dlock__oom(void)
{
    return dlock__error(DLOCK_ENOMEM, "out of memory");
}

void dlock__prefix_error(const char *prefix)
{
    size_t plen = strlen(prefix), len = strlen(last_error);
    if (!len || (strncmp(last_error, prefix, plen) == 0 && strncmp(last_error + plen, ": ", 2) == 0))
        return;
    if (plen + 2 + len >= sizeof last_error)
        len = sizeof last_error - plen - 3;
    memmove(last_error + plen + 2, last_error, len);
    memcpy(last_error, prefix, plen);
    memcpy(last_error + plen, ": ", 2);
    last_error[plen + 2 + len] = '\0';
}

void dlock__clear_error(void)
{
    last_error[0] = '\0';
}
