/*
** cfaccess validator and canonical JSON encoder: one walker over the
** schema tables of schema.c. It validates and writes in the same pass:
** one lua_next pass per object files each value into a stack slot by its
** schema position, then the slots are checked and written in schema order.
** Only raw access (lua_next, lua_rawget, lua_rawgeti, lua_rawlen): no
** metamethod ever runs, so nothing user-defined can raise through us.
** Every problem is collected with its path; nothing is allocated with
** malloc here (paths live in a fixed C array, the output in the caller's
** cf_buf, the rest on the Lua stack), so a Lua memory error cannot leak.
*/
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfaccess.h"
#include "schema.h"

#define PATH_MAX_LEN 512      /* longer paths are cut, marked with "..." */
#define MAX_DEPTH 64          /* nesting guard for pass-through values */
#define MAX_PASS 200000       /* pass-through values and keys visited
                                 (shared subtables could otherwise blow up) */
#define MAX_TEXT (16u << 20)  /* string bytes a policy may carry (16 MiB):
                                 ** shared sub-tables could otherwise make a
                                 ** small table encode to gigabytes */
#define MAX_PROBLEMS 1000     /* problems kept in err.problems (all counted) */
#define KEY_SHOW 64           /* bytes of a user key shown in a path */
#define VALUE_SHOW 60         /* bytes of a user value shown in a message */
#define STAGE_LEN 4096        /* output staging array */
#define MAX_SEGS (MAX_DEPTH + 16)   /* path segments kept (deeper: "...") */

static const char *const kind_names[] = {"app", "zone", "reusable", "infrastructure"};
static const char *const kind_articles[] = {"an", "a", "a", "an"};

typedef struct vctx {
  lua_State *L;
  cf_buf *out;                /* NULL: validate only */
  int perr;                   /* stack slot of the problems table (or nil) */
  int nprob;
  cf_kind kind;
  unsigned kbit;
  int allow_unknown;
  long pass_budget;           /* pass-through values left to visit */
  size_t text_budget;         /* string bytes left (MAX_TEXT in all) */
  const char *decision;       /* the policy's decision when it is valid */
  size_t plen;                /* path depth: segments pushed */
  size_t slen;                /* bytes staged in stage[] */
  const char *prefix;         /* prepended to every path */
  size_t prefix_len;
  /* The current path as segments (a key, or an index when s is NULL),
  ** rendered to text only when a problem is recorded. Keys point into Lua
  ** strings that stay anchored while the walk is below them. */
  struct { const char *s; size_t n; lua_Integer i; } seg[MAX_SEGS];
  char stage[STAGE_LEN];
} vctx;

/* ---- output -------------------------------------------------------------- */

/* Output goes through a fixed staging array in the context (no call, no
** allocation per token) and reaches the caller's cf_buf in large pieces. */
static void flush(vctx *c) {
  if (c->slen) {
    cf_buf_add(c->L, c->out, c->stage, c->slen);
    c->slen = 0;
  }
}

static void w_raw(vctx *c, const char *s, size_t n) {
  if (n > STAGE_LEN - c->slen) {
    flush(c);
    if (n > STAGE_LEN) { cf_buf_add(c->L, c->out, s, n); return; }
  }
  memcpy(c->stage + c->slen, s, n);
  c->slen += n;
}

#define W(c, s, n) do { if ((c)->out) w_raw((c), (s), (n)); } while (0)
#define WC(c, ch) do { if ((c)->out) { \
    if ((c)->slen == STAGE_LEN) flush(c); \
    (c)->stage[(c)->slen++] = (ch); } } while (0)
#define WS(c, lit) W(c, lit, sizeof(lit) - 1)

/* JSON escapes (RFC 8259): 0 = copy, 'u' = \u00XX, else the short form.
** Bytes from 0x60 up need no escape. */
static const char json_esc[96] = {
  'u','u','u','u','u','u','u','u','b','t','n','u','f','r','u','u',
  'u','u','u','u','u','u','u','u','u','u','u','u','u','u','u','u',
  0, 0, '"', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '\\', 0, 0, 0,
};

/* One pass over s: bit 1 set when a byte needs a JSON escape, bit 2 when
** a byte is not ASCII (then the caller checks UTF-8). */
static int scan(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  unsigned hi = 0;
  int esc = 0;
  size_t i;
  for (i = 0; i < n; i++) {
    unsigned ch = s[i];
    hi |= ch;
    if (ch < 96 && json_esc[ch]) esc = 1;
  }
  return esc | ((hi & 0x80) ? 2 : 0);
}

