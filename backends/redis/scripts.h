/*
 * The server-side scripts of the Redis backend (docs/redis.md explains
 * them).  Names and tokens reach them only as KEYS and ARGV, never inside
 * the script text.  The owner token is the first 32 characters of the
 * lock's value: "<token> <since_ms> <pid> <host>".
 */
#ifndef DLOCK_REDIS_SCRIPTS_H
#define DLOCK_REDIS_SCRIPTS_H

enum {
    SCRIPT_ACQUIRE,
    SCRIPT_EXTEND,
    SCRIPT_RELEASE,
    SCRIPT_BREAK,
    SCRIPT_RECORD_GET,
    SCRIPT_RECORD_PUT,
    SCRIPT_COUNT
};

/* KEYS: lock, fence.  ARGV: the value ("<token> <since_ms> <pid> <host>"),
 * ttl_ms.  The fence (>= 1) when taken; busy: -1 - the holder's time left
 * in ms (-1: unknown).  A fence is max(counter + 1, the server's clock in
 * microseconds), and the counter is set to it (one GET and one SET).  A
 * counter that a restart lost, or brought back from an older snapshot (RDB,
 * or an AOF that lost its last second), restarts above every token handed
 * out before the crash, since the clock has moved on by more than the
 * tokens did (they follow the clock to the microsecond, unless more than
 * one lock a microsecond is taken).  The retry of an acquire whose answer was lost
 * finds its own value in the lock key and answers the fence it was given,
 * or a new one by the same rule when the counter is gone.  Kept short: the
 * script's cost is most of what a cycle costs beyond the round trips. */
#define DLOCK_REDIS_ACQUIRE                                              \
    "local function fence()\n"                                           \
    "  local t = redis.call('TIME')\n"                                   \
    "  local now = t[1] * 1000000 + t[2]\n"                              \
    "  local f = (tonumber(redis.call('GET', KEYS[2])) or 0) + 1\n"      \
    "  if f < now then f = now end\n"                                    \
    "  redis.call('SET', KEYS[2], string.format('%d', f))\n"             \
    "  return f\n"                                                       \
    "end\n"                                                              \
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then\n" \
    "  return fence()\n"                                                 \
    "end\n"                                                              \
    "local v = redis.call('GET', KEYS[1])\n"                             \
    "if v and string.sub(v, 1, 32) == string.sub(ARGV[1], 1, 32) then\n" \
    "  local f = redis.call('GET', KEYS[2])\n"                           \
    "  if f then return tonumber(f) end\n"                               \
    "  return fence()\n"                                                 \
    "end\n"                                                              \
    "local left = redis.call('PTTL', KEYS[1])\n"                         \
    "if left < 0 then left = 0 end\n"                                    \
    "return -1 - left\n"

/* KEYS: lock.  ARGV: token, ttl_ms.  1 renewed, 0 not ours. */
#define DLOCK_REDIS_EXTEND                            \
    "local v = redis.call('GET', KEYS[1])\n"          \
    "if v and string.sub(v, 1, 32) == ARGV[1] then\n" \
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"     \
    "  return 1\n"                                    \
    "end\n"                                           \
    "return 0\n"

/* KEYS: lock, fence.  ARGV: token, channel, the lock's fence.  1 released
 * (waiters told), 0 not ours, 2 not ours but free, and no one took it
 * since our token (the fence counter is still ours): what the retry of a
 * release whose answer was lost finds when the first send went through.
 * PUBLISH through pcall here and in the break: a user whose ACL has no
 * channel rights still releases without an error (its waiters, refused
 * SUBSCRIBE too, poll; `dlock check` says so). */
#define DLOCK_REDIS_RELEASE                                                  \
    "local v = redis.call('GET', KEYS[1])\n"                                 \
    "if v and string.sub(v, 1, 32) == ARGV[1] then\n"                        \
    "  redis.call('DEL', KEYS[1])\n"                                         \
    "  redis.pcall('PUBLISH', ARGV[2], 'released')\n"                        \
    "  return 1\n"                                                           \
    "end\n"                                                                  \
    "if not v and redis.call('GET', KEYS[2]) == ARGV[3] then return 2 end\n" \
    "return 0\n"

/* KEYS: lock, break mark.  ARGV: channel, a random id of this break.  1
 * broken (the mark keeps the id for a minute), 0 it was free; the retry of
 * a break whose answer was lost finds its own mark and answers 1 again. */
#define DLOCK_REDIS_BREAK                                          \
    "if redis.call('DEL', KEYS[1]) == 1 then\n"                    \
    "  redis.call('SET', KEYS[2], ARGV[2], 'PX', 60000)\n"         \
    "  redis.pcall('PUBLISH', ARGV[1], 'broken')\n"                \
    "  return 1\n"                                                 \
    "end\n"                                                        \
    "if redis.call('GET', KEYS[2]) == ARGV[2] then return 1 end\n" \
    "return 0\n"

/* KEYS: lock, slot.  ARGV: token.  {1, slot} while ours, {0} not ours. */
#define DLOCK_REDIS_RECORD_GET                          \
    "local v = redis.call('GET', KEYS[1])\n"            \
    "if v and string.sub(v, 1, 32) == ARGV[1] then\n"   \
    "  return {1, redis.call('GET', KEYS[2]) or '0'}\n" \
    "end\n"                                             \
    "return {0}\n"

/* KEYS: lock, slot.  ARGV: token, slot.  1 written, 0 not ours. */
#define DLOCK_REDIS_RECORD_PUT                        \
    "local v = redis.call('GET', KEYS[1])\n"          \
    "if v and string.sub(v, 1, 32) == ARGV[1] then\n" \
    "  redis.call('SET', KEYS[2], ARGV[2])\n"         \
    "  return 1\n"                                    \
    "end\n"                                           \
    "return 0\n"

#endif
