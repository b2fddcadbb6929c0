/* Output formats of dlock(1): JSON strings, RFC 3339 times, Prometheus labels. */
#ifndef DLOCK_TOOLS_FORMAT_H
#define DLOCK_TOOLS_FORMAT_H

#include <stdint.h>
#include <stdio.h>

/* `s` as a JSON string, quotes included: ", \ and control characters
 * escaped, valid UTF-8 passed through, an invalid byte as U+FFFD. */
void fmt_json_string(FILE *out, const char *s);

/* Unix ms as RFC 3339 UTC with milliseconds ("2026-11-29T20:45:01.123Z"),
 * or seconds only when `with_ms` is 0; "-" when unix_ms < 0. */
void fmt_rfc3339(char *buf, size_t len, int64_t unix_ms, int with_ms);

/* `s` as a Prometheus label value, quotes included: \, " and newline
 * escaped as the text exposition format says. */
void fmt_prom_label(FILE *out, const char *s);

#endif
