/*
** cfaccess batches: client:batch(ops [, {concurrency =, on_progress =}])
** (API.md section 5). Every operation is checked before anything is sent
** (all problems reported, paths "ops[i]..."); then the client's request
** engine (client.c) runs them, up to `concurrency` at once on the client's
** curl multi handle. Operations are prepared only when a slot takes them
** (URLs built, policy encoded into the slot's buffer), so a batch of
** 100,000 holds no more than `concurrency` encoded bodies and easy handles.
*/
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "http.h"

#define MAX_CONCURRENCY 64
#define MAX_BATCH_PROBLEMS 1000   /* kept in err.problems (all counted) */

enum {
  F_APP = 1,        /* app_id */
  F_PID = 2,        /* policy_id */
  F_POLICY = 4,     /* policy, kind, allow_unknown */
  F_LIST = 8,       /* page, per_page */
  F_REUSABLE = 16,  /* account-scope reusable policies */
  F_CREATE = 32
};

typedef struct op_def {
  const char *name;
  const char *method;
  unsigned flags;
} op_def;

/* The section-3 methods, as batch operations. */
static const op_def op_defs[] = {
  {"create_app_policy", "POST", F_APP | F_POLICY | F_CREATE},
  {"list_app_policies", "GET", F_APP | F_LIST},
  {"get_app_policy", "GET", F_APP | F_PID},
  {"update_app_policy", "PUT", F_APP | F_PID | F_POLICY},
  {"delete_app_policy", "DELETE", F_APP | F_PID},
  {"create_policy", "POST", F_REUSABLE | F_POLICY | F_CREATE},
  {"list_policies", "GET", F_REUSABLE | F_LIST},
  {"get_policy", "GET", F_REUSABLE | F_PID},
  {"update_policy", "PUT", F_REUSABLE | F_PID | F_POLICY},
  {"delete_policy", "DELETE", F_REUSABLE | F_PID},
  {NULL, NULL, 0}
};

/* Which op fields an op with these flags takes. */
static int field_allowed(const char *k, unsigned fl) {
  if (strcmp(k, "op") == 0) return 1;
  if (strcmp(k, "app_id") == 0) return (fl & F_APP) != 0;
  if (strcmp(k, "policy_id") == 0) return (fl & F_PID) != 0;
  if (strcmp(k, "policy") == 0 || strcmp(k, "kind") == 0 ||
      strcmp(k, "allow_unknown") == 0)
    return (fl & F_POLICY) != 0;
  if (strcmp(k, "page") == 0 || strcmp(k, "per_page") == 0)
    return (fl & F_LIST) != 0;
  return 0;
}

static const op_def *find_op(const char *name) {
  const op_def *d;
  for (d = op_defs; d->name; d++)
    if (strcmp(d->name, name) == 0) return d;
  return NULL;
}

/* The op table at idx has a known op name: its definition, else NULL. */
static const op_def *op_of(lua_State *L, int idx) {
  const op_def *d = NULL;
  if (lua_getfield(L, idx, "op") == LUA_TSTRING) d = find_op(lua_tostring(L, -1));
  lua_pop(L, 1);
  return d;
}

/* ---- checking every operation first -------------------------------- */

typedef struct checker {
  int problems;             /* stack index of the problems list (0: count only) */
  int count;                /* all problems (more than are kept) */
} checker;

/* Add { path = "ops[i]<sub>", message = <formatted> }. */
static void problem(lua_State *L, checker *ck, lua_Integer i, const char *sub,
                    const char *fmt, ...) {
  va_list ap;
  ck->count++;
  if (ck->count > MAX_BATCH_PROBLEMS || ck->problems == 0) return;
  lua_pushfstring(L, "ops[%I]%s", i, sub);
  va_start(ap, fmt);
  cf_problem_add(L, ck->problems, ck->count, fmt, ap);
  va_end(ap);
}

