/*
** cfaccess: the interface between the client object and its request engine
** (client.c), batches (batch.c) and the libcurl transport (transport.c).
** The transport never touches Lua: it fills plain C structs while curl
** runs, and the engine turns them into Lua values only after a transfer is
** done and libcurl has returned.
*/
#ifndef CFACCESS_HTTP_H
#define CFACCESS_HTTP_H

#include <stddef.h>

#include <curl/curl.h>

#include "cfaccess.h"

/* How a create is kept from being re-sent by libcurl itself (it does so
** when a reused keep-alive connection turns out dead):
** - libcurl >= 7.80: the body goes as CURLOPT_POSTFIELDS (one send with the
**   headers, as fast as plain libcurl) and CURLOPT_PREREQFUNCTION, called
**   right before every send of the request, refuses a second send within
**   one transfer;
** - older libcurl: the body goes through CURLOPT_READFUNCTION and the
**   CURLOPT_SEEKFUNCTION refuses the rewind a re-send needs.
** Either way the transfer fails (x->rewind_refused set) and the client
** checks whether the first send created the policy. */
#if LIBCURL_VERSION_NUM >= 0x075000
#define CF_PREREQ_GUARD 1
#else
#define CF_PREREQ_GUARD 0
#endif

/* Response body buffer: malloc'd, owned by the client userdata (freed by
** its close/__gc), reused across calls; never grows beyond `max`. */
typedef struct cf_rbuf {
  char *data;
  size_t len, cap, max;
  int too_big;      /* the response went over max: transfer aborted */
  int oom;          /* realloc failed: transfer aborted */
} cf_rbuf;

/* Response headers the client acts on, captured by the header callback
** (each value truncated to its array, NUL-terminated, "" when absent). */
typedef struct cf_hdrs {
  char ray[64];            /* cf-ray */
  char retry_after[64];    /* Retry-After */
  char retry_after_ms[32]; /* retry-after-ms */
  char should_retry[16];   /* x-should-retry */
  char ratelimit[128];     /* Ratelimit */
} cf_hdrs;

/* One HTTP exchange: everything curl needs for a request and everything it
** leaves behind. Kept self-contained so that a curl-multi driver can run
** several at once (one easy handle each). */
typedef struct cf_exchange {
  /* in */
  const char *method;          /* "GET", "POST", "PUT", "DELETE" */
  const char *url;             /* full URL, already escaped */
  const char *body;            /* NULL for no body */
  size_t body_len;
  int no_rewind;               /* creates: refuse libcurl's silent re-send */
  struct curl_slist *headers;  /* request headers (owned by the client) */
  cf_rbuf *resp;               /* where the body goes (owned by the client) */
  /* state */
  size_t body_pos;
  size_t body_read;            /* bytes handed to curl: >0 = may have left */
  int sends;                   /* times libcurl started sending the request */
  int rewind_refused;          /* libcurl wanted to re-send: refused */
  CURL *h;                     /* its easy handle while it runs */
  int running;                 /* in the multi handle */
  int finished;                /* done: rc is final */
  /* out */
  CURLcode rc;
  long status;                 /* 0 when no response came */
  cf_hdrs hdrs;
  char errbuf[CURL_ERROR_SIZE];
} cf_exchange;

typedef struct cf_transport_cfg {
  const char *user_agent;
  const char *cafile;          /* NULL: system trust only */
  const char *proxy;           /* NULL: libcurl's default (environment) */
  long timeout_ms, connect_timeout_ms;
  int allow_http;              /* base URL is plain http on loopback */
} cf_transport_cfg;

/* The client's transport: one configured easy handle, reused.
** libcurl before 8.1.0 has a use-after-free when a response's first header
** line is folded (starts with a space) on a handle that already did a
** transfer ("headers: clear (possibly) lingering pointer in init", fixed in
** 8.1.0); libcurl stores the header before any callback of ours sees it,
** so it cannot be filtered. With such a libcurl (checked at run time) each
** exchange runs on a fresh curl_easy_duphandle copy of the configured
** handle (about 2 us).
** Exchanges are driven through one multi handle per client that lives as
** long as the client: it holds the connection cache and DNS cache, so
** keep-alive works across copies too (and a later batch can add several
** easy handles to it); a share object keeps TLS sessions for the copies. */
typedef struct cf_transport {
  CURL *easy;       /* the configured handle (performs unless copy_each) */
  CURLM *multi;     /* drives every exchange; owns the connections */
  CURLSH *share;    /* TLS sessions, only with copy_each */
  int copy_each;
  int easy_busy;    /* the configured handle runs an exchange */
} cf_transport;

/* curl_global_init once per process (thread-safe). 0 on failure. */
CF_INTERNAL int cf_transport_global_init(void);
/* Set up t (zeroed by the caller). Returns 1, or 0 with a message in err
** (at most errlen bytes; never an option's value). */
CF_INTERNAL int cf_transport_init(cf_transport *t, const cf_transport_cfg *cfg,
                                  char *err, size_t errlen);
