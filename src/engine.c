/*
** cfaccess request engine. Every request, the sequential methods' and
** client:batch's alike, runs through one state machine per operation
** ("slot"): start an exchange on the client's multi handle, read what came
** back (response.c), then either finish the operation, schedule a retry
** (backoff or Retry-After, pace.c), fetch the next page of a list, or
** (after an ambiguous create) list the collection and ask the resource's
** matcher whether the create happened. A sequential call is a batch of one.
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dedupe.h"
#include "response.h"
#include "slot.h"


void cf_anchor(lua_State *L, cf_engine *e, int k, int j) {
  lua_rawseti(L, e->anchors, (lua_Integer)k * ANCHORS + j);   /* pops */
}

int cf_anchored(lua_State *L, cf_engine *e, int k, int j) {
  return lua_rawgeti(L, e->anchors, (lua_Integer)k * ANCHORS + j);
}

/* The operation of slot k is over: its value (or err) on top goes to the
** caller, the slot is freed, on_progress hears of it. */
void cf_deliver(lua_State *L, cf_engine *e, int k, int ok) {
  cf_slot *s = &e->slots[k];
  int j;
  if (e->sp.results == 0) {
    lua_replace(L, e->out);
    e->ok = ok;
  } else {
    lua_createtable(L, 0, 2);
    lua_pushboolean(L, ok);
    lua_setfield(L, -2, "ok");
    lua_insert(L, -2);
    lua_setfield(L, -2, ok ? "result" : "err");
    if (s->rq.warnings > 0 && cf_anchored(L, e, k, s->rq.warnings) != LUA_TNIL)
      lua_setfield(L, -2, "warnings");
    else if (s->rq.warnings > 0) lua_pop(L, 1);
    lua_rawseti(L, e->sp.results, s->op);
  }
  for (j = 1; j <= ANCHORS; j++) {
    lua_pushnil(L);
    cf_anchor(L, e, k, j);
  }
  s->op = 0;
  s->state = SL_FREE;
  e->done++;
  if (e->sp.progress) {
    lua_pushvalue(L, e->sp.progress);
    lua_pushinteger(L, e->done);
    lua_pushinteger(L, e->sp.n);
    lua_call(L, 2, 0);
  }
}

/* Give free slot k the next operation. */
static void assign(lua_State *L, cf_engine *e, int k) {
  cf_slot *s = &e->slots[k];
  int top = lua_gettop(L), pushed, j, ok;
  s->op = e->next++;
  s->state = SL_READY;
  s->phase = PH_MAIN;
  s->attempt = s->main_attempt = s->was_ambiguous = s->last = 0;
  s->ready_at = s->first_sent = 0;
  s->deadline_at = e->c->deadline > 0 ? cf_now() + e->c->deadline : 0;
  s->since = CF_SINCE_UNKNOWN;
  memset(&s->rq, 0, sizeof s->rq);
  cf_buf_reset(&s->body);
  ok = e->sp.prep(L, e->c, e->sp.arg, s->op, &s->rq, &s->body);
  if (!ok) {
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    cf_deliver(L, e, k, 0);
    return;
  }
  pushed = lua_gettop(L) - top;
  if (pushed > 4) luaL_error(L, "cfaccess: internal error (prep)");
  for (j = pushed; j >= 1; j--) cf_anchor(L, e, k, j);
  s->x.url = s->rq.url;
  s->path = s->rq.path;
  if (s->rq.list) cf_begin_pages(L, e, k, PH_PAGES);
}

