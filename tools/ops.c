/*
 * dlock status, dlock list and dlock release --force: what an operator on
 * call asks of a lock store.  JSON and the table are documented in dlock(1);
 * scripts depend on the JSON field names.
 */
#include "config.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "cli.h"
#include "dlock.h"
#include "format.h"
#include "ops.h"

/* --- JSON ------------------------------------------------------------------------- */

static void json_time(const char *field, int64_t unix_ms)
{
    char when[64];
    printf(",\"%s\":", field);
    if (unix_ms < 0) {
        fputs("null", stdout);
        return;
    }
    fmt_rfc3339(when, sizeof when, unix_ms, 1);
    printf("\"%s\"", when);
}

/* The fields of entry i after "name" (no braces). */
static void json_fields(const dlock_list *list, size_t i)
{
    fputs(",\"key\":", stdout);
    fmt_json_string(stdout, dlock_list_key(list, i));
    fputs(",\"holder\":", stdout);
    fmt_json_string(stdout, dlock_list_holder(list, i));
    fputs(",\"host\":", stdout);
    if (*dlock_list_host(list, i))
        fmt_json_string(stdout, dlock_list_host(list, i));
    else
        fputs("null", stdout);
    int64_t pid = dlock_list_pid(list, i);
    printf(pid > 0 ? ",\"pid\":%lld" : ",\"pid\":null", (long long)pid);
    json_time("since", dlock_list_since(list, i));
    json_time("expires", dlock_list_expires(list, i));
    uint64_t fence = dlock_list_fence(list, i);
    printf(fence ? ",\"fence\":%llu" : ",\"fence\":null", (unsigned long long)fence);
}

static void json_name(const char *name)
{
    fputs("\"name\":", stdout);
    if (name)
        fmt_json_string(stdout, name);
    else
        fputs("null", stdout);
}

/* --- dlock status ------------------------------------------------------------------- */

/* The entry of a list that is `name` (or, for a store that keeps only
 * keys, the single entry whose key the store gave), or (size_t)-1. */
static size_t find_entry(const dlock_list *list, const char *name)
{
    for (size_t i = 0; i < dlock_list_count(list); i++) {
        const char *n = dlock_list_name(list, i);
        if (n && strcmp(n, name) == 0)
            return i;
    }
    return (size_t)-1;
}

int ops_status(const char *url, const char *name, int json)
{
    int status = 0;
    dlock_client *client = cli_open_store(url, &status);
    if (!client)
        return status;
    char who[512], shown[FMT_NAME_SHOWN_SIZE];
    fmt_shown_name(name, shown, sizeof shown);
    int rc = dlock_holder(client, name, who, sizeof who);
    if (rc < 0) {
        cli_say("cannot read lock '%s': %s", shown, dlock_last_error());
        dlock_close(client);
        return cli_exit_for(rc);
    }
    int held = rc == 1;
    if (!json) {
        if (held) {
            cli_make_printable(who);
            fmt_escaped(stdout, name); /* the output names it whole (<= 255 bytes) */
            printf(": held by %s\n", who);
        } else {
            fmt_escaped(stdout, name);
            fputs(": free\n", stdout);
        }
        dlock_close(client);
        return held ? 0 : STATUS_FREE;
    }
    /* The details come from a list of the name as prefix, where the store
     * offers one; otherwise only the holder text is known. */
    dlock_list *list = NULL;
    size_t i = (size_t)-1;
    if (held && dlock_list_locks(client, name, &list) == DLOCK_OK)
        i = find_entry(list, name);
    putchar('{');
    json_name(name);
    printf(",\"held\":%s", held ? "true" : "false");
    if (i != (size_t)-1) {
        json_fields(list, i);
    } else if (held) {
        fputs(",\"key\":", stdout);
        fmt_json_string(stdout, name);
        fputs(",\"holder\":", stdout);
        fmt_json_string(stdout, who);
        fputs(",\"host\":null,\"pid\":null,\"since\":null,\"expires\":null,\"fence\":null", stdout);
    }
    puts("}");
    dlock_list_free(list);
    dlock_close(client);
    return held ? 0 : STATUS_FREE;
}

/* --- dlock list ------------------------------------------------------------------------- */

static void print_json_list(const dlock_list *list)
{
    putchar('[');
    for (size_t i = 0; i < dlock_list_count(list); i++) {
        fputs(i ? ",\n{" : "\n{", stdout);
        json_name(dlock_list_name(list, i));
        json_fields(list, i);
        putchar('}');
    }
    puts(dlock_list_count(list) ? "\n]" : "]");
}

/* A cell of the table: text from the store, control characters shown as '?'. */
static char *cell(const char *text)
{
    char *copy = strdup(text);
    if (copy)
        cli_make_printable(copy);
    return copy;
}

/* The name cell: control characters escaped as in every message (a name is
 * at most 255 bytes, so it is shown whole). */
static char *name_cell(const char *name)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    fmt_escaped(f, name);
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* Display width of UTF-8 text (code points; good enough for names). */
static int width_of(const char *s)
{
    int w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xc0) != 0x80)
            w++;
    return w;
}

static void pad(const char *s, int width)
{
    fputs(s, stdout);
    for (int n = width_of(s); n < width; n++)
        putchar(' ');
}

enum { COL_NAME, COL_HOLDER, COL_PID, COL_SINCE, COL_EXPIRES, COL_FENCE, COLS };

