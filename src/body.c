/*
** cfaccess.request_body(result [, kind]) (API.md section 7): the request
** body a result turns back into. It copies a result without its read-only
** fields, without the fields the kind does not take, and (unless
** allow_unknown) without fields the schema does not know; single-address
** IPs lose the /32 or /128 the API adds (Terraform #6059: the API refuses
** them back on update); integral floats become integers. The copy is then
** validated as the kind.
*/
#include <arpa/inet.h>
#include <string.h>

#include "match_int.h"
#include "schema.h"

/* The copy's context: the kind, and whether a value nested too deep for
** any body was met (the copy is refused then). */
typedef struct bctx {
  lua_State *L;
  cf_kind kind;
  int depth;
  int too_deep;
} bctx;

/* ---- request_body ---------------------------------------------------------- */

/* Is the value at idx one a body leaves out: a null the field f does not
** take, or an empty list where f is a list? */
static int body_drops(lua_State *L, int idx, const cf_mfield *f) {
  if (cf_m_is_null(L, idx)) return !(f && f->nullable);
  if (f && f->type == CF_T_LIST && lua_type(L, idx) == LUA_TTABLE) {
    int empty;
    lua_pushnil(L);
    empty = lua_next(L, idx < 0 ? idx - 1 : idx) == 0;
    if (!empty) lua_pop(L, 2);
    return empty;
  }
  return 0;
}

/* Push a copy of the value at idx for a request body (f: its descriptor or
** NULL): integral floats as integers, single IPs without /32 or /128,
** nested tables copied (what body_drops says is left out). */
static void body_copy(bctx *c, int idx, const cf_mfield *f) {
  lua_State *L = c->L;
  int t = lua_type(L, idx);
  idx = lua_absindex(L, idx);
  if (t == LUA_TNUMBER && !lua_isinteger(L, idx)) {
    lua_Number d = lua_tonumber(L, idx);
    lua_Integer i;
    if (lua_numbertointeger(d, &i) && (lua_Number)i == d) lua_pushinteger(L, i);
    else lua_pushvalue(L, idx);
  } else if (t == LUA_TSTRING && f && f->cls == CF_M_IP) {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    char tmp[INET6_ADDRSTRLEN + 8];
    size_t cut = 0;
    if (n > 3 && memcmp(s + n - 3, "/32", 3) == 0 && !memchr(s, ':', n)) cut = 3;
    else if (n > 4 && memcmp(s + n - 4, "/128", 4) == 0 && memchr(s, ':', n)) cut = 4;
    if (cut && cf_m_ip_canon(s, n - cut, tmp, sizeof tmp)) lua_pushlstring(L, s, n - cut);
    else lua_pushvalue(L, idx);
  } else if (t == LUA_TTABLE) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx), i;
    cf_mfield ef;
    if (c->depth >= CF_M_MAX_DEPTH) {         /* no body nests this deep: refused below */
      c->too_deep = 1;
      lua_pushboolean(L, 0);
      return;
    }
    c->depth++;
    luaL_checkstack(L, 8, "cfaccess.request_body: too deep");
    lua_createtable(L, (int)n, 0);
    if (f && f->type == CF_T_LIST) {
      int have = f->elem && cf_m_lookup(NULL, f->elem, NULL, 0, c->kind, &ef);
      for (i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        body_copy(c, -1, have ? &ef : NULL);
        lua_rawseti(L, -3, i);
        lua_pop(L, 1);
      }
    } else {
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        int known = 0;
        if (lua_type(L, -2) == LUA_TSTRING && f && f->type == CF_T_OBJECT && f->child) {
          size_t kn;
          const char *k = lua_tolstring(L, -2, &kn);
          known = cf_m_lookup(f->child, NULL, k, kn, c->kind, &ef) == 1;
        }
        if (body_drops(L, -1, known ? &ef : NULL)) { lua_pop(L, 1); continue; }
        body_copy(c, -1, known ? &ef : NULL);
        lua_pushvalue(L, -3);
        lua_insert(L, -2);
        lua_rawset(L, -5);
        lua_pop(L, 1);
      }
    }
    c->depth--;
  } else {
    lua_pushvalue(L, idx);
  }
}

/* request_body(result [, kind | opts]) -> body | nil, err */
int cf_match_request_body(lua_State *L) {
  cf_encode_opts o;
  bctx c;
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!cf_m_kind_arg(L, 2, &o)) return cf_fail(L);
  lua_settop(L, 2);
  c.L = L;
  c.kind = o.kind;
  c.depth = 0;
  c.too_deep = 0;
  lua_newtable(L);                                     /* 3: the body */
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    cf_mfield f;
    int known = 0;
    size_t kn = 0;
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &kn) : NULL;
    if (k && strlen(k) == kn && cf_m_in_list(cf_m_read_only, k)) { lua_pop(L, 1); continue; }
    if (k) known = cf_m_lookup(NULL, NULL, k, kn, o.kind, &f);
    /* -1: a field of another kind (dropped); 0: unknown (kept only with
    ** allow_unknown) */
    if (known == -1 || (known == 0 && !(o.allow_unknown && k))) {
      lua_pop(L, 1);
      continue;
    }
    known = known == 1;
    if (body_drops(L, -1, known ? &f : NULL)) { lua_pop(L, 1); continue; }
    body_copy(&c, -1, known ? &f : NULL);
    lua_pushvalue(L, -3);
    lua_insert(L, -2);
    lua_rawset(L, 3);
    lua_pop(L, 1);
  }
  if (c.too_deep) {
    cf_error_push(L, CF_E_INVALID, "cfaccess.request_body: a value nests deeper than %d tables (a cycle?)",
                  CF_M_MAX_DEPTH);
    return cf_fail(L);
  }
  if (!cf_policy_encode(L, 3, &o, NULL, NULL)) return cf_fail(L);
  return 1;
}

