/*
** cfaccess client: the `cfaccess.core.client{...}` object (API.md sections
** 3 and 4): the constructor (options read from one descriptor table),
** credentials and the headers that carry them, close/__gc/__tostring. The
** methods are generated from the endpoint registry (methods.c, resources.c)
** and run through the request engine (engine.c).
**
** Memory: every C allocation hangs off the client userdata (its __gc/close
** frees it), so a Lua error at any point cannot leak it.
*/
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "argcheck.h"
#include "client.h"

#define DEFAULT_BASE_URL "https://api.cloudflare.com/client/v4"
#define MAX_RING 1000000        /* largest pacing window (requests) */
/* The smallest timeout (seconds): libcurl counts milliseconds and reads 0
** as "no timeout", so anything below one millisecond would turn it off. */
#define CF_MIN_TIMEOUT 0.001
/* The shortest credential accepted. Redaction replaces every copy of the
** credential in what a server echoes; a short one (a test's "t") also
** occurs in ordinary words and paths, and "[redacted]" in their middle
** makes the message unreadable ("GET /accoun[redacted]s"). Cloudflare's
** API tokens have 40 characters and global API keys 37, so 16 refuses no
** real credential and keeps every message readable. */
#define CF_MIN_SECRET 16

void cf_client_log(lua_State *L, int ci, const char *level, const char *fmt, ...) {
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

const char *cf_client_escape(lua_State *L, cf_client *c, const char *s) {
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

/* ---- close ----------------------------------------------------------- */

/* The header strings hold the token/key: no request sent from now on can
** carry it. The redaction copy (c->secret) stays: an exchange that already
** carried the credential may still bring it back in an echo. */
static void zero_headers(cf_client *c) {
  struct curl_slist *p;
  for (p = c->hdrs; p != NULL; p = p->next)
    if (p->data) memset(p->data, 0, strlen(p->data));
}

/* The redaction copy goes last: only when no exchange is left. */
static void forget_secret(cf_client *c) {
  if (c->secret) {
    memset(c->secret, 0, c->secret_len);
    free(c->secret);
  }
  c->secret = NULL;
  c->secret_len = 0;
}

static void client_release(cf_client *c) {
  zero_headers(c);
  forget_secret(c);
  curl_slist_free_all(c->hdrs);
  c->hdrs = NULL;
  /* In a process other than the one that made the client (after fork()),
  ** the connections are the creator's: closing them here would send a TLS
  ** close_notify on the creator's sockets. The handles are left to the
  ** process exit. */
  if (c->pid == getpid()) cf_transport_cleanup(&c->tr);
  free(c->base);
  c->base = NULL;
  cf_pacer_free(&c->pacer);
  cf_buf_free(&c->resp);
  cf_buf_free(&c->body);
  c->closed = c->released = 1;
}

/* close(), __close: idempotent. Called from on_log or a batch's on_progress
** while requests of this client are in flight, it zeroes the credential in
** the request headers and marks the client closed (requests not yet
** started then fail with a `usage` error; a header list already handed to
** libcurl only reads as empty); the rest, the redaction copy of the
** credential included, goes when the last exchange is over
** (cf_client_idle): a request in flight carried the credential, and its
** answer may echo it. */
static int client_close(lua_State *L) {
  cf_client *c = (cf_client *)luaL_checkudata(L, 1, CF_CLIENT_MT);
  if (c->released) return 0;
  if (c->busy > 0) {
    zero_headers(c);
    c->closed = 1;
  } else client_release(c);
  return 0;
}

void cf_client_idle(cf_client *c) {
  if (c->busy == 0 && c->closed && !c->released) client_release(c);
}

static int hookpoint_nop(lua_State *L) {
  (void)L;
  return 0;
}

void cf_client_hookpoint(lua_State *L) {
  lua_pushcfunction(L, hookpoint_nop);   /* a call: a call hook fires here */
  lua_call(L, 0, 0);
}

int cf_client_usable(lua_State *L, cf_client *c) {
  if (c->pid == getpid()) return 1;
  cf_error_push(L, CF_E_USAGE, "this client was made by process %d and cannot be "
                "used in process %d (after fork(), make a new client)",
                (int)c->pid, (int)getpid());
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

typedef struct client_opts {
  const char *account_id, *zone_id, *api_token, *api_key, *api_email;
  const char *base_url, *cafile, *proxy, *user_agent;
  double timeout, connect_timeout, max_retry_wait, deadline;
  lua_Integer max_retries, max_response_bytes;
  int rate_limit, on_log;
  lua_Integer rl_requests;
  double rl_per;
} client_opts;

#define OPT(f) offsetof(client_opts, f)
static const cf_argdesc client_args[] = {
  {.name = "account_id", .type = CF_ARG_STRING, .offset = OPT(account_id)},
  {.name = "zone_id", .type = CF_ARG_STRING, .offset = OPT(zone_id)},
  {.name = "api_token", .type = CF_ARG_STRING, .offset = OPT(api_token)},
  {.name = "api_key", .type = CF_ARG_STRING, .offset = OPT(api_key)},
  {.name = "api_email", .type = CF_ARG_STRING, .offset = OPT(api_email)},
  {.name = "base_url", .type = CF_ARG_STRING, .offset = OPT(base_url)},
  /* at least 1 ms: libcurl takes milliseconds, and 0 means no timeout */
  {.name = "timeout", .type = CF_ARG_NUMBER, .min = CF_MIN_TIMEOUT, .offset = OPT(timeout)},
  {.name = "connect_timeout", .type = CF_ARG_NUMBER, .min = CF_MIN_TIMEOUT,
   .offset = OPT(connect_timeout)},
  {.name = "max_retries", .type = CF_ARG_INTEGER, .min = 0, .max = 100,
   .offset = OPT(max_retries)},
  {.name = "max_retry_wait", .type = CF_ARG_NUMBER, .min = 0, .offset = OPT(max_retry_wait)},
  {.name = "deadline", .type = CF_ARG_NUMBER, .min = CF_MIN_TIMEOUT, .offset = OPT(deadline)},
  {.name = "rate_limit", .type = CF_ARG_ANY, .offset = OPT(rate_limit)},
  {.name = "max_response_bytes", .type = CF_ARG_INTEGER, .min = 0, .min_open = 1,
   .offset = OPT(max_response_bytes)},
  {.name = "cafile", .type = CF_ARG_STRING, .offset = OPT(cafile)},
  {.name = "proxy", .type = CF_ARG_STRING, .offset = OPT(proxy)},
  {.name = "user_agent", .type = CF_ARG_STRING, .offset = OPT(user_agent)},
  {.name = "on_log", .type = CF_ARG_FUNCTION, .offset = OPT(on_log)},
  {.name = NULL}
};
static const cf_argset client_set = {"client options", "client option ", client_args};

static const cf_argdesc rate_args[] = {
  {.name = "requests", .type = CF_ARG_INTEGER, .min = 1, .max = MAX_RING,
   .offset = OPT(rl_requests)},
  {.name = "per", .type = CF_ARG_NUMBER, .min = 0, .min_open = 1, .offset = OPT(rl_per)},
  {.name = NULL}
};
static const cf_argset rate_set = {"rate_limit", "client option rate_limit.", rate_args};
#undef OPT

/* rate_limit: nil (the default window), false (off) or {requests=, per=}.
** Reads it into o; returns 1, or 0 with a usage err pushed. */
static int read_rate_limit(lua_State *L, client_opts *o) {
  int t = lua_getfield(L, 1, "rate_limit");
  o->rate_limit = 1;
  if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1)) o->rate_limit = 0;
  else if (t == LUA_TTABLE) {
    o->rl_requests = 0;
    o->rl_per = 0;
    if (!cf_args_read(L, -1, &rate_set, o)) return 0;
    if (o->rl_requests == 0 || o->rl_per == 0) {
      cf_error_push(L, CF_E_USAGE, "client option rate_limit: give both requests and per");
      return 0;
    }
  } else if (t != LUA_TNIL) {
    cf_error_push(L, CF_E_USAGE, "client option rate_limit: expected nil, false or "
                  "{requests=, per=}, got %s", t == LUA_TBOOLEAN ? "true" : lua_typename(L, t));
    return 0;
  }
  lua_pop(L, 1);
  return 1;
}

/* ---- credentials ----------------------------------------------------- */

typedef struct auth_src {
  const char *value;
  const char *opt, *env;    /* option name and environment variable */
  int from_env;
} auth_src;

static const char *env_nonempty(const char *name) {
  const char *v = getenv(name);
  return (v && *v) ? v : NULL;
}

static int has_crlf(const char *s) {
  return strchr(s, '\r') != NULL || strchr(s, '\n') != NULL;
}

/* An auth field from the options (value, already checked) or else the
** environment. Returns 1, or 0 with a usage err pushed. */
static int auth_field(lua_State *L, const char *value, const char *opt,
                      const char *env, auth_src *out) {
  out->value = value;
  out->opt = opt;
  out->env = env;
  out->from_env = 0;
  if (out->value == NULL && (out->value = env_nonempty(env)) != NULL) {
    out->from_env = 1;
    if (has_crlf(out->value)) {
      cf_error_push(L, CF_E_USAGE, "environment variable %s must not contain CR, LF", env);
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

/* Exactly one scheme: a token, or a key with its email. tok/key/email are
** filled; returns 1, or 0 with a usage err pushed (never a value). */
static int read_credentials(lua_State *L, const client_opts *o, auth_src *tok,
                            auth_src *key, auth_src *email) {
  if (!auth_field(L, o->api_token, "api_token", "CLOUDFLARE_API_TOKEN", tok) ||
      !auth_field(L, o->api_key, "api_key", "CLOUDFLARE_API_KEY", key) ||
      !auth_field(L, o->api_email, "api_email", "CLOUDFLARE_EMAIL", email))
    return 0;
  if (tok->value && (key->value || email->value)) {
    const auth_src *other = key->value ? key : email;
    const char *w1 = where(L, tok), *w2 = where(L, other);
    cf_error_push(L, CF_E_USAGE, "client options: both an API token (from %s) and "
                  "an API key/email (from %s) were given; use exactly one scheme",
                  w1, w2);
    return 0;
  }
  if (!tok->value && !(key->value && email->value)) {
    if (key->value || email->value)
      cf_error_push(L, CF_E_USAGE, "client options: api_key and api_email go together "
                    "(%s is missing)", key->value ? "api_email" : "api_key");
    else
      cf_error_push(L, CF_E_USAGE, "client options: no credentials (give api_token, or "
                    "api_key and api_email, or set CLOUDFLARE_API_TOKEN)");
    return 0;
  }
  {
    const auth_src *sec = tok->value ? tok : key;
    if (strlen(sec->value) < CF_MIN_SECRET) {   /* the value is never shown */
      const char *w = where(L, sec);
      cf_error_push(L, CF_E_USAGE, "client options: the %s (from %s) is too short: "
                    "expected at least %d characters (Cloudflare's have 37 or more)",
                    tok->value ? "API token" : "API key", w, CF_MIN_SECRET);
      return 0;
    }
  }
  return 1;
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

/* The request headers, the credential last (our copy: the caller's goes).
** Returns 0 on allocation failure. */
static int build_headers(cf_client *c, const auth_src *tok, const auth_src *key,
                         const auth_src *email) {
  struct curl_slist *last;
  if (!add_header(&c->hdrs, "Content-Type", "", "application/json") ||
      !add_header(&c->hdrs, "Accept", "", "application/json") ||
      !add_header(&c->hdrs, "Expect", "", ""))
    return 0;
  if (tok->value ? !add_header(&c->hdrs, "Authorization", "Bearer ", tok->value)
                 : !add_header(&c->hdrs, "X-Auth-Email", "", email->value) ||
                   !add_header(&c->hdrs, "X-Auth-Key", "", key->value))
    return 0;
  last = c->hdrs;
  while (last->next != NULL) last = last->next;
  /* the redaction copy: it outlives the headers while exchanges run */
  c->secret_len = strlen(tok->value ? tok->value : key->value);
  c->secret = (char *)malloc(c->secret_len + 1);
  if (c->secret == NULL) {
    c->secret_len = 0;
    return 0;
  }
  memcpy(c->secret, last->data + strlen(last->data) - c->secret_len, c->secret_len + 1);
  return 1;
}

/* ---- constructor ----------------------------------------------------- */

/* Everything about the options that is not a field's own type or range.
** Returns 1 (base URL chosen, *http set), or 0 with an err pushed. */
static int check_options(lua_State *L, client_opts *o, auth_src *tok, auth_src *key,
                         auth_src *email, int *http) {
  const char *id, *problem;
  if (!cf_args_read(L, 1, &client_set, o)) return 0;
  if ((o->account_id == NULL) == (o->zone_id == NULL)) {
    cf_error_push(L, CF_E_USAGE, "client options: give exactly one of account_id and zone_id");
    return 0;
  }
  id = o->account_id ? o->account_id : o->zone_id;
  if (!cf_is_hex32(id, strlen(id))) {
    cf_error_push(L, CF_E_INVALID, "%s: expected 32 hex characters",
                  o->account_id ? "account_id" : "zone_id");
    return 0;
  }
  if (!read_credentials(L, o, tok, key, email)) return 0;
  if (o->base_url == NULL) {
    o->base_url = env_nonempty("CLOUDFLARE_BASE_URL");
    if (o->base_url && has_crlf(o->base_url)) {
      cf_error_push(L, CF_E_USAGE, "environment variable CLOUDFLARE_BASE_URL must not "
                    "contain CR or LF");
      return 0;
    }
    if (o->base_url == NULL) o->base_url = DEFAULT_BASE_URL;
  }
  if ((problem = cf_transport_check_url(o->base_url, http)) != NULL) {
    cf_error_push(L, CF_E_USAGE, "client option base_url %s", problem);
    return 0;
  }
  if (*http && o->proxy) {
    /* the credential would reach the proxy in clear (no CONNECT tunnel) */
    cf_error_push(L, CF_E_USAGE, "client options: proxy needs an https base_url "
                  "(credentials never travel in clear)");
    return 0;
  }
  return read_rate_limit(L, o);
}

/* Seconds (at least CF_MIN_TIMEOUT, checked) to libcurl's milliseconds:
** never 0, which libcurl reads as "no timeout". */
static long timeout_ms(double s) {
  long ms = (long)(s * 1000 + 0.5);
  return ms < 1 ? 1 : ms;
}

/* Fill the new client c (a userdata on top, its metatable set) from o.
** Returns 1, or 0 with an err pushed (c released). */
static int build(lua_State *L, cf_client *c, const client_opts *o, const auth_src *tok,
                 const auth_src *key, const auth_src *email, int http) {
  cf_transport_cfg cfg;
  char errbuf[256];
  const char *ua = o->user_agent;
  size_t bl = strlen(o->base_url);
  uint64_t seed = (uint64_t)(uintptr_t)c ^ ((uint64_t)time(NULL) << 20) ^
                  (uint64_t)(cf_now() * 1e9) ^ 0x9E3779B97F4A7C15ULL;
  c->zone = o->zone_id != NULL;
  snprintf(c->scope, sizeof c->scope, "%s/%s", c->zone ? "zones" : "accounts",
           c->zone ? o->zone_id : o->account_id);
  c->max_retries = (int)o->max_retries;
  c->max_retry_wait = o->max_retry_wait;
  c->deadline = o->deadline;
  cf_buf_init(&c->resp, (size_t)o->max_response_bytes);
  cf_buf_init(&c->body, CF_BUF_NOCAP);
  while (bl > 0 && o->base_url[bl - 1] == '/') bl--;
  c->base = (char *)malloc(bl + 1);
  c->base_len = bl;
  if (c->base) {
    memcpy(c->base, o->base_url, bl);
    c->base[bl] = '\0';
  }
  if (c->base == NULL ||
      !cf_pacer_init(&c->pacer, o->rate_limit, (int)o->rl_requests, o->rl_per,
                     o->max_retry_wait, seed) ||
      !build_headers(c, tok, key, email)) {
    client_release(c);
    return luaL_error(L, "cfaccess: not enough memory");
  }
  if (ua == NULL) {
    const curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
    ua = lua_pushfstring(L, "cfaccess/" CFACCESS_VERSION " lua/5.4 libcurl/%s",
                         vi && vi->version ? vi->version : "?");
    lua_insert(L, -2);   /* keep it below the userdata, alive until return */
  }
  cfg.user_agent = ua;
  cfg.cafile = o->cafile;
  cfg.proxy = o->proxy;
  cfg.timeout_ms = timeout_ms(o->timeout);
  cfg.connect_timeout_ms = timeout_ms(o->connect_timeout);
  cfg.allow_http = http;
  if (!cf_transport_init(&c->tr, &cfg, errbuf, sizeof errbuf)) {
    client_release(c);
    cf_error_push(L, CF_E_USAGE, "cannot set up libcurl: %s", errbuf);
    return 0;
  }
  return 1;
}

/* cfaccess.core.client(opts) -> client | nil, err */
static int client_new(lua_State *L) {
  cf_client *c;
  client_opts o;
  auth_src tok, key, email;
  int http = 0;
  memset(&o, 0, sizeof o);
  o.timeout = 60;
  o.connect_timeout = 10;
  o.max_retries = 2;
  o.max_retry_wait = 300;   /* Cloudflare's lockout lasts up to 5 minutes */
  o.max_response_bytes = 8 * 1024 * 1024;
  o.rl_requests = 1200;
  o.rl_per = 300;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  if (!check_options(L, &o, &tok, &key, &email, &http)) return cf_fail(L);
  if (!cf_transport_global_init()) {
    cf_error_push(L, CF_E_NETWORK, "curl_global_init failed");
    return cf_fail(L);
  }
  /* Build: from here on everything hangs off the userdata. */
  c = (cf_client *)lua_newuserdatauv(L, sizeof *c, 1);
  memset(c, 0, sizeof *c);
  c->pid = getpid();
  c->closed = 1;  /* until fully built, __gc frees what exists */
  luaL_setmetatable(L, CF_CLIENT_MT);
  lua_getfield(L, 1, "on_log");
  lua_setiuservalue(L, -2, 1);
  c->closed = 0;
  if (!build(L, c, &o, &tok, &key, &email, http)) return cf_fail(L);
  return 1;
}

static const luaL_Reg client_meta[] = {
  {"__gc", client_gc},
  {"__close", client_close},
  {"__tostring", client_tostring},
  {NULL, NULL}
};

void cf_client_open(lua_State *L) {
  if (luaL_newmetatable(L, CF_CLIENT_MT)) {
    luaL_setfuncs(L, client_meta, 0);
    lua_newtable(L);
    cf_methods_register(L);
    lua_pushcfunction(L, client_close);
    lua_setfield(L, -2, "close");
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, CF_CLIENT_MT);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, client_new);
  lua_setfield(L, -2, "client");
}
