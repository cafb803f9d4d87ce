/*
** cfaccess client: the `cfaccess.core.client{...}` object and its methods
** (API.md sections 3 and 4). Options, ids and policies are checked before
** any traffic; requests go through transport.c (one reused libcurl easy
** handle per client); responses are decoded with a private lua-cjson
** instance after curl has returned. Retries, pacing, pagination and the
** no-duplicate create live here, in one request engine that runs the
** sequential methods (a batch of one) and client:batch (batch.c) alike.
**
** Memory: every C allocation hangs off the client userdata (its __gc/close
** frees it), so a Lua error at any point cannot leak it.
*/
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>

#include "http.h"

#define CF_CLIENT_MT "cfaccess.client"
#define DEFAULT_BASE_URL "https://api.cloudflare.com/client/v4"
#define MAX_PAGES 1000          /* hard cap when following pages */
#define MAX_RING 1000000        /* largest pacing window (requests) */

/* ---- small helpers --------------------------------------------------- */

static double now_mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_for(double s) {
  struct timespec req, rem;
  if (!(s > 0)) return;
  req.tv_sec = (time_t)s;
  req.tv_nsec = (long)((s - (double)req.tv_sec) * 1e9);
  if (req.tv_nsec > 999999999L) req.tv_nsec = 999999999L;
  while (nanosleep(&req, &rem) != 0 && errno == EINTR) req = rem;
}

static double rand01(cf_client *c) {   /* xorshift64*: per-client state */
  uint64_t x = c->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  c->rng = x;
  return (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* Id formats: the checkers of formats.c. */
#define id_hex32 cf_is_hex32
#define id_uuid cf_is_uuid

static int has_ctl(const char *s, size_t n) {  /* CR, LF or NUL */
  size_t i;
  for (i = 0; i < n; i++)
    if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return 1;
  return 0;
}

/* Push nil, err (err already on top) and return 2. */
static int fail(lua_State *L) {
  lua_pushnil(L);
  lua_insert(L, -2);
  return 2;
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

/* err.status (where a response came back) and err.ray_id (where the
** response had one) from exchange x, on the error table at the top. */
static void set_response_fields(lua_State *L, const cf_exchange *x) {
  if (x->status > 0) set_int(L, "status", x->status);
  if (x->hdrs.ray[0]) {
    lua_pushstring(L, x->hdrs.ray);
    lua_setfield(L, -2, "ray_id");
  }
}

static void push_seconds(lua_State *L, double s) {
  if (s == (double)(lua_Integer)s) lua_pushinteger(L, (lua_Integer)s);
  else lua_pushnumber(L, s);
}

/* on_log(level, msg) if the user gave one (user value 1 of the client at
** stack index ci). Messages never contain secrets: they are built only from
** methods, paths, statuses, counts and curl's error text. */
static void logf_(lua_State *L, int ci, const char *level, const char *fmt, ...) {
  va_list ap;
  if (lua_getiuservalue(L, ci, 1) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    return;
  }
  lua_pushstring(L, level);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_call(L, 2, 0);
}

/* ---- close ----------------------------------------------------------- */

static void zero_secrets(cf_client *c) {
  struct curl_slist *p;
  /* The header strings hold the token/key. */
  for (p = c->hdrs; p != NULL; p = p->next)
    if (p->data) memset(p->data, 0, strlen(p->data));
  c->secret = NULL;
  c->secret_len = 0;
}

static void client_release(cf_client *c) {
  zero_secrets(c);
  curl_slist_free_all(c->hdrs);
  c->hdrs = NULL;
  cf_transport_cleanup(&c->tr);
  free(c->base);
  c->base = NULL;
  free(c->ring);
  c->ring = NULL;
  free(c->resp.data);
  c->resp.data = NULL;
  cf_buf_free(&c->body);
  c->resp.len = c->resp.cap = 0;
  c->closed = c->released = 1;
}

/* close(), __close: idempotent. Called from on_log or a batch's on_progress
** while requests of this client are in flight, it zeroes the secrets and
** marks the client closed (requests not yet started then fail with a
** `usage` error; a header list already handed to libcurl only reads as
** empty) but leaves the handles to __gc. */
static int client_close(lua_State *L) {
  cf_client *c = (cf_client *)luaL_checkudata(L, 1, CF_CLIENT_MT);
  if (c->released) return 0;
  if (c->busy > 0) {
    zero_secrets(c);
    c->closed = 1;
  } else client_release(c);
  return 0;
}

/* __gc: nothing can be in flight once the object is unreachable. */
static int client_gc(lua_State *L) {
  cf_client *c = (cf_client *)luaL_checkudata(L, 1, CF_CLIENT_MT);
  if (!c->released) client_release(c);
  return 0;
}

cf_client *cf_client_check(lua_State *L) {
  cf_client *c = (cf_client *)luaL_checkudata(L, 1, CF_CLIENT_MT);
  if (c->closed) luaL_error(L, "cfaccess: attempt to use a closed client");
  return c;
}

static int client_tostring(lua_State *L) {
  cf_client *c = (cf_client *)luaL_checkudata(L, 1, CF_CLIENT_MT);
  if (c->closed) lua_pushliteral(L, "cfaccess.client (closed)");
  else lua_pushfstring(L, "cfaccess.client (%s, %s)", c->scope, c->base);
  return 1;
}

/* ---- options --------------------------------------------------------- */

static const char *const option_names[] = {
  "account_id", "zone_id", "api_token", "api_key", "api_email", "base_url",
  "timeout", "connect_timeout", "max_retries", "max_retry_wait", "rate_limit",
  "max_response_bytes", "cafile", "proxy", "user_agent", "on_log", NULL
};

/* Check that every key of the table at idx is in names; else push a
** `usage` error naming the first unknown key and return 0. */
static int check_keys(lua_State *L, int idx, const char *const *names,
                      const char *what) {
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    const char *k, *best = NULL;
    size_t i, bestd = 3;
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
      cf_error_push(L, "usage", "%s: keys must be strings, got %s", what,
                    luaL_typename(L, -1));
      lua_remove(L, -2);
      return 0;
    }
    k = lua_tostring(L, -1);
    for (i = 0; names[i]; i++) {
      size_t d;
      if (strcmp(k, names[i]) == 0) break;
      d = cf_edit_distance(k, strlen(k), names[i], strlen(names[i]));
      if (d < bestd) { bestd = d; best = names[i]; }
    }
    if (names[i] == NULL) {
      if (best)
        cf_error_push(L, "usage", "%s: unknown option \"%s\" (did you mean \"%s\"?)",
                      what, k, best);
      else
        cf_error_push(L, "usage", "%s: unknown option \"%s\"", what, k);
      lua_remove(L, -2);
      return 0;
    }
  }
  return 1;
}

/* Push option `name` of the table at idx when it has type want (returns
** 1); absent: pushes nothing, returns 0; another type: pushes a usage error
** saying it expected `what`, returns -1. */
static int opt_get(lua_State *L, int idx, const char *name, int want,
                   const char *what) {
  int t = lua_getfield(L, idx, name);
  if (t == want) return 1;
  lua_pop(L, 1);
  if (t == LUA_TNIL) return 0;
  cf_error_push(L, "usage", "client option %s: expected %s, got %s", name, what,
                lua_typename(L, t));
  return -1;
}

/* Read an optional string option; *v stays NULL when absent. A string with
** CR/LF/NUL is refused (it may end up in a header or URL). */
static int opt_string(lua_State *L, int idx, const char *name, const char **v) {
  size_t n;
  int got = opt_get(L, idx, name, LUA_TSTRING, "a string");
  if (got <= 0) return got == 0;
  *v = lua_tolstring(L, -1, &n);
  lua_pop(L, 1);  /* still referenced by the options table */
  if (n == 0) {
    cf_error_push(L, "usage", "client option %s: must not be empty", name);
    return 0;
  }
  if (has_ctl(*v, n)) {
    cf_error_push(L, "usage", "client option %s: must not contain CR, LF or NUL",
                  name);
    return 0;
  }
  return 1;
}

/* Read an optional number option: min < v (or min <= v when incl) and, when
** integer is set, an integral value. */
static int opt_number(lua_State *L, int idx, const char *name, double *v,
                      double min, int incl, int integer) {
  double d;
  int got = opt_get(L, idx, name, LUA_TNUMBER, "a number");
  if (got <= 0) return got == 0;
  d = lua_tonumber(L, -1);
  if (d != d || d > 1e15 || (incl ? d < min : d <= min) ||
      (integer && d != (double)(long long)d)) {
    cf_error_push(L, "usage", "client option %s: expected %s %s %d, got %s",
                  name, integer ? "an integer" : "a number",
                  incl ? ">=" : ">", (int)min, lua_tostring(L, -1));
    lua_remove(L, -2);
    return 0;
  }
  lua_pop(L, 1);
  *v = d;
  return 1;
}

/* Is host (as returned by curl_url_get) loopback? */
static int host_is_loopback(const char *h) {
  unsigned char a4[4], a6[16];
  char tmp[64];
  size_t n = strlen(h);
  if (strcmp(h, "localhost") == 0) return 1;
  if (inet_pton(AF_INET, h, a4) == 1) return a4[0] == 127;
  if (n > 2 && n < sizeof tmp && h[0] == '[' && h[n - 1] == ']') {
    memcpy(tmp, h + 1, n - 2);
    tmp[n - 2] = '\0';
    if (inet_pton(AF_INET6, tmp, a6) == 1) {
      static const unsigned char one[16] = {0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1};
      return memcmp(a6, one, 16) == 0;
    }
  }
  return 0;
}

/* Check base_url with libcurl's URL parser. Returns 1 and sets *http when
** it is plain http to loopback; else pushes a usage error, returns 0. */
static int check_base_url(lua_State *L, const char *url, int *http) {
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL, *user = NULL, *query = NULL, *frag = NULL;
  const char *problem = NULL;
  if (u == NULL) luaL_error(L, "cfaccess: not enough memory");
  if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
    problem = "is not a valid URL";
  else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
           curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
    problem = "is not a valid URL";
  else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
    problem = "must not contain credentials";
  else if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
           curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK)
    problem = "must not have a query or fragment";
  else if (strcmp(scheme, "https") == 0)
    *http = 0;
  else if (strcmp(scheme, "http") == 0) {
    if (host_is_loopback(host)) *http = 1;
    else problem = "must use https (plain http only for loopback hosts)";
  } else
    problem = "must use https";
  curl_free(scheme);
  curl_free(host);
  curl_free(user);
  curl_free(query);
  curl_free(frag);
  curl_url_cleanup(u);
  if (problem) {
    cf_error_push(L, "usage", "client option base_url %s", problem);
    return 0;
  }
  return 1;
}

