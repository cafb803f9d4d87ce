/*
** cfaccess request engine. Every request, the sequential methods' and
** client:batch's alike, runs through one state machine per operation
** ("slot"): start an exchange on the client's multi handle, read what came
** back (response.c), then either finish the operation, schedule a retry
** (backoff or Retry-After, pace.c), fetch the next page of a list, or
** (after an ambiguous create) list the collection and ask the resource's
** matcher whether the create happened. A sequential call is a batch of one.
*/
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "response.h"

#define MAX_PAGES 1000          /* hard cap when following pages */

/* Collect the ids of the array at idx into one string (to spot a server
** that returns the same page again). */
static void page_key(lua_State *L, int idx) {
  luaL_Buffer b;
  lua_Integer i, n = (lua_Integer)lua_rawlen(L, idx);
  luaL_buffinit(L, &b);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    if (lua_type(L, -1) == LUA_TTABLE) {
      if (lua_getfield(L, -1, "id") == LUA_TSTRING) {
        lua_remove(L, -2);
        luaL_addvalue(&b);
      } else lua_pop(L, 2);
    } else lua_pop(L, 1);
    luaL_addchar(&b, ',');
  }
  luaL_pushresult(&b);
}

enum { SL_FREE = 0, SL_READY, SL_RUNNING };
/* PH_MAIN: the operation's request; PH_PAGES: the pages of a list
** operation; PH_CHECK: the pages of the collection after an ambiguous
** create, to look for the policy it may have made. */
enum { PH_MAIN = 0, PH_PAGES, PH_CHECK };

/* Lua values a slot keeps alive, in the anchors table at k*ANCHORS + j:
** 1..4 what prep pushed; then these. */
#define ANCHORS 8
enum { AN_PAGE_URL = 5, AN_ACC, AN_PREV, AN_ERR };

typedef struct cf_slot {
  int op;                   /* 1-based operation index; 0: free */
  int state;
  int phase;
  int attempt;              /* tries of the current request */
  int main_attempt;         /* PH_CHECK: tries of the create so far */
  int was_ambiguous;        /* a try of this create may have committed */
  int last;                 /* PH_CHECK: the create's failure was final */
  double ready_at;          /* monotonic: do not start before */
  lua_Integer page, total;  /* list pages: the current one, items so far */
  cf_req rq;
  const char *path;         /* of the current request, for messages */
  cf_buf *resp;
  cf_buf own_resp;
  cf_buf body;
  cf_exchange x;
} cf_slot;

typedef struct cf_engine {
  cf_client *c;
  cf_exec_spec sp;          /* indices rebased to the protected call */
  int anchors;              /* stack index of the anchors table */
  int out;                  /* single: where the value goes */
  int ok;                   /* single: the outcome */
  int next, done, nslots;
  int pace_logged;          /* the current pacing wait was logged */
  int pipewait;
  cf_slot slots[];
} cf_engine;

#define CI 1                /* the client's stack index in the engine */

static void anchor(lua_State *L, cf_engine *e, int k, int j) {
  lua_rawseti(L, e->anchors, (lua_Integer)k * ANCHORS + j);   /* pops */
}

static int anchored(lua_State *L, cf_engine *e, int k, int j) {
  return lua_rawgeti(L, e->anchors, (lua_Integer)k * ANCHORS + j);
}