/* Start slot k's request now: its timeout is the client's, or what is left
** of the deadline when that is less. */
static void start(cf_engine *e, int k, double now) {
  cf_client *c = e->c;
  cf_slot *s = &e->slots[k];
  cf_exchange *x = &s->x;
  int main_req = s->phase == PH_MAIN;
  s->attempt++;
  s->try_started = now;
  if (main_req && s->rq.create && s->first_sent == 0) s->first_sent = now;
  cf_pace_take(&c->pacer);
  x->method = main_req ? s->rq.method : "GET";
  if (main_req) x->url = s->rq.url;
  x->body = main_req ? s->rq.body : NULL;
  x->body_len = main_req ? s->rq.body_len : 0;
  x->no_rewind = main_req && s->rq.create;
  x->timeout_ms = 0;
  if (s->deadline_at > 0) {
    double left = (s->deadline_at - now) * 1000.0 + 1;
    if (left < 1) left = 1;
    if (left < (double)c->tr.timeout_ms || c->tr.timeout_ms <= 0) x->timeout_ms = (long)left;
  }
  x->headers = x->body ? c->hdrs : c->hdrs->next;
  x->resp = s->resp;
  s->state = SL_RUNNING;
  cf_transport_start(&c->tr, x, e->pipewait);
}

/* Does slot k's operation check after an ambiguous create? */
static int dedupes(const cf_slot *s) {
  return s->rq.create && s->rq.list_url && s->rq.match;
}

/* A create's answers (and its check's) tell the server's clock: the lower
** bound of when it was first sent only grows (read a little after the
** answer came, elapsed is a little more: the bound stays a lower one). */
static void note_since(cf_slot *s) {
  if (dedupes(s) && s->first_sent > 0 && s->x.hdrs.date[0]) {
    long long since = cf_server_since(cf_http_date(s->x.hdrs.date), cf_now() - s->first_sent);
    if (since > s->since) s->since = since;
  }
}

/* Read slot k's finished exchange. Pushes the decoded envelope (returns 1)
** or an err with nothing of the credential in it (returns 0); fills t.
** The Date is parsed (curl_getdate: ~11 k instructions) only when the
** clock may be needed: not for a main request that succeeded (advance_ok
** notes it when the result is bad after all). */
static int interpret(lua_State *L, cf_engine *e, int k, cf_try *t) {
  cf_slot *s = &e->slots[k];
  int ok;
  if (s->x.hdrs.ratelimit[0]) cf_pace_header(&e->c->pacer, s->x.hdrs.ratelimit);
  ok = cf_response_read(L, &s->x, s->path, e->c->secret, e->c->secret_len, t);
  if (!ok || s->phase != PH_MAIN) note_since(s);
  return ok;
}

/* Log "<err>; retry n of m in w s" for the err on top, and pop it (its
** message states the request; the wait to 1/100 s). */
static void log_retry(lua_State *L, cf_engine *e, int k, double wait) {
  cf_slot *s = &e->slots[k];
  char w[32];
  snprintf(w, sizeof w, "%.2f", wait);
  cf_client_log(L, CI, "info", "%s; retry %d of %d in %s s", luaL_tolstring(L, -1, NULL),
        s->attempt, e->c->max_retries, w);
  lua_pop(L, 2);
}

/* The check after an ambiguous create cannot finish (the listing's err on
** top, popped; why: a few words): the operation fails with the create's err,
** which now says it may have been made; kind "timeout" when the deadline
** ended the check. Nothing more is sent. */
void cf_unchecked(lua_State *L, cf_engine *e, int k, const char *why, int deadline) {
  cf_slot *s = &e->slots[k];
  cf_client_log(L, CI, "warn", "could not list %s to check for a committed create: %s",
                s->rq.list_url + e->c->base_len, luaL_tolstring(L, -1, NULL));
  lua_pop(L, 2);
  cf_anchored(L, e, k, AN_ERR);
  lua_getfield(L, -1, "message");
  lua_pushfstring(L, "%s (it may have been made: %s; not sent again)",
                  luaL_optstring(L, -1, "?"), why);
  lua_setfield(L, -3, "message");
  lua_pop(L, 1);
  if (deadline) {
    lua_pushliteral(L, CF_E_TIMEOUT);
    lua_setfield(L, -2, "kind");
  }
  cf_deliver(L, e, k, 0);
}

