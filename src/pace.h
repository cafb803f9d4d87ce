/*
** cfaccess pacing (pace.c): the client's own rate window, the server's
** Ratelimit header and Retry-After pause, and retry backoff. Pure C, no Lua.
*/
#ifndef CFACCESS_PACE_H
#define CFACCESS_PACE_H

#include <stdint.h>

#include "cfaccess.h"

typedef struct cf_pacer {
  int on;                   /* 0: rate_limit = false */
  int requests;             /* at most this many ... */
  double per;               /* ... in any window of this many seconds */
  double *ring;             /* response times of the last `requests` (malloc) */
  int head, count;
  int inflight;             /* paced requests started, not yet answered */
  int remaining;            /* the Ratelimit header's least r this window ... */
  double budget_until;      /* ... which ends by this monotonic time */
  double pause_until;       /* monotonic time: a 429 (Retry-After) pauses all */
  double max_wait;          /* max_retry_wait (the engine fails beyond it) */
  uint64_t rng;             /* xorshift state for backoff jitter */
} cf_pacer;

/* Monotonic seconds; sleep (restarted after signals). */
CF_INTERNAL double cf_now(void);
CF_INTERNAL void cf_sleep(double s);

/* Set up p (0 when the ring cannot be allocated). seed: any bits. */
CF_INTERNAL int cf_pacer_init(cf_pacer *p, int on, int requests, double per,
                              double max_wait, uint64_t seed);
CF_INTERNAL void cf_pacer_free(cf_pacer *p);   /* idempotent */
/* Why a request waits (cf_pace_wait's *why). */
enum { CF_WAIT_NONE = 0, CF_WAIT_OWN, CF_WAIT_SERVER };
/* Seconds until a request may start (0: now). *why: CF_WAIT_OWN when it is
** the client's own window that holds it back, CF_WAIT_SERVER when the
** server asked (the Ratelimit header's budget is spent, or a 429's pause,
** which holds every start even with pacing off). */
CF_INTERNAL double cf_pace_wait(const cf_pacer *p, double now, int *why);
CF_INTERNAL void cf_pace_take(cf_pacer *p);   /* a request starts */
CF_INTERNAL void cf_pace_done(cf_pacer *p);   /* ... and is over */
/* A `Ratelimit` response header value (read after cf_pace_done of its
** own request; the starts it allows are reckoned in cf_pace_wait, less the
** requests in flight then). */
CF_INTERNAL void cf_pace_header(cf_pacer *p, const char *ratelimit);
/* A 429: no request starts before `until` (monotonic). */
CF_INTERNAL void cf_pace_pause(cf_pacer *p, double until);
/* Seconds to wait before try attempt + 1 (exponential, jittered). */
CF_INTERNAL double cf_backoff(cf_pacer *p, int attempt);

#endif
