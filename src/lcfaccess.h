/*
** cfaccess: the public header for host programs that link the core
** statically (libcfaccess.a, `make static`) and register it themselves:
**
**   luaL_requiref(L, "cfaccess.core", luaopen_cfaccess_core, 0);
**
** luaopen_cfaccess_core is the only symbol the library exports.
*/
#ifndef LCFACCESS_H
#define LCFACCESS_H

#include "lua.h"

LUAMOD_API int luaopen_cfaccess_core(lua_State *L);

#endif