/* Replace the err on top with a `timeout` err: slot k's deadline ended the
** call (what: the last thing that failed or would have waited). */
static void to_deadline(lua_State *L, cf_engine *e, int k) {
  cf_slot *s = &e->slots[k];
  const char *d = cf_push_secs(L, e->c->deadline);
  cf_error_push(L, CF_E_TIMEOUT, "%s %s: deadline of %s s reached (%s)",
                s->phase == PH_MAIN ? s->rq.method : "GET", s->path, d,
                luaL_tolstring(L, -2, NULL));
  lua_pushinteger(L, s->attempt);
  lua_setfield(L, -2, "attempts");
  lua_replace(L, -4);
  lua_pop(L, 2);
}

/* The listing after an ambiguous create found nothing it made: send the
** create again (or, with no tries or time left, fail with its err). */
static void check_none(lua_State *L, cf_engine *e, int k) {
  cf_slot *s = &e->slots[k];
  cf_client_log(L, CI, "info", "nothing in %s is the failed create's: it did not happen",
        s->rq.list_url + e->c->base_len);
  cf_anchored(L, e, k, AN_ERR);
  s->phase = PH_MAIN;
  s->attempt = s->main_attempt;
  s->path = s->rq.path;
  s->x.method = s->rq.method;
  if (s->last) {
    cf_deliver(L, e, k, 0);
    return;
  }
  if (s->deadline_at > 0 && cf_now() >= s->deadline_at) {
    to_deadline(L, e, k);
    cf_deliver(L, e, k, 0);
    return;
  }
  log_retry(L, e, k, 0);
  s->ready_at = 0;
}