/* Write s as a JSON string (valid UTF-8, kept raw); cls from scan(). */
static void w_string_cls(vctx *c, const char *s, size_t n, int cls) {
  size_t i, run = 0;
  if (!c->out) return;
  WC(c, '"');
  if (cls & 1) {
    for (i = 0; i < n; i++) {
      unsigned char ch = (unsigned char)s[i];
      char e = ch < 96 ? json_esc[ch] : 0;
      if (e) {
        char esc[8];
        w_raw(c, s + run, i - run);
        if (e == 'u') {
          snprintf(esc, sizeof esc, "\\u%04x", (unsigned)ch);
          w_raw(c, esc, 6);
        } else {
          esc[0] = '\\';
          esc[1] = e;
          w_raw(c, esc, 2);
        }
        run = i + 1;
      }
    }
  }
  w_raw(c, s + run, n - run);
  WC(c, '"');
}

static void w_string(vctx *c, const char *s, size_t n) {
  if (c->out) w_string_cls(c, s, n, scan(s, n));
}

static void w_int(vctx *c, lua_Integer v) {
  char num[32];
  int n;
  if (!c->out) return;
  n = snprintf(num, sizeof num, "%lld", (long long)v);
  w_raw(c, num, (size_t)n);
}

/* A finite float with the fewest of 14 or 17 significant digits that reads
** back exactly; '.' whatever the locale. */
static void w_float(vctx *c, double d) {
  char num[40];
  int n, i;
  if (!c->out) return;
  n = snprintf(num, sizeof num, "%.14g", d);
  if (strtod(num, NULL) != d) n = snprintf(num, sizeof num, "%.17g", d);
  for (i = 0; i < n; i++)
    if (num[i] == ',') num[i] = '.';
  w_raw(c, num, (size_t)n);
}

/* ---- paths and problems ---------------------------------------------------- */

/* Copy at most `room` bytes of a user string into dst for a message or a
** path: printable ASCII and valid UTF-8 sequences kept, anything else shown
** as \xNN (escape=1) or '?' (escape=0). Returns bytes written. */
static size_t show(char *dst, size_t room, const char *s, size_t n, int escape,
                   int *cut) {
  size_t i = 0, o = 0;
  *cut = 0;
  while (i < n) {
    unsigned char ch = (unsigned char)s[i];
    size_t len = 1;
    if (ch >= 0x80) {
      len = ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : 2;
      if (len > n - i || !cf_is_utf8(s + i, len)) len = 0;
    } else if (ch < 0x20 || ch == 0x7F || (escape && (ch == '"' || ch == '\\'))) {
      len = 0;
    }
    if (len == 0) {
      if (o + 4 > room) { *cut = 1; break; }
      if (escape) {
        if (ch == '"' || ch == '\\') { dst[o++] = '\\'; dst[o++] = (char)ch; }
        else { snprintf(dst + o, 5, "\\x%02X", (unsigned)ch); o += 4; }
      } else {
        dst[o++] = '?';
      }
      i++;
    } else {
      if (o + len > room) { *cut = 1; break; }
      memcpy(dst + o, s + i, len);
      o += len;
      i += len;
    }
  }
  return o;
}

/* Push a quoted, shortened, printable form of a user string. */
static const char *push_quoted(lua_State *L, const char *s, size_t n) {
  char q[VALUE_SHOW * 4 + 8];
  int cut;
  size_t o = 1;
  q[0] = '"';
  o += show(q + 1, VALUE_SHOW, s, n, 1, &cut);
  q[o++] = '"';
  if (cut) { memcpy(q + o, "...", 3); o += 3; }
  lua_pushlstring(L, q, o);
  return lua_tostring(L, -1);
}

static size_t path_key(vctx *c, const char *k, size_t n) {
  size_t old = c->plen;
  if (c->plen < MAX_SEGS) {
    c->seg[c->plen].s = k;
    c->seg[c->plen].n = n;
  }
  c->plen++;
  return old;
}

static size_t path_index(vctx *c, lua_Integer i) {
  size_t old = c->plen;
  if (c->plen < MAX_SEGS) {
    c->seg[c->plen].s = NULL;
    c->seg[c->plen].i = i;
  }
  c->plen++;
  return old;
}