/* Move the problems of the `invalid` err on top into ck (pops it). */
static void take_problems(lua_State *L, checker *ck) {
  lua_Integer j, n;
  if (lua_getfield(L, -1, "problems") == LUA_TTABLE) {
    n = (lua_Integer)lua_rawlen(L, -1);
    for (j = 1; j <= n; j++) {
      ck->count++;
      if (ck->count > MAX_BATCH_PROBLEMS) continue;
      lua_rawgeti(L, -1, j);
      lua_rawseti(L, ck->problems, ck->count);
    }
  } else {   /* no list: keep its message */
    ck->count++;
    if (ck->count <= MAX_BATCH_PROBLEMS) {
      lua_createtable(L, 0, 2);
      lua_pushliteral(L, "");
      lua_setfield(L, -2, "path");
      lua_getfield(L, -3, "message");
      lua_setfield(L, -2, "message");
      lua_rawseti(L, ck->problems, ck->count);
    }
  }
  lua_pop(L, 2);
}

static int id_ok(const char *s, size_t n, int allow_hex32) {
  return cf_is_uuid(s, n) || (allow_hex32 && cf_is_hex32(s, n));
}

static void check_id_field(lua_State *L, checker *ck, lua_Integer i, int op,
                           const char *name, int allow_hex32) {
  int t = lua_getfield(L, op, name);
  if (t == LUA_TNIL)
    problem(L, ck, i, lua_pushfstring(L, ".%s", name), "missing (expected %s)",
            allow_hex32 ? "a UUID or 32 hex characters" : "a UUID");
  else if (t != LUA_TSTRING)
    problem(L, ck, i, lua_pushfstring(L, ".%s", name), "expected a string, got %s",
            lua_typename(L, t));
  else {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    if (!id_ok(s, n, allow_hex32))
      problem(L, ck, i, lua_pushfstring(L, ".%s", name), "expected %s",
              allow_hex32 ? "a UUID or 32 hex characters" : "a UUID");
  }
  lua_settop(L, op);
}

/* The encoding options of the op at idx: kind (by client scope and op) and
** allow_unknown. Returns 1, or 0 after adding a problem. */
static int op_encode_opts(lua_State *L, cf_client *c, int op, const op_def *d,
                          cf_encode_opts *o, checker *ck, lua_Integer i) {
  int t, ok = 1;
  o->allow_unknown = 0;
  o->kind = (d->flags & F_REUSABLE) ? CF_KIND_REUSABLE
            : c->zone ? CF_KIND_ZONE : CF_KIND_APP;
  t = lua_getfield(L, op, "kind");
  if (t == LUA_TSTRING) {
    cf_kind k;
    int fits;
    if (!cf_kind_from_name(lua_tostring(L, -1), &k)) {
      problem(L, ck, i, ".kind", "unknown policy kind \"%s\"", lua_tostring(L, -1));
      ok = 0;
    } else {
      fits = (d->flags & F_REUSABLE) ? k == CF_KIND_REUSABLE
             : c->zone ? k == CF_KIND_ZONE
             : (k == CF_KIND_APP || k == CF_KIND_INFRA);
      if (!fits) {
        problem(L, ck, i, ".kind", "%s takes kind %s on this client", d->name,
                (d->flags & F_REUSABLE) ? "\"reusable\""
                : c->zone ? "\"zone\"" : "\"app\" or \"infrastructure\"");
        ok = 0;
      } else o->kind = k;
    }
  } else if (t != LUA_TNIL) {
    problem(L, ck, i, ".kind", "expected a string, got %s", lua_typename(L, t));
    ok = 0;
  }
  lua_pop(L, 1);
  t = lua_getfield(L, op, "allow_unknown");
  if (t == LUA_TBOOLEAN) o->allow_unknown = lua_toboolean(L, -1);
  else if (t != LUA_TNIL) {
    problem(L, ck, i, ".allow_unknown", "expected a boolean, got %s", lua_typename(L, t));
    ok = 0;
  }
  lua_pop(L, 1);
  return ok;
}

