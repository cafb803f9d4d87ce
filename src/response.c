/*
** cfaccess responses: the private lua-cjson decoder (set up when the
** module loads; a missing or unusable lua-cjson fails the require), JSON
** fix-up, envelopes and HTTP statuses turned into errs, the retry hints a
** response carries, and redaction of the credential from what a server
** echoes.
*/
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "response.h"

/* Registry key (by address) of the private decoder: cjson.new().decode. */
static const char decoder_key = 'd';

#define NEEDS_CJSON "cfaccess.core needs lua-cjson (Debian package lua-cjson): "

/* A private cjson instance: nobody else's cjson settings affect us. Raises
** (so `require "cfaccess.core"` fails) when lua-cjson cannot be loaded,
** has no `new`, `new()` raises, or what it makes cannot decode. */
void cf_response_open(lua_State *L) {
  int top = lua_gettop(L);
  if (lua_getglobal(L, "require") != LUA_TFUNCTION)
    luaL_error(L, NEEDS_CJSON "no `require` to load it with");
  lua_pushliteral(L, "cjson");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK)
    luaL_error(L, NEEDS_CJSON "require \"cjson\" failed: %s", luaL_tolstring(L, -1, NULL));
  if (lua_type(L, -1) != LUA_TTABLE)
    luaL_error(L, NEEDS_CJSON "require \"cjson\" gave a %s, not the module",
               luaL_typename(L, -1));
  if (lua_getfield(L, -1, "new") != LUA_TFUNCTION)
    luaL_error(L, NEEDS_CJSON "cjson.new is missing (got %s)", luaL_typename(L, -1));
  if (lua_pcall(L, 0, 1, 0) != LUA_OK)
    luaL_error(L, NEEDS_CJSON "cjson.new() failed: %s", luaL_tolstring(L, -1, NULL));
  if (lua_type(L, -1) != LUA_TTABLE ||
      lua_getfield(L, -1, "decode") != LUA_TFUNCTION)
    luaL_error(L, NEEDS_CJSON "cjson.new() gave no decode function");
  lua_pop(L, 1);
  if (lua_getfield(L, -1, "decode_invalid_numbers") == LUA_TFUNCTION) {
    lua_pushboolean(L, 0);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
  } else lua_pop(L, 1);
  lua_getfield(L, -1, "decode");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &decoder_key);
  lua_settop(L, top);
}

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

/* Is the error value on top one that lua-cjson 2.1.0's decoder raises for
** the text it was given (json_throw_parse_error: "Expected <what> but
** found <token> at character <n>" or "Found too many nested data
** structures (<n>) at character <n>"; json_decode's own "JSON parser does
** not support UTF-16 or UTF-32" for a body that starts with a NUL byte in
** its first two)? Anything else raised while it ran
** (lua.c's "interrupted!" on SIGINT, an error from a debug hook, out of
** memory) is not about the text and must propagate. */
static int is_parse_error(lua_State *L) {
  const char *m, *at;
  if (lua_type(L, -1) != LUA_TSTRING) return 0;
  m = lua_tostring(L, -1);
  if (strcmp(m, "JSON parser does not support UTF-16 or UTF-32") == 0) return 1;
  if (strncmp(m, "Expected ", 9) != 0 && strncmp(m, "Found too many nested", 21) != 0)
    return 0;
  at = strstr(m, " at character ");
  if (at == NULL) return 0;
  at += 14;
  if (*at < '0' || *at > '9') return 0;
  while (*at >= '0' && *at <= '9') at++;
  return *at == '\0';
}

int cf_json_decode(lua_State *L) {
  int rc;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &decoder_key) != LUA_TFUNCTION) {
    lua_pop(L, 2);
    return 0;
  }
  lua_insert(L, -2);
  rc = lua_pcall(L, 1, 1, 0);
  if (rc != LUA_OK) {
    if (rc != LUA_ERRRUN || !is_parse_error(L)) lua_error(L);   /* not ours */
    lua_pop(L, 1);
    return 0;
  }
  if (lua_type(L, -1) == LUA_TTABLE) fix_json(L, -1);
  return 1;
}

/* ---- redaction ------------------------------------------------------- */

typedef struct secret {
  const char *s;
  size_t n;
} secret;

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

