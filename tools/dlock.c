/*
 * dlock(1): run a command only while holding a named lock.
 *
 *   dlock run [-u URL] [-t TTL] [-w WAIT] [-m MIN_HOLD] [-E CODE] [-k GRACE] [-q] NAME -- COMMAND [ARG...]
 *   dlock status [-u URL] [--json] NAME
 *   dlock list [-u URL] [--json] [PREFIX]
 *   dlock release --force [-u URL] NAME
 *
 * A client of the public API only.  This file reads the command line;
 * run.c is the run loop, heartbeat.c the thread that talks to the store,
 * job.c the job's process, run_policy.c the timing decisions.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dlock.h"
#include "duration.h"
#include "format.h"
#include "ops.h"
#include "run.h"

#define DEFAULT_TTL_MS 60000
/*
 * The shortest TTL that can be renewed.  The lease clock starts when the
 * acquire is sent; the heartbeat (heartbeat.c) sends the first renewal
 * TTL/3 after the grant and retries a failed one every TTL/9, each a round
 * trip that must be answered before the lease ends.  Surviving one failed
 * renewal: the acquire, the failed renewal and the retry (3 RTT) plus
 * TTL/3 + TTL/9 must fit in the TTL, 3 RTT < 5/9 TTL, a TTL of at least
 * 5.4 round trips; 100 ms allows round trips of up to about 18 ms.
 * Measured: -t 5ms ends every run in 79 even on a local SQLite file.
 */
#define MIN_TTL_MS 100
#define MAX_NAME_BYTES 255
#define DEFAULT_GRACE_MS 10000

static const char usage_text[] =
    "Usage: dlock run [OPTIONS] NAME -- COMMAND [ARG...]\n"
    "       dlock status [-u URL] [--json] NAME\n"
    "       dlock list [-u URL] [--json] [PREFIX]\n"
    "       dlock release --force [-u URL] NAME\n"
    "       dlock history [-u URL] [--json] [-n N] NAME\n"
    "       dlock check [-u URL] [--json] [NAME]\n"
    "       dlock --version | --help\n"
    "\n"
    "Run COMMAND only while holding the lock NAME, so that a job scheduled on\n"
    "several servers runs on one of them at a time.\n"
    "\n"
    "Options:\n"
    "  -u, --url URL          lock store (default: $DLOCK_URL, else an SQLite file under\n"
    "                         /var/lib/dlock/ for root, ~/.local/state/dlock/ for others)\n"
    "  -t, --ttl TTL          lease of the lock, renewed every TTL/3 (default 60s, at least 100ms)\n"
    "  -w, --wait WAIT        how long to wait for a busy lock; 0 skips, 'forever' (default 0)\n"
    "  -m, --min-hold TIME    hold the lock at least this long after taking it (default 0)\n"
    "  -E, --conflict-exit-code CODE  exit status when the lock is busy (default 75)\n"
    "  -k, --kill-after GRACE SIGKILL the job this long after SIGTERM when the lock\n"
    "                         is lost (default 10s)\n"
    "  -q, --quiet            no message when the lock is busy, no warnings\n"
    "      --once-per PERIOD  skip the run (exit 75, or -E) when the last successful run\n"
    "                         started less than PERIOD/2 ago on the store's clock\n"
    "      --metrics-file PATH  after the run, replace PATH with Prometheus metrics\n"
    "      --no-history       do not record this run in the store's run history\n"
    "      --json             status, list, history, check: JSON output (see dlock(1))\n"
    "  -n N                   history: the last N runs (default and most: 50)\n"
    "      --force            release: break a lock held by someone else (logged to syslog)\n"
    "  -h, --help             show this help\n"
    "  -V, --version          show the version\n"
    "\n"
    "Durations: 250ms, 30s, 5m, 2h, 7d, or a bare number of seconds.\n"
    "URLs: sqlite:///path/file.db, postgresql://user@host/db, mysql://user:pass@host/db,\n"
    "      redis://:pass@host:6379/0, zookeeper://zk1:2181,zk2:2181,zk3:2181,\n"
    "      etcd://host1:2379,host2:2379,host3:2379\n"
    "\n"
    "Exit status: COMMAND's status (128+N if signal N ended it); 75 busy; 79 lock lost\n"
    "while COMMAND ran; 64 usage; 69 store unusable (unreachable, login refused, client\n"
    "library missing); 70 store error; 71 system error;\n"
    "126 COMMAND not executable; 127 COMMAND not found.  dlock status: 0 held, 1 free.\n"
    "dlock release --force: 0 broken, 1 it was free.  dlock list, history: 0.\n"
    "dlock check: 0 all good, 1 warnings, 69 the store is unusable from here.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = NULL;
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    cli_say("%s", n >= 0 ? text : "bad command line");
    if (n >= 0)
        free(text);
    fputs("Try 'dlock --help' for more information.\n", stderr);
    return EXIT_USAGE;
}