/* The operation of slot k is over: its value (or err) on top goes to the
** caller, the slot is freed, on_progress hears of it. */
static void deliver(lua_State *L, cf_engine *e, int k, int ok) {
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
    lua_rawseti(L, e->sp.results, s->op);
  }
  for (j = 1; j <= ANCHORS; j++) {
    lua_pushnil(L);
    anchor(L, e, k, j);
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

/* Point slot k at page s->page of its collection (pushes nothing). */
static void set_page(lua_State *L, cf_engine *e, int k) {
  cf_slot *s = &e->slots[k];
  const char *url;
  lua_Integer pp = s->phase == PH_PAGES ? s->rq.per_page : 0;
  if (pp > 0)
    url = lua_pushfstring(L, "%s?page=%I&per_page=%I", s->rq.list_url, s->page, pp);
  else
    url = lua_pushfstring(L, "%s?page=%I", s->rq.list_url, s->page);
  s->x.url = url;
  s->path = url + e->c->base_len;
  anchor(L, e, k, AN_PAGE_URL);
  s->attempt = 0;
}

/* Begin listing the collection (a list operation, or the check after an
** ambiguous create). */
static void begin_pages(lua_State *L, cf_engine *e, int k, int phase) {
  cf_slot *s = &e->slots[k];
  s->phase = phase;
  s->page = phase == PH_PAGES && s->rq.page > 0 ? s->rq.page : 1;
  s->total = 0;
  lua_newtable(L);
  anchor(L, e, k, AN_ACC);
  lua_pushnil(L);
  anchor(L, e, k, AN_PREV);
  set_page(L, e, k);
}

/* Give free slot k the next operation. */
static void assign(lua_State *L, cf_engine *e, int k) {
  cf_slot *s = &e->slots[k];
  int top = lua_gettop(L), pushed, j, ok;
  s->op = e->next++;
  s->state = SL_READY;
  s->phase = PH_MAIN;
  s->attempt = s->main_attempt = s->was_ambiguous = s->last = 0;
  s->ready_at = 0;
  memset(&s->rq, 0, sizeof s->rq);
  cf_buf_reset(&s->body);
  ok = e->sp.prep(L, e->c, e->sp.arg, s->op, &s->rq, &s->body);
  if (!ok) {
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    deliver(L, e, k, 0);
    return;
  }
  pushed = lua_gettop(L) - top;
  if (pushed > 4) luaL_error(L, "cfaccess: internal error (prep)");
  for (j = pushed; j >= 1; j--) anchor(L, e, k, j);
  s->x.url = s->rq.url;
  s->path = s->rq.path;
  if (s->rq.list) begin_pages(L, e, k, PH_PAGES);
}

/* Start slot k's request now. */
static void start(cf_engine *e, int k, double now) {
  cf_client *c = e->c;
  cf_slot *s = &e->slots[k];
  cf_exchange *x = &s->x;
  int main_req = s->phase == PH_MAIN;
  (void)now;
  s->attempt++;
  cf_pace_take(&c->pacer);
  x->method = main_req ? s->rq.method : "GET";
  if (main_req) x->url = s->rq.url;
  x->body = main_req ? s->rq.body : NULL;
  x->body_len = main_req ? s->rq.body_len : 0;
  x->no_rewind = main_req && s->rq.create;
  x->headers = x->body ? c->hdrs : c->hdrs->next;
  x->resp = s->resp;
  s->state = SL_RUNNING;
  cf_transport_start(&c->tr, x, e->pipewait);
}

/* Read slot k's finished exchange. Pushes the decoded envelope (returns 1)
** or an err with nothing of the credential in it (returns 0); fills t. */
static int interpret(lua_State *L, cf_engine *e, int k, cf_try *t) {
  cf_slot *s = &e->slots[k];
  if (s->x.hdrs.ratelimit[0]) cf_pace_header(&e->c->pacer, s->x.hdrs.ratelimit);
  return cf_response_read(L, &s->x, s->path, e->c->secret, e->c->secret_len, t);
}

/* A page of slot k's collection arrived (envelope on top, popped). Returns
** 1 when the listing is complete (AN_ACC holds it), 0 when the next page is
** scheduled, -1 with an err pushed when the page is not a list. Listing
** follows pages until total_pages, a short or empty page, a repeated page,
** or MAX_PAGES. */
static int page_done(lua_State *L, cf_engine *e, int k) {
  cf_slot *s = &e->slots[k];
  int env = lua_gettop(L), arr, acc, have_info = 0, more;
  lua_Integer n, i, tp = 0, pp = s->phase == PH_PAGES ? s->rq.per_page : 0;
  if (lua_getfield(L, env, "result") != LUA_TTABLE) {
    cf_error_push(L, CF_E_DECODE, "GET %s: result is not a list", s->path);
    lua_replace(L, env);
    lua_settop(L, env);
    return -1;
  }
  arr = lua_gettop(L);
  n = (lua_Integer)lua_rawlen(L, arr);
  page_key(L, arr);
  anchored(L, e, k, AN_PREV);
  if (n > 0 && lua_rawequal(L, -1, -2)) {   /* the same page again */
    lua_settop(L, env - 1);
    return 1;
  }
  lua_pop(L, 1);
  anchor(L, e, k, AN_PREV);
  anchored(L, e, k, AN_ACC);
  acc = lua_gettop(L);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, arr, i);
    lua_rawseti(L, acc, ++s->total);
  }
  if (lua_getfield(L, env, "result_info") == LUA_TTABLE) {
    have_info = 1;
    if (lua_getfield(L, -1, "total_pages") == LUA_TNUMBER) tp = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (pp <= 0 && lua_getfield(L, -1, "per_page") == LUA_TNUMBER)
      pp = lua_tointeger(L, -1);
  }
  lua_settop(L, env - 1);
  more = !(s->phase == PH_PAGES && s->rq.page > 0) && s->page < MAX_PAGES &&
         (have_info || pp > 0) &&
         !(n == 0 || (tp > 0 && s->page >= tp) || (pp > 0 && n < pp));
  if (!more) return 1;
  s->page++;
  set_page(L, e, k);
  return 0;
}

