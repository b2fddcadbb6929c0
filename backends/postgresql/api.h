/*
 * The libpq functions the PostgreSQL backend calls, through a table filled
 * when the first postgresql:// URL is opened (see lib/driver.c).  Include
 * after <libpq-fe.h>: the defines at the end make the backend's ordinary
 * PQxxx() calls go through the table.
 */
#ifndef DLOCK_LIBPQ_API_H
#define DLOCK_LIBPQ_API_H

#include <libpq-fe.h>

#ifdef LIBPQ_HAS_PIPELINING
#define DLOCK_LIBPQ_PIPELINE_FUNCTIONS(X) X(PQenterPipelineMode) X(PQexitPipelineMode) X(PQpipelineSync)
#else
#define DLOCK_LIBPQ_PIPELINE_FUNCTIONS(X)
#endif

#define DLOCK_LIBPQ_FUNCTIONS(X)                                                                                     \
    X(PQclear)                                                                                                       \
    X(PQcancel) X(PQconnectPoll) X(PQconnectStartParams) X(PQconninfoFree) X(PQconninfoParse) X(PQconsumeInput)      \
        X(PQerrorMessage) X(PQfinish) X(PQflush) X(PQfreeCancel) X(PQfreemem) X(PQgetCancel) X(PQgetResult)          \
            X(PQgetisnull) X(PQgetvalue) X(PQisBusy) X(PQnfields) X(PQnotifies) X(PQntuples) X(PQparameterStatus)    \
                X(PQresultErrorField) X(PQresultStatus) X(PQsendPrepare) X(PQsendQueryParams) X(PQsendQueryPrepared) \
                    X(PQsendQuery) X(PQserverVersion) X(PQsetnonblocking) X(PQsetNoticeReceiver) X(PQsocket)         \
                        X(PQstatus) DLOCK_LIBPQ_PIPELINE_FUNCTIONS(X)

struct dlock_libpq_api {
#define DLOCK_LIBPQ_SLOT(name) __typeof__(name) *(name);
    DLOCK_LIBPQ_FUNCTIONS(DLOCK_LIBPQ_SLOT)
#undef DLOCK_LIBPQ_SLOT
};

extern struct dlock_libpq_api dlock__libpq;
/* Load libpq once; DLOCK_OK, or DLOCK_ENOTSUP with the reason. */
int dlock__libpq_load(void);

#ifndef DLOCK_LIBPQ_LOADER
#define PQclear dlock__libpq.PQclear
#define PQcancel dlock__libpq.PQcancel
#define PQconnectPoll dlock__libpq.PQconnectPoll
#define PQconnectStartParams dlock__libpq.PQconnectStartParams
#define PQconninfoFree dlock__libpq.PQconninfoFree
#define PQconninfoParse dlock__libpq.PQconninfoParse
#define PQconsumeInput dlock__libpq.PQconsumeInput
#define PQerrorMessage dlock__libpq.PQerrorMessage
#define PQfinish dlock__libpq.PQfinish
#define PQflush dlock__libpq.PQflush
#define PQfreeCancel dlock__libpq.PQfreeCancel
#define PQfreemem dlock__libpq.PQfreemem
#define PQgetCancel dlock__libpq.PQgetCancel
#define PQgetResult dlock__libpq.PQgetResult
#define PQgetisnull dlock__libpq.PQgetisnull
#define PQgetvalue dlock__libpq.PQgetvalue
#define PQisBusy dlock__libpq.PQisBusy
#define PQnfields dlock__libpq.PQnfields
#define PQnotifies dlock__libpq.PQnotifies
#define PQntuples dlock__libpq.PQntuples
#define PQparameterStatus dlock__libpq.PQparameterStatus
#define PQresultErrorField dlock__libpq.PQresultErrorField
#define PQresultStatus dlock__libpq.PQresultStatus
#define PQsendPrepare dlock__libpq.PQsendPrepare
#define PQsendQueryParams dlock__libpq.PQsendQueryParams
#define PQsendQueryPrepared dlock__libpq.PQsendQueryPrepared
#define PQsendQuery dlock__libpq.PQsendQuery
#define PQserverVersion dlock__libpq.PQserverVersion
#define PQsetnonblocking dlock__libpq.PQsetnonblocking
#define PQsetNoticeReceiver dlock__libpq.PQsetNoticeReceiver
#define PQsocket dlock__libpq.PQsocket
#define PQstatus dlock__libpq.PQstatus
#ifdef LIBPQ_HAS_PIPELINING
#define PQenterPipelineMode dlock__libpq.PQenterPipelineMode
#define PQexitPipelineMode dlock__libpq.PQexitPipelineMode
#define PQpipelineSync dlock__libpq.PQpipelineSync
#endif
#endif

#endif
