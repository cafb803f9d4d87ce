/*
** cfaccess batches: client:batch(ops [, {concurrency =, on_progress =}])
** (API.md section 5). Every operation is checked before anything is sent
** (all problems reported, paths "ops[i]..."); then the client's request
** engine (engine.c) runs them, up to `concurrency` at once on the client's
** curl multi handle. A body is validated and encoded once, by the check:
** the bytes go into one arena (about a fifth of the heap the op's Lua
** table takes) that the batch sends from, up to BODY_ARENA_MAX bytes; the
** bodies past that are encoded again when a slot takes them, so memory
** stays bounded however large the batch. URLs are built when a slot takes
** the operation, and at most `concurrency` easy handles exist.
*/
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "resources.h"

#define MAX_CONCURRENCY 64
#define MAX_BATCH_PROBLEMS 1000   /* kept in err.problems (all counted) */
#define MAX_OP_FIELDS 10
#define BODY_ARENA_MAX (16u << 20)   /* bytes of bodies kept from the check */

/* ops[i]'s body as the check encoded it (enc 0: not kept, encoded again). */
typedef struct op_body {
  size_t off, len;
  int enc, warned;          /* kept; its warnings are in the warnings table */
  cf_kind kind;
} op_body;

/* What the check kept for the run: the arena of bodies and their places
** (op_body per op); warnings: the stack index of a table, warnings[i]. */
typedef struct kept {
  cf_buf *arena;
  op_body *ob;
  int warnings;
  int tables;               /* stack index: tables[i], the body table checked */
} kept;

/* The fields an op of resource r and verb v takes, as descriptors (types
** checked by argcheck; ids, the body and its kind by their own checks). */
static void op_fields(const cf_resource *r, cf_verb v, cf_argdesc *f) {
  int n = 0;
  const cf_argdesc *la;
  memset(f, 0, sizeof(cf_argdesc) * MAX_OP_FIELDS);
  f[n].name = "op";
  f[n++].type = CF_ARG_ANY;
  if (r->parent) {
    f[n].name = r->parent;
    f[n++].type = CF_ARG_ANY;
  }
  if (v == CF_GET || v == CF_UPDATE || v == CF_DELETE) {
    f[n].name = r->item;
    f[n++].type = CF_ARG_ANY;
  }
  if (v == CF_CREATE || v == CF_UPDATE) {
    f[n].name = r->body;
    f[n++].type = CF_ARG_ANY;
    f[n].name = "kind";
    f[n++].type = CF_ARG_ANY;
    f[n].name = "allow_unknown";
    f[n++].type = CF_ARG_BOOLEAN;
  }
  if (v == CF_LIST)
    for (la = cf_list_options()->args; la->name; la++) f[n++] = *la;
}

/* The op table at idx has a known op name: 1 with *r, *v set, else 0. */
static int op_of(lua_State *L, int idx, const cf_resource **r, cf_verb *v) {
  int found = 0;
  if (lua_getfield(L, idx, "op") == LUA_TSTRING)
    found = cf_resource_find(lua_tostring(L, -1), r, v);
  lua_pop(L, 1);
  return found;
}

/* ---- checking every operation first -------------------------------- */