/* Render the current path ("a.b[2].c", after the prefix) into out (at
** least PATH_MAX_LEN + 8 bytes); user keys are shown printable and cut. */
static size_t path_render(const vctx *c, char *out) {
  size_t o = c->prefix_len, k, nseg = c->plen < MAX_SEGS ? c->plen : MAX_SEGS;
  memcpy(out, c->prefix, o);
  for (k = 0; k < nseg && o < PATH_MAX_LEN; k++) {
    if (c->seg[k].s == NULL) {
      o += (size_t)snprintf(out + o, 24, "[%lld]", (long long)c->seg[k].i);
    } else {
      size_t room = PATH_MAX_LEN - o;
      int cut;
      if (o > 0) out[o++] = '.';
      if (room > KEY_SHOW) room = KEY_SHOW;
      o += show(out + o, room, c->seg[k].s, c->seg[k].n, 0, &cut);
      if (cut) { memcpy(out + o, "...", 3); o += 3; }
    }
  }
  if (k < c->plen) { memcpy(out + o, "...", 3); o += 3; }
  return o;
}

/* Record a problem at the current path (plus `leaf` when not NULL). The
** message is formatted by lua_pushvfstring (%s %d %I %f %%). */
static void problem(vctx *c, const char *leaf, const char *fmt, ...) {
  lua_State *L = c->L;
  va_list ap;
  size_t old = c->plen;
  if (leaf) path_key(c, leaf, strlen(leaf));
  c->nprob++;
  if (c->nprob <= MAX_PROBLEMS) {
    char path[PATH_MAX_LEN + 96];
    size_t plen = path_render(c, path);
    if (lua_type(L, c->perr) != LUA_TTABLE) {
      lua_createtable(L, 4, 0);
      lua_replace(L, c->perr);
    }
    lua_pushlstring(L, path, plen);
    va_start(ap, fmt);
    cf_problem_add(L, c->perr, c->nprob, fmt, ap);
    va_end(ap);
  }
  c->plen = old;
}

/* Charge n string bytes to the policy's budget, in validate and encode
** alike (so both agree); 0 once the budget is spent (reported once). */
static int take_text(vctx *c, size_t n) {
  if (c->text_budget == 0) return 0;
  if (n < c->text_budget) { c->text_budget -= n; return 1; }
  c->text_budget = 0;
  problem(c, NULL, "policy too large: its strings add up to more than %d MiB",
          (int)(MAX_TEXT >> 20));
  return 0;
}

/* A short name for what was found, for "expected X, got Y". */
static const char *found(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  if (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL) return "null";
  return lua_typename(L, t);
}