/* If the value at the top is a string holding the credential, replace it
** with a copy that has "[redacted]" in each place; a table is replaced by
** a copy with its keys and values so treated (depth is bounded by the
** decoder's nesting limit). */
static void redact_top(lua_State *L, const secret *sec) {
  size_t len;
  const char *s, *hit;
  if (lua_type(L, -1) == LUA_TTABLE) {
    int t = lua_gettop(L);
    luaL_checkstack(L, 6, "cfaccess: JSON too deep");
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {   /* t, copy, key, value */
      lua_pushvalue(L, -2);
      redact_top(L, sec);
      lua_insert(L, -2);            /* t, copy, key, key', value */
      redact_top(L, sec);
      lua_rawset(L, t + 1);
    }
    lua_remove(L, t);
    return;
  }
  if (lua_type(L, -1) != LUA_TSTRING) return;
  s = lua_tolstring(L, -1, &len);
  hit = find_bytes(s, len, sec->s, sec->n);
  if (hit == NULL) return;
  {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    while (hit != NULL) {
      luaL_addlstring(&b, s, (size_t)(hit - s));
      luaL_addstring(&b, "[redacted]");
      len -= (size_t)(hit - s) + sec->n;
      s = hit + sec->n;
      hit = find_bytes(s, len, sec->s, sec->n);
    }
    luaL_addlstring(&b, s, len);
    luaL_pushresult(&b);
  }
  lua_remove(L, -2);
}

/* A server (or a proxy in front of it) may echo what it was sent: the
** fields of the err on top that carry its text (message, Cloudflare's
** errors and messages, ray_id) get "[redacted]" wherever the client's
** credential was, before any of it reaches the caller or on_log. */
static void redact_err(lua_State *L, const secret *sec) {
  static const char *const fields[] = {"message", "errors", "messages", "ray_id", NULL};
  int i;
  if (sec->n == 0) return;
  for (i = 0; fields[i] != NULL; i++) {
    lua_getfield(L, -1, fields[i]);
    redact_top(L, sec);
    lua_setfield(L, -2, fields[i]);
  }
}

/* ---- the envelope and the retry hints -------------------------------- */

void cf_response_fields(lua_State *L, const cf_exchange *x) {
  if (x->status > 0) {
    lua_pushinteger(L, x->status);
    lua_setfield(L, -2, "status");
  }
  if (x->hdrs.ray[0]) {
    lua_pushstring(L, x->hdrs.ray);
    lua_setfield(L, -2, "ray_id");
  }
}

