/*
** cfaccess pacing: how long the next request must wait.
**
** Pacing is judged by the server's clock, which sees a request somewhere
** between our start and its response. So a request counts from its start
** (in flight) to `per` after its response (the ring holds the last
** `requests` response times, oldest first), and one may start only while
** fewer than `requests` count: then no window of `per` seconds at the
** server can hold more than `requests`, whatever the latency, however many
** run at once.
*/
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pace.h"

double cf_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cf_sleep(double s) {
  struct timespec req;
  if (!(s > 0)) return;
  req.tv_sec = (time_t)s;
  req.tv_nsec = (long)((s - (double)req.tv_sec) * 1e9);
  if (req.tv_nsec > 999999999L) req.tv_nsec = 999999999L;
  /* a signal ends the sleep early (EINTR): the caller's loop runs a
  ** pending Lua hook (SIGINT) and sleeps again for what is left */
  (void)nanosleep(&req, NULL);
}

int cf_pacer_init(cf_pacer *p, int on, int requests, double per,
                  double max_wait, uint64_t seed) {
  memset(p, 0, sizeof *p);
  p->on = on;
  p->requests = requests;
  p->per = per;
  p->max_wait = max_wait;
  p->rng = seed ? seed : 1;
  if (on) {
    p->ring = (double *)malloc(sizeof(double) * (size_t)requests);
    if (p->ring == NULL) return 0;
  }
  return 1;
}

void cf_pacer_free(cf_pacer *p) {
  free(p->ring);
  p->ring = NULL;
}

static double rand01(cf_pacer *p) {   /* xorshift64*: per-client state */
  uint64_t x = p->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  p->rng = x;
  return (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

double cf_pace_wait(const cf_pacer *p, double now, int *why) {
  double wait = 0;
  *why = CF_WAIT_NONE;
  if (p->on) {
    int k = p->requests - p->inflight;  /* responses allowed in window + 1 */
    if (k <= 0) {
      wait = p->per;                      /* until one finishes */
    } else if (p->count >= k) {
      double t = p->ring[(p->head + p->count - k) % p->requests] + p->per - now;
      if (t > wait) wait = t;
    }
    if (wait > 0) *why = CF_WAIT_OWN;
    /* the header's budget, less our requests in flight (some of them may
    ** be counted in it already: their answers, when read, tell) */
    if (p->remaining - p->inflight <= 0 && p->budget_until - now > wait) {
      wait = p->budget_until - now;
      /* r > 0: our own requests hold what is left until they are answered */
      *why = p->remaining > 0 ? CF_WAIT_OWN : CF_WAIT_SERVER;
    }
  }
  if (p->pause_until - now > wait) {
    wait = p->pause_until - now;
    *why = CF_WAIT_SERVER;
  }
  return wait;
}

void cf_pace_take(cf_pacer *p) {
  if (!p->on) return;
  p->inflight++;
}

void cf_pace_done(cf_pacer *p) {
  double now;
  if (!p->on || p->inflight <= 0) return;
  p->inflight--;
  now = cf_now();
  if (p->count == p->requests) {
    p->ring[p->head] = now;
    p->head = (p->head + 1) % p->requests;
  } else {
    p->ring[(p->head + p->count) % p->requests] = now;
    p->count++;
  }
}

/* `Ratelimit: "default";r=<remaining>;t=<seconds>`: r more requests may
** reach the server before its window resets, in t seconds (rounded up).
** Within one window the least r is the latest the server said: every
** answer read since came from a request it counted earlier. So what may
** start is that r less every request of ours still out (cf_pace_wait),
** exact once they are all answered, never more than the server allows
** (one client per token). The estimate is recomputed, never kept: the
** in-flight ones already counted in it (answers read out of the server's
** order, or counted before the answer was read) are an underestimate
** that their own answers undo. The window's end is the earliest
** now + t of its answers: t is rounded up, so that is never before the
** reset and within the gap between answers of it. Answers whose ends are
** within 1.5 s of the known one are of the same window; any other one
** starts a new window (the latest wins: a new window, or a server
** configured anew). r=0: wait until the end (the engine fails at once if
** that is beyond max_retry_wait). */
void cf_pace_header(cf_pacer *p, const char *v) {
  const char *r = strstr(v, ";r="), *t = strstr(v, ";t=");
  long rem, secs;
  double now, until;
  if (!p->on || r == NULL || t == NULL) return;
  rem = strtol(r + 3, NULL, 10);
  secs = strtol(t + 3, NULL, 10);
  if (rem < 0 || secs <= 0 || secs > 100000000L) return;
  if (rem > 1000000000L) rem = 1000000000L;
  now = cf_now();
  until = now + (double)secs;
  if (p->budget_until > now && until - p->budget_until < 1.5 &&
      p->budget_until - until < 1.5) {   /* same window */
    if (rem < p->remaining) p->remaining = (int)rem;
    if (until < p->budget_until) p->budget_until = until;
  } else {
    p->remaining = (int)rem;
    p->budget_until = until;
  }
}

void cf_pace_pause(cf_pacer *p, double until) {
  if (until > p->pause_until) p->pause_until = until;
}

double cf_backoff(cf_pacer *p, int attempt) {
  double base = 0.5;
  int i;
  for (i = 1; i < attempt && base < 8; i++) base *= 2;
  if (base > 8) base = 8;
  return base / 2 + rand01(p) * base / 2;
}
