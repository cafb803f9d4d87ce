/*
** The server's copy of a policy (API.md section 7): one definition of "the
** same policy", and the request body a result turns back into.
**
**   cfaccess.same(a, b [, kind])          --> true | false
**   cfaccess.request_body(result [, kind]) --> body | nil, err
**
** `same` reduces each value to a canonical text in which everything the
** server treats alike reads alike, and compares the texts field by field:
**  - the server's defaults are filled in (server_defaults below: the
**    session_duration "24h" where the kind takes it); a boolean flag the
**    schema knows is false when absent; an empty list or an empty optional
**    object (mfa_config = {}) is absent; null is absent, except for a
**    nullable string (session_duration), where null and "" both mean "the
**    application's session" (neither is the 24h default);
**  - a precedence one side leaves out is ignored (the server assigns one);
**  - IPs compare by address (inet_pton): 192.0.2.1 = 192.0.2.1/32,
**    2001:db8::1 = 2001:0db8:0:0:0:0:0:1/128; durations by value (1h = 60m);
**    integral floats equal integers (lua-cjson decodes 1 as 1.0);
**  - read-only fields (cf_m_read_only, match_common.c) are ignored;
**  - every list is a multiset: order never counts, repeats do. The API keeps
**    the order it is given, but the order of rules in include, exclude or
**    require (or of emails, countries, authenticators) does not change what
**    a policy lets in, and reporting a reorder as a change is the perpetual
**    diff Terraform users complain about;
**  - a top-level field the schema does not know for the kind (one newer
**    than this library) counts only when both sides have it: a server that
**    adds a field with its own default must not make every request look
**    different (duplicate creates, endless plans). Inside rules and nested
**    objects every field counts.
** `same` does not validate: it compares whatever it is given, by the rules
** above, and never raises for bad data.
**
** `request_body` is body.c's; what both share is match_common.c's.
*/
#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "match_int.h"
#include "schema.h"

/* ---- knowledge as data ------------------------------------------------- */

/* Top-level fields whose absence on one side is not a difference (the
** server assigns a value of its own). */
static const char *const one_sided[] = {"precedence", NULL};

/* What the server stores for a top-level string field a request leaves
** out, where the kind takes that field. */
static const struct { const char *name, *value; } server_defaults[] = {
  {"session_duration", "24h"},
};

/* ---- small helpers ----------------------------------------------------- */

/* A Go duration ("1h30m", "90m", "1.5h", "0") in nanoseconds: 1, or 0 when
** s is not one. */
static int duration_ns(const char *s, size_t n, double *out) {
  static const struct { const char *u; double ns; } units[] = {
    {"ns", 1}, {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"\xce\xbcs", 1e3}, {"ms", 1e6},
    {"s", 1e9}, {"m", 60e9}, {"h", 3600e9},
  };
  size_t i = 0;
  double total = 0, sign = 1;
  if (n > 0 && (s[0] == '-' || s[0] == '+')) { sign = s[0] == '-' ? -1 : 1; i++; }
  if (n - i == 1 && s[i] == '0') { *out = 0; return 1; }
  if (i == n) return 0;
  while (i < n) {
    double v = 0, scale = 1;
    size_t u, digits = 0, best = 0, bestlen = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) v = v * 10 + (s[i] - '0');
    if (i < n && s[i] == '.')
      for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) v += (s[i] - '0') * (scale /= 10);
    if (digits == 0) return 0;
    for (u = 0; u < sizeof units / sizeof units[0]; u++) {
      size_t ul = strlen(units[u].u);
      if (ul > bestlen && ul <= n - i && memcmp(s + i, units[u].u, ul) == 0) { best = u; bestlen = ul; }
    }
    if (bestlen == 0) return 0;
    total += v * units[best].ns;
    i += bestlen;
  }
  *out = sign * total;
  return 1;
}

static void add_num(lua_State *L, cf_buf *b, lua_Number d) {
  char tmp[64];
  if (d == floor(d) && fabs(d) < 9.2e18) snprintf(tmp, sizeof tmp, "%.0f", d);
  else snprintf(tmp, sizeof tmp, "%.17g", d);
  cf_buf_adds(L, b, tmp);
}