/* What every command does with an option getopt_long() returned that it
 * does not take itself: --help prints the usage (-1: done, exit 0); a
 * missing value or an unknown option is a usage error. */
static int other_option(int c, char **argv)
{
    if (c == 'h') {
        fputs(usage_text, stdout);
        return -1;
    }
    if (c == ':')
        return usage_error("option '%s' needs a value", argv[optind - 1]);
    return usage_error("unknown option '%s'", argv[optind - 1]);
}

/* --- default URL --------------------------------------------------------- */

/* Append path percent-encoding %, ? and #; -1 when it does not fit. */
static int append_encoded_path(char *out, size_t outlen, const char *path)
{
    size_t o = strlen(out);
    for (const char *p = path; *p; p++) {
        if (o + 4 >= outlen)
            return -1;
        if (*p == '%' || *p == '?' || *p == '#')
            o += (size_t)snprintf(out + o, outlen - o, "%%%02X", (unsigned char)*p);
        else
            out[o++] = *p;
    }
    out[o] = '\0';
    return 0;
}

/*
 * The URL to use: -u, else $DLOCK_URL, else the embedded SQLite default,
 * built in buf.  URLs are used as given, never copied into a fixed buffer:
 * a cut URL could silently lose a trailing sslmode=require.  NULL with a
 * message when there is none.
 */
static const char *resolve_url(const char *given, char *buf, size_t buflen)
{
    if (given)
        return given;
    const char *env = getenv("DLOCK_URL");
    if (env && *env)
        return env;
    char dir[4096];
    int n;
    if (geteuid() == 0) {
        n = snprintf(dir, sizeof dir, "/var/lib/dlock");
    } else {
        const char *state = getenv("XDG_STATE_HOME");
        const char *home = getenv("HOME");
        if (state && state[0] == '/')
            n = snprintf(dir, sizeof dir, "%s/dlock", state);
        else if (home && home[0] == '/')
            n = snprintf(dir, sizeof dir, "%s/.local/state/dlock", home);
        else {
            usage_error("%s", "no URL: set DLOCK_URL, pass -u, or set HOME");
            return NULL;
        }
    }
    snprintf(buf, buflen, "sqlite://");
    if (n < 0 || (size_t)n >= sizeof dir || append_encoded_path(buf, buflen, dir) != 0 ||
        append_encoded_path(buf, buflen, "/dlock.db") != 0) {
        usage_error("%s", "the default database path is too long: set DLOCK_URL or pass -u");
        return NULL;
    }
    return buf;
}

/* --- dlock run ------------------------------------------------------------------ */

static int parse_int_exit(const char *text, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < 0 || v > 255)
        return -1;
    *out = (int)v;
    return 0;
}

/* -t: from MIN_TTL_MS to INT32_MAX ms, the limits said in the units a
 * user writes. */
static int parse_ttl(const char *text, int64_t *ttl_ms)
{
    char min[32], max[32];
    dlock_format_duration(MIN_TTL_MS, min, sizeof min);
    dlock_format_duration(INT32_MAX, max, sizeof max);
    if (dlock_parse_duration(text, INT32_MAX, 0, ttl_ms) != 0)
        return usage_error("bad TTL '%s' (use e.g. 30s, 5m, 1d; from %s to %s)", text, min, max);
    if (*ttl_ms < MIN_TTL_MS)
        return usage_error("TTL '%s' is too short to be renewed: at least %s (dlock renews the lease every TTL/3 "
                           "and retries every TTL/9, each a round trip to the store within the lease)",
                           text, min);
    return 0;
}

/* A name the library would refuse for its length, refused here so that the
 * message shows it short (it is otherwise repeated whole in every message). */
static int check_name_length(const char *name)
{
    size_t len = strlen(name);
    if (len <= MAX_NAME_BYTES)
        return 0;
    char shown[FMT_NAME_SHOWN_SIZE];
    return usage_error("lock name '%s' is too long: names are 1 to %d bytes", fmt_shown_name(name, shown, sizeof shown),
                       MAX_NAME_BYTES);
}

enum { OPT_ONCE_PER = 900, OPT_METRICS_FILE, OPT_NO_HISTORY };