/* The listed item (in the array at list) that the request body matches by
** the resource's matcher (see the create contract in API.md): pushed (1),
** or nothing (0). */
static int match_listed(lua_State *L, int list, const cf_req *rq) {
  int top = lua_gettop(L), req;
  lua_Integer i, n;
  lua_pushlstring(L, rq->body, rq->body_len);
  if (!cf_json_decode(L)) {
    lua_settop(L, top);
    return 0;
  }
  req = lua_gettop(L);
  n = (lua_Integer)lua_rawlen(L, list);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    if (lua_type(L, -1) == LUA_TTABLE && rq->match(L, req, lua_gettop(L))) {
      lua_replace(L, top + 1);
      lua_settop(L, top + 1);
      return 1;
    }
    lua_pop(L, 1);
  }
  lua_settop(L, top);
  return 0;
}

/* Log "<err>; retry n of m in w s" for the err on top (its message states
** the request; the wait to 1/100 s). */
static void log_retry(lua_State *L, cf_engine *e, int k, double wait) {
  cf_slot *s = &e->slots[k];
  char w[32];
  snprintf(w, sizeof w, "%.2f", wait);
  cf_client_log(L, CI, "info", "%s; retry %d of %d in %s s", luaL_tolstring(L, -1, NULL),
        s->attempt, e->c->max_retries, w);
  lua_pop(L, 1);
}

/* The listing after an ambiguous create is over: found (the match on top,
** 1) or not (0). */
static void check_done(lua_State *L, cf_engine *e, int k, int found) {
  cf_slot *s = &e->slots[k];
  if (found) {
    cf_client_log(L, CI, "warn", "found what the failed create made; not creating it again");
    deliver(L, e, k, 1);
    return;
  }
  cf_client_log(L, CI, "info", "nothing matching in %s: the create did not happen",
        s->rq.list_url + e->c->base_len);
  anchored(L, e, k, AN_ERR);
  s->phase = PH_MAIN;
  s->attempt = s->main_attempt;
  s->path = s->rq.path;
  s->x.method = s->rq.method;
  if (s->last) {
    deliver(L, e, k, 0);
    return;
  }
  log_retry(L, e, k, 0);
  lua_pop(L, 1);
  s->ready_at = 0;
}

/* Is code one of the 0-terminated codes? */
static int is_dup_code(const int *codes, lua_Integer code) {
  if (codes == NULL || code == 0) return 0;
  for (; *codes; codes++)
    if ((lua_Integer)*codes == code) return 1;
  return 0;
}

/* Slot k's try succeeded (the envelope on top): deliver the result object,
** or take the page and go on listing. */
static void advance_ok(lua_State *L, cf_engine *e, int k) {
  cf_slot *s = &e->slots[k];
  int r;
  if (s->phase == PH_MAIN) {           /* the result object is the value */
    if (lua_getfield(L, -1, "result") != LUA_TTABLE) {
      cf_error_push(L, CF_E_DECODE, "%s %s: the response has no result object",
                    s->x.method, s->path);
      cf_response_fields(L, &s->x);
      lua_remove(L, -2);
      lua_remove(L, -2);
      deliver(L, e, k, 0);
      return;
    }
    lua_remove(L, -2);
    deliver(L, e, k, 1);
    return;
  }
  r = page_done(L, e, k);
  if (r < 0) {
    if (s->phase == PH_PAGES) deliver(L, e, k, 0);
    else {
      lua_pop(L, 1);
      cf_client_log(L, CI, "warn", "could not list %s to check for a committed create",
                    s->rq.list_url + e->c->base_len);
      anchored(L, e, k, AN_ERR);
      deliver(L, e, k, 0);
    }
  } else if (r == 1) {
    if (s->phase == PH_PAGES) {
      anchored(L, e, k, AN_ACC);
      deliver(L, e, k, 1);
    } else {
      int acc;
      anchored(L, e, k, AN_ACC);
      acc = lua_gettop(L);
      r = match_listed(L, acc, &s->rq);
      if (r) lua_remove(L, acc);
      else lua_pop(L, 1);
      check_done(L, e, k, r);
    }
  }
}

