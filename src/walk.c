/*
** cfaccess validator: paths, problems and warnings, quoting user text for
** messages, did-you-mean, the options and the entry points. The walker
** itself is validate.c. Nothing is allocated with malloc here (paths live
** in a fixed C array, the rest on the Lua stack), so a Lua memory error
** cannot leak.
*/
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "walk.h"

#define MAX_TEXT (16u << 20)  /* string bytes a body may carry (16 MiB):
                                 shared sub-tables could otherwise make a
                                 small table encode to gigabytes */
#define KEY_SHOW 64           /* bytes of a user key shown in a path */
#define VALUE_SHOW 60         /* bytes of a user value shown in a message */

/* ---- showing user text -------------------------------------------------- */

/* Copy at most `room` bytes of a user string into dst for a message
** (quote=1) or a path (quote=0). Printable ASCII and visible UTF-8 are
** kept; invisible or format code points are shown as \u{FEFF}; in a
** message control characters as \u{0A}, '"' and '\' escaped, bytes that
** are not UTF-8 as \xNN; in a path those show as '?'. Returns bytes
** written; *cut is set when s did not fit. */
static size_t show(char *dst, size_t room, const char *s, size_t n, int quote, int *cut) {
  size_t i = 0, o = 0;
  *cut = 0;
  while (i < n) {
    unsigned char ch = (unsigned char)s[i];
    unsigned long cp = ch;
    size_t len = 1, inv = 0;
    char esc[16];
    size_t elen = 0;
    if (ch >= 0x80) {
      inv = cf_invisible_at(s + i, n - i, &cp);
      len = ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : 2;
      if (inv) len = inv;
      else if (len > n - i || !cf_is_utf8(s + i, len)) {
        len = 1;
        elen = quote ? (size_t)snprintf(esc, sizeof esc, "\\x%02X", (unsigned)ch) : 1;
        if (!quote) esc[0] = '?';
      }
      if (inv) elen = (size_t)snprintf(esc, sizeof esc, "\\u{%04lX}", cp);
    } else if (ch < 0x20 || ch == 0x7F) {
      elen = quote ? (size_t)snprintf(esc, sizeof esc, "\\u{%02X}", (unsigned)ch) : 1;
      if (!quote) esc[0] = '?';
    } else if (quote && (ch == '"' || ch == '\\')) {
      esc[0] = '\\';
      esc[1] = (char)ch;
      elen = 2;
    }
    if (elen) {
      if (o + elen > room) { *cut = 1; break; }
      memcpy(dst + o, esc, elen);
      o += elen;
    } else {
      if (o + len > room) { *cut = 1; break; }
      memcpy(dst + o, s + i, len);
      o += len;
    }
    i += len;
  }
  return o;
}

const char *cf_walk_quote(lua_State *L, const char *s, size_t n) {
  char q[VALUE_SHOW + 16];
  int cut;
  size_t o = 1;
  q[0] = '"';
  o += show(q + 1, VALUE_SHOW, s, n, 1, &cut);
  q[o++] = '"';
  if (cut) { memcpy(q + o, "...", 3); o += 3; }
  lua_pushlstring(L, q, o);
  return lua_tostring(L, -1);
}

/* ---- paths ---------------------------------------------------------------- */

size_t cf_walk_key(cf_walk *w, const char *k, size_t n) { return cf_walk_push_key(w, k, n); }
size_t cf_walk_index(cf_walk *w, lua_Integer i) { return cf_walk_push_index(w, i); }
void cf_walk_leave(cf_walk *w, size_t old) { w->plen = old; }

/* Render the current path ("a.b[2].c", after the prefix) into out (at
** least CF_PATH_MAX + 8 bytes); user keys are shown printable and cut. */
static size_t path_render(const cf_walk *w, char *out) {
  size_t o = w->prefix_len, k, nseg = w->plen < CF_MAX_SEGS ? w->plen : CF_MAX_SEGS;
  memcpy(out, w->prefix, o);
  for (k = 0; k < nseg && o < CF_PATH_MAX; k++) {
    if (w->seg[k].s == NULL) {
      o += (size_t)snprintf(out + o, 24, "[%lld]", (long long)w->seg[k].i);
    } else {
      size_t room = CF_PATH_MAX - o;
      int cut;
      if (o > 0) out[o++] = '.';
      if (room > KEY_SHOW) room = KEY_SHOW;
      o += show(out + o, room, w->seg[k].s, w->seg[k].n, 0, &cut);
      if (cut) { memcpy(out + o, "...", 3); o += 3; }
    }
  }
  if (k < w->plen) { memcpy(out + o, "...", 3); o += 3; }
  return o;
}

