/*
** cfaccess.core: module entry. Registers its parts from one table: the
** response decoder (lua-cjson), encode/validate/_VERSION, the client,
** the read-only schema (core.schema, core.null), same/request_body (match.c),
** the memory-capped call of the state sandbox (memcap.c).
*/
#include "cfaccess.h"
#include "match.h"
#include "schema.h"

/* encode(body [, opts]) -> json, nil, warnings | nil, err */
static int core_encode(lua_State *L) {
  cf_body_opts o;
  cf_buf *b;
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!cf_body_opts_read(L, 2, &o)) return cf_fail(L);
  lua_settop(L, 2);
  b = cf_buf_push(L);                                  /* index 3 */
  if (!cf_body_encode(L, 1, &o, NULL, b)) return cf_fail(L);
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
  if (!cf_body_opts_read(L, 2, &o) || !cf_body_encode(L, 1, &o, NULL, NULL))
    return cf_fail(L);
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

static void core_open(lua_State *L) {
  luaL_setfuncs(L, core_funcs, 0);
  lua_pushliteral(L, "cfaccess " CFACCESS_VERSION);
  lua_setfield(L, -2, "_VERSION");
}

/* The parts, each registering itself in the module table on top (the
** shape of LuaSocket's luasocket.c `mod[]`, with void openers since none
** returns anything). The decoder goes first: without a usable lua-cjson it
** raises, and nothing else is set up. */
static const struct {
  const char *name;
  void (*open)(lua_State *L);
} mod[] = {
  {"response", cf_response_open},
  {"core", core_open},
  {"client", cf_client_open},
  {"schema", cf_schema_open},
  {"match", cf_match_open},
  {"memcap", cf_memcap_open},
  {NULL, NULL}
};

CF_EXPORT LUAMOD_API int luaopen_cfaccess_core(lua_State *L) {
  int i;
  luaL_checkversion(L);
  cf_error_init(L);
  lua_newtable(L);
  for (i = 0; mod[i].name != NULL; i++) mod[i].open(L);
  return 1;
}
