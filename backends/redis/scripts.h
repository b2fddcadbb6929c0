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
 * in ms (-1: unknown).  A new fence counter starts at the server's clock in
 * microseconds, so that a server that lost it (restarted without
 * persistence) still hands out larger tokens than before.  Kept short: the
 * script's cost is most of what a cycle costs beyond the round trips. */
#define DLOCK_REDIS_ACQUIRE                                              \
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then\n" \
    "  local f = redis.call('INCR', KEYS[2])\n"                          \
    "  if f == 1 then\n"                                                 \
    "    local t = redis.call('TIME')\n"                                 \
    "    local s = t[1] .. string.format('%06d', tonumber(t[2]))\n"      \
    "    redis.call('SET', KEYS[2], s)\n"                                \
    "    return tonumber(s)\n"                                           \
    "  end\n"                                                            \
    "  return f\n"                                                       \
    "end\n"                                                              \
    "local v = redis.call('GET', KEYS[1])\n"                             \
    "if v and string.sub(v, 1, 32) == string.sub(ARGV[1], 1, 32) then\n" \
    "  local f = redis.call('GET', KEYS[2])\n"                           \
    "  if f then return tonumber(f) end\n"                               \
    "  return redis.call('INCR', KEYS[2])\n"                             \
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

/* KEYS: lock.  ARGV: token, channel.  1 released (waiters told), 0 not ours. */
#define DLOCK_REDIS_RELEASE                           \
    "local v = redis.call('GET', KEYS[1])\n"          \
    "if v and string.sub(v, 1, 32) == ARGV[1] then\n" \
    "  redis.call('DEL', KEYS[1])\n"                  \
    "  redis.call('PUBLISH', ARGV[2], 'released')\n"  \
    "  return 1\n"                                    \
    "end\n"                                           \
    "return 0\n"

/* KEYS: lock.  ARGV: channel.  1 broken, 0 it was free. */
#define DLOCK_REDIS_BREAK                          \
    "if redis.call('DEL', KEYS[1]) == 1 then\n"    \
    "  redis.call('PUBLISH', ARGV[1], 'broken')\n" \
    "  return 1\n"                                 \
    "end\n"                                        \
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