/* Slot k's try failed (the err on top): give up, retry after a wait, or
** (a create that may have happened) list the collection to find out. */
static void advance_fail(lua_State *L, cf_engine *e, int k, const cf_try *t) {
  cf_client *c = e->c;
  cf_slot *s = &e->slots[k];
  int last;
  double wait = 0, now;
  lua_pushinteger(L, s->attempt);
  lua_setfield(L, -2, "attempts");
  last = !t->retryable || s->attempt > c->max_retries;
  now = cf_now();
  if (!last) {
    wait = t->has_retry_after ? t->retry_after : cf_backoff(&c->pacer, s->attempt);
    if (t->has_retry_after && t->retry_after > c->max_retry_wait) {
      cf_client_log(L, CI, "warn", "%s %s: server asked to wait %f s, more than "
                    "max_retry_wait; giving up", s->x.method, s->path, t->retry_after);
      last = 1;
    } else if (t->has_retry_after) {
      cf_pace_pause(&c->pacer, now + wait);   /* no request of this client starts */
    }
  }
  if (s->phase == PH_CHECK) {
    if (last) {
      cf_client_log(L, CI, "warn", "could not list %s to check for a committed create: %s",
                    s->rq.list_url + c->base_len, luaL_tolstring(L, -1, NULL));
      lua_pop(L, 2);
      anchored(L, e, k, AN_ERR);       /* the create's err stays */
      deliver(L, e, k, 0);
      return;
    }
  } else if (s->phase == PH_MAIN && s->rq.create && s->rq.list_url && s->rq.match &&
             (t->ambiguous || (s->was_ambiguous && is_dup_code(s->rq.dup_codes, t->code)))) {
    s->was_ambiguous = 1;
    s->last = last;
    s->main_attempt = s->attempt;
    anchor(L, e, k, AN_ERR);
    cf_client_log(L, CI, "warn", "create may have reached the server; listing %s to check",
                  s->rq.list_url + c->base_len);
    begin_pages(L, e, k, PH_CHECK);
    /* give a slow server time to commit */
    s->ready_at = last ? 0 : cf_now() + wait;
    return;
  }
  if (last) {
    deliver(L, e, k, 0);
    return;
  }
  log_retry(L, e, k, wait);
  lua_pop(L, 1);
  s->ready_at = cf_now() + wait;
}

/* Slot k's exchange is finished: decide what comes next. */
static void advance(lua_State *L, cf_engine *e, int k) {
  cf_slot *s = &e->slots[k];
  cf_try t;
  cf_transport_finish(&e->c->tr, &s->x);
  cf_pace_done(&e->c->pacer);
  s->state = SL_READY;
  s->ready_at = 0;
  if (interpret(L, e, k, &t)) advance_ok(L, e, k);
  else advance_fail(L, e, k, &t);
}

/* The engine proper, run under lua_pcall.
** 1: client, 2: engine (light userdata), 3: anchors, 4: the single value,
** 5: prep's argument, 6: results, 7: on_progress. */
static int engine_main(lua_State *L) {
  cf_engine *e = (cf_engine *)lua_touserdata(L, 2);
  cf_client *c = e->c;
  e->anchors = 3;
  e->out = 4;
  e->sp.arg = 5;
  e->sp.results = e->sp.results ? 6 : 0;
  e->sp.progress = e->sp.progress ? 7 : 0;
  while (e->done < e->sp.n) {
    double now, wake, w;
    int k, running = 0, finished = 0, paced, done0 = e->done;
    cf_client_hookpoint(L);   /* SIGINT (lua.c's hook) propagates from waits */
    now = cf_now();
    wake = now + 1.0;
    for (k = 0; k < e->nslots && e->next <= e->sp.n; k++)
      if (e->slots[k].state == SL_FREE) assign(L, e, k);
    for (k = 0; k < e->nslots; k++) {
      cf_slot *s = &e->slots[k];
      if (s->state == SL_READY) {
        if (s->ready_at > now) {
          if (s->ready_at < wake) wake = s->ready_at;
          continue;
        }
        if ((w = cf_pace_wait(&c->pacer, now, &paced)) > 0) {
          if (paced && !e->pace_logged) {
            e->pace_logged = 1;
            cf_client_log(L, CI, "info", "pacing: waiting %f s before the next request", w);
          }
          if (now + w < wake) wake = now + w;
          continue;
        }
        e->pace_logged = 0;
        if (c->closed) {   /* on_log or on_progress closed the client */
          s->attempt++;
          cf_error_push(L, CF_E_USAGE, "%s %s: the client was closed during the request",
                        s->phase == PH_MAIN ? s->rq.method : "GET", s->path);
          lua_pushinteger(L, s->attempt);
          lua_setfield(L, -2, "attempts");
          deliver(L, e, k, 0);
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
      cf_sleep(wake - now);     /* every slot waits (backoff, pacing) */
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