/* Append a length-prefixed chunk: <tag><len>:<bytes>, so that no two
** different values share a text. */
static void add_chunk(lua_State *L, cf_buf *b, char tag, const char *s, size_t n) {
  char tmp[32];
  snprintf(tmp, sizeof tmp, "%c%lu:", tag, (unsigned long)n);
  cf_buf_adds(L, b, tmp);
  cf_buf_add(L, b, s, n);
}

/* ---- the canonical text ------------------------------------------------ */

typedef struct mctx {
  lua_State *L;
  cf_kind kind;
  int depth;
  int too_deep;   /* a value nested deeper than CF_M_MAX_DEPTH was met */
} mctx;

static int canon(mctx *c, int idx, const cf_mfield *f, cf_buf *b);

/* Canonical text of the value at idx as a new Lua string on top, or nil
** when the value counts as absent. */
static void canon_push(mctx *c, int idx, const cf_mfield *f) {
  lua_State *L = c->L;
  cf_buf *b;
  idx = lua_absindex(L, idx);
  b = cf_buf_push(L);
  if (canon(c, idx, f, b)) lua_pushlstring(L, b->data, b->len);
  else lua_pushnil(L);
  cf_buf_free(b);
  lua_remove(L, -2);
}

typedef struct mstr { const char *s; size_t n; const char *v; size_t vn; } mstr;

static int mstr_cmp(const void *x, const void *y) {
  const mstr *a = (const mstr *)x, *b = (const mstr *)y;
  size_t n = a->n < b->n ? a->n : b->n;
  int r = memcmp(a->s, b->s, n);
  if (r) return r;
  return a->n < b->n ? -1 : a->n > b->n;
}

/* A list (the array part 1..n of the table at idx): its elements' texts,
** sorted (a multiset). Empty: absent unless generic. */
static int canon_list(mctx *c, int idx, lua_Integer n, const cf_mfield *f, cf_buf *b) {
  lua_State *L = c->L;
  lua_Integer i;
  cf_mfield ef;
  mstr *v;
  int have_elem = f && f->elem && cf_m_lookup(NULL, f->elem, NULL, 0, c->kind, &ef);
  if (n == 0) return 0;
  lua_createtable(L, (int)n, 0);                   /* anchors the texts */
  v = (mstr *)lua_newuserdatauv(L, sizeof(mstr) * (size_t)n, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    canon_push(c, -1, have_elem ? &ef : NULL);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); lua_pushliteral(L, "z"); }
    v[i - 1].s = lua_tolstring(L, -1, &v[i - 1].n);
    lua_rawseti(L, -4, i);
    lua_pop(L, 1);
  }
  qsort(v, (size_t)n, sizeof(mstr), mstr_cmp);
  cf_buf_addc(L, b, '[');
  for (i = 0; i < n; i++) add_chunk(L, b, 'e', v[i].s, v[i].n);
  cf_buf_addc(L, b, ']');
  lua_pop(L, 2);
  return 1;
}