typedef struct checker {
  int problems;             /* stack index of the problems list (0: count only) */
  int count;                /* all problems (more than are kept) */
  kept *keep;               /* where valid bodies go (NULL: check only) */
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

static void check_id_field(lua_State *L, checker *ck, lua_Integer i, int op,
                           const char *name, cf_idfmt f) {
  int t = lua_getfield(L, op, name);
  if (t == LUA_TNIL)
    problem(L, ck, i, lua_pushfstring(L, ".%s", name), "missing (expected %s)",
            cf_id_expect(f));
  else if (t != LUA_TSTRING)
    problem(L, ck, i, lua_pushfstring(L, ".%s", name), "expected a string, got %s",
            lua_typename(L, t));
  else {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    if (!cf_id_ok(f, s, n))
      problem(L, ck, i, lua_pushfstring(L, ".%s", name), "expected %s", cf_id_expect(f));
  }
  lua_settop(L, op);
}

/* The encoding options of the op at idx: kind (by client scope and op) and
** allow_unknown. Returns 1, or 0 after adding a problem. */
static int op_encode_opts(lua_State *L, cf_client *c, int op, const cf_resource *r,
                          cf_verb v, cf_encode_opts *o, checker *ck, lua_Integer i) {
  int t, ok = 1, given = 0;
  o->allow_unknown = 0;
  t = lua_getfield(L, op, "kind");
  if (t == LUA_TSTRING) {
    if (!cf_kind_from_name(lua_tostring(L, -1), &o->kind)) {
      problem(L, ck, i, ".kind", "unknown policy kind \"%s\"", lua_tostring(L, -1));
      ok = 0;
    }
    given = 1;
  } else if (t != LUA_TNIL) {
    problem(L, ck, i, ".kind", "expected a string, got %s", lua_typename(L, t));
    ok = 0;
  }
  if (ok && !cf_kind_check(L, r, v, c, given, &o->kind)) {
    problem(L, ck, i, ".kind", "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    ok = 0;
  }
  lua_pop(L, 1);
  if (lua_getfield(L, op, "allow_unknown") == LUA_TBOOLEAN)
    o->allow_unknown = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return ok;
}

/* ops[i]'s fields against the descriptors f: unknown names (with a
** suggestion) and wrong types or ranges. */
static void check_fields(lua_State *L, checker *ck, lua_Integer i, int op,
                         const char *opname, const cf_argdesc *f) {
  const cf_argdesc *a;
  lua_pushnil(L);
  while (lua_next(L, op) != 0) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      problem(L, ck, i, "", "field names must be strings, got %s", luaL_typename(L, -1));
    else {
      const char *k = lua_tostring(L, -1), *best;
      for (a = f; a->name && strcmp(a->name, k) != 0; a++) {}
      if (a->name == NULL) {
        best = cf_arg_nearest(k, f);
        if (best)
          problem(L, ck, i, lua_pushfstring(L, ".%s", k),
                  "unknown field for %s (did you mean \"%s\"?)", opname, best);
        else
          problem(L, ck, i, lua_pushfstring(L, ".%s", k), "unknown field for %s", opname);
        lua_pop(L, 1);
      }
    }
  }
  for (a = f; a->name; a++)
    if (!cf_arg_field(L, op, a, NULL)) {
      const char *msg = lua_tostring(L, -1);
      problem(L, ck, i, lua_pushfstring(L, ".%s", a->name), "%s", msg);
      lua_settop(L, op);
    }
}

/* Encode the valid body at b into the arena (1: kept, its warnings in
** the warnings table), or leave it to be encoded at the run (1: not
** kept, the arena is full), or 0: it is not valid (nothing pushed). */
static int keep_body(lua_State *L, kept *kp, lua_Integer i, int b, const cf_encode_opts *o) {
  cf_body_opts bo;
  size_t start = kp->arena->len;
  op_body *ob = &kp->ob[i - 1];
  memset(&bo, 0, sizeof bo);
  bo.kind = o->kind;
  bo.allow_unknown = o->allow_unknown;
  if (start >= BODY_ARENA_MAX) return cf_policy_encode(L, b, o, NULL, NULL) ? 1 : (lua_pop(L, 1), 0);
  if (!cf_body_encode(L, b, &bo, NULL, kp->arena)) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushvalue(L, b);
  lua_rawseti(L, kp->tables, i);
  ob->off = start;
  ob->len = kp->arena->len - start;
  ob->kind = o->kind;
  ob->enc = 1;
  if (!lua_isnil(L, -1)) {
    ob->warned = 1;
    lua_rawseti(L, kp->warnings, i);
  } else lua_pop(L, 1);
  return 1;
}

/* The op's body: present, a table, valid for its kind. A valid one is
** encoded once (no path prefix built); only an invalid one is walked again
** with the "ops[i]..." prefix, for its problems. */
static void check_body(lua_State *L, cf_client *c, checker *ck, lua_Integer i, int op,
                       const cf_resource *r, cf_verb v) {
  cf_encode_opts o;
  int ok = op_encode_opts(L, c, op, r, v, &o, ck, i);
  int t = lua_getfield(L, op, r->body);
  if (t != LUA_TTABLE)
    problem(L, ck, i, lua_pushfstring(L, ".%s", r->body),
            t == LUA_TNIL ? "missing (expected a %s table)" : "expected a %s (a table), got %s",
            r->body, lua_typename(L, t));
  else if (ok && !(ck->keep ? keep_body(L, ck->keep, i, op + 1, &o)
                            : cf_policy_encode(L, op + 1, &o, NULL, NULL) || (lua_pop(L, 1), 0))) {
    const char *prefix = lua_pushfstring(L, "ops[%I].%s", i, r->body);
    if (!cf_policy_encode(L, op + 1, &o, prefix, NULL)) take_problems(L, ck);
  }
  lua_settop(L, op);
}

/* Check ops[i] (the value on top, popped). */
static void check_op(lua_State *L, cf_client *c, checker *ck, lua_Integer i) {
  int op = lua_gettop(L), t;
  const cf_resource *r;
  cf_verb v;
  cf_argdesc f[MAX_OP_FIELDS];
  if (lua_type(L, op) != LUA_TTABLE) {
    problem(L, ck, i, "", "expected an operation (a table), got %s", luaL_typename(L, op));
    lua_settop(L, op - 1);
    return;
  }
  t = lua_getfield(L, op, "op");
  if (t != LUA_TSTRING) {
    problem(L, ck, i, ".op", t == LUA_TNIL ? "missing (expected a method name such "
            "as \"create_app_policy\")" : "expected a method name (a string)");
  } else if (!cf_resource_find(lua_tostring(L, -1), &r, &v)) {
    problem(L, ck, i, ".op", "unknown operation \"%s\"", lua_tostring(L, -1));
  } else {
    lua_settop(L, op);
    if (!cf_scope_check(L, r, c)) {
      problem(L, ck, i, ".op", "%s: %s", r->method[v], lua_tostring(L, -1));
      lua_settop(L, op);
    }
    op_fields(r, v, f);
    check_fields(L, ck, i, op, r->method[v], f);
    if (r->parent) check_id_field(L, ck, i, op, r->parent, r->parent_fmt);
    if (v == CF_GET || v == CF_UPDATE || v == CF_DELETE)
      check_id_field(L, ck, i, op, r->item, r->item_fmt);
    if (v == CF_CREATE || v == CF_UPDATE) check_body(L, c, ck, i, op, r, v);
  }
  lua_settop(L, op - 1);
}

/* ---- running them ---------------------------------------------------- */

/* The body of ops[i] (op: its table, r/v: its row and verb) encoded into
** body; 1 with the validator's warnings (or nil) pushed, or 0 with an err
** pushed. */
static int prep_body(lua_State *L, cf_client *c, int op, int i, const cf_resource *r,
                     cf_verb v, cf_buf *body, cf_kind *kind) {
  cf_encode_opts o;
  cf_body_opts bo;
  checker ck;
  int b;
  ck.problems = ck.count = 0;
  if (!op_encode_opts(L, c, op, r, v, &o, &ck, i)) {
    cf_error_push(L, CF_E_INVALID, "ops[%d]: not a valid operation any more", i);
    return 0;
  }
  if (lua_getfield(L, op, r->body) != LUA_TTABLE) {
    cf_error_push(L, CF_E_INVALID, "ops[%d].%s: not a table any more", i, r->body);
    return 0;
  }
  b = lua_gettop(L);
  cf_buf_reset(body);
  memset(&bo, 0, sizeof bo);
  bo.kind = o.kind;
  bo.allow_unknown = o.allow_unknown;
  if (!cf_body_encode(L, b, &bo, NULL, body)) {
    /* changed since it was checked: once more, for paths "ops[i]..." */
    lua_pop(L, 1);
    if (cf_policy_encode(L, b, &o, lua_pushfstring(L, "ops[%d].%s", i, r->body), NULL))
      cf_error_push(L, CF_E_INVALID, "ops[%d].%s: not valid any more", i, r->body);
    return 0;
  }
  lua_remove(L, b);   /* the warnings stay */
  *kind = o.kind;
  return 1;
}

/* The run's argument (cf_exec_spec.arg): a userdata holding what the
** check kept, with the ops table as user value 1, the warnings table as 2
** and the body tables checked as 3 (the arena's owner stays on
** cf_client_batch's stack). An op whose body is another table by the
** time it runs (on_progress replaced it) is encoded and checked again; a
** table changed in place is sent as it was checked. */
typedef struct batch_run {
  kept keep;
  const cf_resource *lr;    /* the last request built without an item id ... */
  cf_verb lv;
  cf_req last;              /* ... its URL fields (the URL: user value 4, its
                            ** parent id: 5); ops on one app share them */
} batch_run;

/* Push the URL and path of an op of r/v on the parent id at `parent` (0:
** none) and fill rq's URL fields, as cf_resource_request does: the last
** one again when it was for the same parent (the URL string is kept as
** user value 4, so rq's pointers into it stay good), else built anew. */
static void op_request(lua_State *L, cf_client *c, int arg, batch_run *br,
                       const cf_resource *r, cf_verb v, int parent, cf_req *rq) {
  int hit = br->lr == r && br->lv == v;
  if (hit && parent) {
    lua_getiuservalue(L, arg, 5);
    hit = lua_rawequal(L, -1, parent);
    lua_pop(L, 1);
  }
  if (hit) {
    lua_getiuservalue(L, arg, 4);
    lua_pushlightuserdata(L, (void *)br->last.path);
  } else {
    cf_resource_request(L, c, r, v, parent, 0, rq);
    lua_pushvalue(L, -2);
    lua_setiuservalue(L, arg, 4);
    if (parent) lua_pushvalue(L, parent); else lua_pushnil(L);
    lua_setiuservalue(L, arg, 5);
    br->lr = r;
    br->lv = v;
    br->last = *rq;
  }
  rq->method = br->last.method;
  rq->url = br->last.url;
  rq->path = br->last.path;
  rq->list = br->last.list;
  rq->create = br->last.create;
  rq->list_url = br->last.list_url;
  rq->match = br->last.match;
  rq->dup_codes = br->last.dup_codes;
}

/* prep: build ops[i]'s request (arg: the batch_run). Pushes the URL and
** path values it points to, and for a body its warnings (rq->warnings: 3,
** each logged); a body not kept by the check is encoded into body. */
static int prep_op(lua_State *L, cf_client *c, int arg, int i, cf_req *rq,
                   cf_buf *body) {
  int op, parent = 0, item = 0;
  const cf_resource *r;
  cf_verb v;
  batch_run *br = (batch_run *)lua_touserdata(L, arg);
  lua_getiuservalue(L, arg, 1);
  op = lua_gettop(L);
  lua_rawgeti(L, op, i);
  lua_replace(L, op);
  if (lua_type(L, op) != LUA_TTABLE || !op_of(L, op, &r, &v)) {
    /* changed since it was checked (by on_progress?) */
    cf_error_push(L, CF_E_INVALID, "ops[%d]: not a valid operation any more", i);
    return 0;
  }
  if (r->parent) {
    lua_getfield(L, op, r->parent);
    parent = lua_gettop(L);
    if (lua_type(L, parent) != LUA_TSTRING) {
      cf_error_push(L, CF_E_INVALID, "ops[%d].%s: not a string any more", i, r->parent);
      return 0;
    }
  }
  if (v == CF_GET || v == CF_UPDATE || v == CF_DELETE) {
    lua_getfield(L, op, r->item);
    item = lua_gettop(L);
    if (lua_type(L, item) != LUA_TSTRING) {
      cf_error_push(L, CF_E_INVALID, "ops[%d].%s: not a string any more", i, r->item);
      return 0;
    }
  }
  if (item) cf_resource_request(L, c, r, v, parent, item, rq);   /* URL, path */
  else op_request(L, c, arg, br, r, v, parent, rq);
  if (v == CF_LIST) {
    if (lua_getfield(L, op, "page") == LUA_TNUMBER) rq->page = lua_tointeger(L, -1);
    if (lua_getfield(L, op, "per_page") == LUA_TNUMBER) rq->per_page = lua_tointeger(L, -1);
    lua_pop(L, 2);
  }
  if (v == CF_CREATE || v == CF_UPDATE) {
    const op_body *ob = &br->keep.ob[i - 1];
    int same = 0;
    if (ob->enc) {   /* the body table checked is still the op's? */
      lua_getiuservalue(L, arg, 3);
      lua_rawgeti(L, -1, i);
      lua_getfield(L, op, r->body);
      same = lua_rawequal(L, -1, -2);
      lua_pop(L, 3);
    }
    if (same) {   /* its bytes as the check encoded them */
      rq->body = br->keep.arena->data + ob->off;
      rq->body_len = ob->len;
      rq->kind = ob->kind;
      if (ob->warned) {
        lua_getiuservalue(L, arg, 2);
        lua_rawgeti(L, -1, i);
        lua_remove(L, -2);
      } else lua_pushnil(L);
    } else {
      if (!prep_body(L, c, op, i, r, v, body, &rq->kind)) return 0;
      rq->body = body->data;
      rq->body_len = body->len;
    }
    if (!lua_isnil(L, -1)) {
      int w = lua_gettop(L);
      cf_log_warnings(L, 1, rq->method, lua_pushfstring(L, "%s (ops[%d])", rq->path, i), w);
      lua_pop(L, 1);
    }
    rq->warnings = 3;
    lua_rotate(L, op, 3);                      /* URL, path, warnings, op, ids... */
    lua_settop(L, op + 2);
    return 1;
  }
  lua_rotate(L, op, 2);                        /* URL, path, op, ids... */
  lua_settop(L, op + 1);                       /* keep URL and path */
  return 1;
}

typedef struct batch_opts {
  lua_Integer concurrency;
  int on_progress;
  int results;
} batch_opts;

static const cf_argdesc batch_args[] = {
  {.name = "concurrency", .type = CF_ARG_INTEGER, .min = 1, .max = MAX_CONCURRENCY,
   .offset = offsetof(batch_opts, concurrency)},
  {.name = "on_progress", .type = CF_ARG_FUNCTION, .offset = offsetof(batch_opts, on_progress)},
  {.name = "results", .type = CF_ARG_TABLE, .offset = offsetof(batch_opts, results)},
  {.name = NULL}
};
static const cf_argset batch_set = {"batch options", "batch option ", batch_args};

/* Check every operation; 1, or 0 with the `invalid` err pushed. */
static int check_all(lua_State *L, cf_client *c, lua_Integer n, kept *keep) {
  checker ck;
  lua_Integer i;
  lua_newtable(L);
  ck.problems = lua_gettop(L);
  ck.count = 0;
  ck.keep = keep;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    check_op(L, c, &ck, i);
  }
  if (ck.count > 0) {
    cf_error_invalid(L, "batch", ck.problems, ck.count);
    return 0;
  }
  lua_pop(L, 1);
  return 1;
}