static int print_table(const dlock_list *list)
{
    static const char *const heads[COLS] = {"NAME", "HOLDER", "PID", "SINCE", "EXPIRES", "FENCE"};
    size_t n = dlock_list_count(list);
    char **cells = calloc(n * COLS + 1, sizeof *cells);
    if (!cells)
        return -1;
    int width[COLS];
    for (int c = 0; c < COLS; c++)
        width[c] = width_of(heads[c]);
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        char buf[64];
        char **row = cells + i * COLS;
        const char *name = dlock_list_name(list, i);
        const char *host = dlock_list_host(list, i);
        row[COL_NAME] = name_cell(name ? name : dlock_list_key(list, i));
        row[COL_HOLDER] = cell(*host ? host : *dlock_list_holder(list, i) ? dlock_list_holder(list, i) : "-");
        int64_t pid = dlock_list_pid(list, i);
        snprintf(buf, sizeof buf, pid > 0 ? "%lld" : "-", (long long)pid);
        row[COL_PID] = cell(buf);
        fmt_rfc3339(buf, sizeof buf, dlock_list_since(list, i), 0);
        row[COL_SINCE] = cell(buf);
        fmt_rfc3339(buf, sizeof buf, dlock_list_expires(list, i), 0);
        row[COL_EXPIRES] = cell(buf);
        uint64_t fence = dlock_list_fence(list, i);
        snprintf(buf, sizeof buf, fence ? "%llu" : "-", (unsigned long long)fence);
        row[COL_FENCE] = cell(buf);
        for (int c = 0; c < COLS; c++) {
            if (!row[c])
                ok = 0;
            else if (width_of(row[c]) > width[c])
                width[c] = width_of(row[c]);
        }
    }
    if (ok) {
        for (int c = 0; c < COLS; c++) {
            pad(heads[c], c == COLS - 1 ? 0 : width[c] + 2);
        }
        putchar('\n');
        for (size_t i = 0; i < n; i++) {
            for (int c = 0; c < COLS; c++)
                pad(cells[i * COLS + c], c == COLS - 1 ? 0 : width[c] + 2);
            putchar('\n');
        }
    }
    for (size_t k = 0; k < n * COLS; k++)
        free(cells[k]);
    free(cells);
    return ok ? 0 : -1;
}

int ops_list(const char *url, const char *prefix, int json)
{
    int status = 0;
    dlock_client *client = cli_open_store(url, &status);
    if (!client)
        return status;
    dlock_list *list = NULL;
    int rc = dlock_list_locks(client, prefix, &list);
    if (rc != DLOCK_OK) {
        cli_say("cannot list the locks: %s", dlock_last_error());
        dlock_close(client);
        return cli_exit_for(rc);
    }
    if (json)
        print_json_list(list);
    else if (print_table(list) != 0) {
        cli_say("out of memory");
        status = EXIT_OSERR;
    }
    dlock_list_free(list);
    dlock_close(client);
    if (fflush(stdout) != 0 && !status)
        status = EXIT_OSERR;
    return status;
}

/* --- dlock release --force ---------------------------------------------------------------- */

/* Who is breaking the lock, for the log: "user alice (uid 1000) on host h pid 42". */
static void who_am_i(char *buf, size_t len)
{
    uid_t uid = getuid();
    struct passwd pwd, *pw = NULL;
    char pwbuf[4096];
    if (getpwuid_r(uid, &pwd, pwbuf, sizeof pwbuf, &pw) != 0)
        pw = NULL;
    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(buf, len, "user %s (uid %lu) on host %s pid %ld", pw ? pw->pw_name : "?", (unsigned long)uid, host,
             (long)getpid());
    cli_make_printable(buf);
}

int ops_break(const char *url, const char *name)
{
    int status = 0;
    dlock_client *client = cli_open_store(url, &status);
    if (!client)
        return status;
    char who[512] = "", me[400];
    if (dlock_holder(client, name, who, sizeof who) != 1)
        who[0] = '\0';
    cli_make_printable(who);
    who_am_i(me, sizeof me);
    char shown[FMT_NAME_SHOWN_SIZE];
    fmt_shown_name(name, shown, sizeof shown);
    const char *backend = dlock_backend(client);
    int rc = dlock_break(client, name);
    /* LOG_AUTH: breaking a lock overrides who may run a job; it belongs
     * with the other privilege decisions that auditors read (auth.log). */
    openlog("dlock", LOG_PID, LOG_AUTH);
    if (rc == 1) {
        syslog(LOG_NOTICE, "%s broke lock '%s' in the %s store (it was held by %s)", me, shown, backend,
               who[0] ? who : "an unknown holder");
        fmt_escaped(stdout, name);
        printf(": broken (it was held by %s); the holder gets 'lock lost' at its next extend\n",
               who[0] ? who : "an unknown holder");
        status = 0;
    } else if (rc == 0) {
        syslog(LOG_NOTICE, "%s tried to break lock '%s' in the %s store: it was free", me, shown, backend);
        fmt_escaped(stdout, name);
        fputs(": free, nothing to break\n", stdout);
        status = STATUS_FREE;
    } else {
        char why[512];
        snprintf(why, sizeof why, "%s", dlock_last_error());
        cli_make_printable(why);
        syslog(LOG_NOTICE, "%s failed to break lock '%s' in the %s store: %s", me, shown, backend, why);
        cli_say("cannot break lock '%s': %s", shown, why);
        status = cli_exit_for(rc);
    }
    closelog();
    dlock_close(client);
    return status;
}