/* The listing after an ambiguous create is complete (AN_ACC): pick what the
** create made by the rule of API.md section 7 (dedupe.c). */
static void check_done(lua_State *L, cf_engine *e, int k) {
  cf_slot *s = &e->slots[k];
  int r, acc;
  const char *what;
  cf_anchored(L, e, k, AN_ACC);
  acc = lua_gettop(L);
  what = lua_pushfstring(L, "%s %s", s->rq.method, s->rq.path);
  r = cf_dedupe_pick(L, acc, &s->rq, s->since, what);
  lua_remove(L, acc);
  lua_remove(L, acc);
  if (r == 0) {
    check_none(L, e, k);
    return;
  }
  if (r > 0)
    cf_client_log(L, CI, "warn", "found what the failed create made (the same, created "
                  "since it was sent); not creating it again");
  else {
    lua_pushinteger(L, s->main_attempt);
    lua_setfield(L, -2, "attempts");
    lua_getfield(L, -1, "message");
    cf_client_log(L, CI, "warn", "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  cf_deliver(L, e, k, r > 0);
}

/* Is code one of the 0-terminated codes? */
static int is_dup_code(const int *codes, lua_Integer code) {
  if (codes == NULL || code == 0) return 0;
  for (; *codes; codes++)
    if ((lua_Integer)*codes == code) return 1;
  return 0;
}

static void advance_fail(lua_State *L, cf_engine *e, int k, const cf_try *t);

/* Slot k's try succeeded (the envelope on top): deliver the result object,
** or take the page and go on listing. A result that is not an object (or,
** for a create, has no id) is `decode`; for a create it is ambiguous (the
** server said yes, but not what it made): checked like a 5xx. */
static void advance_ok(lua_State *L, cf_engine *e, int k) {
  cf_slot *s = &e->slots[k];
  int r;
  if (s->phase == PH_MAIN) {           /* the result object is the value */
    int bad;
    lua_getfield(L, -1, "result");
    bad = !cf_is_object(L, -1);
    if (!bad && s->rq.create) {
      bad = lua_getfield(L, -1, "id") != LUA_TSTRING;
      lua_pop(L, 1);
    }
    if (bad) {
      cf_error_push(L, CF_E_DECODE, "%s %s: the response has no result object%s",
                    s->x.method, s->path, s->rq.create ? " with an id" : "");
      cf_response_fields(L, &s->x);
      lua_remove(L, -2);
      lua_remove(L, -2);
      if (dedupes(s)) {
        cf_try t;
        note_since(s);
        memset(&t, 0, sizeof t);
        t.retryable = t.ambiguous = 1;
        advance_fail(L, e, k, &t);
      } else cf_deliver(L, e, k, 0);
      return;
    }
    lua_remove(L, -2);
    cf_deliver(L, e, k, 1);
    return;
  }
  r = cf_page_done(L, e, k);
  if (r < 0) {
    if (s->phase == PH_PAGES) cf_deliver(L, e, k, 0);
    else cf_unchecked(L, e, k, "the listing to check could not be read", 0);
  } else if (r == 1) {
    if (s->phase == PH_PAGES) {
      cf_anchored(L, e, k, AN_ACC);
      cf_deliver(L, e, k, 1);
    } else check_done(L, e, k);
  }
}

/* Slot k's try failed (the err on top): give up, retry after a wait, or
** (a create that may have happened) list the collection to find out. A
** 429 pauses every request of the client, whether this
** operation then waits or gives up; a wait beyond max_retry_wait or past
** the deadline is not slept through. */
static void advance_fail(lua_State *L, cf_engine *e, int k, const cf_try *t) {
  cf_client *c = e->c;
  cf_slot *s = &e->slots[k];
  int last, limited = s->x.status == 429;   /* API.md section 5: a 429 pauses all */
  double wait = 0, now = cf_now();
  lua_pushinteger(L, s->attempt);
  lua_setfield(L, -2, "attempts");
  last = !t->retryable || s->attempt > c->max_retries;
  wait = t->has_retry_after ? t->retry_after : cf_backoff(&c->pacer, s->attempt);
  if (limited) cf_pace_pause(&c->pacer, now + wait);   /* no request of this client starts */
  if (!last && wait > c->max_retry_wait) {
    const char *w = cf_push_secs(L, wait), *m = cf_push_secs(L, c->max_retry_wait);
    cf_client_log(L, CI, "warn", "%s %s: the server asked to wait %s s, more than "
                  "max_retry_wait (%s s); giving up (err.retry_after)", s->x.method, s->path, w, m);
    lua_pop(L, 2);
    last = 1;
  }
  if (s->deadline_at > 0 && (now >= s->deadline_at || (!last && now + wait >= s->deadline_at))) {
    if (s->phase == PH_CHECK) {
      cf_unchecked(L, e, k, "the deadline ended the check", 1);
      return;
    }
    if (!(dedupes(s) && (t->ambiguous || s->was_ambiguous))) {
      to_deadline(L, e, k);
      cf_deliver(L, e, k, 0);
      return;
    }
    to_deadline(L, e, k);
    lua_getfield(L, -1, "message");
    lua_pushfstring(L, "%s (it may have been made: no time left to check; not sent again)",
                    lua_tostring(L, -1));
    lua_setfield(L, -3, "message");
    lua_pop(L, 1);
    cf_deliver(L, e, k, 0);
    return;
  }
  if (s->phase == PH_CHECK) {
    if (last) {
      cf_unchecked(L, e, k, "the listing to check failed", 0);
      return;
    }
  } else if (s->phase == PH_MAIN && dedupes(s) &&
             (t->ambiguous || (s->was_ambiguous && is_dup_code(s->rq.dup_codes, t->code)))) {
    s->was_ambiguous = 1;
    s->last = last;
    s->main_attempt = s->attempt;
    cf_anchor(L, e, k, AN_ERR);
    cf_client_log(L, CI, "warn", "create may have reached the server; listing %s to check",
                  s->rq.list_url + c->base_len);
    cf_begin_pages(L, e, k, PH_CHECK);
    /* give a slow server time to commit */
    s->ready_at = last ? 0 : now + wait;
    return;
  }
  if (last) {
    cf_deliver(L, e, k, 0);
    return;
  }
  log_retry(L, e, k, wait);
  s->ready_at = now + wait;
}

/* Slot k's exchange is finished: decide what comes next. A create's 2xx
** whose body cannot be read (204, an empty 201) is ambiguous: checked. */
static void advance(lua_State *L, cf_engine *e, int k) {
  cf_slot *s = &e->slots[k];
  cf_try t;
  cf_transport_finish(&e->c->tr, &s->x);
  cf_pace_done(&e->c->pacer);
  s->state = SL_READY;
  s->ready_at = 0;
  if (interpret(L, e, k, &t)) advance_ok(L, e, k);
  else {
    if (s->phase == PH_MAIN && dedupes(s) && s->x.rc == CURLE_OK && s->x.status >= 200 &&
        s->x.status < 300)
      t.ambiguous = t.retryable = 1;
    advance_fail(L, e, k, &t);
  }
}

/* The engine proper, run under lua_pcall.
** 1: client, 2: engine (light userdata), 3: anchors, 4: the single value,
** 5: prep's argument, 6: results, 7: on_progress.
** Each round: free slots take the next operations; ready slots start
** (or say how long they wait); transfers run until one finishes or the
** earliest wait ends (at most 1 s); finished ones advance. When nothing
** runs and every slot waits, on_progress hears of the wait. */
static int engine_main(lua_State *L) {
  cf_engine *e = (cf_engine *)lua_touserdata(L, 2);
  cf_client *c = e->c;
  e->anchors = 3;
  e->out = 4;
  e->sp.arg = 5;
  e->sp.results = e->sp.results ? 6 : 0;
  e->sp.progress = e->sp.progress ? 7 : 0;
  while (e->done < e->sp.n) {
    double now, wake, first = 0, at;
    int k, running = 0, finished = 0, why, first_why = 0, done0 = e->done, r;
    cf_client_hookpoint(L);   /* SIGINT (lua.c's hook) propagates from waits */
    now = cf_now();
    wake = now + 1.0;
    for (k = 0; k < e->nslots && e->next <= e->sp.n; k++)
      if (e->slots[k].state == SL_FREE) assign(L, e, k);
    for (k = 0; k < e->nslots; k++) {
      cf_slot *s = &e->slots[k];
      if (s->state == SL_READY) {
        r = cf_slot_ready(L, e, k, now, &at, &why);
        if (r < 0) continue;
        if (r == 0) {
          if (at < wake) wake = at;
          if (first == 0 || at < first) {
            first = at;
            first_why = why;
          }
          continue;
        }
        e->pace_logged = 0;
        e->waiting = 0;
        if (c->closed) {   /* on_log or on_progress closed the client */
          s->attempt++;
          cf_error_push(L, CF_E_USAGE, "%s %s: the client was closed during the request",
                        s->phase == PH_MAIN ? s->rq.method : "GET", s->path);
          lua_pushinteger(L, s->attempt);
          lua_setfield(L, -2, "attempts");
          cf_deliver(L, e, k, 0);
          continue;
        }
        start(e, k, now);
      }
      if (s->state == SL_RUNNING) {
        running++;
        if (s->x.finished) finished++;
      }
    }
    if (running > finished) {
      long ms = finished ? 0 : (long)((wake - now) * 1000.0 + 0.999);
      if (ms < 0) ms = 0;
      if (cf_transport_drive(&c->tr, ms) < 0) {
        for (k = 0; k < e->nslots; k++) {
          cf_slot *s = &e->slots[k];
          if (s->state == SL_RUNNING && !s->x.finished) {
            s->x.finished = 1;
            s->x.rc = CURLE_RECV_ERROR;
            snprintf(s->x.errbuf, sizeof s->x.errbuf, "curl multi handle failed");
          }
        }
      }
    } else if (running == 0 && e->done == done0 && wake > now) {
      if (first > 0 && (!e->waiting || now >= e->next_report)) {
        e->waiting = 1;
        e->next_report = now + REPORT_EVERY;
        cf_report_wait(L, e, first - now, first_why == CF_WAIT_NONE ? "retry" : "rate limit");
        now = cf_now();
      }
      if (wake > now) cf_sleep(wake - now);   /* every slot waits (backoff, pacing) */
    }
    for (k = 0; k < e->nslots; k++)
      if (e->slots[k].state == SL_RUNNING && e->slots[k].x.finished)
        advance(L, e, k);
  }
  if (e->sp.results) return 0;
  lua_pushvalue(L, e->out);
  return 1;
}

/* Take every transfer off the multi and free what the slots own. */
static void engine_cleanup(cf_engine *e) {
  int k;
  for (k = 0; k < e->nslots; k++) {
    cf_slot *s = &e->slots[k];
    if (s->state == SL_RUNNING) {
      cf_transport_finish(&e->c->tr, &s->x);
      cf_pace_done(&e->c->pacer);
      s->state = SL_FREE;
    }
    cf_buf_free(&s->own_resp);
    cf_buf_free(&s->body);
  }
}

/* A callback raised: the operations under way are abandoned (their
** exchanges taken off the multi). results[i] = { ok = false, pending = true }
** says so: a create among them may have been made. */
static void mark_pending(lua_State *L, cf_engine *e, int res) {
  int k;
  for (k = 0; k < e->nslots; k++) {
    if (e->slots[k].op == 0) continue;
    lua_createtable(L, 0, 2);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "ok");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "pending");
    lua_rawseti(L, res, e->slots[k].op);
  }
}

