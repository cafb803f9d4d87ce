/*
** The policy bodies' check hook: cross-field rules that only policies have
** (shared/reference/APPLICATIONS-AND-STATE.md, "Validation facts"), run by
** the walker after it has checked a policy's fields. Errors: an
** infrastructure policy only allows; linked_app_token needs decision
** non_identity or bypass. Warnings (accepted by the API, but not what the
** author means): precedence below 1, identity-based rules in a bypass
** policy, service tokens outside Service Auth.
*/
#include <string.h>

#include "schema.h"

static const char *const rule_lists[] = {"include", "exclude", "require"};

static const cf_field *rule_type(const char *k, size_t n) {
  unsigned i;
  for (i = 0; i < cf_rule_schema.n; i++) {
    const cf_field *f = &cf_rule_schema.fields[i];
    if (f->len == n && memcmp(f->name, k, n) == 0) return f;
  }
  return NULL;
}

/* One rule of type f (at the current path: the rule, e.g. include[2])
** under a policy with decision d. */
static void check_rule(cf_walk *w, const cf_field *f, const char *d) {
  if (f->flags & CF_FL_LINKED)
    cf_walk_error(w, NULL, "a linked_app_token rule needs decision \"non_identity\" or "
                  "\"bypass\", got \"%s\"", d);
  else if (f->flags & CF_FL_SERVICE)
    cf_walk_warn(w, NULL, "%s is a Service Auth rule: under decision \"%s\" "
                 "it never lets a service in (the request goes to the login page); write "
                 "decision = \"non_identity\"", f->name, d);
  else if (f->flags & CF_FL_IDENTITY)
    cf_walk_warn(w, NULL, "%s is an identity-based rule, and a bypass policy checks no "
                 "identity (Cloudflare: bypass takes no identity-based rules), so this rule "
                 "cannot limit who bypasses; use decision \"allow\" for identity rules, or "
                 "only non-identity rules (ip, geo, ...) with bypass", f->name);
}

/* Walk the rule lists again (raw) for the rules whose flags are in want. */
static void check_rules(cf_walk *w, int idx, unsigned want, const char *d) {
  lua_State *L = cf_walk_L(w);
  unsigned li;
  for (li = 0; li < 3; li++) {
    lua_Integer i, n;
    size_t oldl;
    lua_pushstring(L, rule_lists[li]);
    if (lua_rawget(L, idx) != LUA_TTABLE) { lua_pop(L, 1); continue; }
    oldl = cf_walk_key(w, rule_lists[li], strlen(rule_lists[li]));
    n = (lua_Integer)lua_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
      if (lua_rawgeti(L, -1, i) == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
          const cf_field *f;
          lua_pop(L, 1);
          if (lua_type(L, -1) != LUA_TSTRING) continue;
          f = rule_type(lua_tostring(L, -1), lua_rawlen(L, -1));
          if (f && (f->flags & want)) {
            size_t old = cf_walk_index(w, i);
            check_rule(w, f, d);
            cf_walk_leave(w, old);
          }
        }
      }
      lua_pop(L, 1);
    }
    cf_walk_leave(w, oldl);
    lua_pop(L, 1);
  }
}

void cf_policy_check(cf_walk *w, int idx) {
  lua_State *L = cf_walk_L(w);
  const char *d = cf_walk_decision(w);
  unsigned want = 0;
  if (d && cf_walk_kind(w) == CF_KIND_INFRA && strcmp(d, "allow") != 0)
    cf_walk_error(w, "decision", "expected \"allow\" (an infrastructure policy can only "
                  "allow), got \"%s\"", d);
  lua_pushliteral(L, "precedence");
  if (lua_rawget(L, idx) == LUA_TNUMBER && lua_tonumber(L, -1) == 0 &&
      cf_walk_kind(w) != CF_KIND_REUSABLE && cf_walk_kind(w) != CF_KIND_INFRA)
    cf_walk_warn(w, "precedence", "precedence 0 is below 1: the policies of an application "
                 "are ordered from 1, and 0 makes Terraform and the dashboard see a change on "
                 "every read; write 1 or more");
  lua_pop(L, 1);
  if (!d || strcmp(d, "non_identity") == 0) return;
  if (strcmp(d, "bypass") == 0) want = CF_FL_IDENTITY | CF_FL_SERVICE;
  else want = CF_FL_SERVICE | CF_FL_LINKED;
  if (cf_walk_rule_flags(w) & want) check_rules(w, idx, want, d);
}