static const char *env_nonempty(const char *name) {
  const char *v = getenv(name);
  return (v && *v) ? v : NULL;
}

/* Append "name: <prefix><value>" ("name:" when both are empty) to the
** list. The value may be secret, so the temporary copy is zeroed. Returns 0
** on allocation failure. */
static int add_header(struct curl_slist **list, const char *name,
                      const char *prefix, const char *value) {
  size_t n = strlen(name) + strlen(prefix) + strlen(value) + 3;
  char *s = (char *)malloc(n);
  struct curl_slist *nl;
  if (s == NULL) return 0;
  if (*prefix || *value) snprintf(s, n, "%s: %s%s", name, prefix, value);
  else snprintf(s, n, "%s:", name);
  nl = curl_slist_append(*list, s);
  memset(s, 0, n);
  free(s);
  if (nl == NULL) return 0;
  *list = nl;
  return 1;
}

/* ---- responses ------------------------------------------------------- */

/* After decoding: integral floats -> integers, cjson.null members of
** objects -> absent (lua-cjson 2.1.0 decodes every number as a float). */
static void fix_json(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  luaL_checkstack(L, 4, "cfaccess: JSON too deep");
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    int t = lua_type(L, -1);
    if (t == LUA_TNUMBER && !lua_isinteger(L, -1)) {
      lua_Number d = lua_tonumber(L, -1);
      if (d >= -9007199254740992.0 && d <= 9007199254740992.0 &&
          d == (lua_Number)(lua_Integer)d) {
        lua_pushvalue(L, -2);
        lua_pushinteger(L, (lua_Integer)d);
        lua_rawset(L, idx);
      }
    } else if (t == LUA_TTABLE) {
      fix_json(L, -1);
    } else if (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == NULL &&
               lua_type(L, -2) == LUA_TSTRING) {
      lua_pushvalue(L, -2);
      lua_pushnil(L);
      lua_rawset(L, idx);
    }
    lua_pop(L, 1);
  }
}

/* Decode the string at the top with the private cjson decoder (upvalue 1 of
** every method). Replaces it with the value and returns 1, or pops it and
** returns 0. */
static int json_decode(lua_State *L) {
  if (lua_type(L, lua_upvalueindex(1)) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, -2);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    lua_pop(L, 1);
    return 0;
  }
  if (lua_type(L, -1) == LUA_TTABLE) fix_json(L, -1);
  return 1;
}

typedef struct attempt_info {
  int retryable;
  int ambiguous;            /* the request may have been processed */
  int has_retry_after;
  double retry_after;
  int code;                 /* errors[1].code of an api error, else 0 */
} attempt_info;

/* Parse Retry-After (seconds or HTTP date) / retry-after-ms. */
static void read_retry_after(const cf_hdrs *h, attempt_info *ai) {
  char *end;
  double d;
  if (h->retry_after_ms[0]) {
    d = strtod(h->retry_after_ms, &end);
    if (end != h->retry_after_ms && *end == '\0' && d >= 0 && d < 1e12) {
      ai->has_retry_after = 1;
      ai->retry_after = d / 1000.0;
      return;
    }
  }
  if (h->retry_after[0]) {
    d = strtod(h->retry_after, &end);
    if (end != h->retry_after && *end == '\0' && d >= 0 && d < 1e12) {
      ai->has_retry_after = 1;
      ai->retry_after = d;
    } else {
      time_t t = curl_getdate(h->retry_after, NULL);
      if (t != (time_t)-1) {
        double w = difftime(t, time(NULL));
        ai->has_retry_after = 1;
        ai->retry_after = w > 0 ? w : 0;
      }
    }
  }
}

/* `Ratelimit: "default";r=<remaining>;t=<seconds>`: when little is left,
** spread the remaining requests over the window (r=0: wait t). */
static void read_ratelimit(cf_client *c, const char *v) {
  const char *r = strstr(v, ";r="), *t = strstr(v, ";t=");
  long rem, secs;
  double wait, until;
  if (!c->pace || r == NULL || t == NULL) return;
  rem = strtol(r + 3, NULL, 10);
  secs = strtol(t + 3, NULL, 10);
  if (rem < 0 || secs <= 0 || rem >= 10) return;
  wait = (double)secs / (double)(rem + 1);
  if (wait > c->max_retry_wait) wait = c->max_retry_wait;
  until = now_mono() + wait;
  if (until > c->not_before) c->not_before = until;
}

