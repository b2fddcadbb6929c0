/* Status codes, their text, and the thread-local error detail. */
#include "config.h"

#include <stdio.h>

#include "internal.h"

/* One list feeds dlock_strerror(); append only. */
#define DLOCK_STATUS_MAP(X)                                                    \
    X(DLOCK_OK, "success")                                                     \
    X(DLOCK_EBUSY, "lock is held by someone else")                             \
    X(DLOCK_ELOST, "lock is no longer held")                                   \
    X(DLOCK_EINVAL, "invalid argument")                                        \
    X(DLOCK_ECONN, "lock store unreachable or connection broken")              \
    X(DLOCK_EBACKEND, "lock store reported an error")                          \
    X(DLOCK_ENOMEM, "out of memory")                                           \
    X(DLOCK_ENOTSUP, "not supported")                                          \
    X(DLOCK_ECANCELED, "wait canceled")

#define DLOCK_ERRBUF_SIZE 512

static _Thread_local char last_error[DLOCK_ERRBUF_SIZE];

DLOCK_API const char *dlock_strerror(int status)
{
    switch (status) {
#define DLOCK_STRERROR_CASE(code, text) \
    case code:                          \
        return text;
        DLOCK_STATUS_MAP(DLOCK_STRERROR_CASE)
#undef DLOCK_STRERROR_CASE
    default:
        return "unknown status code";
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

void dlock__clear_error(void)
{
    last_error[0] = '\0';
}
