/*
** cfaccess validator and canonical JSON encoder: one walker over the
** schema tables of schema.c. It validates and writes in the same pass:
** one lua_next pass per object files each value into a stack slot by its
** schema position (a present field is a non-nil slot: no presence mask,
** no field count limit), then the slots are checked and written in schema
** order. Only raw access (lua_next, lua_rawget, lua_rawgeti, lua_rawlen):
** no metamethod ever runs, so nothing user-defined can raise through us.
** Paths, problems and the entry points are walk.c; the writer jsonw.c;
** cross-field rules of a body are its kind's check hook (policy_check.c).
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "walk.h"

static void check_value(cf_walk *c, const cf_field *f, int idx);

/* The field named k: the row whose kinds take the body's kind, else the
** first row of that name (then reported as not accepted), else -1. */
static int find_field(const cf_schema *s, const char *k, size_t n, unsigned kbit) {
  unsigned i;
  int any = -1;
  for (i = 0; i < s->n; i++) {
    const cf_field *f = &s->fields[i];
    if (f->len == n && f->name[0] == k[0] && memcmp(f->name, k, n) == 0) {
      if (f->kinds == 0 || (f->kinds & kbit)) return (int)i;
      if (any < 0) any = (int)i;
    }
  }
  return any;
}

static void bad_key(cf_walk *c, int kidx) {
  lua_State *L = c->L;
  size_t old = c->plen;
  if (lua_type(L, kidx) == LUA_TNUMBER && lua_isinteger(L, kidx))
    cf_walk_push_index(c, lua_tointeger(L, kidx));
  cf_walk_error(c, NULL, "unexpected %s key (object keys are strings)", cf_walk_found(L, kidx));
  c->plen = old;
}

static void unknown_key(cf_walk *c, const cf_schema *s, const char *k, size_t n) {
  /* no suggestion work once the problem list is full (only counted) */
  const char *hint = c->nprob < CF_MAX_PROBLEMS ? cf_walk_suggest(s, NULL, k, n) : NULL;
  size_t old = cf_walk_push_key(c, k, n);
  if (hint) cf_walk_error(c, NULL, "unknown %s (did you mean \"%s\"?)", s->unknown, hint);
  else cf_walk_error(c, NULL, "unknown %s", s->unknown);
  c->plen = old;
}

/* Handle the unknown keys collected in the table at uidx: problems, or for
** the top level with allow_unknown, sorted pass-through fields. */
static void unknown_keys(cf_walk *c, const cf_schema *s, int uidx, int obj,
                         int passthrough, int *first) {
  lua_State *L = c->L;
  size_t m, i;
  cf_keyref *ks = cf_walk_sorted_keys(L, uidx, &m);
  for (i = 0; i < m; i++) {
    size_t old;
    if (!passthrough) {
      unknown_key(c, s, ks[i].s, ks[i].n);
      continue;
    }
    old = cf_walk_push_key(c, ks[i].s, ks[i].n);
    if (!cf_is_utf8(ks[i].s, ks[i].n)) {
      cf_walk_error(c, NULL, "field name is not valid UTF-8");
      c->plen = old;
      continue;
    }
    if (!*first) cf_jw_char(&c->jw, ',');
    *first = 0;
    cf_jw_string(&c->jw, ks[i].s, ks[i].n);
    cf_jw_char(&c->jw, ':');
    lua_pushlstring(L, ks[i].s, ks[i].n);
    lua_rawget(L, obj);
    cf_walk_any(c, lua_gettop(L), 1);
    c->plen = old;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);  /* the keyref userdata */
}

static int list_is_empty(lua_State *L, int idx) {
  lua_pushnil(L);
  if (lua_next(L, idx)) { lua_pop(L, 2); return 0; }
  return 1;
}

/* A list given where an object belongs: t[1] is set and no key is a
** string. One problem at the container instead of one per index. */
static int is_list_shaped(lua_State *L, int idx) {
  int strkeys = 0;
  if (lua_rawgeti(L, idx, 1) == LUA_TNIL) { lua_pop(L, 1); return 0; }
  lua_pop(L, 1);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) { strkeys = 1; lua_pop(L, 1); break; }
  }
  return !strkeys;
}