/* Free everything (idempotent). */
CF_INTERNAL void cf_transport_cleanup(cf_transport *t);
/* Exchanges run on the client's multi handle, several at once if wanted:
** start hands one over (1, or 0 when it failed at once: x->finished set);
** drive runs the transfers, marks the exchanges that are done
** (x->finished, x->rc) and, when none is, waits up to timeout_ms for
** activity; it returns how many finished, or -1 on a multi error. finish
** takes a finished (or, to abort it, a running) exchange off the multi,
** fills x->status and frees its handle. None of them calls Lua. */
CF_INTERNAL int cf_transport_start(cf_transport *t, cf_exchange *x, int pipewait);
CF_INTERNAL int cf_transport_drive(cf_transport *t, long timeout_ms);
CF_INTERNAL void cf_transport_finish(cf_transport *t, cf_exchange *x);

/* ---- the client object and its request engine (client.c) ----------- */

#include <stdint.h>

typedef struct cf_client {
  cf_transport tr;
  struct curl_slist *hdrs;  /* "Content-Type" first: hdrs->next = no body */
  const char *secret;       /* the token or key, inside hdrs' last string */
  size_t secret_len;
  char *base;               /* base URL, no trailing '/' (malloc) */
  char scope[48];           /* "accounts/<id>" or "zones/<id>" */
  int zone;                 /* zone-scoped client */
  int max_retries;
  double max_retry_wait;
  int pace;                 /* 0: rate_limit = false */
  int rl_requests;
  double rl_per;
  double *ring;             /* response times of the last rl_requests (malloc) */
  int ring_head, ring_count;
  int inflight;             /* paced requests started, not yet answered */
  double not_before;        /* monotonic time: Ratelimit header said wait */
  double pause_until;       /* monotonic time: a Retry-After pauses all */
  cf_rbuf resp;
  cf_buf body;              /* request body, reused when not re-entered */
  uint64_t rng;             /* xorshift state for backoff jitter */
  size_t base_len;
  int busy;                 /* requests in flight (on_log may re-enter) */
  int closed;               /* closed by the user: unusable */
  int released;             /* C resources freed */
} cf_client;

/* One operation as the engine runs it. Strings are owned by Lua values
** that stay alive while the operation runs. */
typedef struct cf_req {
  const char *method;
  const char *url;
  const char *path;         /* url without the base, for messages */
  const char *body;         /* NULL: none */
  size_t body_len;
  int create;               /* POST that creates: no blind re-send */
  int list;                 /* GET of a collection: follow its pages */
  const char *list_url;     /* list, or create: the collection (checked
                            ** after an ambiguous create) */
  lua_Integer page, per_page;   /* list: page > 0 gets only that page */
} cf_req;

/* Fill rq for operation i (1-based). arg is the stack index of the
** caller's argument (cf_exec_spec.arg). Values it pushes (at most 4) are
** kept alive while the operation runs: rq's strings may point into them.
** body is a buffer of the operation's slot, for an encoded policy. Returns
** 1, or 0 with an err pushed (the operation then fails with it). */
typedef int (*cf_prep_fn)(lua_State *L, cf_client *c, int arg, int i,
                          cf_req *rq, cf_buf *body);

typedef struct cf_exec_spec {
  int n;                    /* operations */
  int concurrency;          /* transfers in flight at most (>= 1) */
  int arg;                  /* stack index handed to prep */
  cf_prep_fn prep;
  int results;              /* stack index of a table for results[i] =
                            ** {ok=, result= | err=}; 0: one operation, its
                            ** value returned */
  int progress;             /* stack index of on_progress(done, total), or 0 */
} cf_exec_spec;

/* Run the operations: up to `concurrency` at once on the client's multi
** handle, each with retries, Retry-After, pacing (one pacer for all) and
** the no-duplicate create; list operations follow their pages. With
** results == 0: pushes the value (returns 1) or the err (returns 0). Else
** fills the results table and returns 1. A Lua error raised by on_log or
** on_progress propagates after every transfer is taken off the multi. */
CF_INTERNAL int cf_client_exec(lua_State *L, cf_client *c, const cf_exec_spec *sp);
/* The client at stack index 1 (raises when it is not one, or closed). */
CF_INTERNAL cf_client *cf_client_check(lua_State *L);
/* Push "<base>/<scope>/access/apps/<app>/policies" (URL) and a light
** userdata pointing to its path (after the base). */
CF_INTERNAL void cf_client_app_paths(lua_State *L, cf_client *c, int app_idx);
/* Same for "<base>/accounts/<id>/access/policies". */
CF_INTERNAL void cf_client_reusable_paths(lua_State *L, cf_client *c);
/* Replace the URL/path pair on top with the pair for item "/<id>". */
CF_INTERNAL void cf_client_item_paths(lua_State *L, cf_client *c, int id_idx);
/* client:batch(ops [, opts]) (batch.c). */
CF_INTERNAL int cf_client_batch(lua_State *L);

#endif
