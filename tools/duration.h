/* Durations on the dlock command line: 250ms, 30s, 5m, 2h, or bare seconds. */
#ifndef DLOCK_DURATION_H
#define DLOCK_DURATION_H

#include <stdint.h>

/* Parse `text` into milliseconds.  Returns 0 on success, -1 when it is not a
 * duration or exceeds max_ms.  "forever" is accepted only when forever_ok is
 * set, and gives -1 in *out_ms. */
int dlock_parse_duration(const char *text, int64_t max_ms, int forever_ok, int64_t *out_ms);

#endif