/* ---- problems and warnings ------------------------------------------------ */

void cf_walk_problem(cf_walk *w, int warning, const char *leaf, const char *fmt,
                     va_list ap) {
  lua_State *L = w->L;
  size_t old = w->plen;
  int slot, n;
  if (warning && w->strict) warning = 0;
  slot = warning ? w->pwarn : w->perr;
  n = warning ? ++w->nwarn : ++w->nprob;
  if (leaf) cf_walk_key(w, leaf, strlen(leaf));
  if (n <= CF_MAX_PROBLEMS) {
    char path[CF_PATH_MAX + 96];
    size_t plen = path_render(w, path);
    if (lua_type(L, slot) != LUA_TTABLE) {
      lua_createtable(L, 4, 0);
      lua_replace(L, slot);
    }
    lua_pushlstring(L, path, plen);
    cf_problem_add(L, slot, n, fmt, ap);
  }
  w->plen = old;
}

void cf_walk_error(cf_walk *w, const char *leaf, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  cf_walk_problem(w, 0, leaf, fmt, ap);
  va_end(ap);
}

void cf_walk_warn(cf_walk *w, const char *leaf, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  cf_walk_problem(w, 1, leaf, fmt, ap);
  va_end(ap);
}

lua_State *cf_walk_L(const cf_walk *w) { return w->L; }
cf_kind cf_walk_kind(const cf_walk *w) { return w->kind; }
const char *cf_walk_decision(const cf_walk *w) { return w->decision; }
unsigned cf_walk_rule_flags(const cf_walk *w) { return w->rule_flags; }

int cf_walk_take_text(cf_walk *w, size_t n) {
  if (w->text_budget == 0) return 0;
  if (n < w->text_budget) { w->text_budget -= n; return 1; }
  w->text_budget = 0;
  cf_walk_error(w, NULL, "policy too large: its strings add up to more than %d MiB",
                (int)(MAX_TEXT >> 20));
  return 0;
}