/* An object: its present fields' texts in key order. f NULL: generic (an
** empty one is a value); else an empty one is absent unless keep_empty. */
static int canon_object(mctx *c, int idx, const cf_mfield *f, cf_buf *b) {
  lua_State *L = c->L;
  size_t count = 0, i, k = 0;
  mstr *v;
  lua_pushnil(L);
  while (lua_next(L, idx)) { count++; lua_pop(L, 1); }
  lua_createtable(L, 0, 0);                        /* anchors keys and texts */
  v = (mstr *)lua_newuserdatauv(L, sizeof(mstr) * (count ? count : 1), 0);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    cf_mfield cf;
    size_t kn;
    const char *ks;
    int known = 0;
    lua_pushvalue(L, -2);
    if (lua_type(L, -1) != LUA_TSTRING) {           /* a key of another type */
      canon_push(c, -1, NULL);
      lua_replace(L, -2);
      if (lua_isnil(L, -1)) { lua_pop(L, 2); continue; }
    }
    ks = lua_tolstring(L, -1, &kn);
    lua_rawseti(L, -5, (lua_Integer)(2 * k + 1));   /* anchor the key */
    if (f && f->child) known = cf_m_lookup(f->child, NULL, ks, kn, c->kind, &cf) == 1;
    canon_push(c, -1, known ? &cf : NULL);
    if (lua_isnil(L, -1)) { lua_pop(L, 2); continue; }
    v[k].s = ks;
    v[k].n = kn;
    v[k].v = lua_tolstring(L, -1, &v[k].vn);
    lua_rawseti(L, -5, (lua_Integer)(2 * k + 2));
    lua_pop(L, 1);
    k++;
  }
  qsort(v, k, sizeof(mstr), mstr_cmp);
  if (k == 0 && f && !f->keep_empty) { lua_pop(L, 2); return 0; }
  cf_buf_addc(L, b, '{');
  for (i = 0; i < k; i++) {
    add_chunk(L, b, 'k', v[i].s, v[i].n);
    add_chunk(L, b, 'v', v[i].v, v[i].vn);
  }
  cf_buf_addc(L, b, '}');
  lua_pop(L, 2);
  return 1;
}

/* Append the canonical text of the value at idx (f: its descriptor, NULL
** when the schema does not know it) to b: 1, or 0 (nothing appended) when
** the value counts as absent. */
static int canon(mctx *c, int idx, const cf_mfield *f, cf_buf *b) {
  lua_State *L = c->L;
  int t = lua_type(L, idx), r = 1;
  idx = lua_absindex(L, idx);
  switch (t) {
    case LUA_TNIL:
      return 0;
    case LUA_TLIGHTUSERDATA:
      if (!cf_m_is_null(L, idx)) break;
      if (f && f->nullable && f->type == CF_T_STRING) { add_chunk(L, b, 's', "", 0); return 1; }
      return 0;
    case LUA_TBOOLEAN:
      if (!lua_toboolean(L, idx) && f && f->type == CF_T_BOOL) return 0;
      cf_buf_adds(L, b, lua_toboolean(L, idx) ? "T" : "F");
      return 1;
    case LUA_TNUMBER:
      cf_buf_addc(L, b, 'n');
      if (lua_isinteger(L, idx)) {
        lua_pushfstring(L, "%I", lua_tointeger(L, idx));
        cf_buf_adds(L, b, lua_tostring(L, -1));
        lua_pop(L, 1);
      } else {
        add_num(L, b, lua_tonumber(L, idx));
      }
      return 1;
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      char tmp[INET6_ADDRSTRLEN + 8];
      double ns;
      if (f && f->cls == CF_M_IP && cf_m_ip_canon(s, n, tmp, sizeof tmp)) {
        add_chunk(L, b, 'i', tmp, strlen(tmp));
      } else if (f && f->cls == CF_M_DURATION && duration_ns(s, n, &ns)) {
        cf_buf_addc(L, b, 'd');
        add_num(L, b, ns);
      } else {
        add_chunk(L, b, 's', s, n);
      }
      return 1;
    }
    case LUA_TTABLE: {
      lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
      int list = f ? f->type == CF_T_LIST : n > 0;
      if (list && n == 0) {              /* a table with keys where a list goes */
        lua_pushnil(L);
        if (lua_next(L, idx)) { lua_pop(L, 2); list = 0; f = NULL; }
      }
      if (c->depth >= CF_M_MAX_DEPTH) {       /* no policy nests this deep: not the same */
        c->too_deep = 1;
        cf_buf_addc(L, b, '!');
        return 1;
      }
      c->depth++;
      luaL_checkstack(L, 12, "cfaccess.same: too deep");
      if (list) r = canon_list(c, idx, n, f, b);
      else r = canon_object(c, idx, f && f->type == CF_T_OBJECT ? f : NULL, b);
      c->depth--;
      return r;
    }
    default:
      break;
  }
  /* functions, userdata, threads: by identity (never equal to data) */
  lua_pushfstring(L, "%s:%p", luaL_typename(L, idx), lua_topointer(L, idx));
  add_chunk(L, b, 'x', lua_tostring(L, -1), lua_rawlen(L, -1));
  lua_pop(L, 1);
  return 1;
}