/* Check ops[i] (the value on top, popped). */
static void check_op(lua_State *L, cf_client *c, checker *ck, lua_Integer i) {
  int op = lua_gettop(L), t;
  const op_def *d;
  if (lua_type(L, op) != LUA_TTABLE) {
    problem(L, ck, i, "", "expected an operation (a table), got %s", luaL_typename(L, op));
    lua_settop(L, op - 1);
    return;
  }
  t = lua_getfield(L, op, "op");
  if (t != LUA_TSTRING) {
    problem(L, ck, i, ".op", t == LUA_TNIL ? "missing (expected a method name such "
            "as \"create_app_policy\")" : "expected a method name (a string)");
    lua_settop(L, op - 1);
    return;
  }
  d = find_op(lua_tostring(L, -1));
  if (d == NULL) {
    problem(L, ck, i, ".op", "unknown operation \"%s\"", lua_tostring(L, -1));
    lua_settop(L, op - 1);
    return;
  }
  lua_pop(L, 1);
  if ((d->flags & F_REUSABLE) && c->zone)
    problem(L, ck, i, ".op", "%s: reusable policies exist only at account scope "
            "(this client has a zone_id)", d->name);
  lua_pushnil(L);                             /* unknown fields */
  while (lua_next(L, op) != 0) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      problem(L, ck, i, "", "field names must be strings, got %s", luaL_typename(L, -1));
    else if (!field_allowed(lua_tostring(L, -1), d->flags))
      problem(L, ck, i, lua_pushfstring(L, ".%s", lua_tostring(L, -1)),
              "unknown field for %s", d->name), lua_pop(L, 1);
  }
  if (d->flags & F_APP) check_id_field(L, ck, i, op, "app_id", 1);
  if (d->flags & F_PID) check_id_field(L, ck, i, op, "policy_id", 0);
  if (d->flags & F_LIST) {
    int k;
    for (k = 0; k < 2; k++) {
      const char *name = k == 0 ? "page" : "per_page";
      t = lua_getfield(L, op, name);
      if (t != LUA_TNIL) {
        int isint;
        lua_Integer v = lua_tointegerx(L, -1, &isint);
        if (t != LUA_TNUMBER || !isint || v < 1 || (k == 1 && v > 1000))
          problem(L, ck, i, lua_pushfstring(L, ".%s", name), "expected an integer %s",
                  k == 0 ? ">= 1" : "from 1 to 1000");
      }
      lua_settop(L, op);
    }
  }
  if (d->flags & F_POLICY) {
    cf_encode_opts o;
    int ok = op_encode_opts(L, c, op, d, &o, ck, i);
    t = lua_getfield(L, op, "policy");
    if (t != LUA_TTABLE)
      problem(L, ck, i, ".policy", t == LUA_TNIL ? "missing (expected a policy table)"
              : "expected a policy (a table), got %s", lua_typename(L, t));
    else if (ok) {
      const char *prefix = lua_pushfstring(L, "ops[%I].policy", i);
      if (!cf_policy_encode(L, op + 1, &o, prefix, NULL)) take_problems(L, ck);
    }
  }
  lua_settop(L, op - 1);
}

/* ---- running them ---------------------------------------------------- */

/* prep: build ops[i]'s request (arg: the ops table). Pushes the URL and
** path values it points to; the policy is encoded into body. */
static int prep_op(lua_State *L, cf_client *c, int arg, int i, cf_req *rq,
                   cf_buf *body) {
  int op;
  const op_def *d;
  lua_rawgeti(L, arg, i);
  op = lua_gettop(L);
  d = lua_type(L, op) == LUA_TTABLE ? op_of(L, op) : NULL;
  if (d == NULL) {   /* changed since it was checked (by on_progress?) */
    cf_error_push(L, "invalid", "ops[%d]: not a valid operation any more", i);
    return 0;
  }
  lua_getfield(L, op, "app_id");              /* op + 1 */
  lua_getfield(L, op, "policy_id");           /* op + 2 */
  if ((d->flags & F_APP) && lua_type(L, op + 1) != LUA_TSTRING) {
    cf_error_push(L, "invalid", "ops[%d].app_id: not a string any more", i);
    return 0;
  }
  if ((d->flags & F_PID) && lua_type(L, op + 2) != LUA_TSTRING) {
    cf_error_push(L, "invalid", "ops[%d].policy_id: not a string any more", i);
    return 0;
  }
  if (d->flags & F_APP) cf_client_app_paths(L, c, op + 1);
  else cf_client_reusable_paths(L, c);        /* op + 3: URL, op + 4: path */
  rq->method = d->method;
  if (d->flags & (F_LIST | F_CREATE)) rq->list_url = lua_tostring(L, op + 3);
  if (d->flags & F_LIST) {
    rq->list = 1;
    if (lua_getfield(L, op, "page") == LUA_TNUMBER) rq->page = lua_tointeger(L, -1);
    if (lua_getfield(L, op, "per_page") == LUA_TNUMBER) rq->per_page = lua_tointeger(L, -1);
    lua_pop(L, 2);
  }
  if (d->flags & F_PID) cf_client_item_paths(L, c, op + 2);
  rq->url = lua_tostring(L, op + 3);
  rq->path = (const char *)lua_touserdata(L, op + 4);
  if (d->flags & F_POLICY) {
    cf_encode_opts o;
    checker ck;
    ck.problems = ck.count = 0;
    if (!op_encode_opts(L, c, op, d, &o, &ck, i)) {
      cf_error_push(L, "invalid", "ops[%d]: not a valid operation any more", i);
      return 0;
    }
    if (lua_getfield(L, op, "policy") != LUA_TTABLE) {
      cf_error_push(L, "invalid", "ops[%d].policy: not a table any more", i);
      return 0;
    }
    body->len = 0;
    if (!cf_policy_encode(L, op + 5, &o, NULL, body)) {
      /* changed since it was checked: once more, for paths "ops[i]..." */
      lua_pop(L, 1);
      if (cf_policy_encode(L, op + 5, &o, lua_pushfstring(L, "ops[%d].policy", i), NULL))
        cf_error_push(L, "invalid", "ops[%d].policy: not valid any more", i);
      return 0;
    }
    rq->body = body->data;
    rq->body_len = body->len;
    rq->create = (d->flags & F_CREATE) != 0;
  }
  lua_settop(L, op + 4);
  lua_rotate(L, op, -3);                      /* URL, path, op, app, pid */
  lua_settop(L, op + 1);                      /* keep URL and path */
  return 1;
}