/* Fill err (on top) from the envelope at env (or none): errors, messages,
** and return errors[1].code. */
static lua_Integer copy_envelope_errors(lua_State *L, int env) {
  lua_Integer code = 0;
  if (env == 0 || lua_type(L, env) != LUA_TTABLE) return 0;
  if (lua_getfield(L, env, "errors") == LUA_TTABLE) {
    if (lua_rawgeti(L, -1, 1) == LUA_TTABLE) {
      if (lua_getfield(L, -1, "code") == LUA_TNUMBER)
        code = lua_tointeger(L, -1);   /* as sent: never cut to an int */
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
static const char *first_error(lua_State *L, int env, lua_Integer *code) {
  const char *m = NULL;
  *code = 0;
  if (env == 0 || lua_type(L, env) != LUA_TTABLE) return NULL;
  if (lua_getfield(L, env, "errors") == LUA_TTABLE &&
      lua_rawgeti(L, -1, 1) == LUA_TTABLE) {
    if (lua_getfield(L, -1, "code") == LUA_TNUMBER)
      *code = lua_tointeger(L, -1);
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

/* Parse Retry-After (seconds or HTTP date) / retry-after-ms. */
static void read_retry_after(const cf_hdrs *h, cf_try *t) {
  char *end;
  double d;
  if (h->retry_after_ms[0]) {
    d = strtod(h->retry_after_ms, &end);
    if (end != h->retry_after_ms && *end == '\0' && d >= 0 && d < 1e12) {
      t->has_retry_after = 1;
      t->retry_after = d / 1000.0;
      return;
    }
  }
  if (h->retry_after[0]) {
    d = strtod(h->retry_after, &end);
    if (end != h->retry_after && *end == '\0' && d >= 0 && d < 1e12) {
      t->has_retry_after = 1;
      t->retry_after = d;
    } else {
      time_t when = curl_getdate(h->retry_after, NULL);
      if (when != (time_t)-1) {
        double w = difftime(when, time(NULL));
        t->has_retry_after = 1;
        t->retry_after = w > 0 ? w : 0;
      }
    }
  }
}

/* A transfer that did not complete (curl failed): the err. */
static void transfer_failed(lua_State *L, const cf_exchange *x, const char *path,
                            cf_try *t) {
  const cf_buf *resp = x->resp;
  const char *method = x->method;
  if (resp->too_big) {
    cf_error_push(L, CF_E_DECODE, "%s %s: response exceeds max_response_bytes (%I)",
                  method, path, (lua_Integer)resp->toobig);
  } else if (resp->oom) {
    cf_error_push(L, CF_E_NETWORK, "%s %s: out of memory reading the response",
                  method, path);
  } else {
    int timeout = x->rc == CURLE_OPERATION_TIMEDOUT;
    if (x->rewind_refused)
      cf_error_push(L, CF_E_NETWORK, "%s %s: connection lost after the request "
                    "was sent (not re-sent): %s", method, path, x->errbuf);
    else
      cf_error_push(L, timeout ? CF_E_TIMEOUT : CF_E_NETWORK, "%s %s: %s",
                    method, path, x->errbuf);
    t->retryable = x->rewind_refused || retryable_curl(x->rc);
    t->ambiguous = x->body != NULL && (x->body_read > 0 || x->rewind_refused);
  }
  cf_response_fields(L, x);
}

/* A 2xx answer that is not success=true (envelope env, or 0): the err. */
static void not_success(lua_State *L, const cf_exchange *x, const char *path,
                        int env, cf_try *t) {
  const char *method = x->method;
  int st;
  lua_Integer code;
  const char *m;
  if (env == 0 || lua_type(L, env) != LUA_TTABLE) {
    cf_error_push(L, CF_E_DECODE, "%s %s: HTTP %d: response is not valid JSON",
                  method, path, (int)x->status);
    return;
  }
  st = lua_getfield(L, env, "success");
  lua_pop(L, 1);
  if (st != LUA_TBOOLEAN) {
    cf_error_push(L, CF_E_DECODE, "%s %s: HTTP %d: response is not a "
                  "Cloudflare envelope", method, path, (int)x->status);
    return;
  }
  m = first_error(L, env, &code);
  cf_error_push(L, CF_E_API, "%s %s: HTTP %d with success=false: %s (code %I)",
                method, path, (int)x->status, m ? m : "(no message)", code);
  t->code = copy_envelope_errors(L, env);
}

/* A non-2xx answer (envelope env, or 0): the err and its retry hints. */
static void http_error(lua_State *L, const cf_exchange *x, const char *path,
                       int env, cf_try *t) {
  const char *method = x->method;
  lua_Integer code;
  const char *m = first_error(L, env, &code);
  if (m && code)
    cf_error_push(L, CF_E_API, "%s %s: HTTP %d: %s (code %I)", method, path,
                  (int)x->status, m, code);
  else if (m)
    cf_error_push(L, CF_E_API, "%s %s: HTTP %d: %s", method, path, (int)x->status, m);
  else
    cf_error_push(L, CF_E_API, "%s %s: HTTP %d", method, path, (int)x->status);
  t->code = copy_envelope_errors(L, env);
  t->retryable = x->status == 408 || x->status == 429 || x->status >= 500;
  t->ambiguous = x->body != NULL && x->status >= 500;
  read_retry_after(&x->hdrs, t);
}

/* cf_response_read before the credential is taken out of the err. */
static int read_(lua_State *L, const cf_exchange *x, const char *path, cf_try *t) {
  const cf_buf *resp = x->resp;
  int env = 0;
  memset(t, 0, sizeof *t);
  if (x->rc != CURLE_OK) {
    transfer_failed(L, x, path, t);
    return 0;
  }
  if (resp->len > 0) {
    lua_pushlstring(L, resp->data, resp->len);
    if (cf_json_decode(L)) env = lua_gettop(L);
  }
  if (x->status >= 200 && x->status < 300) {
    if (env && lua_type(L, env) == LUA_TTABLE) {
      int st = lua_getfield(L, env, "success");
      int ok = lua_toboolean(L, -1);
      lua_pop(L, 1);
      if (st == LUA_TBOOLEAN && ok) return 1;       /* envelope on top */
    }
    not_success(L, x, path, env, t);
  } else {
    http_error(L, x, path, env, t);
  }
  if (strcmp(x->hdrs.should_retry, "true") == 0) t->retryable = 1;
  else if (strcmp(x->hdrs.should_retry, "false") == 0) t->retryable = 0;
  cf_response_fields(L, x);
  if (t->has_retry_after) {
    double s = t->retry_after;
    if (s == (double)(lua_Integer)s) lua_pushinteger(L, (lua_Integer)s);
    else lua_pushnumber(L, s);
    lua_setfield(L, -2, "retry_after");
  }
  if (env) lua_remove(L, env);
  return 0;
}

int cf_response_read(lua_State *L, const cf_exchange *x, const char *path,
                     const char *secret_s, size_t secret_len, cf_try *t) {
  secret sec;
  if (read_(L, x, path, t)) return 1;
  sec.s = secret_s;
  sec.n = secret_len;
  redact_err(L, &sec);
  return 0;
}