/* Why the table at idx is not a list (keys 1..n): one problem. */
static void not_a_list(cf_walk *c, const cf_field *f, int idx) {
  lua_State *L = c->L;
  int single = 0, strkeys = 0, other = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) {
      size_t kl;
      const char *k = lua_tolstring(L, -1, &kl);
      strkeys++;
      if ((f->flags & CF_FL_RULES) &&
          (find_field(&cf_rule_schema, k, kl, c->kbit) >= 0 ||
           cf_walk_suggest(&cf_rule_schema, NULL, k, kl)))
        single = 1;
    } else other++;
  }
  if (single)
    cf_walk_error(c, NULL, "expected a list of rules, got a single rule (wrap it in { })");
  else if (strkeys && !other)
    cf_walk_error(c, NULL, "expected a list, got an object (a table with string keys)");
  else
    cf_walk_error(c, NULL, "expected a list (keys 1..n without holes), got a table with other keys");
}

/* Check/write a list at idx against f (a CF_T_LIST field). */
static void check_list(cf_walk *c, const cf_field *f, int idx) {
  lua_State *L = c->L;
  lua_Integer n, i, count = 0;
  int ok = 1;
  if (lua_type(L, idx) != LUA_TTABLE) {
    cf_walk_error(c, NULL, (f->flags & CF_FL_RULES) ? "expected a list of rules, got %s"
                                                    : "expected a list, got %s",
                  cf_walk_found(L, idx));
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
  if (!ok || count != n) { not_a_list(c, f, idx); return; }
  if (n == 0) {
    if (f->flags & CF_FL_NONEMPTY)
      cf_walk_error(c, NULL, (f->flags & CF_FL_RULES) ? "must contain at least one rule"
                                                      : "must contain at least one element");
    CF_JW_LIT(&c->jw, "[]");
    return;
  }
  luaL_checkstack(L, 16, "cfaccess: nesting");
  cf_jw_char(&c->jw, '[');
  for (i = 1; i <= n; i++) {
    size_t old;
    if (i > 1) cf_jw_char(&c->jw, ',');
    lua_rawgeti(L, idx, i);
    old = cf_walk_push_index(c, i);
    check_value(c, f->elem, lua_gettop(L));
    c->plen = old;
    lua_pop(L, 1);
  }
  cf_jw_char(&c->jw, ']');
}

/* A rule {"type":{...}}: exactly one type. first_fi: the type found first
** (its value in slot), count: how many types were found. */
static void check_rule(cf_walk *c, const cf_schema *s, int idx, int slot, int first_fi,
                       int count, int nothing_else) {
  lua_State *L = c->L;
  if (count > 1) {
    char names[1024];
    size_t o = 0;
    int seen = 0;
    unsigned i;
    for (i = 0; i < s->n && o < sizeof names - 1; i++) {
      const cf_field *f = &s->fields[i];
      int t;
      lua_pushlstring(L, f->name, f->len);
      t = lua_rawget(L, idx);
      lua_pop(L, 1);
      if (t == LUA_TNIL) continue;
      seen++;
      o += (size_t)snprintf(names + o, sizeof names - o, "%s\"%s\"",
                            seen == 1 ? "" : seen == count ? " and " : ", ", f->name);
    }
    if (o >= sizeof names) o = sizeof names - 1;
    names[o] = '\0';
    cf_walk_error(c, NULL, "a rule has exactly one type, found %s", names);
  } else if (count == 0 && nothing_else) {
    cf_walk_error(c, NULL, "a rule has exactly one type, found an empty table");
  }
  if (first_fi >= 0) {
    const cf_field *f = &s->fields[first_fi];
    size_t old = cf_walk_push_key(c, f->name, f->len);
    c->rule_flags |= f->flags & (CF_FL_IDENTITY | CF_FL_SERVICE | CF_FL_LINKED);
    cf_jw_char(&c->jw, '{');
    cf_jw_raw(&c->jw, f->jkey, f->jlen);
    check_value(c, f, slot);
    cf_jw_char(&c->jw, '}');
    c->plen = old;
  }
}

/* The alternative groups of s (exactly one field of each): in the newest
** shape the non-legacy members are required; with opts.legacy one of all. */
static void check_groups(cf_walk *c, const cf_schema *s, int base) {
  lua_State *L = c->L;
  unsigned i, j;
  for (i = 0; i < s->n; i++) {
    const cf_field *f = &s->fields[i];
    unsigned npresent = 0, nlegacy = 0;
    const char *alt = NULL, *a = NULL, *b = NULL;
    if (f->group == 0) continue;
    for (j = 0; j < i; j++)
      if (s->fields[j].group == f->group) break;
    if (j < i) continue;                     /* group handled at its first */
    for (j = i; j < s->n; j++) {
      const cf_field *g = &s->fields[j];
      if (g->group != f->group) continue;
      if (j != i && !alt) alt = g->name;
      if (lua_type(L, base + 1 + (int)j) != LUA_TNIL) {
        npresent++;
        if (g->flags & CF_FL_LEGACY) nlegacy++;
        if (!a) a = g->name; else if (!b) b = g->name;
      }
    }
    if (!c->legacy) {
      if (nlegacy == 0 && npresent == 0)
        cf_walk_error(c, f->name, "required field is missing");
    } else if (npresent == 0) {
      cf_walk_error(c, f->name, "required field is missing (or the older \"%s\")", alt ? alt : "");
    } else if (npresent > 1) {
      cf_walk_error(c, NULL, "give only one of \"%s\" and \"%s\"", a, b);
    }
  }
}

/* Check/write one present field (in slot) of an object. */
static void check_field(cf_walk *c, const cf_field *f, int slot, int *first) {
  size_t old;
  if (f->type == CF_T_LIST && !(f->flags & CF_FL_NONEMPTY) &&
      lua_type(c->L, slot) == LUA_TTABLE && list_is_empty(c->L, slot))
    return;                                  /* empty optional list: omitted */
  old = cf_walk_push_key(c, f->name, f->len);
  if ((f->flags & CF_FL_LEGACY) && !c->legacy)
    cf_walk_error(c, NULL, "renamed %s in the 2025 API (opts.legacy = true accepts the "
                  "2024 shape)", f->renamed);
  if (f->note) cf_walk_warn(c, NULL, "%s", f->note);
  if (!*first) cf_jw_char(&c->jw, ',');
  *first = 0;
  cf_jw_raw(&c->jw, f->jkey, f->jlen);
  check_value(c, f, slot);
  c->plen = old;
}

/* Check/write the object at idx (a table) against schema s. top: the body
** itself (unknown fields may pass through there). */
void cf_walk_object(cf_walk *c, const cf_schema *s, int idx, int top) {
  lua_State *L = c->L;
  int base = lua_gettop(L);
  int one = (s->flags & CF_S_ONE_KEY) != 0;
  int uslot, nslots = one ? 1 : (int)s->n;
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
      if (nbad == 0 && count == 0 && nunknown == 0 && is_list_shaped(L, idx)) {
        /* a list where an object belongs: one problem, at the container */
        lua_settop(L, base);
        cf_walk_error(c, NULL, one ? "expected a rule (a table with one rule type), got a list"
                                   : "expected an object, got a list");
        return;
      }
      bad_key(c, -2);
      nbad++;
      lua_pop(L, 1);
      continue;
    }
    k = lua_tolstring(L, -2, &kl);
    fi = find_field(s, k, kl, c->kbit);
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
    if (s->fields[fi].kinds && !(s->fields[fi].kinds & c->kbit)) {
      size_t old = cf_walk_push_key(c, k, kl);
      cf_walk_error(c, NULL, "not accepted in %s \"%s\" %s", c->body->article,
                    c->body->name, c->body->noun);
      c->plen = old;
      lua_pop(L, 1);
      continue;
    }
    count++;
    if (!one) lua_replace(L, base + 1 + fi);
    else if (first_fi < 0) { first_fi = fi; lua_replace(L, base + 1); }
    else lua_pop(L, 1);
  }

  if (one) {
    if (nunknown) unknown_keys(c, s, uslot, idx, 0, &first);
    check_rule(c, s, idx, base + 1, first_fi, count, nunknown == 0 && nbad == 0);
    lua_settop(L, base);
    return;
  }

  cf_jw_char(&c->jw, '{');
  for (i = 0; i < s->n; i++) {
    const cf_field *f = &s->fields[i];
    int slot = base + 1 + (int)i;
    if (lua_type(L, slot) != LUA_TNIL) check_field(c, f, slot, &first);
    else if (((f->flags & CF_FL_REQUIRED) || ((f->flags & CF_FL_NEW_REQ) && !c->legacy)) &&
             (f->kinds == 0 || (f->kinds & c->kbit)))
      cf_walk_error(c, f->name, "required field is missing");
  }
  check_groups(c, s, base);
  if (nunknown)
    unknown_keys(c, s, uslot, idx, top && c->allow_unknown, &first);
  cf_jw_char(&c->jw, '}');
  lua_settop(L, base);
}

