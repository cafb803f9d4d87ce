/*
** cfaccess: the client object (client.c) as the engine, the methods and
** batches see it. Every C allocation hangs off the client userdata (its
** __gc/close frees it), so a Lua error at any point cannot leak it.
*/
#ifndef CFACCESS_CLIENT_H
#define CFACCESS_CLIENT_H

#include <sys/types.h>

#include "http.h"
#include "pace.h"

#define CF_CLIENT_MT "cfaccess.client"

typedef struct cf_client {
  cf_transport tr;
  struct curl_slist *hdrs;  /* "Content-Type" first: hdrs->next = no body */
  char *secret;             /* a copy of the token or key, for redaction
                            ** (malloc): kept until no exchange is left */
  size_t secret_len;
  pid_t pid;                /* the process that made the client */
  char *base;               /* base URL, no trailing '/' (malloc) */
  size_t base_len;
  char scope[48];           /* "accounts/<id>" or "zones/<id>" */
  int zone;                 /* zone-scoped client */
  int max_retries;
  double max_retry_wait;
  double deadline;          /* seconds per call (0: none) */
  cf_pacer pacer;
  cf_buf resp;              /* response body; cap: max_response_bytes */
  cf_buf body;              /* request body, reused when not re-entered */
  int busy;                 /* requests in flight (on_log may re-enter) */
  int closed;               /* closed by the user: unusable */
  int released;             /* C resources freed */
} cf_client;

/* The client at stack index 1 (raises when it is not one, or closed). */
CF_INTERNAL cf_client *cf_client_check(lua_State *L);
/* 1 when c may make requests in this process; 0 with a `usage` err pushed
** when it was made by another one (a fork() since): the connections are
** the creator's, never shared. */
CF_INTERNAL int cf_client_usable(lua_State *L, cf_client *c);
/* After a run of the engine: a client closed while exchanges were in
** flight is released once none is left (the credential's redaction copy
** with it). */
CF_INTERNAL void cf_client_idle(cf_client *c);
/* A point where a pending Lua hook runs: lua.c's SIGINT handler (and any
** debug hook) acts only when Lua code or a call runs, and C wait loops
** call this between waits so that "interrupted!" propagates at once. */
CF_INTERNAL void cf_client_hookpoint(lua_State *L);
/* on_log(level, msg) if the client at stack index ci has one. Messages
** never contain secrets: they are built only from methods, paths,
** statuses, counts and curl's error text. */
CF_INTERNAL void cf_client_log(lua_State *L, int ci, const char *level,
                               const char *fmt, ...);
/* Push s for a URL path: as it is when every byte is unreserved (RFC 3986;
** validated ids always are), else percent-encoded (belt and braces). */
CF_INTERNAL const char *cf_client_escape(lua_State *L, cf_client *c, const char *s);

/* Methods generated from the endpoint registry, plus batch (methods.c):
** set into the table on top. */
CF_INTERNAL void cf_methods_register(lua_State *L);
/* client:batch(ops [, opts]) (batch.c). */
CF_INTERNAL int cf_client_batch(lua_State *L);
/* client:_check_ops(ops) -> true | nil, err: batch's checks only (batch.c). */
CF_INTERNAL int cf_client_check_ops(lua_State *L);

#endif
