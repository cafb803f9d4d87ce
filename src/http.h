/*
** cfaccess: the libcurl transport (transport.c) and nothing else: the
** exchange structs, the handles, the base-URL/loopback policy. The transport
** never touches Lua: it fills plain C structs while curl runs, and the
** engine (engine.h) turns them into Lua values only after a transfer is done
** and libcurl has returned.
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

/* Response headers the client acts on, captured by the header callback
** (each value truncated to its array, NUL-terminated, "" when absent). */
typedef struct cf_hdrs {
  char ray[64];            /* cf-ray */
  char retry_after[64];    /* Retry-After */
  char retry_after_ms[32]; /* retry-after-ms */
  char should_retry[16];   /* x-should-retry */
  char ratelimit[128];     /* Ratelimit */
  char date[40];           /* Date: the server's clock (no-duplicate create) */
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
  long timeout_ms;             /* this try's timeout (0: the client's) */
  struct curl_slist *headers;  /* request headers (owned by the client) */
  cf_buf *resp;                /* where the body goes (owned by the client;
                               ** its cap is max_response_bytes) */
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
  long timeout_ms;  /* the client's timeout per try */
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

/* The base-URL policy, checked with libcurl's URL parser: https, or plain
** http to a loopback host only; no credentials, query or fragment. Returns
** NULL (and sets *http when it is plain http to loopback) or what is wrong,
** e.g. "must use https". */
CF_INTERNAL const char *cf_transport_check_url(const char *url, int *http);

#endif