static int is_null(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

/* ---- did you mean -------------------------------------------------------------- */

/* The schema name closest to k, or NULL when nothing is close. */
static const char *suggest(const cf_schema *s, const char *k, size_t n) {
  const char *best = NULL;
  size_t bestd = (size_t)-1;
  unsigned i;
  if (n == 0 || n > 64) return NULL;
  for (i = 0; i < s->n; i++) {
    const cf_field *f = &s->fields[i];
    size_t longer = f->len > n ? f->len : n;
    size_t d = cf_edit_distance(k, n, f->name, f->len);
    if (d <= longer / 3 && d < bestd) { bestd = d; best = f->name; }
  }
  return best;
}

/* ---- the walker ---------------------------------------------------------------- */

static void check_value(vctx *c, const cf_field *f, int idx);
static void write_any(vctx *c, int idx, int depth);

static int find_field(const cf_schema *s, const char *k, size_t n) {
  unsigned i;
  for (i = 0; i < s->n; i++)
    if (s->fields[i].len == n && s->fields[i].name[0] == k[0] &&
        memcmp(s->fields[i].name, k, n) == 0)
      return (int)i;
  return -1;
}

static void bad_key(vctx *c, int kidx) {
  lua_State *L = c->L;
  size_t old = c->plen;
  if (lua_type(L, kidx) == LUA_TNUMBER && lua_isinteger(L, kidx))
    path_index(c, lua_tointeger(L, kidx));
  problem(c, NULL, "unexpected %s key (object keys are strings)", found(L, kidx));
  c->plen = old;
}

typedef struct keyref { const char *s; size_t n; } keyref;

static int keyref_cmp(const void *a, const void *b) {
  const keyref *x = (const keyref *)a, *y = (const keyref *)b;
  size_t n = x->n < y->n ? x->n : y->n;
  int r = memcmp(x->s, y->s, n);
  if (r) return r;
  return x->n < y->n ? -1 : x->n > y->n;
}

/* The string keys of the table at tidx as a sorted array in a new userdata
** on the stack (the strings stay anchored in that table). */
static keyref *sorted_keys(lua_State *L, int tidx, size_t *count) {
  size_t m = 0, i = 0;
  keyref *ks;
  lua_pushnil(L);
  while (lua_next(L, tidx)) { lua_pop(L, 1); if (lua_type(L, -1) == LUA_TSTRING) m++; }
  ks = (keyref *)lua_newuserdatauv(L, (m ? m : 1) * sizeof(keyref), 0);
  lua_pushnil(L);
  while (lua_next(L, tidx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING && i < m) {
      ks[i].s = lua_tolstring(L, -1, &ks[i].n);
      i++;
    }
  }
  qsort(ks, i, sizeof(keyref), keyref_cmp);
  *count = i;
  return ks;
}

static void unknown_key(vctx *c, const cf_schema *s, const char *k, size_t n) {
  /* no suggestion work once the problem list is full (only counted) */
  const char *hint = c->nprob < MAX_PROBLEMS ? suggest(s, k, n) : NULL;
  size_t old = path_key(c, k, n);
  if (hint) problem(c, NULL, "unknown %s (did you mean \"%s\"?)", s->unknown, hint);
  else problem(c, NULL, "unknown %s", s->unknown);
  c->plen = old;
}

static int list_is_empty(lua_State *L, int idx) {
  lua_pushnil(L);
  if (lua_next(L, idx)) { lua_pop(L, 2); return 0; }
  return 1;
}

/* Check/write a list at idx against f (a CF_T_LIST field). */
static void check_list(vctx *c, const cf_field *f, int idx) {
  lua_State *L = c->L;
  lua_Integer n, i, count = 0;
  int ok = 1;
  if (lua_type(L, idx) != LUA_TTABLE) {
    problem(c, NULL, (f->flags & CF_FL_RULES) ? "expected a list of rules, got %s"
                                              : "expected a list, got %s", found(L, idx));
    return;
  }
  n = (lua_Integer)lua_rawlen(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_isinteger(L, -1)) {
      lua_Integer k = lua_tointeger(L, -1);
      if (k >= 1 && k <= n) { count++; continue; }
    }
    ok = 0;
    lua_pop(L, 1);
    break;
  }
  if (!ok || count != n) {
    int single = 0;
    if (f->flags & CF_FL_RULES) {
      const cf_schema *rs = f->elem->child;
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
          size_t kl;
          const char *k = lua_tolstring(L, -1, &kl);
          if (find_field(rs, k, kl) >= 0 || suggest(rs, k, kl)) single = 1;
        }
      }
    }
    if (single)
      problem(c, NULL, "expected a list of rules, got a single rule (wrap it in { })");
    else
      problem(c, NULL, "expected a list (keys 1..n without holes), got a table with other keys");
    return;
  }
  if (n == 0) {
    if (f->flags & CF_FL_NONEMPTY)
      problem(c, NULL, (f->flags & CF_FL_RULES) ? "must contain at least one rule"
                                                : "must contain at least one element");
    WS(c, "[]");
    return;
  }
  luaL_checkstack(L, 16, "cfaccess: nesting");
  WC(c, '[');
  for (i = 1; i <= n; i++) {
    size_t old;
    if (i > 1) WC(c, ',');
    lua_rawgeti(L, idx, i);
    old = path_index(c, i);
    check_value(c, f->elem, lua_gettop(L));
    c->plen = old;
    lua_pop(L, 1);
  }
  WC(c, ']');
}

