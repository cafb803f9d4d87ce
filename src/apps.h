/*
** cfaccess applications' writes (apps.c): client:_send, the
** whole-application PUT and make_reusable, for lua/cfaccess/apps.lua.
*/
#ifndef CFACCESS_APPS_H
#define CFACCESS_APPS_H

#include "cfaccess.h"

/* Set client:_send into the method table on top, then run src/apps.lua
** over it (set_app_policies, attach/detach_policy, make_reusable, the
** guarded delete_policy / update_app_policy / delete_app_policy, batch). */
CF_INTERNAL void cf_apps_register(lua_State *L);

#endif
