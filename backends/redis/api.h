/*
 * The hiredis functions the Redis backend calls, through a table filled when
 * the first redis:// URL is opened (lib/driver.c).  Include after
 * <hiredis/hiredis.h>: the defines at the end send the backend's ordinary
 * calls through the table.
 */
#ifndef DLOCK_REDIS_API_H
#define DLOCK_REDIS_API_H

#include <hiredis/hiredis.h>

#define DLOCK_REDIS_FUNCTIONS(X)   \
    X(redisConnectWithTimeout)     \
    X(redisConnectUnixWithTimeout) \
    X(redisSetTimeout)             \
    X(redisFree)                   \
    X(redisFormatCommandArgv)      \
    X(redisGetReply) X(redisGetReplyFromReader) X(redisBufferRead) X(redisFreeCommand) X(freeReplyObject)

struct dlock_redis_api {
#define DLOCK_REDIS_SLOT(name) __typeof__(name) *(name);
    DLOCK_REDIS_FUNCTIONS(DLOCK_REDIS_SLOT)
#undef DLOCK_REDIS_SLOT
};

extern struct dlock_redis_api dlock__redis;
/* Load hiredis once; DLOCK_OK, or DLOCK_ENOTSUP with the reason. */
int dlock__redis_load(void);

/* SHA-1 of a script, as the 40 lower-case hex digits EVALSHA takes. */
void dlock__redis_sha1_hex(const char *text, char hex[41]);

#ifndef DLOCK_REDIS_LOADER
#define redisConnectWithTimeout dlock__redis.redisConnectWithTimeout
#define redisConnectUnixWithTimeout dlock__redis.redisConnectUnixWithTimeout
#define redisSetTimeout dlock__redis.redisSetTimeout
#define redisFree dlock__redis.redisFree
#define redisFormatCommandArgv dlock__redis.redisFormatCommandArgv
#define redisGetReply dlock__redis.redisGetReply
#define redisGetReplyFromReader dlock__redis.redisGetReplyFromReader
#define redisBufferRead dlock__redis.redisBufferRead
#define redisFreeCommand dlock__redis.redisFreeCommand
#define freeReplyObject dlock__redis.freeReplyObject
#endif

#endif
