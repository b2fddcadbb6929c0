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

/* Names in messages: at most FMT_NAME_SHOWN_BYTES bytes of the name are
 * shown, then "...(N bytes)"; a buffer of FMT_NAME_SHOWN_SIZE always holds
 * the result. */
#define FMT_NAME_SHOWN_BYTES 64
#define FMT_NAME_SHOWN_SIZE (FMT_NAME_SHOWN_BYTES * 4 + 32)

/* `name` as text output shows it: control characters escaped (\n, \t,
 * \xNN) so that a name can never start a line of its own, and a long name
 * cut at a character boundary with its length.  Returns buf. */
const char *fmt_shown_name(const char *name, char *buf, size_t len);

/* `s` on `out` with control characters escaped as fmt_shown_name does,
 * nothing cut. */
void fmt_escaped(FILE *out, const char *s);

#endif