/* Is the float d an integer that fits a lua_Integer? */
static int float_to_int(double d, lua_Integer *out) {
  if (!(d == d) || d != floor(d)) return 0;
  if (d < -9223372036854775808.0 || d >= 9223372036854775808.0) return 0;
  *out = (lua_Integer)d;
  return 1;
}

/* An auth_method outside RFC 8176: a warning (the API takes any string). */
static void check_amr(cf_walk *c, const char *s, size_t n) {
  const char *hint;
  if (cf_is_amr(s, n)) return;
  hint = cf_walk_suggest(NULL, cf_amr_values, s, n);
  cf_walk_quote(c->L, s, n);
  if (hint)
    cf_walk_warn(c, NULL, "%s is not an RFC 8176 method: the IdP's amr claim will not hold it, "
                 "so the rule never matches; write \"%s\" (the values are lower case)",
                 lua_tostring(c->L, -1), hint);
  else
    cf_walk_warn(c, NULL, "%s is not an RFC 8176 method: the IdP's amr claim will not hold "
                 "it, so the rule never matches; write one of the RFC 8176 values (pwd, mfa, "
                 "otp, hwk, swk, sms, ...)",
                 lua_tostring(c->L, -1));
  lua_pop(c->L, 1);
}

static void check_string_format(cf_walk *c, const cf_field *f, const char *s, size_t n) {
  lua_State *L = c->L;
  int ok = 1;
  const char *what = NULL;
  switch (f->fmt) {
    case CF_F_ANY: break;
    case CF_F_NONEMPTY:
      if (n == 0) { cf_walk_error(c, NULL, "must not be empty"); return; }
      break;
    case CF_F_AMR:
      if (n == 0) { cf_walk_error(c, NULL, "must not be empty"); return; }
      check_amr(c, s, n);
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
    cf_walk_quote(L, s, n);
    cf_walk_error(c, NULL, "%s %s", lua_tostring(L, -1), what);
    lua_pop(L, 1);
  }
}

