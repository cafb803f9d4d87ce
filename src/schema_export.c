/*
** core.schema: the schema tables of schema.c as a read-only Lua table, so
** Lua code (rulespec.lua, the specs, the fuzz name lists) derives from the
** one list of rule types instead of copying it:
**
**   core.schema.rule_types  = { "email", "email_list", ... }   (schema order)
**   core.schema.rules[key]  = { key =, identity =, linked =,
**                               fields = { { name =, required =, type =,
**                                            format = (or nil), legacy = (or nil),
**                                            values = (enum, or nil) }, ... } }
**   core.schema.kinds       = { "app", "zone", "reusable", "infrastructure", "group" }
**   core.null               = lua-cjson's null (a NULL light userdata)
**
** Every table is an empty proxy whose metatable serves the contents
** (__index, __len, __pairs) and raises on __newindex, so writing to any
** part of it raises while ipairs, pairs and # work as on a plain table.
*/
#include "cfaccess.h"
#include "schema.h"

static const char *const type_names[] = {
  NULL, "string", "bool", "int", "object", "list", "oneof"
};

static const char *const format_names[] = {
  NULL, "nonempty", "email", "domain", "ip", "country", "url", "uuid",
  "hex32", "duration", "mfa_duration", "amr"
};

static int ro_newindex(lua_State *L) {
  return luaL_error(L, "cfaccess.core.schema is read-only");
}

/* The contents table behind the proxy at index 1. */
static void ro_contents(lua_State *L) {
  if (!lua_getmetatable(L, 1)) luaL_error(L, "cfaccess.core.schema: not a schema table");
  lua_getfield(L, -1, "__index");
}

static int ro_len(lua_State *L) {
  ro_contents(L);
  lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
  return 1;
}

static int ro_next(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  if (lua_next(L, 1)) return 2;
  lua_pushnil(L);
  return 1;
}

static int ro_pairs(lua_State *L) {
  lua_pushcfunction(L, ro_next);
  ro_contents(L);
  lua_remove(L, -2);
  lua_pushnil(L);
  return 3;
}

/* Replace the table on top with a read-only proxy of it. */
static void make_ro(lua_State *L) {
  lua_newtable(L);                       /* proxy */
  lua_createtable(L, 0, 5);              /* its metatable */
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, ro_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, ro_len);
  lua_setfield(L, -2, "__len");
  lua_pushcfunction(L, ro_pairs);
  lua_setfield(L, -2, "__pairs");
  lua_pushliteral(L, "read-only");
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_replace(L, -2);
}

static void set_str(lua_State *L, const char *k, const char *v) {
  if (!v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}

/* Push { "a", "b", ... } (read-only) for a NULL-terminated list. */
static void push_names(lua_State *L, const char *const *v) {
  lua_Integer i;
  lua_newtable(L);
  for (i = 0; v[i]; i++) {
    lua_pushstring(L, v[i]);
    lua_rawseti(L, -2, i + 1);
  }
  make_ro(L);
}

/* Push the descriptor of one inner rule field. */
static void push_field(lua_State *L, const cf_field *f) {
  const cf_field *v = f->type == CF_T_LIST && f->elem ? f->elem : f;
  lua_createtable(L, 0, 6);
  set_str(L, "name", f->name);
  set_bool(L, "required", cf_field_required(f));
  set_str(L, "type", type_names[f->type]);
  if (v->type == CF_T_STRING) set_str(L, "format", format_names[v->fmt]);
  if (f->flags & CF_FL_LEGACY) set_bool(L, "legacy", 1);
  if (v->enumv) {
    push_names(L, v->enumv);
    lua_setfield(L, -2, "values");
  }
  make_ro(L);
}

static void push_rules(lua_State *L) {
  const cf_schema *s = &cf_rule_schema;
  unsigned i, j;
  lua_newtable(L);                        /* rule_types */
  lua_newtable(L);                        /* rules */
  for (i = 0; i < s->n; i++) {
    const cf_field *r = &s->fields[i];
    lua_pushstring(L, r->name);
    lua_rawseti(L, -3, (lua_Integer)i + 1);
    lua_createtable(L, 0, 4);
    set_str(L, "key", r->name);
    set_bool(L, "identity", (r->flags & CF_FL_IDENTITY) != 0);
    set_bool(L, "linked", (r->flags & CF_FL_LINKED) != 0);
    lua_createtable(L, r->child->n, 0);
    for (j = 0; j < r->child->n; j++) {
      push_field(L, &r->child->fields[j]);
      lua_rawseti(L, -2, (lua_Integer)j + 1);
    }
    make_ro(L);
    lua_setfield(L, -2, "fields");
    make_ro(L);
    lua_setfield(L, -2, r->name);
  }
  make_ro(L);
  lua_setfield(L, -3, "rules");
  make_ro(L);
  lua_setfield(L, -2, "rule_types");
}

/* The public body kinds' names, in cf_kind order. */
static void push_kinds(lua_State *L) {
  const cf_body_kind *k;
  lua_Integer i = 0;
  lua_newtable(L);
  for (k = cf_body_kinds; k->name; k++) {
    if (k->internal) continue;
    lua_pushstring(L, k->name);
    lua_rawseti(L, -2, ++i);
  }
  make_ro(L);
}

void cf_schema_open(lua_State *L) {
  lua_createtable(L, 0, 3);
  push_rules(L);
  push_kinds(L);
  lua_setfield(L, -2, "kinds");
  make_ro(L);
  lua_setfield(L, -2, "schema");
  lua_pushlightuserdata(L, NULL);         /* lua-cjson's null, the same value */
  lua_setfield(L, -2, "null");
}
