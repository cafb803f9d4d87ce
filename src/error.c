/*
** cfaccess error objects: plain tables { kind =, message =, ... } whose
** metatable gives tostring(err) == err.message (one readable line).
*/
#include <stdarg.h>

#include "cfaccess.h"

static int error_tostring(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (lua_getfield(L, 1, "message") != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_getfield(L, 1, "kind");
    lua_pushfstring(L, "cfaccess error (%s)",
                    lua_isstring(L, -1) ? lua_tostring(L, -1) : "unknown");
  }
  return 1;
}

void cf_error_init(lua_State *L) {
  if (luaL_newmetatable(L, CF_ERROR_MT)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}

void cf_error_push(lua_State *L, const char *kind, const char *fmt, ...) {
  va_list ap;
  lua_createtable(L, 0, 4);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_setfield(L, -2, "message");
  cf_error_init(L);
  luaL_setmetatable(L, CF_ERROR_MT);
}

int cf_fail(lua_State *L) {
  lua_pushnil(L);
  lua_insert(L, -2);
  return 2;
}

void cf_problem_add(lua_State *L, int list, lua_Integer n, const char *fmt,
                    va_list ap) {
  lua_createtable(L, 0, 2);
  lua_insert(L, -2);
  lua_setfield(L, -2, "path");
  lua_pushvfstring(L, fmt, ap);
  lua_setfield(L, -2, "message");
  lua_rawseti(L, list, n);
}

void cf_error_invalid(lua_State *L, const char *what, int pidx, int count) {
  const char *path, *msg;
  pidx = lua_absindex(L, pidx);
  lua_rawgeti(L, pidx, 1);
  lua_getfield(L, -1, "path");
  lua_getfield(L, -2, "message");
  path = lua_tostring(L, -2);
  msg = lua_tostring(L, -1);
  if (path == NULL) path = "";
  if (msg == NULL) msg = "";
  if (count == 1)
    cf_error_push(L, CF_E_INVALID, "invalid %s: %s%s%s", what, path, *path ? ": " : "", msg);
  else
    cf_error_push(L, CF_E_INVALID, "invalid %s: %s%s%s (and %d more problem%s)", what,
                  path, *path ? ": " : "", msg, count - 1, count == 2 ? "" : "s");
  lua_pushvalue(L, pidx);
  lua_setfield(L, -2, "problems");
  lua_replace(L, -4);   /* the error takes the first problem's slot */
  lua_pop(L, 2);
}