static const char *enum_find(const char *const *e, const char *s, size_t n) {
  for (; *e; e++)
    if (strlen(*e) == n && memcmp(*e, s, n) == 0) return *e;
  return NULL;
}

/* A value outside f's enum: say so, with the value's other kind (f->foreign)
** or the closest name of both lists. */
static void bad_enum(cf_walk *c, const cf_field *f, const char *s, size_t n) {
  lua_State *L = c->L;
  const char *q = cf_walk_quote(L, s, n), *hint;
  if (f->foreign && enum_find(f->foreign, s, n)) {
    cf_walk_error(c, NULL, "expected one of %s, got %s: %s %s", f->enum_text, q, q, f->foreign_note);
  } else if ((hint = cf_walk_suggest(NULL, f->enumv, s, n)) != NULL) {
    cf_walk_error(c, NULL, "expected one of %s, got %s (did you mean \"%s\"?)", f->enum_text, q, hint);
  } else if (f->foreign && (hint = cf_walk_suggest(NULL, f->foreign, s, n)) != NULL) {
    cf_walk_error(c, NULL, "expected one of %s, got %s (did you mean \"%s\"? it %s)",
                  f->enum_text, q, hint, f->foreign_note);
  } else {
    cf_walk_error(c, NULL, "expected one of %s, got %s", f->enum_text, q);
  }
  lua_pop(L, 1);
}