/* Where needle (n > 0 bytes) first occurs in s[0..len), or NULL. */
static const char *find_bytes(const char *s, size_t len, const char *needle, size_t n) {
  const char *end = s + len;
  while ((size_t)(end - s) >= n) {
    const char *p = (const char *)memchr(s, needle[0], (size_t)(end - s) - n + 1);
    if (p == NULL) return NULL;
    if (memcmp(p, needle, n) == 0) return p;
    s = p + 1;
  }
  return NULL;
}

/* If the value at the top is a string holding the client's credential,
** replace it with a copy that has "[redacted]" in each place; a table is
** replaced by a copy with its keys and values so treated (depth is
** bounded by the decoder's nesting limit). */
static void redact_top(lua_State *L, const cf_client *c) {
  size_t len;
  const char *s, *hit;
  if (lua_type(L, -1) == LUA_TTABLE) {
    int t = lua_gettop(L);
    luaL_checkstack(L, 6, "cfaccess: JSON too deep");
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {   /* t, copy, key, value */
      lua_pushvalue(L, -2);
      redact_top(L, c);
      lua_insert(L, -2);            /* t, copy, key, key', value */
      redact_top(L, c);
      lua_rawset(L, t + 1);
    }
    lua_remove(L, t);
    return;
  }
  if (lua_type(L, -1) != LUA_TSTRING) return;
  s = lua_tolstring(L, -1, &len);
  if ((hit = find_bytes(s, len, c->secret, c->secret_len)) == NULL) return;
  {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    do {
      luaL_addlstring(&b, s, (size_t)(hit - s));
      luaL_addstring(&b, "[redacted]");
      len -= (size_t)(hit - s) + c->secret_len;
      s = hit + c->secret_len;
    } while ((hit = find_bytes(s, len, c->secret, c->secret_len)) != NULL);
    luaL_addlstring(&b, s, len);
    luaL_pushresult(&b);
  }
  lua_remove(L, -2);
}

/* A server (or a proxy in front of it) may echo what it was sent: the
** fields of the err on top that carry its text (message, Cloudflare's
** errors and messages, ray_id) get "[redacted]" wherever the client's
** credential was, before any of it reaches the caller or on_log. */
static void redact_err(lua_State *L, const cf_client *c) {
  static const char *const fields[] = {"message", "errors", "messages", "ray_id", NULL};
  int i;
  if (c->secret_len == 0) return;
  for (i = 0; fields[i] != NULL; i++) {
    lua_getfield(L, -1, fields[i]);
    redact_top(L, c);
    lua_setfield(L, -2, fields[i]);
  }
}

/* Fill err (on top) from the envelope at env (or none): errors, messages,
** and return errors[1].code. */
static int copy_envelope_errors(lua_State *L, int env) {
  int code = 0;
  if (env == 0 || lua_type(L, env) != LUA_TTABLE) return 0;
  if (lua_getfield(L, env, "errors") == LUA_TTABLE) {
    if (lua_rawgeti(L, -1, 1) == LUA_TTABLE) {
      if (lua_getfield(L, -1, "code") == LUA_TNUMBER)
        code = (int)lua_tointeger(L, -1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_setfield(L, -2, "errors");
  } else lua_pop(L, 1);
  if (lua_getfield(L, env, "messages") == LUA_TTABLE)
    lua_setfield(L, -2, "messages");
  else lua_pop(L, 1);
  return code;
}

/* The first error's message and code of the envelope at env (the top of
** the stack), or NULL/0. The string stays alive with the envelope. */
static const char *first_error(lua_State *L, int env, int *code) {
  const char *m = NULL;
  *code = 0;
  if (env == 0 || lua_type(L, env) != LUA_TTABLE) return NULL;
  if (lua_getfield(L, env, "errors") == LUA_TTABLE &&
      lua_rawgeti(L, -1, 1) == LUA_TTABLE) {
    if (lua_getfield(L, -1, "code") == LUA_TNUMBER)
      *code = (int)lua_tointeger(L, -1);
    if (lua_getfield(L, -2, "message") == LUA_TSTRING) m = lua_tostring(L, -1);
  }
  lua_settop(L, env);
  return m;
}

static int retryable_curl(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT: case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR: case CURLE_RECV_ERROR: case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE: case CURLE_SEND_FAIL_REWIND:
    case CURLE_SSL_CONNECT_ERROR: case CURLE_HTTP2: case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3: case CURLE_QUIC_CONNECT_ERROR:
      return 1;
    default:
      return 0;
  }
}

/* ---- the request engine ----------------------------------------------
** Every request, the sequential methods' and client:batch's alike, runs
** through one state machine per operation ("slot"): start an exchange on
** the client's multi handle, read what came back, then either finish the
** operation, schedule a retry (backoff or Retry-After), fetch the next page
** of a list, or (after an ambiguous create) list the collection to see
** whether the create happened. A sequential call is a batch of one. */

/* Pacing is judged by the server's clock, which sees a request somewhere
** between our start and its response. So a request counts from its start
** (in flight) to `rl_per` after its response (the ring holds the last
** rl_requests response times, oldest first), and one may start only while
** fewer than rl_requests count: then no window of rl_per seconds at the
** server can hold more than rl_requests, whatever the latency, however
** many run at once. */

/* Seconds until a request may start (0: now). *paced is set when it is the
** client's own pacing (window full, Ratelimit header) that holds it back;
** a server's Retry-After (pause_until) pauses every start too. */
static double pace_wait(const cf_client *c, double now, int *paced) {
  double wait = 0;
  *paced = 0;
  if (c->pace) {
    int k = c->rl_requests - c->inflight;  /* responses allowed in window + 1 */
    if (c->not_before > now) wait = c->not_before - now;
    if (k <= 0) {
      if (wait < c->rl_per) wait = c->rl_per;   /* until one finishes */
    } else if (c->ring_count >= k) {
      double t = c->ring[(c->ring_head + c->ring_count - k) % c->rl_requests] +
                 c->rl_per - now;
      if (t > wait) wait = t;
    }
    *paced = wait > 0;
  }
  if (c->pause_until - now > wait) wait = c->pause_until - now;
  return wait;
}

/* A request starts. */
static void pace_take(cf_client *c) {
  if (c->pace) c->inflight++;
}

/* A request started by pace_take is over (answered or failed). */
static void pace_done(cf_client *c) {
  double now;
  if (!c->pace || c->inflight <= 0) return;
  c->inflight--;
  now = now_mono();
  if (c->ring_count == c->rl_requests) {
    c->ring[c->ring_head] = now;
    c->ring_head = (c->ring_head + 1) % c->rl_requests;
  } else {
    c->ring[(c->ring_head + c->ring_count) % c->rl_requests] = now;
    c->ring_count++;
  }
}

static double backoff(cf_client *c, int attempt) {
  double base = 0.5;
  int i;
  for (i = 1; i < attempt && base < 8; i++) base *= 2;
  if (base > 8) base = 8;
  return base / 2 + rand01(c) * base / 2;
}
/* Does the request value at idx match the listed value at gidx? (see the
** create contract in API.md). key: the field name, for the IP rule. */
static int policy_match(lua_State *L, int idx, int gidx, const char *key) {
  int rt, gt;
  idx = lua_absindex(L, idx);
  gidx = lua_absindex(L, gidx);
  rt = lua_type(L, idx);
  gt = lua_type(L, gidx);
  luaL_checkstack(L, 6, "cfaccess: policy too deep");
  if (gt == LUA_TNIL || (gt == LUA_TLIGHTUSERDATA && lua_touserdata(L, gidx) == NULL)) {
    if (rt == LUA_TBOOLEAN) return !lua_toboolean(L, idx);
    if (rt == LUA_TTABLE) {
      int empty;
      lua_pushnil(L);
      empty = lua_next(L, idx) == 0;
      if (!empty) lua_pop(L, 2);
      return empty;
    }
    return 0;
  }
  if (rt != gt) return 0;
  if (rt == LUA_TNUMBER || rt == LUA_TBOOLEAN)
    return lua_compare(L, idx, gidx, LUA_OPEQ);
  if (rt == LUA_TSTRING) {
    size_t rn, gn;
    const char *r = lua_tolstring(L, idx, &rn), *g = lua_tolstring(L, gidx, &gn);
    if (rn == gn && memcmp(r, g, rn) == 0) return 1;
    if (key && strcmp(key, "ip") == 0) {   /* 1.2.3.4 == 1.2.3.4/32 */
      if (rn > 3 && memcmp(r + rn - 3, "/32", 3) == 0 && strchr(r, ':') == NULL) rn -= 3;
      else if (rn > 4 && memcmp(r + rn - 4, "/128", 4) == 0) rn -= 4;
      if (gn > 3 && memcmp(g + gn - 3, "/32", 3) == 0 && strchr(g, ':') == NULL) gn -= 3;
      else if (gn > 4 && memcmp(g + gn - 4, "/128", 4) == 0) gn -= 4;
      return rn == gn && memcmp(r, g, rn) == 0;
    }
    return 0;
  }
  if (rt == LUA_TTABLE) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx), i;
    if (n > 0) {                      /* array: same length, element-wise */
      if ((lua_Integer)lua_rawlen(L, gidx) != n) return 0;
      for (i = 1; i <= n; i++) {
        int ok;
        lua_rawgeti(L, idx, i);
        lua_rawgeti(L, gidx, i);
        ok = policy_match(L, -2, -1, key);
        lua_pop(L, 2);
        if (!ok) return 0;
      }
      return 1;
    }
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {   /* object: every key the request set */
      int ok;
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
      lua_pushvalue(L, -2);
      lua_rawget(L, gidx);
      ok = policy_match(L, -2, -1, k);
      lua_pop(L, 2);
      if (!ok) {
        lua_pop(L, 1);
        return 0;
      }
    }
    return 1;
  }
  return 0;
}
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
  cf_rbuf *resp;
  cf_rbuf own_resp;
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
  s->body.len = 0;
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
  pace_take(c);
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