/* Handle the unknown keys collected in the table at uidx: problems, or for
** the top level with allow_unknown, sorted pass-through fields. */
static void unknown_keys(vctx *c, const cf_schema *s, int uidx, int obj,
                         int passthrough, int *first) {
  lua_State *L = c->L;
  size_t m, i;
  keyref *ks = sorted_keys(L, uidx, &m);
  for (i = 0; i < m; i++) {
    if (!passthrough) {
      unknown_key(c, s, ks[i].s, ks[i].n);
    } else {
      size_t old;
      if (!cf_is_utf8(ks[i].s, ks[i].n)) {
        old = path_key(c, ks[i].s, ks[i].n);
        problem(c, NULL, "field name is not valid UTF-8");
        c->plen = old;
        continue;
      }
      if (!*first) WC(c, ',');
      *first = 0;
      w_string(c, ks[i].s, ks[i].n);
      WC(c, ':');
      lua_pushlstring(L, ks[i].s, ks[i].n);
      lua_rawget(L, obj);
      old = path_key(c, ks[i].s, ks[i].n);
      write_any(c, lua_gettop(L), 1);
      c->plen = old;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);  /* the keyref userdata */
}

/* Check/write the object at idx (a table) against schema s. top: the policy
** body itself (unknown fields may pass through there). */
static void check_object(vctx *c, const cf_schema *s, int idx, int top) {
  lua_State *L = c->L;
  int base = lua_gettop(L);
  int uslot, nslots = (s->flags & CF_S_ONE_KEY) ? 1 : s->n;
  uint32_t mask = 0;
  int count = 0, first_fi = -1, nunknown = 0, nbad = 0, first = 1;
  unsigned i;
  luaL_checkstack(L, nslots + 16, "cfaccess: nesting");
  lua_settop(L, base + nslots + 1);         /* value slots + unknowns slot */
  uslot = base + nslots + 1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    const char *k;
    size_t kl;
    int fi;
    if (lua_type(L, -2) != LUA_TSTRING) {
      bad_key(c, -2);
      nbad++;
      lua_pop(L, 1);
      continue;
    }
    k = lua_tolstring(L, -2, &kl);
    fi = find_field(s, k, kl);
    if (fi < 0) {
      nunknown++;
      if (lua_type(L, uslot) != LUA_TTABLE) {
        lua_newtable(L);
        lua_replace(L, uslot);
      }
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_pushboolean(L, 1);
      lua_rawset(L, uslot);
      continue;
    }
    if (!(s->fields[fi].kinds & c->kbit)) {
      size_t old = path_key(c, k, kl);
      problem(c, NULL, "not accepted in %s \"%s\" policy", kind_articles[c->kind],
              kind_names[c->kind]);
      c->plen = old;
      lua_pop(L, 1);
      continue;
    }
    mask |= (uint32_t)1 << fi;
    count++;
    if (s->flags & CF_S_ONE_KEY) {
      if (first_fi < 0) { first_fi = fi; lua_replace(L, base + 1); }
      else lua_pop(L, 1);
    } else {
      lua_replace(L, base + 1 + fi);
    }
  }

  if (s->flags & CF_S_ONE_KEY) {
    /* a rule: {"type":{...}} with exactly one type */
    if (nunknown) unknown_keys(c, s, uslot, idx, 0, &first);
    if (count > 1) {
      char names[1024];
      size_t o = 0;
      int seen = 0;
      for (i = 0; i < s->n; i++) {
        if (!(mask & ((uint32_t)1 << i))) continue;
        seen++;
        o += (size_t)snprintf(names + o, sizeof names - o, "%s\"%s\"",
                              seen == 1 ? "" : seen == count ? " and " : ", ",
                              s->fields[i].name);
        if (o >= sizeof names) { o = sizeof names - 1; break; }
      }
      problem(c, NULL, "a rule has exactly one type, found %s", names);
    } else if (count == 0 && nunknown == 0 && nbad == 0) {
      problem(c, NULL, "a rule has exactly one type, found an empty table");
    }
    if (first_fi >= 0) {
      const cf_field *f = &s->fields[first_fi];
      size_t old = path_key(c, f->name, f->len);
      if ((f->flags & CF_FL_LINKED) && c->decision &&
          strcmp(c->decision, "non_identity") != 0 && strcmp(c->decision, "bypass") != 0) {
        size_t inner = c->plen;
        c->plen = old;
        problem(c, NULL, "a linked_app_token rule needs decision \"non_identity\" or "
                "\"bypass\", got \"%s\"", c->decision);
        c->plen = inner;
      }
      WC(c, '{');
      W(c, f->jkey, f->jlen);
      check_value(c, f, base + 1);
      WC(c, '}');
      c->plen = old;
    }
    lua_settop(L, base);
    return;
  }

  WC(c, '{');
  for (i = 0; i < s->n; i++) {
    const cf_field *f = &s->fields[i];
    int slot = base + 1 + (int)i;
    size_t old;
    if (!(mask & ((uint32_t)1 << i))) {
      if ((f->flags & CF_FL_REQUIRED) && (f->kinds & c->kbit))
        problem(c, f->name, "required field is missing");
      continue;
    }
    if (f->type == CF_T_LIST && !(f->flags & CF_FL_NONEMPTY) &&
        lua_type(L, slot) == LUA_TTABLE && list_is_empty(L, slot))
      continue;                              /* empty optional list: omitted */
    if (!first) WC(c, ',');
    first = 0;
    W(c, f->jkey, f->jlen);
    old = path_key(c, f->name, f->len);
    check_value(c, f, slot);
    c->plen = old;
  }
  /* groups: exactly one field of each group that the schema uses */
  for (i = 0; i < s->n; i++) {
    const cf_field *f = &s->fields[i];
    unsigned j, npresent = 0;
    const char *alt = NULL, *a = NULL, *b = NULL;
    if (f->group == 0) continue;
    for (j = 0; j < i; j++)
      if (s->fields[j].group == f->group) break;
    if (j < i) continue;                     /* group handled at its first */
    for (j = i; j < s->n; j++) {
      if (s->fields[j].group != f->group) continue;
      if (j != i && !alt) alt = s->fields[j].name;
      if (mask & ((uint32_t)1 << j)) {
        npresent++;
        if (!a) a = s->fields[j].name; else if (!b) b = s->fields[j].name;
      }
    }
    if (npresent == 0)
      problem(c, f->name, "required field is missing (or the older \"%s\")",
              alt ? alt : "");
    else if (npresent > 1)
      problem(c, NULL, "give only one of \"%s\" and \"%s\"", a, b);
  }
  if (nunknown)
    unknown_keys(c, s, uslot, idx, top && c->allow_unknown, &first);
  WC(c, '}');
  lua_settop(L, base);
}

