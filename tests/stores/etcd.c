/* The etcd store, as the shared suites see it (tests/stores/store.h).  Its
 * own client is etcdctl (Debian: etcd-client), run without a shell. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "etcd/url.h"
#include "internal.h"
#include "store.h"

extern char **environ;

/* etcdctl ARGS... against the URL's endpoints (and user); its standard
 * output into out (may be NULL).  Returns its exit status. */
static int etcdctl(const char *url, const char *const *args, char *out, size_t outlen)
{
    struct dlock_etcd_url u;
    ck_assert_int_eq(dlock__etcd_parse_url(url, &u), DLOCK_OK);
    char endpoints[1024] = "--endpoints=", user[600] = "";
    for (size_t i = 0; i < u.count; i++)
        snprintf(endpoints + strlen(endpoints), sizeof endpoints - strlen(endpoints), "%s%s:%d", i ? "," : "",
                 u.endpoints[i].host, u.endpoints[i].port);
    const char *argv[24] = {"etcdctl", endpoints, "--command-timeout=5s"};
    int argc = 3;
    if (u.user) {
        snprintf(user, sizeof user, "--user=%s:%s", u.user, u.password);
        argv[argc++] = user;
    }
    for (size_t i = 0; args[i] && argc < 23; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    dlock__etcd_url_free(&u);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    setenv("ETCDCTL_API", "3", 1);
    pid_t pid;
    ck_assert_int_eq(posix_spawnp(&pid, "etcdctl", &fa, NULL, (char *const *)argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    size_t used = 0;
    char scratch[4096];
    for (;;) {
        char *to = out ? out + used : scratch;
        size_t room = out ? outlen - used - 1 : sizeof scratch;
        ssize_t n = room ? read(fds[0], to, room) : read(fds[0], scratch, sizeof scratch);
        if (n <= 0)
            break;
        if (out && room)
            used += (size_t)n;
    }
    if (out)
        out[used] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* The lines of `etcdctl get -w fields` that say who holds: key, creation
 * revision, lease, value. */
static void holder_fields(const char *fields, char *out, size_t outlen)
{
    static const char *const keep[] = {"\"Key\"", "\"CreateRevision\"", "\"Lease\"", "\"Value\""};
    out[0] = '\0';
    for (const char *line = fields; *line;) {
        size_t len = strcspn(line, "\n");
        for (size_t k = 0; k < sizeof keep / sizeof keep[0]; k++)
            if (strncmp(line, keep[k], strlen(keep[k])) == 0)
                snprintf(out + strlen(out), outlen - strlen(out), "%.*s;", (int)len, line);
        line += len + (line[len] == '\n');
    }
}

static void lowest_key(const char *url, const char *name, char *fields, size_t len)
{
    struct dlock_etcd_url u;
    ck_assert_int_eq(dlock__etcd_parse_url(url, &u), DLOCK_OK);
    char prefix[DLOCK_ETCD_KEY_MAX];
    dlock__etcd_name_prefix(u.prefix, name, prefix);
    dlock__etcd_url_free(&u);
    const char *args[] = {"get", "--prefix", prefix, "--sort-by=CREATE", "--order=ASCEND", "--limit=1", "-w", "fields",
                          NULL};
    ck_assert_int_eq(etcdctl(url, args, fields, len), 0);
}

static void view(const char *url, const char *name, char *out, size_t outlen)
{
    char fields[4096];
    lowest_key(url, name, fields, sizeof fields);
    holder_fields(fields, out, outlen);
}

/* Delete the holder's key, as an operator would with etcdctl del. */
static void take_away(const char *url, const char *name)
{
    char fields[4096], key[DLOCK_ETCD_KEY_MAX + 8];
    lowest_key(url, name, fields, sizeof fields);
    const char *k = strstr(fields, "\"Key\" : \"");
    ck_assert_msg(k != NULL, "nothing to take away: %s", fields);
    k += 9;
    snprintf(key, sizeof key, "%.*s", (int)strcspn(k, "\""), k);
    char said[256];
    const char *args[] = {"del", key, NULL};
    ck_assert_int_eq(etcdctl(url, args, said, sizeof said), 0);
    ck_assert_msg(strncmp(said, "1", 1) == 0, "etcdctl del %s: %s", key, said);
}

/* "PREFIX!history/NAME/": the range of a name's runs (backends/etcd/history.c). */
static void history_range(const char *url, const char *name, char *out, size_t len)
{
    struct dlock_etcd_url u;
    ck_assert_int_eq(dlock__etcd_parse_url(url, &u), DLOCK_OK);
    char escaped[3 * 255 + 1];
    dlock__etcd_escape_name(name, escaped);
    snprintf(out, len, "%s!history/%s/", u.prefix, escaped);
    dlock__etcd_url_free(&u);
}

/* Every key of the range, runs or not (etcdctl get --prefix --keys-only). */
static int history_entries(const char *url, const char *name)
{
    char range[DLOCK_ETCD_KEY_MAX + 16], keys[65536];
    history_range(url, name, range, sizeof range);
    const char *args[] = {"get", "--prefix", range, "--keys-only", NULL};
    ck_assert_int_eq(etcdctl(url, args, keys, sizeof keys), 0);
    int count = 0;
    for (const char *line = keys; *line;) {
        size_t len = strcspn(line, "\n");
        count += len > 0;
        line += len + (line[len] == '\n');
    }
    return count;
}

/* As etcdctl put would: keys in the range whose values are no run. */
static void history_junk(const char *url, const char *name, int *count)
{
    static const char *const junk[][2] = {
        {"zz-junk-1", "not a run at all"},
        {"zz-junk-2", "1 2 3 4 5 RAN host"},
        {"zz-junk-3", "1 2 -5 0 0 ran host"},
        {"zz-junk-4", "\x01\x02\x03"},
    };
    char range[DLOCK_ETCD_KEY_MAX + 16], key[DLOCK_ETCD_KEY_MAX + 32];
    history_range(url, name, range, sizeof range);
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        snprintf(key, sizeof key, "%s%s", range, junk[i][0]);
        const char *args[] = {"put", key, junk[i][1], NULL};
        ck_assert_int_eq(etcdctl(url, args, NULL, 0), 0);
    }
    *count = (int)(sizeof junk / sizeof junk[0]);
}

static unsigned caps(const char *url)
{
    unsigned c = DLT_FENCES | DLT_OUTLIVES_CONNECTION | DLT_LISTS_NAMES | DLT_CLUSTER | DLT_HISTORY;
    /* The hostile suite takes user:password@host:port apart: only for a URL
     * that has them (the single member with authentication). */
    const char *at = strchr(url, '@');
    if (at && !strchr(at, ','))
        c |= DLT_NETWORK;
    return c;
}

static const struct dlt_bad_url bad_urls[] = {
    {"the password as an option value", "{scheme}://{user}:{secret}@{host}:{port}/?prefix=x&mode={secret}",
     {DLOCK_EINVAL}, 1},
    {"the password as an option name", "{scheme}://{user}:{secret}@{host}:{port}/?{secret}=1", {DLOCK_EINVAL}, 1},
    {"the password as a path", "{scheme}://{user}:{secret}@{host}:{port}/{secret}", {DLOCK_EINVAL}, 1},
    {"the password in a second endpoint", "{scheme}://{user}:{secret}@{host}:{port},{secret}:x", {DLOCK_EINVAL}, 1},
    {"cafile on plain HTTP", "{scheme}://{user}:{secret}@{host}:{port}/?cafile=/{secret}", {DLOCK_EINVAL}, 1},
    {"HTTPS to a plain HTTP member", "etcds://{user}:{secret}@{host}:{port}", {DLOCK_ECONN}, 1},
    {"an unterminated IPv6 host", "{scheme}://{user}:{secret}@[::1", {DLOCK_EINVAL}, 1},
    {NULL, NULL, {0}, 0},
};

const struct dlt_store dlt_store_etcd = {
    .backend = "etcd",
    .url_env = "DLOCK_TEST_ETCD_URL",
    .caps = caps,
    /* Leases are whole seconds (a 800 ms TTL is a 1 s lease), and the
     * leader looks for expired leases every 500 ms. */
    .expiry_slack_ms = 2000,
    .default_port = "2379",
    .url_path = "",
    .bad_urls = bad_urls,
    .bad_login_userinfo = "dlock:Wr0ngPassw0rd",
    .bad_login_word = "authentication failed",
    .login_url_env = "DLOCK_TEST_ETCD_AUTH_URL",
    .view = view,
    .take_away = take_away,
    .history_entries = history_entries,
    .history_junk = history_junk,
    /* No server_pid: one stopped member of the cluster stalls nobody (the
     * client moves on); tests/check_etcd.c stops members and quorum. */
};
