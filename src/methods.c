/*
** cfaccess client methods, generated from the endpoint registry: one
** closure per resource and verb, its row and verb as upvalues. Arguments
** are checked in one order for every method (types raise; then id formats,
** scope, options: `nil, err`), the request is built from the row and run by
** the engine as a batch of one.
*/
#include <string.h>

#include "apps.h"
#include "resources.h"

/* Encode the body at idx. Returns the buffer and pushes two values (its
** owner userdata, or nil when it is the client's own buffer; then the
** validator's warnings, or nil), or returns NULL with err pushed. The client's buffer saves an allocation and a
** finalizer per request; a call re-entered from on_log while a request is
** in flight gets a buffer of its own. */
static cf_buf *encode_body(lua_State *L, cf_client *c, int idx, const cf_body_opts *o) {
  cf_buf *b;
  if (c->busy == 0) {
    b = &c->body;
    cf_buf_reset(b);
    lua_pushnil(L);
  } else b = cf_buf_push(L);
  if (!cf_body_encode(L, idx, o, NULL, b)) {
    lua_remove(L, -2);
    return NULL;
  }
  return b;
}

/* Check the id argument at idx (a string: checked by the caller). */
static int check_id(lua_State *L, int idx, const char *name, cf_idfmt f) {
  size_t n;
  const char *s = lua_tolstring(L, idx, &n);
  if (cf_id_ok(f, s, n)) return 1;
  cf_error_push(L, CF_E_INVALID, "%s: expected %s", name, cf_id_expect(f));
  lua_pushstring(L, name);
  lua_setfield(L, -2, "argument");
  return 0;
}

/* The encoding options at idx (nil, or a table: checked by the caller),
** the kind fitted to the resource and the client's scope. */
static int read_encode_opts(lua_State *L, const cf_resource *r, cf_verb v,
                            const cf_client *c, int idx, cf_body_opts *o) {
  int has_kind = 0;
  if (!lua_isnoneornil(L, idx)) {
    has_kind = lua_getfield(L, idx, "kind") != LUA_TNIL;
    lua_pop(L, 1);
  }
  if (!cf_body_opts_read(L, idx, o)) return 0;
  if (!cf_kind_check(L, r, v, c, has_kind, &o->kind)) {
    cf_error_push(L, CF_E_USAGE, "kind: %s", lua_tostring(L, -1));
    lua_remove(L, -2);
    return 0;
  }
  return 1;
}

/* client:<method>(...) for upvalue 1 (the row) and upvalue 2 (the verb):
** (parent_id,) [item_id,] [body,] [opts]. */
static int method_call(lua_State *L) {
  const cf_resource *r = (const cf_resource *)lua_touserdata(L, lua_upvalueindex(1));
  cf_verb v = (cf_verb)lua_tointeger(L, lua_upvalueindex(2));
  cf_client *c = cf_client_check(L);
  int a = 2, parent = 0, item = 0, body = 0, opts;
  cf_body_opts eo;
  int warnings = 0, n;
  cf_req rq;
  if (r->parent) parent = a++;
  if (v == CF_GET || v == CF_UPDATE || v == CF_DELETE) item = a++;
  if (v == CF_CREATE || v == CF_UPDATE) body = a++;
  opts = a;
  if (body) luaL_checktype(L, body, LUA_TTABLE);
  if (parent) luaL_checktype(L, parent, LUA_TSTRING);
  if (item) luaL_checktype(L, item, LUA_TSTRING);
  if ((v == CF_LIST || body) && !lua_isnoneornil(L, opts)) luaL_checktype(L, opts, LUA_TTABLE);
  if (!cf_client_usable(L, c)) return cf_fail(L);
  if ((parent && !check_id(L, parent, r->parent, r->parent_fmt)) ||
      (item && !check_id(L, item, r->item, r->item_fmt)))
    return cf_fail(L);
  if (!cf_scope_check(L, r, c)) {
    cf_error_push(L, CF_E_USAGE, "%s", lua_tostring(L, -1));
    return cf_fail(L);
  }
  memset(&rq, 0, sizeof rq);
  if (v == CF_LIST && !lua_isnoneornil(L, opts) &&
      !cf_args_read(L, opts, cf_list_options(), &rq))
    return cf_fail(L);
  if (body && !read_encode_opts(L, r, v, c, opts, &eo)) return cf_fail(L);
  lua_settop(L, opts);
  cf_resource_request(L, c, r, v, parent, item, &rq);
  if (body) {
    cf_buf *b = encode_body(L, c, body, &eo);
    if (b == NULL) return cf_fail(L);
    rq.body = b->data;   /* owned by the client or the userdata on the stack */
    rq.body_len = b->len;
    rq.kind = eo.kind;
    warnings = lua_gettop(L);
    cf_log_warnings(L, 1, rq.method, rq.path, warnings);
  }
  n = cf_client_run(L, c, &rq);
  if (n == 1 && warnings && !lua_isnil(L, warnings)) {   /* result, nil, warnings */
    lua_pushnil(L);
    lua_pushvalue(L, warnings);
    return 3;
  }
  return n;
}

void cf_log_warnings(lua_State *L, int ci, const char *method, const char *path, int w) {
  lua_Integer i, n;
  if (lua_type(L, w) != LUA_TTABLE) return;
  n = (lua_Integer)lua_rawlen(L, w);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, w, i);
    lua_getfield(L, -1, "path");
    lua_getfield(L, -2, "message");
    cf_client_log(L, ci, "warn", "%s %s: validation warning at %s: %s", method, path,
                  luaL_optstring(L, -2, ""), luaL_optstring(L, -1, ""));
    lua_pop(L, 3);
  }
}

void cf_methods_register(lua_State *L) {
  const cf_resource *r;
  int v;
  for (r = cf_resource_list(); r->name; r++)
    for (v = 0; v < CF_NVERBS; v++) {
      if (r->method[v] == NULL) continue;
      lua_pushlightuserdata(L, (void *)r);
      lua_pushinteger(L, v);
      lua_pushcclosure(L, method_call, 2);
      lua_setfield(L, -2, r->method[v]);
    }
  lua_pushcfunction(L, cf_client_batch);
  lua_setfield(L, -2, "batch");
  cf_apps_register(L);   /* client:_send (apps.c) */
}