/* Is the float d an integer that fits a lua_Integer? */
static int float_to_int(double d, lua_Integer *out) {
  if (!(d == d) || d != floor(d)) return 0;
  if (d < -9223372036854775808.0 || d >= 9223372036854775808.0) return 0;
  *out = (lua_Integer)d;
  return 1;
}

static void check_string_format(vctx *c, const cf_field *f, const char *s, size_t n) {
  lua_State *L = c->L;
  int ok = 1;
  const char *what = NULL;
  switch (f->fmt) {
    case CF_F_ANY: break;
    case CF_F_NONEMPTY:
      if (n == 0) { problem(c, NULL, "must not be empty"); return; }
      break;
    case CF_F_EMAIL: ok = cf_is_email(s, n); what = "is not an email address"; break;
    case CF_F_DOMAIN: ok = cf_is_domain(s, n); what = "is not a domain name (e.g. example.com)"; break;
    case CF_F_IP: ok = cf_is_ip_or_cidr(s, n); what = "is not an IP address or CIDR range"; break;
    case CF_F_COUNTRY:
      ok = cf_is_country(s, n);
      what = "is not an ISO 3166-1 alpha-2 country code (two uppercase letters, e.g. \"US\")";
      break;
    case CF_F_URL: ok = cf_is_http_url(s, n); what = "is not an https:// (or http://) URL"; break;
    case CF_F_UUID: ok = cf_is_uuid(s, n); what = "is not a UUID (8-4-4-4-12 hex digits)"; break;
    case CF_F_HEX32: ok = cf_is_hex32(s, n); what = "is not 32 hex characters"; break;
    case CF_F_DURATION:
      ok = cf_is_go_duration(s, n);
      what = cf_go_duration_negative(s, n)
           ? "is negative (a duration must be >= 0)"
           : "is not a duration (units: ns, us, \xC2\xB5s, ms, s, m, h)";
      break;
    case CF_F_MFA_DURATION:
      ok = cf_is_mfa_duration(s, n);
      what = "is not an MFA duration (whole minutes or hours, 0m to 720h, e.g. 5m or 24h)";
      break;
    default: break;
  }
  if (!ok) {
    push_quoted(L, s, n);
    problem(c, NULL, "%s %s", lua_tostring(L, -1), what);
    lua_pop(L, 1);
  }
}