/* interpret(), before the credential is taken out of the err. */
static int interpret_(lua_State *L, cf_engine *e, int k, attempt_info *ai) {
  cf_slot *s = &e->slots[k];
  cf_exchange *x = &s->x;
  cf_rbuf *resp = x->resp;
  const char *method = x->method, *path = s->path;
  int env = 0;
  memset(ai, 0, sizeof *ai);
  if (x->hdrs.ratelimit[0]) read_ratelimit(e->c, x->hdrs.ratelimit);
  if (x->rc != CURLE_OK) {
    if (resp->too_big) {
      cf_error_push(L, "decode", "%s %s: response exceeds max_response_bytes (%I)",
                    method, path, (lua_Integer)resp->max);
    } else if (resp->oom) {
      cf_error_push(L, "network", "%s %s: out of memory reading the response",
                    method, path);
    } else {
      int timeout = x->rc == CURLE_OPERATION_TIMEDOUT;
      if (x->rewind_refused)
        cf_error_push(L, "network", "%s %s: connection lost after the request "
                      "was sent (not re-sent): %s", method, path, x->errbuf);
      else
        cf_error_push(L, timeout ? "timeout" : "network", "%s %s: %s",
                      method, path, x->errbuf);
      ai->retryable = x->rewind_refused || retryable_curl(x->rc);
      ai->ambiguous = x->body != NULL && (x->body_read > 0 || x->rewind_refused);
    }
    set_response_fields(L, x);
    return 0;
  }
  if (resp->len > 0) {
    lua_pushlstring(L, resp->data, resp->len);
    if (json_decode(L)) env = lua_gettop(L);
  }
  if (x->status >= 200 && x->status < 300) {
    if (env && lua_type(L, env) == LUA_TTABLE) {
      int st = lua_getfield(L, env, "success");
      int ok = lua_toboolean(L, -1);
      lua_pop(L, 1);
      if (st == LUA_TBOOLEAN && ok) return 1;       /* envelope on top */
      if (st == LUA_TBOOLEAN) {
        int code;
        const char *m = first_error(L, env, &code);
        cf_error_push(L, "api", "%s %s: HTTP %d with success=false: %s (code %d)",
                      method, path, (int)x->status, m ? m : "(no message)", code);
        ai->code = copy_envelope_errors(L, env);
      } else {
        cf_error_push(L, "decode", "%s %s: HTTP %d: response is not a "
                      "Cloudflare envelope", method, path, (int)x->status);
      }
    } else {
      cf_error_push(L, "decode", "%s %s: HTTP %d: response is not valid JSON",
                    method, path, (int)x->status);
    }
  } else {
    int code;
    const char *m = first_error(L, env, &code);
    if (m && code)
      cf_error_push(L, "api", "%s %s: HTTP %d: %s (code %d)", method, path,
                    (int)x->status, m, code);
    else if (m)
      cf_error_push(L, "api", "%s %s: HTTP %d: %s", method, path, (int)x->status, m);
    else
      cf_error_push(L, "api", "%s %s: HTTP %d", method, path, (int)x->status);
    ai->code = copy_envelope_errors(L, env);
    ai->retryable = x->status == 408 || x->status == 429 || x->status >= 500;
    ai->ambiguous = x->body != NULL && x->status >= 500;
    read_retry_after(&x->hdrs, ai);
  }
  if (strcmp(x->hdrs.should_retry, "true") == 0) ai->retryable = 1;
  else if (strcmp(x->hdrs.should_retry, "false") == 0) ai->retryable = 0;
  set_response_fields(L, x);
  if (ai->has_retry_after) {
    push_seconds(L, ai->retry_after);
    lua_setfield(L, -2, "retry_after");
  }
  if (env) lua_remove(L, env);
  return 0;
}

/* Read slot k's finished exchange. Pushes the decoded envelope (returns 1)
** or an err with nothing of the credential in it (returns 0); fills ai. */
static int interpret(lua_State *L, cf_engine *e, int k, attempt_info *ai) {
  if (interpret_(L, e, k, ai)) return 1;
  redact_err(L, e->c);
  return 0;
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
    cf_error_push(L, "decode", "GET %s: result is not a list", s->path);
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

/* The listed policy (in the array at list) that matches the request body
** (see the create contract in API.md): pushed (1), or nothing (0). */
static int match_listed(lua_State *L, int list, const char *body, size_t len) {
  int top = lua_gettop(L), req;
  lua_Integer i, n;
  lua_pushlstring(L, body, len);
  if (!json_decode(L)) {
    lua_settop(L, top);
    return 0;
  }
  req = lua_gettop(L);
  n = (lua_Integer)lua_rawlen(L, list);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    if (lua_type(L, -1) == LUA_TTABLE && policy_match(L, req, -1, NULL)) {
      lua_replace(L, top + 1);
      lua_settop(L, top + 1);
      return 1;
    }
    lua_pop(L, 1);
  }
  lua_settop(L, top);
  return 0;
}

/* Log "... failed (err); retry n of m in w s" for the err on top. */
static void log_retry(lua_State *L, cf_engine *e, int k, double wait) {
  cf_slot *s = &e->slots[k];
  logf_(L, CI, "info", "%s %s failed (%s); retry %d of %d in %f s", s->x.method,
        s->path, luaL_tolstring(L, -1, NULL), s->attempt, e->c->max_retries, wait);
  lua_pop(L, 1);
}

