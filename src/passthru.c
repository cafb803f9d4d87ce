/*
** cfaccess validator: unknown top-level fields passed through unchanged
** (opts.allow_unknown). Any JSON-encodable value is written canonically
** (object keys sorted), within visit and text budgets, so shared or cyclic
** sub-tables end as a problem instead of a huge output or a loop.
*/
#include <stdlib.h>
#include <string.h>

#include "walk.h"


static int cf_keyref_cmp(const void *a, const void *b) {
  const cf_keyref *x = (const cf_keyref *)a, *y = (const cf_keyref *)b;
  size_t n = x->n < y->n ? x->n : y->n;
  int r = memcmp(x->s, y->s, n);
  if (r) return r;
  return x->n < y->n ? -1 : x->n > y->n;
}

/* The string keys of the table at tidx as a sorted array in a new userdata
** on the stack (the strings stay anchored in that table). */
cf_keyref *cf_walk_sorted_keys(lua_State *L, int tidx, size_t *count) {
  size_t m = 0, i = 0;
  cf_keyref *ks;
  lua_pushnil(L);
  while (lua_next(L, tidx)) { lua_pop(L, 1); if (lua_type(L, -1) == LUA_TSTRING) m++; }
  ks = (cf_keyref *)lua_newuserdatauv(L, (m ? m : 1) * sizeof(cf_keyref), 0);
  lua_pushnil(L);
  while (lua_next(L, tidx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING && i < m) {
      ks[i].s = lua_tolstring(L, -1, &ks[i].n);
      i++;
    }
  }
  qsort(ks, i, sizeof(cf_keyref), cf_keyref_cmp);
  *count = i;
  return ks;
}

/* Charge one pass-through value or key to the visit budget; 0 once it is
** spent (reported once). */
static int pass_charge(cf_walk *c) {
  if (c->pass_budget <= 0) return 0;
  if (--c->pass_budget == 0) {
    cf_walk_error(c, NULL, "unknown fields too large (more than %d values and keys)", CF_MAX_PASS);
    return 0;
  }
  return 1;
}

/* A table: a list (keys 1..n) or a string-keyed object (keys sorted). */
static void any_table(cf_walk *c, int idx, int depth) {
  lua_State *L = c->L;
  lua_Integer n, count = 0, i;
  int strkeys = 0, otherkeys = 0;
  size_t keybytes = 0;
  if (depth > CF_MAX_DEPTH) {
    cf_walk_error(c, NULL, "nested more than %d levels deep (a cycle?)", CF_MAX_DEPTH);
    return;
  }
  luaL_checkstack(L, 16, "cfaccess: nesting");
  n = (lua_Integer)lua_rawlen(L, idx);
  lua_pushnil(L);
  /* Every key is charged, and the key bytes before they are sorted or
  ** checked: a table reachable many times through shared subtables
  ** must not cost more than the budgets allow. */
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (!pass_charge(c)) {
      lua_pop(L, 1);
      return;
    }
    if (lua_type(L, -1) == LUA_TSTRING) {
      strkeys++;
      keybytes += lua_rawlen(L, -1);
    }
    else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 &&
             lua_tointeger(L, -1) <= n) count++;
    else otherkeys++;
  }
  if (otherkeys || (strkeys && count)) {
    cf_walk_error(c, NULL, "a JSON value needs a list (keys 1..n) or an object (string keys)");
    return;
  }
  if (strkeys) {
    size_t m, k;
    cf_keyref *ks;
    if (!cf_walk_take_text(c, keybytes)) return;
    ks = cf_walk_sorted_keys(L, idx, &m);
    cf_jw_char(&c->jw, '{');
    for (k = 0; k < m; k++) {
      size_t old;
      if (k) cf_jw_char(&c->jw, ',');
      old = cf_walk_key(c, ks[k].s, ks[k].n);
      if (!cf_is_utf8(ks[k].s, ks[k].n)) cf_walk_error(c, NULL, "field name is not valid UTF-8");
      else cf_jw_string(&c->jw, ks[k].s, ks[k].n);
      cf_jw_char(&c->jw, ':');
      lua_pushlstring(L, ks[k].s, ks[k].n);
      lua_rawget(L, idx);
      cf_walk_any(c, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
      c->plen = old;
    }
    cf_jw_char(&c->jw, '}');
    lua_pop(L, 1);
    return;
  }
  if (n == 0) { CF_JW_LIT(&c->jw, "{}"); return; }   /* cjson's choice for {} */
  cf_jw_char(&c->jw, '[');
  for (i = 1; i <= n; i++) {
    size_t old;
    if (i > 1) cf_jw_char(&c->jw, ',');
    old = cf_walk_index(c, i);
    lua_rawgeti(L, idx, i);
    cf_walk_any(c, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
    c->plen = old;
  }
  cf_jw_char(&c->jw, ']');
}

/* Write any JSON-encodable value (pass-through of unknown fields): strings,
** numbers, booleans, cfaccess.null, lists and objects; depth-limited, so
** cycles end as a problem. */
void cf_walk_any(cf_walk *c, int idx, int depth) {
  lua_State *L = c->L;
  if (c->text_budget == 0 || !pass_charge(c)) return;
  switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      if (!cf_is_utf8(s, n)) cf_walk_error(c, NULL, "string is not valid UTF-8");
      else if (cf_walk_take_text(c, n)) cf_jw_string(&c->jw, s, n);
      return;
    }
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) { cf_jw_int(&c->jw, lua_tointeger(L, idx)); return; }
      {
        double d = (double)lua_tonumber(L, idx);
        if (d != d || d - d != 0) cf_walk_error(c, NULL, "expected a finite number, got %f", d);
        else cf_jw_float(&c->jw, d);
      }
      return;
    case LUA_TBOOLEAN:
      if (lua_toboolean(L, idx)) CF_JW_LIT(&c->jw, "true"); else CF_JW_LIT(&c->jw, "false");
      return;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL) { CF_JW_LIT(&c->jw, "null"); return; }
      break;
    case LUA_TTABLE:
      any_table(c, idx, depth);
      return;
    default:
      break;
  }
  cf_walk_error(c, NULL, "expected a JSON value (string, number, boolean, null, list or "
          "object), got %s", cf_walk_found(L, idx));
}

