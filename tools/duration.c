/* Durations on the dlock command line. */
#include "duration.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int64_t ms;
} units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};

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
    int64_t unit_ms = *p == '\0' ? 1000 : 0;
    for (size_t i = 0; i < sizeof units / sizeof units[0] && !unit_ms; i++)
        if (strcmp(p, units[i].name) == 0)
            unit_ms = units[i].ms;
    if (!unit_ms)
        return -1;
    /* whole <= 1e12 and unit_ms <= 8.64e7: the product could pass int64. */
    if (whole > max_ms / unit_ms)
        return -1;
    int64_t ms = whole * unit_ms + frac * unit_ms / frac_scale;
    if (ms > max_ms)
        return -1;
    *out_ms = ms;
    return 0;
}

void dlock_format_duration(int64_t ms, char *buf, size_t len)
{
    size_t u = 0;
    while (u + 1 < sizeof units / sizeof units[0] && ms < units[u].ms)
        u++;
    int64_t unit = units[u].ms;
    int64_t whole = ms / unit;
    int64_t thousandths = (ms % unit) * 1000 / unit; /* cut, never rounded up */
    if (thousandths == 0) {
        snprintf(buf, len, "%lld%s", (long long)whole, units[u].name);
        return;
    }
    char frac[8];
    snprintf(frac, sizeof frac, "%03lld", (long long)thousandths);
    for (size_t n = strlen(frac); n > 0 && frac[n - 1] == '0'; n--)
        frac[n - 1] = '\0';
    snprintf(buf, len, "%lld.%s%s", (long long)whole, frac, units[u].name);
}