/* The listing after an ambiguous create is over: found (the match on top,
** 1) or not (0). */
static void check_done(lua_State *L, cf_engine *e, int k, int found) {
  cf_slot *s = &e->slots[k];
  if (found) {
    logf_(L, CI, "warn", "found the policy the failed create made; not creating another");
    deliver(L, e, k, 1);
    return;
  }
  logf_(L, CI, "info", "no matching policy in %s: the create did not happen",
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

/* Slot k's exchange is finished: decide what comes next. */
static void advance(lua_State *L, cf_engine *e, int k) {
  cf_client *c = e->c;
  cf_slot *s = &e->slots[k];
  attempt_info ai;
  int last;
  double wait = 0, now;
  cf_transport_finish(&c->tr, &s->x);
  pace_done(c);
  s->state = SL_READY;
  s->ready_at = 0;
  if (interpret(L, e, k, &ai)) {
    int r;
    if (s->phase == PH_MAIN) {           /* the result object is the value */
      if (lua_getfield(L, -1, "result") != LUA_TTABLE) {
        cf_error_push(L, "decode", "%s %s: the response has no result object",
                      s->x.method, s->path);
        set_response_fields(L, &s->x);
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
        logf_(L, CI, "warn", "could not list %s to check for a committed create",
              s->rq.list_url + c->base_len);
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
        r = match_listed(L, acc, s->rq.body, s->rq.body_len);
        if (r) lua_remove(L, acc);
        else lua_pop(L, 1);
        check_done(L, e, k, r);
      }
    }
    return;
  }
  /* a failed try: the err is on top */
  set_int(L, "attempts", s->attempt);
  last = !ai.retryable || s->attempt > c->max_retries;
  now = now_mono();
  if (!last) {
    wait = ai.has_retry_after ? ai.retry_after : backoff(c, s->attempt);
    if (ai.has_retry_after && ai.retry_after > c->max_retry_wait) {
      logf_(L, CI, "warn", "%s %s: server asked to wait %f s, more than "
            "max_retry_wait; giving up", s->x.method, s->path, ai.retry_after);
      last = 1;
    } else if (ai.has_retry_after && now + wait > c->pause_until) {
      c->pause_until = now + wait;   /* no request of this client starts */
    }
  }
  if (s->phase == PH_CHECK) {
    if (last) {
      logf_(L, CI, "warn", "could not list %s to check for a committed create: %s",
            s->rq.list_url + c->base_len, luaL_tolstring(L, -1, NULL));
      lua_pop(L, 2);
      anchored(L, e, k, AN_ERR);       /* the create's err stays */
      deliver(L, e, k, 0);
      return;
    }
  } else if (s->phase == PH_MAIN && s->rq.create && s->rq.list_url &&
             (ai.ambiguous || (s->was_ambiguous && ai.code == 12130))) {
    s->was_ambiguous = 1;
    s->last = last;
    s->main_attempt = s->attempt;
    anchor(L, e, k, AN_ERR);
    logf_(L, CI, "warn", "create may have reached the server; listing %s to check",
          s->rq.list_url + c->base_len);
    begin_pages(L, e, k, PH_CHECK);
    /* give a slow server time to commit */
    s->ready_at = last ? 0 : now_mono() + wait;
    return;
  }
  if (last) {
    deliver(L, e, k, 0);
    return;
  }
  log_retry(L, e, k, wait);
  lua_pop(L, 1);
  s->ready_at = now_mono() + wait;
}

/* The engine proper, run under lua_pcall (upvalue 1: the JSON decoder).
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
    double now = now_mono(), wake = now + 1.0, w;
    int k, running = 0, finished = 0, paced, done0 = e->done;
    for (k = 0; k < e->nslots && e->next <= e->sp.n; k++)
      if (e->slots[k].state == SL_FREE) assign(L, e, k);
    for (k = 0; k < e->nslots; k++) {
      cf_slot *s = &e->slots[k];
      if (s->state == SL_READY) {
        if (s->ready_at > now) {
          if (s->ready_at < wake) wake = s->ready_at;
          continue;
        }
        if ((w = pace_wait(c, now, &paced)) > 0) {
          if (paced && !e->pace_logged) {
            e->pace_logged = 1;
            logf_(L, CI, "info", "pacing: waiting %f s before the next request", w);
          }
          if (now + w < wake) wake = now + w;
          continue;
        }
        e->pace_logged = 0;
        if (c->closed) {   /* on_log or on_progress closed the client */
          s->attempt++;
          cf_error_push(L, "usage", "%s %s: the client was closed during the request",
                        s->phase == PH_MAIN ? s->rq.method : "GET", s->path);
          set_int(L, "attempts", s->attempt);
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
      sleep_for(wake - now);     /* every slot waits (backoff, pacing) */
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
      pace_done(e->c);
      s->state = SL_FREE;
    }
    free(s->own_resp.data);
    s->own_resp.data = NULL;
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
      s->own_resp.max = c->resp.max;
    }
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, engine_main, 1);
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
  if (rc != LUA_OK) lua_error(L);
  ok = e->ok;
  if (res) {
    lua_pop(L, 1);                              /* the engine */
    return 1;
  }
  lua_remove(L, -2);                            /* the engine */
  return ok;
}
/* ---- methods --------------------------------------------------------- */

/* Check an id argument: a string (else raise), then its format (else push
** an `invalid` error naming the argument and return 0). */
static int check_id(lua_State *L, int idx, const char *name, int allow_hex32) {
  size_t n;
  const char *s;
  luaL_checktype(L, idx, LUA_TSTRING);
  s = lua_tolstring(L, idx, &n);
  if (id_uuid(s, n) || (allow_hex32 && id_hex32(s, n))) return 1;
  cf_error_push(L, "invalid", "%s: expected %s", name,
                allow_hex32 ? "a UUID or 32 hex characters" : "a UUID");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "argument");
  return 0;
}