static void check_value(vctx *c, const cf_field *f, int idx) {
  lua_State *L = c->L;
  switch (f->type) {
    case CF_T_STRING: {
      size_t n;
      const char *s;
      int cls;
      if ((f->flags & CF_FL_NULLABLE) && is_null(L, idx)) { WS(c, "null"); return; }
      if (lua_type(L, idx) != LUA_TSTRING) {
        problem(c, NULL, "expected a string, got %s", found(L, idx));
        return;
      }
      s = lua_tolstring(L, idx, &n);
      cls = scan(s, n);
      if ((cls & 2) && !cf_is_utf8(s, n)) {
        problem(c, NULL, "string is not valid UTF-8");
        return;
      }
      if (f->enumv) {
        const char *const *e;
        for (e = f->enumv; *e; e++)
          if (strlen(*e) == n && memcmp(*e, s, n) == 0) break;
        if (!*e) {
          push_quoted(L, s, n);
          problem(c, NULL, "expected one of %s, got %s", f->enum_text, lua_tostring(L, -1));
          lua_pop(L, 1);
          return;
        }
        if (f->flags & CF_FL_DECISION) {
          c->decision = *e;
          if (c->kind == CF_KIND_INFRA && strcmp(*e, "allow") != 0) {
            problem(c, NULL, "expected \"allow\" (an infrastructure policy can only "
                    "allow), got \"%s\"", *e);
            return;
          }
        }
      }
      check_string_format(c, f, s, n);
      if (take_text(c, n) && c->out) w_string_cls(c, s, n, cls);
      return;
    }
    case CF_T_BOOL:
      if (lua_type(L, idx) != LUA_TBOOLEAN) {
        problem(c, NULL, "expected a boolean, got %s", found(L, idx));
        return;
      }
      if (lua_toboolean(L, idx)) WS(c, "true"); else WS(c, "false");
      return;
    case CF_T_INT: {
      lua_Integer v;
      if (lua_type(L, idx) != LUA_TNUMBER) {
        problem(c, NULL, "expected an integer, got %s", found(L, idx));
        return;
      }
      if (lua_isinteger(L, idx)) {
        v = lua_tointeger(L, idx);
      } else if (!float_to_int((double)lua_tonumber(L, idx), &v)) {
        problem(c, NULL, "expected an integer, got %f", lua_tonumber(L, idx));
        return;
      }
      if (v < 0) { problem(c, NULL, "expected an integer >= 0, got %I", v); return; }
      w_int(c, v);
      return;
    }
    case CF_T_OBJECT:
      if (lua_type(L, idx) != LUA_TTABLE) {
        problem(c, NULL, (f->child->flags & CF_S_ONE_KEY)
                ? "expected a rule (a table with one rule type), got %s"
                : "expected an object (a table), got %s", found(L, idx));
        return;
      }
      check_object(c, f->child, idx, 0);
      return;
    case CF_T_LIST:
      check_list(c, f, idx);
      return;
    default:
      return;
  }
}

/* Write any JSON-encodable value (pass-through of unknown fields): strings,
** numbers, booleans, cjson.null, lists (keys 1..n) and string-keyed objects
** (keys sorted); depth-limited, so cycles end as a problem. */
/* Charge one pass-through value or key to the visit budget; 0 once it is
** spent (reported once). */
static int pass_charge(vctx *c) {
  if (c->pass_budget <= 0) return 0;
  if (--c->pass_budget == 0) {
    problem(c, NULL, "unknown fields too large (more than %d values and keys)", MAX_PASS);
    return 0;
  }
  return 1;
}

static void write_any(vctx *c, int idx, int depth) {
  lua_State *L = c->L;
  if (c->text_budget == 0 || !pass_charge(c)) return;
  switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      if (!cf_is_utf8(s, n)) problem(c, NULL, "string is not valid UTF-8");
      else if (take_text(c, n)) w_string(c, s, n);
      return;
    }
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) { w_int(c, lua_tointeger(L, idx)); return; }
      {
        double d = (double)lua_tonumber(L, idx);
        if (d != d || d - d != 0) problem(c, NULL, "expected a finite number, got %f", d);
        else w_float(c, d);
      }
      return;
    case LUA_TBOOLEAN:
      if (lua_toboolean(L, idx)) WS(c, "true"); else WS(c, "false");
      return;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL) { WS(c, "null"); return; }
      break;
    case LUA_TTABLE: {
      lua_Integer n, count = 0, i;
      int strkeys = 0, otherkeys = 0;
      size_t keybytes = 0;
      if (depth > MAX_DEPTH) {
        problem(c, NULL, "nested more than %d levels deep (a cycle?)", MAX_DEPTH);
        return;
      }
      luaL_checkstack(L, 16, "cfaccess: nesting");
      n = (lua_Integer)lua_rawlen(L, idx);
      lua_pushnil(L);
      /* Every key is charged, and the key bytes before they are sorted or
      ** checked: a table reachable many times through shared subtables
      ** must not cost more than the budgets allow. */
      while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!pass_charge(c)) {
          lua_pop(L, 1);
          return;
        }
        if (lua_type(L, -1) == LUA_TSTRING) {
          strkeys++;
          keybytes += lua_rawlen(L, -1);
        }
        else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 &&
                 lua_tointeger(L, -1) <= n) count++;
        else otherkeys++;
      }
      if (otherkeys || (strkeys && count)) {
        problem(c, NULL, "a JSON value needs a list (keys 1..n) or an object (string keys)");
        return;
      }
      if (strkeys) {
        size_t m, k;
        keyref *ks;
        if (!take_text(c, keybytes)) return;
        ks = sorted_keys(L, idx, &m);
        WC(c, '{');
        for (k = 0; k < m; k++) {
          size_t old;
          if (k) WC(c, ',');
          old = path_key(c, ks[k].s, ks[k].n);
          if (!cf_is_utf8(ks[k].s, ks[k].n)) problem(c, NULL, "field name is not valid UTF-8");
          else w_string(c, ks[k].s, ks[k].n);
          WC(c, ':');
          lua_pushlstring(L, ks[k].s, ks[k].n);
          lua_rawget(L, idx);
          write_any(c, lua_gettop(L), depth + 1);
          lua_pop(L, 1);
          c->plen = old;
        }
        WC(c, '}');
        lua_pop(L, 1);
        return;
      }
      if (n == 0) { WS(c, "{}"); return; }   /* cjson's choice for {} */
      WC(c, '[');
      for (i = 1; i <= n; i++) {
        size_t old;
        if (i > 1) WC(c, ',');
        old = path_index(c, i);
        lua_rawgeti(L, idx, i);
        write_any(c, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
        c->plen = old;
      }
      WC(c, ']');
      return;
    }
    default:
      break;
  }
  problem(c, NULL, "expected a JSON value (string, number, boolean, null, list or "
          "object), got %s", found(L, idx));
}