static void check_string(cf_walk *c, const cf_field *f, int idx) {
  lua_State *L = c->L;
  size_t n;
  const char *s;
  int cls;
  if ((f->flags & CF_FL_NULLABLE) && cf_walk_is_null(L, idx)) { CF_JW_LIT(&c->jw, "null"); return; }
  if (lua_type(L, idx) != LUA_TSTRING) {
    cf_walk_error(c, NULL, "expected a string, got %s", cf_walk_found(L, idx));
    return;
  }
  s = lua_tolstring(L, idx, &n);
  cls = cf_json_scan(s, n);
  if ((cls & 2) && !cf_is_utf8(s, n)) {
    cf_walk_error(c, NULL, "string is not valid UTF-8");
    return;
  }
  if (f->enumv) {
    const char *e = enum_find(f->enumv, s, n);
    if (!e) { bad_enum(c, f, s, n); return; }
    if (f->flags & CF_FL_DECISION) c->decision = e;
  }
  if (n > 0 || !(f->flags & CF_FL_EMPTY_OK)) check_string_format(c, f, s, n);
  if (cf_walk_take_text(c, n)) cf_jw_string_cls(&c->jw, s, n, cls);
}

/* A one-of: the first alternative of the value's type (for a table: the
** first whose tag key is set, else the untagged one). */
static void check_oneof(cf_walk *c, const cf_field *f, int idx) {
  lua_State *L = c->L;
  const cf_field *const *a, *pick = NULL, *fallback = NULL;
  int t = lua_type(L, idx);
  for (a = f->alts; *a && !pick; a++) {
    const cf_field *alt = *a;
    if (alt->type == CF_T_STRING && t == LUA_TSTRING) pick = alt;
    else if ((alt->type == CF_T_OBJECT || alt->type == CF_T_LIST) && t == LUA_TTABLE) {
      if (alt->tag == NULL) { if (!fallback) fallback = alt; continue; }
      lua_pushstring(L, alt->tag);
      if (lua_rawget(L, idx) != LUA_TNIL) pick = alt;
      lua_pop(L, 1);
    } else if ((alt->type == CF_T_BOOL && t == LUA_TBOOLEAN) ||
               (alt->type == CF_T_INT && t == LUA_TNUMBER)) pick = alt;
  }
  if (!pick) pick = fallback;
  if (!pick) {
    cf_walk_error(c, NULL, "expected %s, got %s", f->what, cf_walk_found(L, idx));
    return;
  }
  check_value(c, pick, idx);
}

static void check_value(cf_walk *c, const cf_field *f, int idx) {
  lua_State *L = c->L;
  switch (f->type) {
    case CF_T_STRING:
      check_string(c, f, idx);
      return;
    case CF_T_BOOL:
      if (lua_type(L, idx) != LUA_TBOOLEAN) {
        cf_walk_error(c, NULL, "expected a boolean, got %s", cf_walk_found(L, idx));
        return;
      }
      if (lua_toboolean(L, idx)) CF_JW_LIT(&c->jw, "true"); else CF_JW_LIT(&c->jw, "false");
      return;
    case CF_T_INT: {
      lua_Integer v;
      if (lua_type(L, idx) != LUA_TNUMBER) {
        cf_walk_error(c, NULL, "expected an integer, got %s", cf_walk_found(L, idx));
        return;
      }
      if (lua_isinteger(L, idx)) {
        v = lua_tointeger(L, idx);
      } else if (!float_to_int((double)lua_tonumber(L, idx), &v)) {
        cf_walk_error(c, NULL, "expected an integer, got %f", lua_tonumber(L, idx));
        return;
      }
      if (v < 0) { cf_walk_error(c, NULL, "expected an integer >= 0, got %I", v); return; }
      cf_jw_int(&c->jw, v);
      return;
    }
    case CF_T_OBJECT:
      if (lua_type(L, idx) != LUA_TTABLE) {
        cf_walk_error(c, NULL, (f->child->flags & CF_S_ONE_KEY)
                      ? "expected a rule (a table with one rule type), got %s"
                      : "expected an object (a table), got %s", cf_walk_found(L, idx));
        return;
      }
      cf_walk_object(c, f->child, idx, 0);
      return;
    case CF_T_LIST:
      check_list(c, f, idx);
      return;
    case CF_T_ONEOF:
      check_oneof(c, f, idx);
      return;
    default:
      return;
  }
}
