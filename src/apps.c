/*
** cfaccess applications' writes (API.md section 6): the requests whose
** body the C core does not encode from a schema. The whole-application PUT
** carries every field the API gave back (lua/cfaccess/apps.lua builds it
** from the GET, checks that it can be sent back safely and writes the
** JSON); make_reusable is a PUT with an empty body on a path below an app
** policy. Both are rows of a table here: a name, the HTTP method, the path
** under "<base>/<scope>/" with its ids and their formats, the scopes.
**
**   client:_send(ops [, concurrency]) -> results | nil, err
**     ops[i] = { action = "put_app" | "make_reusable", app_id =,
**                policy_id =, body = "<json>" }
**     results[i] = { ok = true, result = ... } | { ok = false, err = ... }
**
** Internal (the underscore): the public methods and batch ops are
** set_app_policies, attach_policy, detach_policy and make_reusable, which
** check their arguments and build the bodies first: src/apps.lua, compiled
** in (src/apps_lua.h) and run by cf_apps_register when the core opens. Every id is checked
** here again (a UUID, or 32 hex for an app), so no path can be made of
** anything else; the requests run on the client's engine (retries,
** pacing, Retry-After) like every other.
*/
#include <string.h>

#include "resources.h"
#include "apps.h"
#include "apps_lua.h"

#define MAX_CONCURRENCY 64

typedef struct raw_action {
  const char *name;
  const char *method;
  const char *path;         /* "%s": app_id, then policy_id */
  int policy;               /* takes a policy_id */
  int body;                 /* 1: a JSON object string; 0: an empty body */
  unsigned scopes;
} raw_action;

static const raw_action actions[] = {
  { "put_app", "PUT", "access/apps/%s", 0, 1, CF_SCOPE_ACCOUNT | CF_SCOPE_ZONE },
  { "make_reusable", "PUT", "access/apps/%s/policies/%s/make_reusable", 1, 0,
    CF_SCOPE_ACCOUNT },
  { NULL, NULL, NULL, 0, 0, 0 }
};

static const raw_action *find_action(const char *name) {
  const raw_action *a;
  for (a = actions; a->name; a++)
    if (strcmp(a->name, name) == 0) return a;
  return NULL;
}

/* The string field name of the table at op, checked as an id of format f:
** returns it, or NULL with an `invalid` err pushed. */
static const char *id_field(lua_State *L, int op, int i, const char *name, cf_idfmt f) {
  size_t n;
  const char *s;
  lua_getfield(L, op, name);
  s = lua_tolstring(L, -1, &n);
  if (lua_type(L, -1) != LUA_TSTRING || !cf_id_ok(f, s, n)) {
    cf_error_push(L, CF_E_INVALID, "ops[%d].%s: expected %s", i, name, cf_id_expect(f));
    return NULL;
  }
  return s;   /* stays on the stack (anchored by the engine) */
}

/* prep for ops[i]: its request. Pushes the URL (and the ids and body,
** which rq points into; the engine keeps them alive). */
static int prep_raw(lua_State *L, cf_client *c, int arg, int i, cf_req *rq, cf_buf *body) {
  int op, top = lua_gettop(L);
  const raw_action *a = NULL;
  const char *app, *pol = NULL, *url;
  (void)body;
  lua_rawgeti(L, arg, i);
  op = lua_gettop(L);
  if (lua_type(L, op) == LUA_TTABLE && lua_getfield(L, op, "action") == LUA_TSTRING)
    a = find_action(lua_tostring(L, -1));
  if (a == NULL) {
    cf_error_push(L, CF_E_USAGE, "ops[%d].action: unknown", i);
    return 0;
  }
  if (!(a->scopes & (c->zone ? CF_SCOPE_ZONE : CF_SCOPE_ACCOUNT))) {
    cf_error_push(L, CF_E_USAGE, "%s exists only at account scope (this client has a zone_id)",
                  a->name);
    return 0;
  }
  if ((app = id_field(L, op, i, "app_id", CF_ID_UUID_OR_HEX32)) == NULL) return 0;
  if (a->policy && (pol = id_field(L, op, i, "policy_id", CF_ID_UUID)) == NULL) return 0;
  lua_pushfstring(L, "%s/%s/", c->base, c->scope);
  if (a->policy) lua_pushfstring(L, a->path, app, pol);
  else lua_pushfstring(L, a->path, app);
  lua_concat(L, 2);
  lua_replace(L, top + 1);   /* the URL, in place of the op */
  lua_settop(L, top + 1);
  url = lua_tostring(L, top + 1);
  memset(rq, 0, sizeof *rq);
  rq->method = a->method;
  rq->url = url;
  rq->path = url + c->base_len;
  if (a->body) {
    size_t n;
    const char *s;
    lua_rawgeti(L, arg, i);
    lua_getfield(L, -1, "body");
    lua_remove(L, -2);
    s = lua_tolstring(L, -1, &n);
    if (lua_type(L, -1) != LUA_TSTRING || n < 2 || s[0] != '{') {
      lua_settop(L, top);
      cf_error_push(L, CF_E_USAGE, "ops[%d].body: expected a JSON object (a string)", i);
      return 0;
    }
    rq->body = s;
    rq->body_len = n;
  } else {
    rq->body = "";   /* Content-Length: 0 */
    rq->body_len = 0;
  }
  return 1;
}

/* client:_send(ops [, concurrency]) */
static int client_send(lua_State *L) {
  cf_client *c = cf_client_check(L);
  lua_Integer n, conc = luaL_optinteger(L, 3, 8);
  cf_exec_spec sp;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_argcheck(L, conc >= 1 && conc <= MAX_CONCURRENCY, 3, "concurrency out of range");
  lua_settop(L, 3);
  n = (lua_Integer)lua_rawlen(L, 2);
  luaL_argcheck(L, n <= 0x7fffffff, 2, "too many operations");
  lua_createtable(L, (int)n, 0);
  if (n == 0) return 1;
  memset(&sp, 0, sizeof sp);
  sp.n = (int)n;
  sp.concurrency = (int)conc;
  sp.arg = 2;
  sp.prep = prep_raw;
  sp.results = lua_gettop(L);
  cf_client_exec(L, c, &sp);
  lua_settop(L, sp.results);
  return 1;
}

void cf_apps_register(lua_State *L) {
  int t = lua_gettop(L);
  lua_pushcfunction(L, client_send);
  lua_setfield(L, t, "_send");
  /* the section-6 methods (src/apps.lua): (method table, error metatable,
  ** null); a failure here is a bug in the chunk and raises */
  if (luaL_loadbuffer(L, (const char *)apps_lua, sizeof apps_lua, "=src/apps.lua") != LUA_OK)
    lua_error(L);
  lua_pushvalue(L, t);
  cf_error_init(L);
  luaL_getmetatable(L, CF_ERROR_MT);
  lua_pushlightuserdata(L, NULL);
  lua_call(L, 3, 0);
}
