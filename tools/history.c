/*
 * dlock history and dlock check: what ran, and whether a store is fit for
 * use from this host.  JSON and the text are documented in dlock(1);
 * scripts depend on the JSON field names.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dlock.h"
#include "format.h"
#include "ops.h"

/* --- dlock history ------------------------------------------------------------------ */

static void history_json(const char *name, const dlock_history *h)
{
    fputs("{\"name\":", stdout);
    fmt_json_string(stdout, name);
    fputs(",\"runs\":[", stdout);
    for (size_t i = 0; i < dlock_history_count(h); i++) {
        char start[64], end[64];
        fmt_rfc3339(start, sizeof start, dlock_history_start(h, i), 1);
        fmt_rfc3339(end, sizeof end, dlock_history_end(h, i), 1);
        printf("%s{\"start\":\"%s\",\"end\":\"%s\",\"duration_ms\":%lld,\"host\":", i ? "," : "", start, end,
               (long long)(dlock_history_end(h, i) - dlock_history_start(h, i)));
        fmt_json_string(stdout, dlock_history_host(h, i));
        int64_t pid = dlock_history_pid(h, i);
        printf(pid > 0 ? ",\"pid\":%lld" : ",\"pid\":null", (long long)pid);
        fputs(",\"outcome\":", stdout);
        fmt_json_string(stdout, dlock_history_outcome(h, i));
        int status = dlock_history_exit_status(h, i);
        printf(status >= 0 ? ",\"exit_status\":%d" : ",\"exit_status\":null", status);
        uint64_t fence = dlock_history_fence(h, i);
        printf(fence ? ",\"fence\":%llu}" : ",\"fence\":null}", (unsigned long long)fence);
    }
    fputs("]}\n", stdout);
}

static void history_text(const dlock_history *h)
{
    printf("%-24s  %11s  %-8s  %4s  %-24s  %8s  %s\n", "START (UTC)", "DURATION", "OUTCOME", "EXIT", "HOST", "PID",
           "FENCE");
    for (size_t i = 0; i < dlock_history_count(h); i++) {
        char start[64], host[FMT_NAME_SHOWN_SIZE], exit_text[16] = "-", fence_text[24] = "-";
        fmt_rfc3339(start, sizeof start, dlock_history_start(h, i), 1);
        int status = dlock_history_exit_status(h, i);
        if (status >= 0)
            snprintf(exit_text, sizeof exit_text, "%d", status);
        if (dlock_history_fence(h, i))
            snprintf(fence_text, sizeof fence_text, "%llu", (unsigned long long)dlock_history_fence(h, i));
        int64_t ms = dlock_history_end(h, i) - dlock_history_start(h, i);
        printf("%-24s  %8lld.%01llds  %-8s  %4s  %-24s  %8lld  %s\n", start, (long long)(ms / 1000),
               (long long)(ms % 1000 / 100), dlock_history_outcome(h, i), exit_text,
               fmt_shown_name(dlock_history_host(h, i), host, sizeof host), (long long)dlock_history_pid(h, i),
               fence_text);
    }
}

int ops_history(const char *url, const char *name, size_t count, int json)
{
    int status = 0;
    dlock_client *client = cli_open_store(url, &status);
    if (!client)
        return status;
    dlock_history *h = NULL;
    int rc = dlock_history_read(client, name, count, &h);
    if (rc != DLOCK_OK) {
        char shown[FMT_NAME_SHOWN_SIZE];
        cli_say("cannot read the run history of '%s': %s", fmt_shown_name(name, shown, sizeof shown),
                dlock_last_error());
        dlock_close(client);
        return cli_exit_for(rc);
    }
    if (json)
        history_json(name, h);
    else if (dlock_history_count(h) == 0) {
        char shown[FMT_NAME_SHOWN_SIZE];
        printf("no run of '%s' recorded in this store\n", fmt_shown_name(name, shown, sizeof shown));
    } else
        history_text(h);
    dlock_history_free(h);
    dlock_close(client);
    return 0;
}

/* --- dlock check -------------------------------------------------------------------- */

static const char *verdict_word(int verdict)
{
    switch (verdict) {
    case DLOCK_CHECK_OK:
        return "ok";
    case DLOCK_CHECK_WARN:
        return "warn";
    case DLOCK_CHECK_FAIL:
        return "fail";
    default:
        return "info";
    }
}

static void check_json(const dlock_check_list *list, int status)
{
    printf("{\"status\":\"%s\",\"items\":[",
           status == 0 ? "ok" : status == CHECK_WARNINGS ? "warnings" : "unusable");
    for (size_t i = 0; i < dlock_check_count(list); i++) {
        fputs(i ? ",{\"key\":" : "{\"key\":", stdout);
        fmt_json_string(stdout, dlock_check_key(list, i));
        fputs(",\"value\":", stdout);
        fmt_json_string(stdout, dlock_check_value(list, i));
        printf(",\"verdict\":\"%s\"}", verdict_word(dlock_check_verdict(list, i)));
    }
    fputs("]}\n", stdout);
}

static void check_text(const dlock_check_list *list, int status)
{
    for (size_t i = 0; i < dlock_check_count(list); i++) {
        printf("%-4s  %-30s  ", verdict_word(dlock_check_verdict(list, i)), dlock_check_key(list, i));
        fmt_escaped(stdout, dlock_check_value(list, i));
        fputc('\n', stdout);
    }
    printf("%s\n", status == 0                ? "all good"
                   : status == CHECK_WARNINGS ? "usable, with warnings (above)"
                                              : "not usable from here (above)");
}

int ops_check(const char *url, const char *name, int json)
{
    dlock_client *client = NULL;
    int rc = dlock_open(url, &client);
    dlock_check_list *list = NULL;
    if (rc == DLOCK_OK)
        rc = dlock_check(client, name, &list);
    if (rc != DLOCK_OK) {
        /* Unusable: still one screen that says so, in the same shape. */
        if (json) {
            fputs("{\"status\":\"unusable\",\"items\":[{\"key\":\"store\",\"value\":", stdout);
            fmt_json_string(stdout, dlock_last_error());
            fputs(",\"verdict\":\"fail\"}]}\n", stdout);
        } else {
            printf("fail  %-30s  ", "store");
            fmt_escaped(stdout, dlock_last_error());
            fputs("\nnot usable from here (above)\n", stdout);
        }
        dlock_close(client);
        return rc == DLOCK_EINVAL ? EXIT_USAGE : EXIT_UNAVAILABLE;
    }
    int status = 0;
    for (size_t i = 0; i < dlock_check_count(list); i++) {
        int verdict = dlock_check_verdict(list, i);
        if (verdict == DLOCK_CHECK_FAIL)
            status = EXIT_UNAVAILABLE;
        else if (verdict == DLOCK_CHECK_WARN && status == 0)
            status = CHECK_WARNINGS;
    }
    if (json)
        check_json(list, status);
    else
        check_text(list, status);
    dlock_check_free(list);
    dlock_close(client);
    return status;
}
