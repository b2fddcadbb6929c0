/* Durations on the dlock command line. */
#include "duration.h"

#include <ctype.h>
#include <string.h>

int dlock_parse_duration(const char *text, int64_t max_ms, int forever_ok, int64_t *out_ms)
{
    if (!text || !*text)
        return -1;
    if (strcmp(text, "forever") == 0) {
        if (!forever_ok)
            return -1;
        *out_ms = -1;
        return 0;
    }
    /* Whole number, optionally with a fraction, then an optional unit. */
    const char *p = text;
    int64_t whole = 0, frac = 0, frac_scale = 1;
    if (!isdigit((unsigned char)*p))
        return -1;
    while (isdigit((unsigned char)*p)) {
        whole = whole * 10 + (*p - '0');
        if (whole > (int64_t)1e12)
            return -1;
        p++;
    }
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p)) {
            if (frac_scale < 1000000) {
                frac = frac * 10 + (*p - '0');
                frac_scale *= 10;
            }
            p++;
        }
    }
    int64_t unit_ms;
    if (*p == '\0' || strcmp(p, "s") == 0)
        unit_ms = 1000;
    else if (strcmp(p, "ms") == 0)
        unit_ms = 1;
    else if (strcmp(p, "m") == 0)
        unit_ms = 60 * 1000;
    else if (strcmp(p, "h") == 0)
        unit_ms = 3600 * 1000;
    else
        return -1;
    int64_t ms = whole * unit_ms + frac * unit_ms / frac_scale;
    if (ms > max_ms)
        return -1;
    *out_ms = ms;
    return 0;
}