/* One option of `dlock run`: 0, -1 for --help, or an exit status. */
static int run_option(int c, char **argv, struct run_options *o)
{
    switch (c) {
    case 'u':
        o->url = optarg;
        return 0;
    case 't':
        return parse_ttl(optarg, &o->ttl_ms);
    case 'w':
        if (dlock_parse_duration(optarg, INT32_MAX, 1, &o->wait_ms)) {
            char max[32];
            dlock_format_duration(INT32_MAX, max, sizeof max);
            return usage_error("bad WAIT '%s' (use e.g. 0, 30s, 5m or forever; at most %s)", optarg, max);
        }
        return 0;
    case 'm':
        if (dlock_parse_duration(optarg, INT64_MAX / 4, 0, &o->min_hold_ms))
            return usage_error("bad MIN_HOLD '%s' (use e.g. 30s, 5m)", optarg);
        return 0;
    case 'k':
        if (dlock_parse_duration(optarg, INT64_MAX / 4, 0, &o->grace_ms))
            return usage_error("bad GRACE '%s' (use e.g. 10s)", optarg);
        return 0;
    case 'E':
        if (parse_int_exit(optarg, &o->conflict_exit))
            return usage_error("bad exit code '%s' (0 to 255)", optarg);
        return 0;
    case 'q':
        cli_quiet = 1;
        return 0;
    case OPT_ONCE_PER:
        if (dlock_parse_duration(optarg, INT64_MAX / 4, 0, &o->once_per_ms) || o->once_per_ms < 1000)
            return usage_error("bad PERIOD '%s' (use e.g. 1h, 24h; at least 1s)", optarg);
        return 0;
    case OPT_NO_HISTORY:
        o->no_history = 1;
        return 0;
    case OPT_METRICS_FILE:
        if (!*optarg)
            return usage_error("%s", "--metrics-file needs a path");
        o->metrics_file = optarg;
        return 0;
    default:
        return other_option(c, argv);
    }
}

/* NAME and COMMAND, after the options (dashdash: the index of "--", or -1). */
static int run_operands(int argc, char **argv, int dashdash, struct run_options *o)
{
    if (dashdash >= 0) {
        if (optind != dashdash - 1)
            return usage_error("%s", optind >= dashdash ? "NAME is missing" : "exactly one NAME goes before '--'");
        o->name = argv[optind];
        o->command = argv + dashdash + 1;
    } else {
        if (optind >= argc)
            return usage_error("%s", "NAME is missing");
        o->name = argv[optind];
        o->command = argv + optind + 1;
    }
    if (!o->command[0])
        return usage_error("%s", "COMMAND is missing (dlock run NAME -- COMMAND [ARG...])");
    return check_name_length(o->name);
}

static int parse_run(int argc, char **argv, struct run_options *o)
{
    static const struct option longopts[] = {{"url", required_argument, NULL, 'u'},
                                             {"ttl", required_argument, NULL, 't'},
                                             {"wait", required_argument, NULL, 'w'},
                                             {"min-hold", required_argument, NULL, 'm'},
                                             {"conflict-exit-code", required_argument, NULL, 'E'},
                                             {"kill-after", required_argument, NULL, 'k'},
                                             {"quiet", no_argument, NULL, 'q'},
                                             {"once-per", required_argument, NULL, OPT_ONCE_PER},
                                             {"metrics-file", required_argument, NULL, OPT_METRICS_FILE},
                                             {"no-history", no_argument, NULL, OPT_NO_HISTORY},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    *o = (struct run_options){.ttl_ms = DEFAULT_TTL_MS, .grace_ms = DEFAULT_GRACE_MS, .conflict_exit = EXIT_BUSY};
    /* Options end at "--"; with no "--", at NAME. */
    int dashdash = -1;
    for (int i = 1; i < argc && dashdash < 0; i++)
        if (strcmp(argv[i], "--") == 0)
            dashdash = i;
    int optc = dashdash >= 0 ? dashdash : argc;
    const char *optstring = dashdash >= 0 ? ":u:t:w:m:E:k:qh" : "+:u:t:w:m:E:k:qh";
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(optc, argv, optstring, longopts, NULL)) != -1) {
        int rc = run_option(c, argv, o);
        if (rc)
            return rc;
    }
    int rc = run_operands(argc, argv, dashdash, o);
    if (rc)
        return rc;
    o->url = resolve_url(o->url, o->default_url, sizeof o->default_url);
    return o->url ? 0 : EXIT_USAGE;
}

static int cmd_run(int argc, char **argv)
{
    struct run_options o;
    int rc = parse_run(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    return run_command(&o);
}

/* --- dlock status, list, release --force ------------------------------------------ */

enum { OPT_JSON = 1000, OPT_FORCE };

/* The options of status, list and release: -u, --json (status, list),
 * --force (release); operands in *first.  0, -1 for --help, or a status. */
static int parse_ops_n(int argc, char **argv, int allow_json, int allow_force, const char **url, int *json, int *force,
                       int *first, long *count)
{
    static const struct option longopts[] = {{"url", required_argument, NULL, 'u'},
                                             {"json", no_argument, NULL, OPT_JSON},
                                             {"force", no_argument, NULL, OPT_FORCE},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":u:fhn:", longopts, NULL)) != -1) {
        switch (c) {
        case 'n': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (!count)
                return usage_error("%s", "-n goes with history");
            if (end == optarg || *end || n < 1 || n > DLOCK_HISTORY_KEEP)
                return usage_error("bad N '%s' (1 to %d: the store keeps the last %d runs of a name)", optarg,
                                   DLOCK_HISTORY_KEEP, DLOCK_HISTORY_KEEP);
            *count = n;
            break;
        }
        case 'u':
            *url = optarg;
            break;
        case OPT_JSON:
            if (!allow_json)
                return usage_error("%s", "--json goes with status, list, history and check");
            *json = 1;
            break;
        case 'f':
        case OPT_FORCE:
            if (!allow_force)
                return usage_error("%s", "--force goes with release");
            *force = 1;
            break;
        default:
            return other_option(c, argv);
        }
    }
    *first = optind;
    return 0;
}

