/*
** cfaccess.core: module entry. Registers encode, validate and client.
*/
#include "cfaccess.h"
#include "schema.h"

/* encode(body [, opts]) -> json, nil, warnings | nil, err */
static int core_encode(lua_State *L) {
  cf_body_opts o;
  cf_buf *b;
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!cf_body_opts_read(L, 2, &o)) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  lua_settop(L, 2);
  b = cf_buf_push(L);                                  /* index 3 */
  if (!cf_body_encode(L, 1, &o, NULL, b)) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushlstring(L, b->data, b->len);
  cf_buf_free(b);
  if (lua_isnil(L, 4)) return 1;
  lua_pushnil(L);
  lua_pushvalue(L, 4);                                 /* the warnings */
  return 3;
}

/* validate(body [, opts]) -> true, nil, warnings | nil, err */
static int core_validate(lua_State *L) {
  cf_body_opts o;
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!cf_body_opts_read(L, 2, &o) || !cf_body_encode(L, 1, &o, NULL, NULL)) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  if (lua_isnil(L, -1)) { lua_pushboolean(L, 1); return 1; }
  lua_pushboolean(L, 1);
  lua_pushnil(L);
  lua_rotate(L, -3, -1);                               /* true, nil, warnings */
  return 3;
}

static const luaL_Reg core_funcs[] = {
  {"encode", core_encode},
  {"validate", core_validate},
  {NULL, NULL}
};

CF_EXPORT LUAMOD_API int luaopen_cfaccess_core(lua_State *L) {
  luaL_checkversion(L);
  cf_error_init(L);
  luaL_newlib(L, core_funcs);
  lua_pushliteral(L, "cfaccess " CFACCESS_VERSION);
  lua_setfield(L, -2, "_VERSION");
  cf_client_open(L);
  cf_schema_open(L);
  return 1;
}
