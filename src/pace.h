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
  double not_before;        /* monotonic time: Ratelimit header said wait */
  double pause_until;       /* monotonic time: a Retry-After pauses all */
  double max_wait;          /* max_retry_wait: caps a Ratelimit wait */
  uint64_t rng;             /* xorshift state for backoff jitter */
} cf_pacer;

/* Monotonic seconds; sleep (restarted after signals). */
CF_INTERNAL double cf_now(void);
CF_INTERNAL void cf_sleep(double s);

/* Set up p (0 when the ring cannot be allocated). seed: any bits. */
CF_INTERNAL int cf_pacer_init(cf_pacer *p, int on, int requests, double per,
                              double max_wait, uint64_t seed);
CF_INTERNAL void cf_pacer_free(cf_pacer *p);   /* idempotent */
/* Seconds until a request may start (0: now). *paced is set when it is the
** client's own pacing (window full, Ratelimit header) that holds it back; a
** server's Retry-After (pause_until) pauses every start too. */
CF_INTERNAL double cf_pace_wait(const cf_pacer *p, double now, int *paced);
CF_INTERNAL void cf_pace_take(cf_pacer *p);   /* a request starts */
CF_INTERNAL void cf_pace_done(cf_pacer *p);   /* ... and is over */
/* A `Ratelimit` response header value. */
CF_INTERNAL void cf_pace_header(cf_pacer *p, const char *ratelimit);
/* Retry-After: no request starts before `until` (monotonic). */
CF_INTERNAL void cf_pace_pause(cf_pacer *p, double until);
/* Seconds to wait before try attempt + 1 (exponential, jittered). */
CF_INTERNAL double cf_backoff(cf_pacer *p, int attempt);

#endif
