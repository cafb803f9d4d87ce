/*
** host: a minimal program that embeds Lua and links the cfaccess core
** statically (libcfaccess.a), the way an automation tool would.
**
**   host SCRIPT [ARGS...]
**
** Opens the standard libraries, registers the core with luaL_requiref under
** "cfaccess.core" (so `require "cfaccess"` finds it without any core.so),
** sets the global `arg` like lua.c does, runs SCRIPT and exits 0, or prints
** the error with a traceback and exits 1.
*/
#include <stdio.h>
#include <stdlib.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#include "lcfaccess.h"

int main(int argc, char **argv);

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) msg = luaL_tolstring(L, 1, NULL);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int main(int argc, char **argv) {
  lua_State *L;
  int i, st;
  if (argc < 2) {
    fprintf(stderr, "usage: %s SCRIPT [ARGS...]\n", argv[0]);
    return 2;
  }
  L = luaL_newstate();
  if (L == NULL) {
    fprintf(stderr, "host: cannot create a Lua state\n");
    return 1;
  }
  luaL_openlibs(L);
  luaL_requiref(L, "cfaccess.core", luaopen_cfaccess_core, 0);
  lua_pop(L, 1);
  lua_createtable(L, argc, 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);            /* arg[0] = SCRIPT, like lua.c */
  }
  lua_setglobal(L, "arg");
  lua_pushcfunction(L, traceback);
  st = luaL_loadfile(L, argv[1]);
  if (st == LUA_OK) {
    for (i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
    st = lua_pcall(L, argc - 2, 0, 1);
  }
  if (st != LUA_OK) {
    fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }
  lua_close(L);
  return 0;
}