static const char *const batch_opt_names[] = {"concurrency", "on_progress", NULL};

/* client:batch(ops [, {concurrency = 8, on_progress = fn}]) -> results |
** nil, err */
int cf_client_batch(lua_State *L) {
  cf_client *c = cf_client_check(L);
  lua_Integer n, i, conc = 8;
  cf_exec_spec sp;
  checker ck;
  int progress = 0;
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!lua_isnoneornil(L, 3)) {
    int t;
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 3) != 0) {
      int j;
      lua_pop(L, 1);
      for (j = 0; batch_opt_names[j]; j++)
        if (lua_type(L, -1) == LUA_TSTRING &&
            strcmp(lua_tostring(L, -1), batch_opt_names[j]) == 0) break;
      if (batch_opt_names[j] == NULL) {
        cf_error_push(L, "usage", "batch options: unknown option \"%s\"",
                      luaL_tolstring(L, -2, NULL));
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
      }
    }
    t = lua_getfield(L, 3, "concurrency");
    if (t != LUA_TNIL) {
      int isint;
      conc = lua_tointegerx(L, -1, &isint);
      if (t != LUA_TNUMBER || !isint || conc < 1 || conc > MAX_CONCURRENCY) {
        cf_error_push(L, "usage", "batch option concurrency: expected an integer "
                      "from 1 to %d", MAX_CONCURRENCY);
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
      }
    }
    t = lua_getfield(L, 3, "on_progress");
    if (t != LUA_TNIL && t != LUA_TFUNCTION) {
      cf_error_push(L, "usage", "batch option on_progress: expected a function, got %s",
                    lua_typename(L, t));
      lua_pushnil(L);
      lua_insert(L, -2);
      return 2;
    }
    lua_settop(L, 3);
  }
  lua_settop(L, 3);
  if (!lua_isnil(L, 3)) {
    lua_getfield(L, 3, "on_progress");
    if (lua_isfunction(L, -1)) progress = lua_gettop(L);
  }
  n = (lua_Integer)lua_rawlen(L, 2);
  if (n > 0x7fffffff) n = 0x7fffffff;
  /* every operation is checked before anything is sent */
  lua_newtable(L);
  ck.problems = lua_gettop(L);
  ck.count = 0;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    check_op(L, c, &ck, i);
  }
  if (ck.count > 0) {
    cf_error_invalid(L, "batch", ck.problems, ck.count);
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  lua_pop(L, 1);
  lua_createtable(L, (int)n, 0);   /* results */
  if (n == 0) return 1;
  memset(&sp, 0, sizeof sp);
  sp.n = (int)n;
  sp.concurrency = (int)conc;
  sp.arg = 2;
  sp.prep = prep_op;
  sp.results = lua_gettop(L);
  sp.progress = progress;
  cf_client_exec(L, c, &sp);
  lua_settop(L, sp.results);
  return 1;
}