int cf_walk_is_null(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

const char *cf_walk_found(lua_State *L, int idx) {
  if (cf_walk_is_null(L, idx)) return "null";
  return lua_typename(L, lua_type(L, idx));
}

/* ---- did you mean ------------------------------------------------------------ */

const char *cf_walk_suggest(const cf_schema *s, const char *const *names,
                            const char *k, size_t n) {
  const char *best = NULL;
  size_t bestd = (size_t)-1;
  unsigned i;
  if (n == 0 || n > 64) return NULL;
  for (i = 0; names ? names[i] != NULL : i < s->n; i++) {
    const char *name = names ? names[i] : s->fields[i].name;
    size_t len = strlen(name);
    size_t longer = len > n ? len : n;
    size_t d = cf_edit_distance(k, n, name, len);
    if (d <= longer / 3 && d < bestd) { bestd = d; best = name; }
  }
  return best;
}

/* ---- options ------------------------------------------------------------------ */

int cf_kind_from_name(const char *name, cf_kind *out) {
  int i;
  for (i = 0; cf_body_kinds[i].name; i++)
    if (!cf_body_kinds[i].internal && strcmp(name, cf_body_kinds[i].name) == 0) {
      *out = (cf_kind)i;
      return 1;
    }
  return 0;
}

/* The internal kinds (specs only) by their "_" names. */
static int internal_kind(const char *name, cf_kind *out) {
  int i;
  for (i = 0; cf_body_kinds[i].name; i++)
    if (cf_body_kinds[i].internal && strcmp(name, cf_body_kinds[i].name) == 0) {
      *out = (cf_kind)i;
      return 1;
    }
  return 0;
}

static int read_bool(lua_State *L, int idx, const char *key) {
  int t = lua_getfield(L, idx, key), v = 0;
  if (t == LUA_TBOOLEAN) v = lua_toboolean(L, -1);
  else if (t != LUA_TNIL)
    luaL_argerror(L, idx, lua_pushfstring(L, "opts.%s: boolean expected, got %s", key,
                                          luaL_typename(L, -1)));
  lua_pop(L, 1);
  return v;
}

int cf_body_opts_read(lua_State *L, int idx, cf_body_opts *o) {
  int t;
  o->kind = CF_KIND_APP;
  o->allow_unknown = o->strict = o->legacy = 0;
  if (lua_isnoneornil(L, idx)) return 1;
  idx = lua_absindex(L, idx);
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushliteral(L, "kind");
  t = lua_rawget(L, idx);
  if (t == LUA_TSTRING) {
    size_t n;
    const char *k = lua_tolstring(L, -1, &n);
    if (strlen(k) != n || (!cf_kind_from_name(k, &o->kind) && !internal_kind(k, &o->kind))) {
      cf_walk_quote(L, k, n);
      cf_error_push(L, "usage", "unknown policy kind %s (expected app, zone, "
                    "reusable, infrastructure or group)", lua_tostring(L, -1));
      lua_replace(L, -3);
      lua_pop(L, 1);
      return 0;
    }
  } else if (t != LUA_TNIL) {
    luaL_argerror(L, idx, lua_pushfstring(L, "opts.kind: string expected, got %s",
                                          luaL_typename(L, -1)));
  }
  lua_pop(L, 1);
  o->allow_unknown = read_bool(L, idx, "allow_unknown");
  o->strict = read_bool(L, idx, "strict");
  o->legacy = read_bool(L, idx, "legacy");
  return 1;
}

int cf_encode_opts_read(lua_State *L, int idx, cf_encode_opts *o) {
  cf_body_opts b;
  if (!cf_body_opts_read(L, idx, &b)) return 0;
  o->kind = b.kind;
  o->allow_unknown = b.allow_unknown;
  return 1;
}

/* ---- entry points ---------------------------------------------------------------- */

/* The walk context for one body, the problem and warning slots pushed. */
static void walk_init(lua_State *L, cf_walk *w, const cf_body_opts *o,
                      const char *prefix, cf_buf *out) {
  w->L = L;
  w->nprob = w->nwarn = 0;
  w->body = &cf_body_kinds[o->kind];
  w->kind = o->kind;
  w->kbit = w->body->bit;
  w->allow_unknown = o->allow_unknown;
  w->strict = o->strict;
  w->legacy = o->legacy;
  w->pass_budget = CF_MAX_PASS;
  w->text_budget = MAX_TEXT;
  w->decision = NULL;
  w->rule_flags = 0;
  w->plen = 0;
  w->prefix = prefix ? prefix : "";
  w->prefix_len = strlen(w->prefix);
  if (w->prefix_len > CF_PATH_MAX / 2) w->prefix_len = CF_PATH_MAX / 2;
  w->jw.L = L;
  w->jw.out = out;
  w->jw.slen = 0;
  lua_pushnil(L);                         /* problems slot */
  w->perr = lua_gettop(L);
  lua_pushnil(L);                         /* warnings slot */
  w->pwarn = lua_gettop(L);
}

int cf_body_encode(lua_State *L, int idx, const cf_body_opts *o,
                   const char *prefix, cf_buf *out) {
  cf_walk w;
  int top;
  size_t start = out ? out->len : 0;
  idx = lua_absindex(L, idx);
  top = lua_gettop(L);
  luaL_checkstack(L, 16, "cfaccess: stack");
  walk_init(L, &w, o, prefix, out);
  if (lua_type(L, idx) != LUA_TTABLE) {
    cf_walk_error(&w, NULL, "expected %s %s (a table), got %s",
                  strchr("aeiou", w.body->noun[0]) ? "an" : "a", w.body->noun,
                  cf_walk_found(L, idx));
  } else {
    cf_walk_object(&w, w.body->schema, idx, 1);
    if (w.body->check) w.body->check(&w, idx);
  }
  if (w.nprob == 0) {
    if (out) cf_jw_flush(&w.jw);
    lua_replace(L, top + 1);              /* the warnings (or nil) */
    lua_settop(L, top + 1);
    return 1;
  }
  if (out) out->len = start;
  cf_error_invalid(L, w.body->noun, w.perr, w.nprob);
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
  return 0;
}

int cf_policy_encode(lua_State *L, int idx, const cf_encode_opts *o,
                     const char *prefix, cf_buf *out) {
  cf_body_opts b;
  b.kind = o->kind;
  b.allow_unknown = o->allow_unknown;
  b.strict = 0;
  b.legacy = 0;
  if (!cf_body_encode(L, idx, &b, prefix, out)) return 0;
  lua_pop(L, 1);                          /* the warnings */
  return 1;
}