/* ---- entry points ---------------------------------------------------------------- */

int cf_kind_from_name(const char *name, cf_kind *out) {
  int i;
  for (i = 0; i < 4; i++)
    if (strcmp(name, kind_names[i]) == 0) { *out = (cf_kind)i; return 1; }
  return 0;
}

int cf_encode_opts_read(lua_State *L, int idx, cf_encode_opts *o) {
  int t;
  o->kind = CF_KIND_APP;
  o->allow_unknown = 0;
  if (lua_isnoneornil(L, idx)) return 1;
  idx = lua_absindex(L, idx);
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushliteral(L, "kind");
  t = lua_rawget(L, idx);
  if (t == LUA_TSTRING) {
    size_t n;
    const char *k = lua_tolstring(L, -1, &n);
    if (strlen(k) != n || !cf_kind_from_name(k, &o->kind)) {
      push_quoted(L, k, n);
      cf_error_push(L, "usage", "unknown policy kind %s (expected app, zone, "
                    "reusable or infrastructure)", lua_tostring(L, -1));
      lua_replace(L, -3);
      lua_pop(L, 1);
      return 0;
    }
  } else if (t != LUA_TNIL) {
    luaL_argerror(L, idx, lua_pushfstring(L, "opts.kind: string expected, got %s",
                                          luaL_typename(L, -1)));
  }
  lua_pop(L, 1);
  lua_pushliteral(L, "allow_unknown");
  t = lua_rawget(L, idx);
  if (t == LUA_TBOOLEAN) o->allow_unknown = lua_toboolean(L, -1);
  else if (t != LUA_TNIL)
    luaL_argerror(L, idx, lua_pushfstring(L, "opts.allow_unknown: boolean expected, got %s",
                                          luaL_typename(L, -1)));
  lua_pop(L, 1);
  return 1;
}

int cf_policy_encode(lua_State *L, int idx, const cf_encode_opts *o,
                     const char *prefix, cf_buf *out) {
  vctx c;
  int top;
  size_t start = out ? out->len : 0;
  idx = lua_absindex(L, idx);
  top = lua_gettop(L);
  luaL_checkstack(L, 16, "cfaccess: stack");
  c.L = L;
  c.out = out;
  c.nprob = 0;
  c.kind = o->kind;
  c.kbit = 1u << o->kind;
  c.allow_unknown = o->allow_unknown;
  c.pass_budget = MAX_PASS;
  c.text_budget = MAX_TEXT;
  c.decision = NULL;
  c.plen = 0;
  c.slen = 0;
  c.prefix = prefix ? prefix : "";
  c.prefix_len = strlen(c.prefix);
  if (c.prefix_len > PATH_MAX_LEN / 2) c.prefix_len = PATH_MAX_LEN / 2;
  lua_pushnil(L);                         /* problems table slot */
  c.perr = lua_gettop(L);

  if (lua_type(L, idx) != LUA_TTABLE) {
    problem(&c, NULL, "expected a policy (a table), got %s", found(L, idx));
  } else {
    check_object(&c, &cf_policy_schema, idx, 1);
  }

  if (c.nprob == 0) {
    if (out) flush(&c);
    lua_settop(L, top);
    return 1;
  }
  if (out) out->len = start;
  cf_error_invalid(L, "policy", c.perr, c.nprob);
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
  return 0;
}