int cf_client_exec(lua_State *L, cf_client *c, const cf_exec_spec *sp) {
  cf_engine *e;
  int k, n = sp->concurrency < sp->n ? sp->concurrency : sp->n, rc, ok;
  int arg = lua_absindex(L, sp->arg);
  int res = sp->results ? lua_absindex(L, sp->results) : 0;
  int prog = sp->progress ? lua_absindex(L, sp->progress) : 0;
  size_t size;
  if (n < 1) n = 1;
  size = sizeof(cf_engine) + (size_t)n * sizeof(cf_slot);
  e = (cf_engine *)lua_newuserdatauv(L, size, 0);   /* freed by the GC */
  memset(e, 0, size);
  e->c = c;
  e->sp = *sp;
  e->nslots = n;
  e->next = 1;
  /* wait for a connection that may multiplex (HTTP/2 over TLS) rather than
  ** open one per transfer */
  e->pipewait = n > 1 && strncmp(c->base, "https:", 6) == 0;
  for (k = 0; k < n; k++) {
    cf_slot *s = &e->slots[k];
    if (k == 0 && res == 0 && c->busy == 0) s->resp = &c->resp;
    else {
      s->resp = &s->own_resp;
      cf_buf_init(&s->own_resp, c->resp.toobig);
    }
    cf_buf_init(&s->body, CF_BUF_NOCAP);
  }
  lua_pushcfunction(L, engine_main);
  lua_pushvalue(L, 1);                          /* the client */
  lua_pushlightuserdata(L, e);
  lua_createtable(L, 0, 0);                     /* anchors */
  lua_pushnil(L);                               /* the single value */
  lua_pushvalue(L, arg);
  if (res) lua_pushvalue(L, res); else lua_pushnil(L);
  if (prog) lua_pushvalue(L, prog); else lua_pushnil(L);
  c->busy++;
  rc = lua_pcall(L, 7, res ? 0 : 1, 0);
  c->busy--;
  if (rc != LUA_OK && res) mark_pending(L, e, res);
  engine_cleanup(e);   /* no transfer stays on the multi, error or not */
  cf_client_idle(c);   /* closed during the run: released now */
  if (rc != LUA_OK) lua_error(L);
  ok = e->ok;
  if (res) {
    lua_pop(L, 1);                              /* the engine */
    return 1;
  }
  lua_remove(L, -2);                            /* the engine */
  return ok;
}

/* prep for a single call: the request was built by the method. */
static int prep_single(lua_State *L, cf_client *c, int arg, int i, cf_req *rq,
                       cf_buf *body) {
  (void)c; (void)i; (void)body;
  *rq = *(const cf_req *)lua_touserdata(L, arg);
  return 1;
}

int cf_client_run(lua_State *L, cf_client *c, cf_req *rq) {
  cf_exec_spec sp;
  memset(&sp, 0, sizeof sp);
  sp.n = sp.concurrency = 1;
  sp.prep = prep_single;
  lua_pushlightuserdata(L, rq);
  sp.arg = lua_gettop(L);
  if (!cf_client_exec(L, c, &sp)) return cf_fail(L);
  return 1;
}