/* What an ops command takes besides -u. */
enum { OPS_JSON = 1, OPS_FORCE = 2, OPS_COUNT = 4 };

/* The parsed command line of an ops command: its resolved URL and its one
 * argument (a NAME, or a PREFIX when `what` says so). */
struct ops_args {
    const char *url;
    const char *arg; /* NULL: none given (optional) */
    int json, force;
    long count;
    char default_url[4200];
};

/* Parse an ops command's options and its argument: `what` is "NAME" or
 * "PREFIX", `required` whether it must be there.  0: go on; else the exit
 * status, -1 after --help. */
static int ops_args(int argc, char **argv, const char *cmd, unsigned takes, const char *what, int required,
                    struct ops_args *a)
{
    const char *url = NULL;
    int first = 0;
    a->url = NULL;
    a->json = a->force = 0;
    a->count = DLOCK_HISTORY_KEEP;
    a->arg = NULL;
    int rc = parse_ops_n(argc, argv, (takes & OPS_JSON) != 0, (takes & OPS_FORCE) != 0, &url, &a->json, &a->force,
                         &first, (takes & OPS_COUNT) ? &a->count : NULL);
    if (rc)
        return rc;
    if ((takes & OPS_FORCE) && !a->force)
        return usage_error("%s", "dlock release breaks a lock held by someone else: say --force (a lock is "
                                 "released by the dlock run that holds it)");
    if (required && first >= argc)
        return usage_error("%s is missing", what);
    if (first < argc - 1)
        return usage_error("dlock %s takes %s %s", cmd, required ? "one" : "at most one", what);
    if (first < argc) {
        a->arg = argv[first];
        if (strcmp(what, "NAME") == 0 && check_name_length(a->arg))
            return EXIT_USAGE;
    }
    a->url = resolve_url(url, a->default_url, sizeof a->default_url);
    return a->url ? 0 : EXIT_USAGE;
}

/* An ops command's exit status from ops_args' answer. */
#define OPS_FAILED(rc) ((rc) < 0 ? 0 : (rc))

static int cmd_history(int argc, char **argv)
{
    struct ops_args a;
    int rc = ops_args(argc, argv, "history", OPS_JSON | OPS_COUNT, "NAME", 1, &a);
    return rc ? OPS_FAILED(rc) : ops_history(a.url, a.arg, (size_t)a.count, a.json);
}

static int cmd_check(int argc, char **argv)
{
    struct ops_args a;
    int rc = ops_args(argc, argv, "check", OPS_JSON, "NAME", 0, &a);
    return rc ? OPS_FAILED(rc) : ops_check(a.url, a.arg, a.json);
}

static int cmd_status(int argc, char **argv)
{
    struct ops_args a;
    int rc = ops_args(argc, argv, "status", OPS_JSON, "NAME", 1, &a);
    return rc ? OPS_FAILED(rc) : ops_status(a.url, a.arg, a.json);
}

static int cmd_list(int argc, char **argv)
{
    struct ops_args a;
    int rc = ops_args(argc, argv, "list", OPS_JSON, "PREFIX", 0, &a);
    return rc ? OPS_FAILED(rc) : ops_list(a.url, a.arg ? a.arg : "", a.json);
}

static int cmd_release(int argc, char **argv)
{
    struct ops_args a;
    int rc = ops_args(argc, argv, "release", OPS_FORCE, "NAME", 1, &a);
    return rc ? OPS_FAILED(rc) : ops_break(a.url, a.arg);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("%s", "a command is missing (run, status, list, release, history or check)");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("dlock (libdlock) %s\n", dlock_version());
        return 0;
    }
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(argc - 1, argv + 1);
    if (strcmp(cmd, "list") == 0)
        return cmd_list(argc - 1, argv + 1);
    if (strcmp(cmd, "release") == 0)
        return cmd_release(argc - 1, argv + 1);
    if (strcmp(cmd, "history") == 0)
        return cmd_history(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0)
        return cmd_check(argc - 1, argv + 1);
    return usage_error("unknown command '%s' (use run, status, list, release, history or check)", cmd);
}
