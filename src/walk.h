/*
** cfaccess validator internals shared by its files (not for other parts
** of the core): the walk context, paths and problems (walk.c), the
** pass-through writer for unknown fields (passthru.c), the walker
** (validate.c). Check hooks see only schema.h's cf_walk_* functions.
*/
#ifndef CFACCESS_WALK_H
#define CFACCESS_WALK_H

#include "cfaccess.h"
#include "jsonw.h"
#include "schema.h"

#define CF_PATH_MAX 512       /* longer paths are cut, marked with "..." */
#define CF_MAX_DEPTH 64       /* nesting guard for pass-through values */
#define CF_MAX_SEGS (CF_MAX_DEPTH + 16)   /* path segments kept (deeper: "...") */
#define CF_MAX_PASS 200000    /* pass-through values and keys visited
                                 (shared subtables could otherwise blow up) */
#define CF_MAX_PROBLEMS 1000  /* problems (and warnings) kept; all counted */

struct cf_walk {
  lua_State *L;
  int perr, pwarn;            /* stack slots of the problems and warnings (or nil) */
  int nprob, nwarn;
  const cf_body_kind *body;
  cf_kind kind;
  unsigned kbit;              /* body->bit */
  int allow_unknown, strict, legacy;
  long pass_budget;           /* pass-through values left to visit */
  size_t text_budget;         /* string bytes left */
  const char *decision;       /* the policy's decision when it is valid */
  unsigned rule_flags;        /* CF_FL_IDENTITY|SERVICE|LINKED of rules seen */
  size_t plen;                /* path depth: segments pushed */
  const char *prefix;         /* prepended to every path */
  size_t prefix_len;
  /* The current path as segments (a key, or an index when s is NULL),
  ** rendered to text only when a problem is recorded. Keys point into Lua
  ** strings that stay anchored while the walk is below them. */
  struct { const char *s; size_t n; lua_Integer i; } seg[CF_MAX_SEGS];
  cf_jw jw;                   /* the output (jw.out NULL: validate only) */
};

/* The path push of cf_walk_key / cf_walk_index, inline for the walker's
** hot loop (one per field and per list element). */
static inline size_t cf_walk_push_key(cf_walk *w, const char *k, size_t n) {
  size_t old = w->plen;
  if (w->plen < CF_MAX_SEGS) {
    w->seg[w->plen].s = k;
    w->seg[w->plen].n = n;
  }
  w->plen++;
  return old;
}

static inline size_t cf_walk_push_index(cf_walk *w, lua_Integer i) {
  size_t old = w->plen;
  if (w->plen < CF_MAX_SEGS) {
    w->seg[w->plen].s = NULL;
    w->seg[w->plen].i = i;
  }
  w->plen++;
  return old;
}

/* walk.c */
CF_INTERNAL void cf_walk_problem(cf_walk *w, int warning, const char *leaf,
                                 const char *fmt, va_list ap);
/* Push a quoted, shortened form of a user string in which every invisible
** or control character is escaped (\u{FEFF}); returns it. */
CF_INTERNAL const char *cf_walk_quote(lua_State *L, const char *s, size_t n);
/* The name among names (NULL-terminated; or the fields of s when names is
** NULL) closest to k, or NULL when nothing is close. */
CF_INTERNAL const char *cf_walk_suggest(const cf_schema *s, const char *const *names,
                                        const char *k, size_t n);
/* Charge n string bytes to the text budget; 0 once spent (reported once). */
CF_INTERNAL int cf_walk_take_text(cf_walk *w, size_t n);
/* "null" for cfaccess.null, else the Lua type name. */
CF_INTERNAL const char *cf_walk_found(lua_State *L, int idx);
CF_INTERNAL int cf_walk_is_null(lua_State *L, int idx);

/* validate.c: check and write the object at idx against s. */
CF_INTERNAL void cf_walk_object(cf_walk *w, const cf_schema *s, int idx, int top);

/* passthru.c */
typedef struct cf_keyref { const char *s; size_t n; } cf_keyref;
/* The string keys of the table at tidx, sorted, in a new userdata on the
** stack (the strings stay anchored in that table). */
CF_INTERNAL cf_keyref *cf_walk_sorted_keys(lua_State *L, int tidx, size_t *count);
/* Write any JSON-encodable value (unknown fields passed through). */
CF_INTERNAL void cf_walk_any(cf_walk *w, int idx, int depth);

#endif