/* Push s for a URL path: as it is when every byte is unreserved (RFC 3986;
** validated ids always are), else percent-encoded (belt and braces). */
static const char *push_escaped(lua_State *L, cf_client *c, const char *s) {
  const char *p;
  char *e;
  for (p = s; (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
              *p == '~'; p++) {}
  if (*p == '\0') return lua_pushstring(L, s);
  e = curl_easy_escape(c->tr.easy, s, 0);
  if (e == NULL) luaL_error(L, "cfaccess: not enough memory");
  lua_pushstring(L, e);   /* raises only without memory */
  curl_free(e);
  return lua_tostring(L, -1);
}

/* Read the encoding options of an app-policy method at idx and pick the
** kind (zone client: "zone"; account: "app" or "infrastructure"). */
static int app_kind(lua_State *L, cf_client *c, int idx, cf_encode_opts *o) {
  int has_kind = 0;
  if (!lua_isnoneornil(L, idx)) {
    luaL_checktype(L, idx, LUA_TTABLE);
    has_kind = lua_getfield(L, idx, "kind") != LUA_TNIL;
    lua_pop(L, 1);
  }
  if (!cf_encode_opts_read(L, idx, o)) return 0;
  if (!has_kind) o->kind = c->zone ? CF_KIND_ZONE : CF_KIND_APP;
  if (c->zone ? o->kind != CF_KIND_ZONE
              : (o->kind != CF_KIND_APP && o->kind != CF_KIND_INFRA)) {
    cf_error_push(L, "usage", "kind: a %s client takes %s application policies",
                  c->zone ? "zone" : "account",
                  c->zone ? "\"zone\"" : "\"app\" or \"infrastructure\"");
    return 0;
  }
  return 1;
}

/* Encode the policy at idx. Returns the buffer and pushes one value (its
** owner userdata, or nil when it is the client's own buffer), or returns
** NULL with err pushed. The client's buffer saves an allocation and a
** finalizer per request; a call re-entered from on_log while a request is
** in flight gets a buffer of its own. */
static cf_buf *encode_policy(lua_State *L, cf_client *c, int idx,
                             const cf_encode_opts *o) {
  cf_buf *b;
  if (c->busy == 0) {
    b = &c->body;
    b->len = 0;
    lua_pushnil(L);
  } else b = cf_buf_push(L);
  if (!cf_policy_encode(L, idx, o, NULL, b)) {
    lua_remove(L, -2);
    return NULL;
  }
  return b;
}

/* URL/path pairs: the URL is a Lua string, the path (for messages) is a
** light userdata pointing into it, just after the base URL. */
#define PATHAT(i) ((const char *)lua_touserdata(L, (i)))

/* Push "<base>/<scope>/access/apps/<app>/policies" (URL) and its path. */
void cf_client_app_paths(lua_State *L, cf_client *c, int app_idx) {
  const char *app = push_escaped(L, c, lua_tostring(L, app_idx));
  const char *url = lua_pushfstring(L, "%s/%s/access/apps/%s/policies", c->base,
                                    c->scope, app);
  lua_pushlightuserdata(L, (void *)(url + c->base_len));   /* the path */
  lua_remove(L, -3);
}

void cf_client_reusable_paths(lua_State *L, cf_client *c) {
  const char *url = lua_pushfstring(L, "%s/%s/access/policies", c->base, c->scope);
  lua_pushlightuserdata(L, (void *)(url + c->base_len));   /* the path */
}

/* Replace the URL/path pair on top with the pair for item "/<id>". */
void cf_client_item_paths(lua_State *L, cf_client *c, int id_idx) {
  const char *id = push_escaped(L, c, lua_tostring(L, id_idx));
  const char *url = lua_pushfstring(L, "%s/%s", lua_tostring(L, -3), id);
  lua_pushlightuserdata(L, (void *)(url + c->base_len));
  lua_copy(L, -2, -5);
  lua_copy(L, -1, -4);
  lua_pop(L, 3);
}

/* prep for a single call: the request was built by the method. */
static int prep_single(lua_State *L, cf_client *c, int arg, int i, cf_req *rq,
                       cf_buf *body) {
  (void)c; (void)i; (void)body;
  *rq = *(const cf_req *)lua_touserdata(L, arg);
  return 1;
}

/* Run rq as a batch of one and return its value (or nil, err). */
static int finish(lua_State *L, cf_client *c, cf_req *rq) {
  cf_exec_spec sp;
  memset(&sp, 0, sizeof sp);
  sp.n = sp.concurrency = 1;
  sp.prep = prep_single;
  lua_pushlightuserdata(L, rq);
  sp.arg = lua_gettop(L);
  if (!cf_client_exec(L, c, &sp)) return fail(L);
  return 1;
}

/* Shared body of the create/update methods. */
static int send_policy(lua_State *L, cf_client *c, const char *method,
                       int pol_idx, const cf_encode_opts *o, const char *url,
                       const char *path, const char *list_url) {
  cf_req rq;
  cf_buf *b;
  luaL_checktype(L, pol_idx, LUA_TTABLE);
  if ((b = encode_policy(L, c, pol_idx, o)) == NULL) return fail(L);
  memset(&rq, 0, sizeof rq);
  rq.method = method;
  rq.url = url;
  rq.path = path;
  rq.body = b->data;   /* owned by the userdata on the stack */
  rq.body_len = b->len;
  rq.create = strcmp(method, "POST") == 0;
  rq.list_url = rq.create ? list_url : NULL;
  return finish(L, c, &rq);
}

static int simple(lua_State *L, cf_client *c, const char *method,
                  const char *url, const char *path) {
  cf_req rq;
  memset(&rq, 0, sizeof rq);
  rq.method = method;
  rq.url = url;
  rq.path = path;
  return finish(L, c, &rq);
}

/* GET every page (or page `page`) of the collection at url. */
static int list_all(lua_State *L, cf_client *c, const char *url, const char *path,
                    lua_Integer page, lua_Integer per_page) {
  cf_req rq;
  memset(&rq, 0, sizeof rq);
  rq.method = "GET";
  rq.url = rq.list_url = url;
  rq.path = path;
  rq.list = 1;
  rq.page = page;
  rq.per_page = per_page;
  return finish(L, c, &rq);
}

static const char *const list_opt_names[] = {"page", "per_page", NULL};

/* Read {page=, per_page=} at idx (nil allowed). */
static int list_opts(lua_State *L, int idx, lua_Integer *page, lua_Integer *pp) {
  int i;
  *page = *pp = 0;
  if (lua_isnoneornil(L, idx)) return 1;
  luaL_checktype(L, idx, LUA_TTABLE);
  if (!check_keys(L, idx, list_opt_names, "list options")) return 0;
  for (i = 0; i < 2; i++) {
    lua_Integer *out = i == 0 ? page : pp;
    int t = lua_getfield(L, idx, list_opt_names[i]);
    if (t != LUA_TNIL) {
      int isint;
      lua_Integer v = lua_tointegerx(L, -1, &isint);
      if (t != LUA_TNUMBER || !isint || v < 1 || (i == 1 && v > 1000)) {
        cf_error_push(L, "usage", "list option %s: expected an integer %s",
                      list_opt_names[i], i == 0 ? ">= 1" : "from 1 to 1000");
        lua_remove(L, -2);
        return 0;
      }
      *out = v;
    }
    lua_pop(L, 1);
  }
  return 1;
}

/* client:create_app_policy(app_id, policy [, opts]) */
static int m_create_app_policy(lua_State *L) {
  cf_client *c = cf_client_check(L);
  cf_encode_opts o;
  int top;
  luaL_checktype(L, 3, LUA_TTABLE);
  if (!check_id(L, 2, "app_id", 1)) return fail(L);
  if (!app_kind(L, c, 4, &o)) return fail(L);
  lua_settop(L, 4);
  cf_client_app_paths(L, c, 2);
  top = lua_gettop(L);
  return send_policy(L, c, "POST", 3, &o, lua_tostring(L, top - 1),
                     PATHAT(top), lua_tostring(L, top - 1));
}

/* client:list_app_policies(app_id [, {page=, per_page=}]) */
static int m_list_app_policies(lua_State *L) {
  cf_client *c = cf_client_check(L);
  lua_Integer page, pp;
  if (!check_id(L, 2, "app_id", 1)) return fail(L);
  if (!list_opts(L, 3, &page, &pp)) return fail(L);
  lua_settop(L, 3);
  cf_client_app_paths(L, c, 2);
  return list_all(L, c, lua_tostring(L, 4), PATHAT(5), page, pp);
}

/* client:get_app_policy / delete_app_policy (app_id, policy_id) */
static int app_item(lua_State *L, const char *method) {
  cf_client *c = cf_client_check(L);
  if (!check_id(L, 2, "app_id", 1) || !check_id(L, 3, "policy_id", 0))
    return fail(L);
  lua_settop(L, 3);
  cf_client_app_paths(L, c, 2);
  cf_client_item_paths(L, c, 3);
  return simple(L, c, method, lua_tostring(L, -2), PATHAT(-1));
}

static int m_get_app_policy(lua_State *L) { return app_item(L, "GET"); }
static int m_delete_app_policy(lua_State *L) { return app_item(L, "DELETE"); }

static int m_update_app_policy(lua_State *L) {
  cf_client *c = cf_client_check(L);
  cf_encode_opts o;
  luaL_checktype(L, 4, LUA_TTABLE);
  if (!check_id(L, 2, "app_id", 1) || !check_id(L, 3, "policy_id", 0))
    return fail(L);
  if (!app_kind(L, c, 5, &o)) return fail(L);
  lua_settop(L, 5);
  cf_client_app_paths(L, c, 2);
  cf_client_item_paths(L, c, 3);
  return send_policy(L, c, "PUT", 4, &o, lua_tostring(L, 6),
                     PATHAT(7), NULL);
}

/* Reusable policies exist only at account scope. */
static int reusable_ok(lua_State *L, cf_client *c) {
  if (!c->zone) return 1;
  cf_error_push(L, "usage", "reusable policies exist only at account scope "
                "(this client has a zone_id)");
  return 0;
}

/* Encoding options of a reusable method at idx: the kind is "reusable". */
static int reusable_kind(lua_State *L, int idx, cf_encode_opts *o) {
  int has_kind = 0;
  if (!lua_isnoneornil(L, idx)) {
    luaL_checktype(L, idx, LUA_TTABLE);
    has_kind = lua_getfield(L, idx, "kind") != LUA_TNIL;
    lua_pop(L, 1);
  }
  if (!cf_encode_opts_read(L, idx, o)) return 0;
  if (has_kind && o->kind != CF_KIND_REUSABLE) {
    cf_error_push(L, "usage", "kind: reusable policy methods take kind \"reusable\"");
    return 0;
  }
  o->kind = CF_KIND_REUSABLE;
  return 1;
}

static int m_create_policy(lua_State *L) {
  cf_client *c = cf_client_check(L);
  cf_encode_opts o;
  int top;
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!reusable_ok(L, c) || !reusable_kind(L, 3, &o)) return fail(L);
  lua_settop(L, 3);
  cf_client_reusable_paths(L, c);
  top = lua_gettop(L);
  return send_policy(L, c, "POST", 2, &o, lua_tostring(L, top - 1),
                     PATHAT(top), lua_tostring(L, top - 1));
}

