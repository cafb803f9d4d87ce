/*
** cfaccess option readers: one mechanism for every option table (see
** argcheck.h). Messages never show a string option's value (it may be a
** credential); numbers are shown.
*/
#include <string.h>

#include "argcheck.h"

const char *cf_arg_nearest(const char *k, const cf_argdesc *args) {
  const char *best = NULL;
  size_t bestd = 3, kn = strlen(k);
  for (; args->name; args++) {
    size_t d = cf_edit_distance(k, kn, args->name, strlen(args->name));
    if (d < bestd) {
      bestd = d;
      best = args->name;
    }
  }
  return best;
}

static const cf_argdesc *find(const cf_argdesc *args, const char *k) {
  for (; args->name; args++)
    if (strcmp(args->name, k) == 0) return args;
  return NULL;
}

int cf_arg_keys(lua_State *L, int idx, const cf_argdesc *args, const char *noun) {
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    const char *k, *best;
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pushfstring(L, "keys must be strings, got %s", luaL_typename(L, -1));
      lua_remove(L, -2);
      return 0;
    }
    k = lua_tostring(L, -1);
    if (find(args, k) != NULL) continue;
    best = cf_arg_nearest(k, args);
    if (best)
      lua_pushfstring(L, "unknown %s \"%s\" (did you mean \"%s\"?)", noun, k, best);
    else
      lua_pushfstring(L, "unknown %s \"%s\"", noun, k);
    lua_remove(L, -2);
    return 0;
  }
  return 1;
}

static const char *type_word(cf_argtype t) {
  switch (t) {
    case CF_ARG_STRING: return "a string";
    case CF_ARG_NUMBER: return "a number";
    case CF_ARG_INTEGER: return "an integer";
    case CF_ARG_BOOLEAN: return "a boolean";
    case CF_ARG_FUNCTION: return "a function";
    case CF_ARG_TABLE: return "a table";
    default: return "a value";
  }
}

static int lua_type_of(cf_argtype t) {
  switch (t) {
    case CF_ARG_STRING: return LUA_TSTRING;
    case CF_ARG_NUMBER: case CF_ARG_INTEGER: return LUA_TNUMBER;
    case CF_ARG_BOOLEAN: return LUA_TBOOLEAN;
    case CF_ARG_FUNCTION: return LUA_TFUNCTION;
    case CF_ARG_TABLE: return LUA_TTABLE;
    default: return LUA_TNONE;
  }
}

/* The number on top against a's type and range (pops it on success). */
static int check_number(lua_State *L, const cf_argdesc *a, void *out) {
  int isint = 0;
  lua_Integer iv = lua_tointegerx(L, -1, &isint);
  double d = lua_tonumber(L, -1);
  int integer = a->type == CF_ARG_INTEGER;
  if (d != d || d > 1e15 || d < -1e15 || (a->min_open ? d <= a->min : d < a->min) ||
      (integer && !isint)) {
    const char *op = a->min_open ? ">" : ">=";
    if (a->min == (double)(int)a->min)   /* 0, 1: no ".0" */
      lua_pushfstring(L, "expected %s %s %d, got %s", type_word(a->type), op,
                      (int)a->min, lua_tostring(L, -1));
    else                                 /* 0.001 */
      lua_pushfstring(L, "expected %s %s %f, got %s", type_word(a->type), op,
                      (lua_Number)a->min, lua_tostring(L, -1));
    lua_remove(L, -2);
    return 0;
  }
  if (a->max > a->min && d > a->max) {
    lua_pushfstring(L, "expected %s <= %d, got %s", type_word(a->type), (int)a->max,
                    lua_tostring(L, -1));
    lua_remove(L, -2);
    return 0;
  }
  lua_pop(L, 1);
  if (out && integer) *(lua_Integer *)(void *)((char *)out + a->offset) = iv;
  else if (out) *(double *)(void *)((char *)out + a->offset) = d;
  return 1;
}

int cf_arg_field(lua_State *L, int idx, const cf_argdesc *a, void *out) {
  int t = lua_getfield(L, idx, a->name);
  char *dst = out ? (char *)out + a->offset : NULL;
  if (t == LUA_TNIL || a->type == CF_ARG_ANY) {
    lua_pop(L, 1);
    return 1;
  }
  if (t != lua_type_of(a->type)) {
    lua_pop(L, 1);
    lua_pushfstring(L, "expected %s, got %s", type_word(a->type), lua_typename(L, t));
    return 0;
  }
  switch (a->type) {
    case CF_ARG_NUMBER: case CF_ARG_INTEGER:
      return check_number(L, a, out);
    case CF_ARG_STRING: {
      size_t n, i;
      const char *s = lua_tolstring(L, -1, &n);
      lua_pop(L, 1);   /* still referenced by the table */
      if (n == 0) {
        lua_pushliteral(L, "must not be empty");
        return 0;
      }
      for (i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') {
          lua_pushliteral(L, "must not contain CR, LF or NUL");
          return 0;
        }
      if (dst) *(const char **)(void *)dst = s;
      return 1;
    }
    case CF_ARG_BOOLEAN:
      if (dst) *(int *)(void *)dst = lua_toboolean(L, -1);
      break;
    default:
      if (dst) *(int *)(void *)dst = 1;
      break;
  }
  lua_pop(L, 1);
  return 1;
}

int cf_args_read(lua_State *L, int idx, const cf_argset *set, void *out) {
  const cf_argdesc *a;
  idx = lua_absindex(L, idx);
  if (!cf_arg_keys(L, idx, set->args, "option")) {
    cf_error_push(L, CF_E_USAGE, "%s: %s", set->keys_what, lua_tostring(L, -1));
    lua_remove(L, -2);
    return 0;
  }
  for (a = set->args; a->name; a++) {
    if (!cf_arg_field(L, idx, a, out)) {
      cf_error_push(L, CF_E_USAGE, "%s%s: %s", set->field_what, a->name,
                    lua_tostring(L, -1));
      lua_remove(L, -2);
      return 0;
    }
  }
  return 1;
}