/* client:batch(ops [, {concurrency = 8, on_progress = fn, results = t}]) ->
** results | nil, err */
int cf_client_batch(lua_State *L) {
  cf_client *c = cf_client_check(L);
  lua_Integer n;
  cf_exec_spec sp;
  batch_opts bo;
  batch_run *br;
  int progress = 0, brx;
  bo.concurrency = 8;
  bo.on_progress = bo.results = 0;
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    if (!cf_args_read(L, 3, &batch_set, &bo)) return cf_fail(L);
  }
  lua_settop(L, 3);
  if (!cf_client_usable(L, c)) return cf_fail(L);
  if (bo.on_progress) {
    lua_getfield(L, 3, "on_progress");
    progress = lua_gettop(L);
  }
  n = (lua_Integer)lua_rawlen(L, 2);
  if (n > 0x7fffffff) n = 0x7fffffff;
  /* every operation is checked before anything is sent; the bodies are
  ** encoded then (the arena, its places, the warnings; the run's arg) */
  br = (batch_run *)lua_newuserdatauv(L, sizeof *br, 5);
  brx = lua_gettop(L);
  memset(br, 0, sizeof *br);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, 1);
  lua_newtable(L);
  br->keep.warnings = lua_gettop(L);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, -3, 2);
  lua_newtable(L);
  br->keep.tables = lua_gettop(L);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, brx, 3);
  br->keep.arena = cf_buf_push(L);
  br->keep.ob = (op_body *)lua_newuserdatauv(L, sizeof(op_body) * (size_t)(n > 0 ? n : 1), 0);
  memset(br->keep.ob, 0, sizeof(op_body) * (size_t)(n > 0 ? n : 1));
  if (!check_all(L, c, n, &br->keep)) return cf_fail(L);
  /* results: the caller's table (filled as ops end, so that after an error
  ** raised by on_progress or on_log it still says what happened), or a new one */
  if (bo.results) lua_getfield(L, 3, "results");
  else lua_createtable(L, (int)n, 0);
  if (n == 0) return 1;
  memset(&sp, 0, sizeof sp);
  sp.n = (int)n;
  sp.concurrency = (int)bo.concurrency;
  sp.arg = brx;
  sp.prep = prep_op;
  sp.results = lua_gettop(L);
  sp.progress = progress;
  cf_client_exec(L, c, &sp);
  lua_settop(L, sp.results);
  return 1;
}

/* client:_check_ops(ops) -> true | nil, err: only the checks client:batch
** makes before it sends anything (check_all: the same problems and paths),
** nothing run. For the section-6 ops (src/apps/), which ask the core
** whether it takes an op instead of restating the registry. */
int cf_client_check_ops(lua_State *L) {
  cf_client *c = cf_client_check(L);
  lua_Integer n;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  n = (lua_Integer)lua_rawlen(L, 2);
  if (n > 0x7fffffff) n = 0x7fffffff;
  if (!check_all(L, c, n, NULL)) return cf_fail(L);
  lua_pushboolean(L, 1);
  return 1;
}
