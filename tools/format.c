/* Output formats of dlock(1) (see format.h). */
#include "config.h"

#include <string.h>
#include <time.h>

#include "format.h"

/* The length of the valid UTF-8 sequence at p (RFC 3629), 0 when invalid. */
static size_t utf8_length(const unsigned char *p)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void fmt_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (*p == '"' || *p == '\\') {
            fputc('\\', out);
            fputc(*p++, out);
        } else if (*p == '\n') {
            fputs("\\n", out), p++;
        } else if (*p == '\t') {
            fputs("\\t", out), p++;
        } else if (*p < 0x20 || *p == 0x7f) {
            fprintf(out, "\\u%04x", *p++);
        } else {
            size_t n = utf8_length(p);
            if (n == 0) {
                fputs("\\ufffd", out);
                p++;
            } else {
                fwrite(p, 1, n, out);
                p += n;
            }
        }
    }
    fputc('"', out);
}

void fmt_rfc3339(char *buf, size_t len, int64_t unix_ms, int with_ms)
{
    struct tm tm;
    time_t secs = (time_t)(unix_ms / 1000);
    if (unix_ms < 0 || !gmtime_r(&secs, &tm)) {
        snprintf(buf, len, "-");
        return;
    }
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    if (with_ms)
        snprintf(buf, len, "%s.%03dZ", date, (int)(unix_ms % 1000));
    else
        snprintf(buf, len, "%sZ", date);
}

void fmt_prom_label(FILE *out, const char *s)
{
    fputc('"', out);
    for (const char *p = s; *p; p++) {
        if (*p == '\\' || *p == '"')
            fputc('\\', out), fputc(*p, out);
        else if (*p == '\n')
            fputs("\\n", out);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

/* The escape of control character c ("\\n", "\\x1b"), or NULL for any other byte. */
static const char *control_escape(unsigned char c, char esc[5])
{
    if (c == '\n')
        return "\\n";
    if (c == '\t')
        return "\\t";
    if (c == '\r')
        return "\\r";
    if (c < 0x20 || c == 0x7f) {
        snprintf(esc, 5, "\\x%02x", c);
        return esc;
    }
    return NULL;
}

void fmt_escaped(FILE *out, const char *s)
{
    char esc[5];
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *e = control_escape(*p, esc);
        if (e)
            fputs(e, out);
        else
            fputc(*p, out);
    }
}

const char *fmt_shown_name(const char *name, char *buf, size_t len)
{
    size_t total = strlen(name), o = 0, i = 0;
    char esc[5];
    if (len < FMT_NAME_SHOWN_SIZE) {
        snprintf(buf, len, "?");
        return buf;
    }
    while (i < total) {
        const unsigned char *p = (const unsigned char *)name + i;
        size_t n = utf8_length(p);
        if (n == 0)
            n = 1; /* an invalid byte: shown as it is, one at a time */
        if (i + n > FMT_NAME_SHOWN_BYTES && total > FMT_NAME_SHOWN_BYTES)
            break;
        const char *e = control_escape(*p, esc);
        if (e) {
            memcpy(buf + o, e, strlen(e));
            o += strlen(e);
        } else {
            memcpy(buf + o, p, n);
            o += n;
        }
        i += n;
    }
    if (i < total)
        snprintf(buf + o, len - o, "...(%zu bytes)", total);
    else
        buf[o] = '\0';
    return buf;
}