/* ---- same ---------------------------------------------------------------- */

static const char *default_of(const char *k) {
  size_t i;
  for (i = 0; i < sizeof server_defaults / sizeof server_defaults[0]; i++)
    if (strcmp(server_defaults[i].name, k) == 0) return server_defaults[i].value;
  return NULL;
}

/* Is the value at idx present for the top level (nil and null are not;
** null is for a nullable field)? */
static int present(lua_State *L, int idx, const cf_mfield *f) {
  if (lua_isnil(L, idx)) return 0;
  if (cf_m_is_null(L, idx)) return f && f->nullable;
  return 1;
}

/* Compare top-level field k of the policies at a and b. */
static int field_same(mctx *c, int a, int b, const char *k, size_t kn) {
  lua_State *L = c->L;
  cf_mfield f;
  int known, pa, pb, eq;
  const char *def;
  if (strlen(k) != kn || cf_m_in_list(cf_m_read_only, k)) return 1;
  known = cf_m_lookup(NULL, NULL, k, kn, c->kind, &f) == 1;
  lua_pushlstring(L, k, kn);
  lua_rawget(L, a);
  lua_pushlstring(L, k, kn);
  lua_rawget(L, b);
  pa = present(L, -2, known ? &f : NULL);
  pb = present(L, -1, known ? &f : NULL);
  if ((!known || cf_m_in_list(one_sided, k)) && !(pa && pb)) { lua_pop(L, 2); return 1; }
  def = known ? default_of(k) : NULL;
  if (def && !pa) { lua_pushstring(L, def); lua_replace(L, -3); }
  if (def && !pb) { lua_pushstring(L, def); lua_replace(L, -2); }
  canon_push(c, -2, known ? &f : NULL);
  canon_push(c, -2, known ? &f : NULL);
  eq = !c->too_deep && lua_rawequal(L, -1, -2);
  lua_pop(L, 4);
  return eq;
}

/* Every field of the table at from, compared with the other table. */
static int fields_same(mctx *c, int a, int b, int from) {
  lua_State *L = c->L;
  lua_pushnil(L);
  while (lua_next(L, from)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) {
      size_t kn;
      const char *k = lua_tolstring(L, -1, &kn);
      if (!field_same(c, a, b, k, kn)) { lua_pop(L, 1); return 0; }
    }
  }
  return 1;
}

int cf_policy_same(lua_State *L, int a, int b, cf_kind kind) {
  return cf_policy_same_ex(L, a, b, kind, NULL);
}

int cf_policy_same_ex(lua_State *L, int a, int b, cf_kind kind, int *too_deep) {
  mctx c;
  int top = lua_gettop(L), r;
  a = lua_absindex(L, a);
  b = lua_absindex(L, b);
  luaL_checkstack(L, 20, "cfaccess.same: stack");
  c.L = L;
  c.kind = kind;
  c.depth = 0;
  c.too_deep = 0;
  /* every key of a, then every key of b (a key both have is compared
  ** twice: cheaper than remembering which were seen) */
  r = fields_same(&c, a, b, a) && fields_same(&c, a, b, b);
  lua_settop(L, top);
  if (too_deep) *too_deep = c.too_deep;
  return r && !c.too_deep;
}

/* same(a, b [, kind | opts]) -> boolean | nil, err */
static int match_same(lua_State *L) {
  cf_encode_opts o;
  int r, too_deep;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!cf_m_kind_arg(L, 3, &o)) return cf_fail(L);
  r = cf_policy_same_ex(L, 1, 2, o.kind, &too_deep);
  if (too_deep) {
    cf_error_push(L, CF_E_INVALID, "cfaccess.same: a value nests deeper than %d tables (a cycle?)",
                  CF_M_MAX_DEPTH);
    return cf_fail(L);
  }
  lua_pushboolean(L, r);
  return 1;
}

void cf_match_open(lua_State *L) {
  lua_pushcfunction(L, match_same);
  lua_setfield(L, -2, "same");
  lua_pushcfunction(L, cf_match_request_body);
  lua_setfield(L, -2, "request_body");
}
