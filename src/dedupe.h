/*
** cfaccess no-duplicate create (dedupe.c): after a create that may have
** reached the server, which listed item (if any) is the one it made (API.md
** sections 3 and 7), judged by the server's clock.
*/
#ifndef CFACCESS_DEDUPE_H
#define CFACCESS_DEDUPE_H

#include "engine.h"

#define CF_SINCE_UNKNOWN (-1LL)   /* no server Date seen */

/* Seconds since the epoch of an HTTP Date header value, or -1. */
CF_INTERNAL long long cf_http_date(const char *v);
/* Seconds since the epoch, rounded down, of an RFC 3339 time (the API's
** created_at, "2026-12-01T10:32:36.123456Z"), or -1 when unreadable. */
CF_INTERNAL long long cf_rfc3339_secs(const char *s, size_t n);
/* The server's clock (seconds, a lower bound) when a request was sent,
** from a response's Date (date_secs) that came back `elapsed` local
** seconds after that send: date - ceil(elapsed). */
CF_INTERNAL long long cf_server_since(long long date_secs, double elapsed);
/* Look in the array at `list` for what the failed create rq made: the
** items rq->match takes for the server's copy of the request whose
** created_at, at the second, is no earlier than `since` (server seconds;
** CF_SINCE_UNKNOWN when no Date came back). Returns 1 with the one such
** item pushed; 0 when there is none (nothing pushed); -1 with a `conflict`
** err pushed (err.ids) when there are several, or when a same item's age
** cannot be told. what: the request, for messages ("POST /accounts/..."). */
CF_INTERNAL int cf_dedupe_pick(lua_State *L, int list, const cf_req *rq, long long since,
                               const char *what);

#endif
