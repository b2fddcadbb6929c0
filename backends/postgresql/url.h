/*
 * PostgreSQL URLs and messages, without libpq (backends/postgresql/url.c): used by
 * the backend, and fuzzed by tests/fuzz/fuzz_url.c.  Internal; not installed.
 */
#ifndef DLOCK_PG_URL_H
#define DLOCK_PG_URL_H

#include <stddef.h>

/* The longest libpq text a message quotes. */
#define PG_ERRTEXT_MAX 400

/* The URL as libpq must see it: a new malloc'ed copy, its scheme in lower
 * case (libpq matches it case-sensitively; the core does not) and every
 * '@' before the last one of the authority encoded as %40 (an unencoded
 * '@' in the password).  DLOCK_EINVAL with text when it is not
 * "scheme://..." (libpq would read it as a key=value string, whose errors
 * we could not scrub with certainty); DLOCK_ENOMEM. */
int dlock__pg_url_prepare(const char *url, char **out);
/* The port list of a URL ("5432", "5432,5433", "" for the default): 1 when
 * every entry is empty or 1..65535. */
int dlock__pg_valid_ports(const char *ports);
/* What a libpq option whose value libpq checks only when it connects
 * takes ("one of disable, allow, ...", "a whole number"), when `value` is
 * not that; NULL when it is (or the option is not one of those, or the
 * value is empty: libpq's default).  So that a typo is a usage error, not
 * a store that cannot be reached. */
const char *dlock__pg_option_expects(const char *keyword, const char *value);
/* libpq text made fit for dlock_last_error(): one line, each of libpq's
 * lines a sentence of it, `secret` and PGPASSWORD replaced by "***". */
void dlock__pg_clean_text(char *dst, size_t dstlen, const char *src, const char *secret);
/* A malformed-URL message from libpq about `url`, with every quoted piece
 * that could be (part of) a password in the URL replaced by "...". */
void dlock__pg_scrub_parse_error(char *dst, size_t dstlen, const char *src, const char *url);
/* Zero and free a string that may hold a password (NULL: nothing). */
void dlock__pg_secret_free(char *s);

#endif