static int m_list_policies(lua_State *L) {
  cf_client *c = cf_client_check(L);
  lua_Integer page, pp;
  if (!list_opts(L, 2, &page, &pp)) return fail(L);
  if (!reusable_ok(L, c)) return fail(L);
  lua_settop(L, 2);
  cf_client_reusable_paths(L, c);
  return list_all(L, c, lua_tostring(L, 3), PATHAT(4), page, pp);
}

/* client:get_policy / delete_policy (policy_id) */
static int reusable_item(lua_State *L, const char *method) {
  cf_client *c = cf_client_check(L);
  if (!check_id(L, 2, "policy_id", 0) || !reusable_ok(L, c)) return fail(L);
  lua_settop(L, 2);
  cf_client_reusable_paths(L, c);
  cf_client_item_paths(L, c, 2);
  return simple(L, c, method, lua_tostring(L, -2), PATHAT(-1));
}

static int m_get_policy(lua_State *L) { return reusable_item(L, "GET"); }
static int m_delete_policy(lua_State *L) { return reusable_item(L, "DELETE"); }

static int m_update_policy(lua_State *L) {
  cf_client *c = cf_client_check(L);
  cf_encode_opts o;
  luaL_checktype(L, 3, LUA_TTABLE);
  if (!check_id(L, 2, "policy_id", 0) || !reusable_ok(L, c) ||
      !reusable_kind(L, 4, &o))
    return fail(L);
  lua_settop(L, 4);
  cf_client_reusable_paths(L, c);
  cf_client_item_paths(L, c, 2);
  return send_policy(L, c, "PUT", 3, &o, lua_tostring(L, 5),
                     PATHAT(6), NULL);
}

static const luaL_Reg client_methods[] = {
  {"create_app_policy", m_create_app_policy},
  {"list_app_policies", m_list_app_policies},
  {"get_app_policy", m_get_app_policy},
  {"update_app_policy", m_update_app_policy},
  {"delete_app_policy", m_delete_app_policy},
  {"create_policy", m_create_policy},
  {"list_policies", m_list_policies},
  {"get_policy", m_get_policy},
  {"update_policy", m_update_policy},
  {"delete_policy", m_delete_policy},
  {"batch", cf_client_batch},
  {"close", client_close},
  {NULL, NULL}
};

static const luaL_Reg client_meta[] = {
  {"__gc", client_gc},
  {"__close", client_close},
  {"__tostring", client_tostring},
  {NULL, NULL}
};

/* ---- constructor ----------------------------------------------------- */

typedef struct auth_src {
  const char *value;
  const char *opt, *env;    /* option name and environment variable */
  int from_env;
} auth_src;

/* Take an auth field from the options (string) or the environment. */
static int auth_field(lua_State *L, const char *opt, const char *env,
                      auth_src *out) {
  out->value = NULL;
  out->opt = opt;
  out->env = env;
  out->from_env = 0;
  if (!opt_string(L, 1, opt, &out->value)) return 0;
  if (out->value == NULL && (out->value = env_nonempty(env)) != NULL) {
    out->from_env = 1;
    if (has_ctl(out->value, strlen(out->value))) {
      cf_error_push(L, "usage", "environment variable %s must not contain CR, LF", env);
      return 0;
    }
  }
  return 1;
}

/* Pushes "argument api_token" or "environment variable ...". */
static const char *where(lua_State *L, const auth_src *a) {
  return a->from_env ? lua_pushfstring(L, "environment variable %s", a->env)
                     : lua_pushfstring(L, "argument %s", a->opt);
}

