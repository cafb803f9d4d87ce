/*
** cfaccess waits (waits.c): what a ready slot waits for (its retry backoff,
** the client's pacing, the server's rate limit), failing it at once when
** the wait is one the engine must not sleep through (beyond max_retry_wait,
** past the deadline), and telling on_progress while every slot waits.
*/
#include <math.h>
#include <stdio.h>

#include "slot.h"

/* Seconds rounded to a tenth, for messages and on_progress. */
double cf_tenths(double s) {
  return s > 0 ? floor(s * 10 + 0.5) / 10 : 0;
}

/* Push "1.5" for s seconds (rounded to a tenth). */
const char *cf_push_secs(lua_State *L, double s) {
  char b[48];
  snprintf(b, sizeof b, "%.1f", cf_tenths(s) < 1e12 ? cf_tenths(s) : 1e12);
  return lua_pushstring(L, b);
}

/* Slot k (ready) would wait `wait` s for the server's rate limit, beyond
** max_retry_wait, or past its deadline: it fails now, nothing sent. */
static void fail_waiting(lua_State *L, cf_engine *e, int k, double wait, int deadline) {
  cf_slot *s = &e->slots[k];
  const char *method = s->phase == PH_MAIN ? s->rq.method : "GET";
  const char *w = cf_push_secs(L, wait);
  if (deadline) {
    cf_error_push(L, CF_E_TIMEOUT, "%s %s: deadline of %s s reached (a wait of %s s "
                  "was left); not sent", method, s->path, cf_push_secs(L, e->c->deadline), w);
  } else {
    cf_error_push(L, CF_E_API, "%s %s: rate limited: the server asked to wait %s s more, "
                  "longer than max_retry_wait (%s s); not sent", method, s->path, w,
                  cf_push_secs(L, e->c->max_retry_wait));
    lua_pushinteger(L, (lua_Integer)ceil(wait));
    lua_setfield(L, -2, "retry_after");
  }
  lua_pushinteger(L, s->attempt);
  lua_setfield(L, -2, "attempts");
  lua_replace(L, -3);   /* over the two numbers' texts */
  lua_pop(L, 1);
  if (s->phase == PH_CHECK) cf_unchecked(L, e, k, deadline ? "the deadline ended the check"
                                      : "the rate limit wait is too long to check", deadline);
  else cf_deliver(L, e, k, 0);
}

/* on_progress(done, total, { waiting = s, reason = "rate limit" | "retry" })
** while every slot waits (at most every REPORT_EVERY s). */
void cf_report_wait(lua_State *L, cf_engine *e, double wait, const char *reason) {
  if (!e->sp.progress) return;
  lua_pushvalue(L, e->sp.progress);
  lua_pushinteger(L, e->done);
  lua_pushinteger(L, e->sp.n);
  lua_createtable(L, 0, 2);
  lua_pushnumber(L, cf_tenths(wait));
  lua_setfield(L, -2, "waiting");
  lua_pushstring(L, reason);
  lua_setfield(L, -2, "reason");
  lua_call(L, 3, 0);
}

/* Slot k is ready: start it now (1), or say when it may (0: *at, *why set;
** a wait the engine must not sleep through fails the operation: -1). */
int cf_slot_ready(lua_State *L, cf_engine *e, int k, double now, double *at, int *why) {
  cf_client *c = e->c;
  cf_slot *s = &e->slots[k];
  double w;
  *why = CF_WAIT_NONE;
  if (s->ready_at > now) {
    *at = s->ready_at;
    /* a 429's own retry waits for the pause it set: a rate limit wait */
    w = cf_pace_wait(&c->pacer, now, why);
    if (!(*why == CF_WAIT_SERVER && now + w >= s->ready_at - 0.01)) *why = CF_WAIT_NONE;
    if (s->deadline_at > 0 && *at >= s->deadline_at) {
      fail_waiting(L, e, k, *at - now, 1);
      return -1;
    }
    return 0;
  }
  w = cf_pace_wait(&c->pacer, now, why);
  if (w <= 0) return 1;
  *at = now + w;
  if (*why == CF_WAIT_SERVER && w > c->max_retry_wait) {
    fail_waiting(L, e, k, w, 0);
    return -1;
  }
  if (s->deadline_at > 0 && *at >= s->deadline_at) {
    fail_waiting(L, e, k, w, 1);
    return -1;
  }
  if (!e->pace_logged) {
    e->pace_logged = 1;
    cf_client_log(L, CI, "info", "pacing: waiting %s s before the next request (%s)",
                  cf_push_secs(L, w), *why == CF_WAIT_SERVER ? "the server's rate limit"
                                                          : "the client's rate_limit");
    lua_pop(L, 1);
  }
  return 0;
}

