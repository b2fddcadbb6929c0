/* Durations on the dlock command line: 250ms, 30s, 5m, 2h, 7d, or bare seconds. */
#ifndef DLOCK_DURATION_H
#define DLOCK_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* Parse `text` into milliseconds.  Returns 0 on success, -1 when it is not a
 * duration or exceeds max_ms.  "forever" is accepted only when forever_ok is
 * set, and gives -1 in *out_ms. */
int dlock_parse_duration(const char *text, int64_t max_ms, int forever_ok, int64_t *out_ms);

/* `ms` (>= 0) in the largest unit it reaches (ms, s, m, h, d), cut -- not
 * rounded -- to three decimals: "100ms", "1.5s", "24.855d".  What it
 * writes parses back to at most `ms`, so a maximum it shows is accepted. */
void dlock_format_duration(int64_t ms, char *buf, size_t len);

#endif