/* cfaccess.core.client(opts) -> client | nil, err */
static int client_new(lua_State *L) {
  cf_client *c;
  const char *acct = NULL, *zone = NULL, *base = NULL, *cafile = NULL,
             *proxy = NULL, *ua = NULL;
  auth_src tok, key, email;
  double timeout = 60, ctimeout = 10, retries = 2, rwait = 60,
         maxresp = 8.0 * 1024 * 1024, rl_req = 1200, rl_per = 300;
  int pacing = 1, http = 0, t;
  cf_transport_cfg cfg;
  char errbuf[256];

  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  if (!check_keys(L, 1, option_names, "client options")) return fail(L);
  if (!opt_string(L, 1, "account_id", &acct) || !opt_string(L, 1, "zone_id", &zone))
    return fail(L);
  if ((acct == NULL) == (zone == NULL)) {
    cf_error_push(L, "usage", "client options: give exactly one of account_id and zone_id");
    return fail(L);
  }
  if (!id_hex32(acct ? acct : zone, strlen(acct ? acct : zone))) {
    cf_error_push(L, "invalid", "%s: expected 32 hex characters",
                  acct ? "account_id" : "zone_id");
    return fail(L);
  }
  if (!auth_field(L, "api_token", "CLOUDFLARE_API_TOKEN", &tok) ||
      !auth_field(L, "api_key", "CLOUDFLARE_API_KEY", &key) ||
      !auth_field(L, "api_email", "CLOUDFLARE_EMAIL", &email))
    return fail(L);
  if (tok.value && (key.value || email.value)) {
    const auth_src *other = key.value ? &key : &email;
    const char *w1 = where(L, &tok), *w2 = where(L, other);
    cf_error_push(L, "usage", "client options: both an API token (from %s) and "
                  "an API key/email (from %s) were given; use exactly one scheme",
                  w1, w2);
    return fail(L);
  }
  if (!tok.value && !(key.value && email.value)) {
    if (key.value || email.value)
      cf_error_push(L, "usage", "client options: api_key and api_email go together "
                    "(%s is missing)", key.value ? "api_email" : "api_key");
    else
      cf_error_push(L, "usage", "client options: no credentials (give api_token, or "
                    "api_key and api_email, or set CLOUDFLARE_API_TOKEN)");
    return fail(L);
  }
  if (!opt_string(L, 1, "base_url", &base) || !opt_string(L, 1, "cafile", &cafile) ||
      !opt_string(L, 1, "proxy", &proxy) || !opt_string(L, 1, "user_agent", &ua))
    return fail(L);
  if (base == NULL) {
    base = env_nonempty("CLOUDFLARE_BASE_URL");
    if (base && has_ctl(base, strlen(base))) {
      cf_error_push(L, "usage", "environment variable CLOUDFLARE_BASE_URL must not "
                    "contain CR or LF");
      return fail(L);
    }
    if (base == NULL) base = DEFAULT_BASE_URL;
  }
  if (!check_base_url(L, base, &http)) return fail(L);
  if (!opt_number(L, 1, "timeout", &timeout, 0, 0, 0) ||
      !opt_number(L, 1, "connect_timeout", &ctimeout, 0, 0, 0) ||
      !opt_number(L, 1, "max_retries", &retries, 0, 1, 1) ||
      !opt_number(L, 1, "max_retry_wait", &rwait, 0, 1, 0) ||
      !opt_number(L, 1, "max_response_bytes", &maxresp, 0, 0, 1))
    return fail(L);
  if (retries > 100) {
    cf_error_push(L, "usage", "client option max_retries: at most 100");
    return fail(L);
  }
  t = lua_getfield(L, 1, "rate_limit");
  if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1)) pacing = 0;
  else if (t == LUA_TTABLE) {
    static const char *const rl_names[] = {"requests", "per", NULL};
    int rl = lua_gettop(L);
    if (!check_keys(L, rl, rl_names, "rate_limit") ||
        !opt_number(L, rl, "requests", &rl_req, 1, 1, 1) ||
        !opt_number(L, rl, "per", &rl_per, 0, 0, 0))
      return fail(L);
    lua_getfield(L, rl, "requests");
    lua_getfield(L, rl, "per");
    if (lua_isnil(L, -1) || lua_isnil(L, -2)) {
      cf_error_push(L, "usage", "client option rate_limit: give both requests and per");
      return fail(L);
    }
    lua_pop(L, 2);
    if (rl_req > MAX_RING) {
      cf_error_push(L, "usage", "client option rate_limit.requests: at most %d", MAX_RING);
      return fail(L);
    }
  } else if (t != LUA_TNIL) {
    cf_error_push(L, "usage", "client option rate_limit: expected nil, false or "
                  "{requests=, per=}, got %s", t == LUA_TBOOLEAN ? "true" : lua_typename(L, t));
    return fail(L);
  }
  lua_pop(L, 1);
  if ((t = opt_get(L, 1, "on_log", LUA_TFUNCTION, "a function")) < 0) return fail(L);
  lua_pop(L, t);   /* the function, when there is one */
  if (!cf_transport_global_init()) {
    cf_error_push(L, "network", "curl_global_init failed");
    return fail(L);
  }

  /* Build: from here on everything hangs off the userdata. */
  c = (cf_client *)lua_newuserdatauv(L, sizeof *c, 1);
  memset(c, 0, sizeof *c);
  c->closed = 1;  /* until fully built, __gc frees what exists */
  luaL_setmetatable(L, CF_CLIENT_MT);
  lua_getfield(L, 1, "on_log");
  lua_setiuservalue(L, -2, 1);
  c->closed = 0;
  c->zone = zone != NULL;
  snprintf(c->scope, sizeof c->scope, "%s/%s", zone ? "zones" : "accounts",
           zone ? zone : acct);
  c->max_retries = (int)retries;
  c->max_retry_wait = rwait;
  c->pace = pacing;
  c->rl_requests = (int)rl_req;
  c->rl_per = rl_per;
  c->resp.max = (size_t)maxresp;
  c->rng = (uint64_t)(uintptr_t)c ^ ((uint64_t)time(NULL) << 20) ^
           (uint64_t)(now_mono() * 1e9) ^ 0x9E3779B97F4A7C15ULL;
  if (c->rng == 0) c->rng = 1;
  {
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/') bl--;
    c->base = (char *)malloc(bl + 1);
    c->base_len = bl;
    if (c->base) {
      memcpy(c->base, base, bl);
      c->base[bl] = '\0';
    }
  }
  if (pacing) c->ring = (double *)malloc(sizeof(double) * (size_t)c->rl_requests);
  if (c->base == NULL || (pacing && c->ring == NULL) ||
      !add_header(&c->hdrs, "Content-Type", "", "application/json") ||
      !add_header(&c->hdrs, "Accept", "", "application/json") ||
      !add_header(&c->hdrs, "Expect", "", "") ||
      (tok.value ? !add_header(&c->hdrs, "Authorization", "Bearer ", tok.value)
                 : !add_header(&c->hdrs, "X-Auth-Email", "", email.value) ||
                   !add_header(&c->hdrs, "X-Auth-Key", "", key.value))) {
    client_release(c);
    return luaL_error(L, "cfaccess: not enough memory");
  }
  {  /* the credential ends the last header (our copy: the caller's goes) */
    struct curl_slist *last = c->hdrs;
    while (last->next != NULL) last = last->next;
    c->secret_len = strlen(tok.value ? tok.value : key.value);
    c->secret = last->data + strlen(last->data) - c->secret_len;
  }
  if (ua == NULL) {
    const curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
    ua = lua_pushfstring(L, "cfaccess/" CFACCESS_VERSION " lua/5.4 libcurl/%s",
                         vi && vi->version ? vi->version : "?");
    lua_insert(L, -2);   /* keep it below the userdata, alive until return */
  }
  cfg.user_agent = ua;
  cfg.cafile = cafile;
  cfg.proxy = proxy;
  cfg.timeout_ms = (long)(timeout * 1000);
  cfg.connect_timeout_ms = (long)(ctimeout * 1000);
  cfg.allow_http = http;
  if (!cf_transport_init(&c->tr, &cfg, errbuf, sizeof errbuf)) {
    client_release(c);
    cf_error_push(L, "usage", "cannot set up libcurl: %s", errbuf);
    return fail(L);
  }
  return 1;
}

void cf_client_open(lua_State *L) {
  int decode_ok;
  /* A private cjson instance: nobody else's cjson settings affect us. */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  decode_ok = lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TTABLE;
  if (decode_ok && lua_getfield(L, -1, "new") == LUA_TFUNCTION &&
      lua_pcall(L, 0, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TTABLE) {
    if (lua_getfield(L, -1, "decode_invalid_numbers") == LUA_TFUNCTION) {
      lua_pushboolean(L, 0);
      if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
    } else lua_pop(L, 1);
    lua_getfield(L, -1, "decode");
    lua_remove(L, -2);
  } else {
    lua_pushnil(L);
  }
  lua_remove(L, -2);  /* cjson module (or error) */
  /* stack: module table, decode-or-nil */
  if (luaL_newmetatable(L, CF_CLIENT_MT)) {
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, client_meta, 1);
    luaL_newlibtable(L, client_methods);
    lua_pushvalue(L, -3);
    luaL_setfuncs(L, client_methods, 1);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, CF_CLIENT_MT);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  lua_pushcclosure(L, client_new, 1);
  lua_setfield(L, -2, "client");
}
