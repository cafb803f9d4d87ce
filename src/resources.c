/*
** cfaccess endpoint registry: every resource the client can reach, as
** data. A new resource is a row here (plus, when it has a body, a body kind
** in the schema); its client methods and batch ops follow from the row.
*/
#include <stddef.h>
#include <string.h>

#include "match.h"
#include "resources.h"

/* ---- per-resource rules ---------------------------------------------- */

/* Access policies: is the listed item at `listed` the server's copy of
** the request body at req, sent as `kind`? cfaccess.same (match.c, API.md
** section 7): the server's defaults filled in, /32 and /128, empty lists as
** absent, read-only fields ignored; never "fields the request left out
** match anything". The engine adds the created-no-earlier guard. */
static int policy_match(lua_State *L, int req, int listed, cf_kind kind) {
  return lua_type(L, listed) == LUA_TTABLE && cf_policy_same(L, req, listed, kind);
}

/* A create retried after an ambiguous try may be refused because the first
** try made it: Cloudflare says so with invalid_policy_precedence (11018;
** 12130 in older answers), the precedence being taken by that policy. */
static const int policy_dup_codes[] = {11018, 12130, 0};

static const char *const app_account_kinds[] = {"app", "infrastructure", NULL};
static const char *const app_zone_kinds[] = {"zone", NULL};
static const char *const reusable_kinds[] = {"reusable", NULL};
static const char *const group_kinds[] = {"group", NULL};

/* ---- the registry ---------------------------------------------------- */

static const cf_resource resources[] = {
  { .name = "application policies",
    .method = { [CF_LIST] = "list_app_policies", [CF_GET] = "get_app_policy",
                [CF_CREATE] = "create_app_policy", [CF_UPDATE] = "update_app_policy",
                [CF_DELETE] = "delete_app_policy" },
    .path = "access/apps/%s/policies",
    .parent = "app_id", .parent_fmt = CF_ID_UUID_OR_HEX32,
    .item = "policy_id", .item_fmt = CF_ID_UUID,
    .scopes = CF_SCOPE_ACCOUNT | CF_SCOPE_ZONE,
    .body = "policy", .kinds = { app_account_kinds, app_zone_kinds },
    .match = policy_match, .dup_codes = policy_dup_codes },
  { .name = "reusable policies",
    .method = { [CF_LIST] = "list_policies", [CF_GET] = "get_policy",
                [CF_CREATE] = "create_policy", [CF_UPDATE] = "update_policy",
                [CF_DELETE] = "delete_policy" },
    .path = "access/policies",
    .item = "policy_id", .item_fmt = CF_ID_UUID,
    .scopes = CF_SCOPE_ACCOUNT,
    .body = "policy", .kinds = { reusable_kinds, NULL },
    .match = policy_match, .dup_codes = policy_dup_codes },
  /* applications (API.md section 6): read here; their policies list is
  ** changed by set_app_policies & co. (src/apps.c and the chunks of src/apps/) */
  { .name = "applications",
    .method = { [CF_LIST] = "list_apps", [CF_GET] = "get_app" },
    .path = "access/apps",
    .item = "app_id", .item_fmt = CF_ID_UUID_OR_HEX32,
    .scopes = CF_SCOPE_ACCOUNT | CF_SCOPE_ZONE },
  /* Access groups: the rule union of policies, body kind "group". A group
  ** create that may have happened is looked for like a policy's
  ** (cfaccess.same as kind "group", created since it was sent); the API has
  ** no "it exists" code for groups. */
  { .name = "Access groups",
    .method = { [CF_LIST] = "list_groups", [CF_GET] = "get_group",
                [CF_CREATE] = "create_group", [CF_UPDATE] = "update_group",
                [CF_DELETE] = "delete_group" },
    .path = "access/groups",
    .item = "group_id", .item_fmt = CF_ID_UUID,
    .scopes = CF_SCOPE_ACCOUNT | CF_SCOPE_ZONE,
    .body = "group", .kinds = { group_kinds, group_kinds },
    .match = policy_match },
  { .name = NULL }
};

const cf_resource *cf_resource_list(void) { return resources; }

const char *cf_verb_http(cf_verb v) {
  static const char *const http[CF_NVERBS] = {"GET", "GET", "POST", "PUT", "DELETE"};
  return http[v];
}

int cf_resource_find(const char *name, const cf_resource **r, cf_verb *v) {
  const cf_resource *p;
  int i;
  for (p = resources; p->name; p++)
    for (i = 0; i < CF_NVERBS; i++)
      if (p->method[i] && strcmp(p->method[i], name) == 0) {
        *r = p;
        *v = (cf_verb)i;
        return 1;
      }
  return 0;
}

/* ---- the shared checks ----------------------------------------------- */

int cf_id_ok(cf_idfmt f, const char *s, size_t n) {
  return cf_is_uuid(s, n) || (f == CF_ID_UUID_OR_HEX32 && cf_is_hex32(s, n));
}

const char *cf_id_expect(cf_idfmt f) {
  return f == CF_ID_UUID_OR_HEX32 ? "a UUID or 32 hex characters" : "a UUID";
}

int cf_scope_check(lua_State *L, const cf_resource *r, const cf_client *c) {
  unsigned want = c->zone ? CF_SCOPE_ZONE : CF_SCOPE_ACCOUNT;
  if (r->scopes & want) return 1;
  lua_pushfstring(L, "%s exist only at %s scope (this client has %s)", r->name,
                  c->zone ? "account" : "zone", c->zone ? "a zone_id" : "an account_id");
  return 0;
}

int cf_kind_check(lua_State *L, const cf_resource *r, cf_verb v, const cf_client *c,
                  int kind_given, cf_kind *kind) {
  /* the scope's kinds (a resource of one scope: that scope's, so that a
  ** body is still checked when the scope is wrong) */
  const char *const *names = r->kinds[c->zone ? 1 : 0];
  luaL_Buffer b;
  int i;
  cf_kind k;
  if (names == NULL) names = r->kinds[c->zone ? 0 : 1];
  if (names == NULL || names[0] == NULL) luaL_error(L, "cfaccess: %s has no body kind", r->name);
  for (i = 0; names[i]; i++)
    if (cf_kind_from_name(names[i], &k) && (!kind_given || k == *kind)) {
      *kind = k;
      return 1;
    }
  luaL_buffinit(L, &b);
  lua_pushfstring(L, "%s takes kind ", r->method[v]);
  luaL_addvalue(&b);
  for (i = 0; names[i]; i++) {
    if (i > 0) luaL_addstring(&b, names[i + 1] ? ", " : " or ");
    lua_pushfstring(L, "\"%s\"", names[i]);
    luaL_addvalue(&b);
  }
  luaL_addstring(&b, " on this client");
  luaL_pushresult(&b);
  return 0;
}

static const cf_argdesc list_args[] = {
  {.name = "page", .type = CF_ARG_INTEGER, .min = 1, .offset = offsetof(cf_req, page)},
  {.name = "per_page", .type = CF_ARG_INTEGER, .min = 1, .max = 1000,
   .offset = offsetof(cf_req, per_page)},
  {.name = NULL}
};

static const cf_argset list_set = {"list options", "list option ", list_args};

const cf_argset *cf_list_options(void) { return &list_set; }

/* ---- URLs ------------------------------------------------------------- */

void cf_resource_request(lua_State *L, cf_client *c, const cf_resource *r, cf_verb v,
                         int parent, int item, cf_req *rq) {
  const char *url;
  int top = lua_gettop(L);
  if (parent) {
    const char *id = cf_client_escape(L, c, lua_tostring(L, parent));
    lua_pushfstring(L, "%s/%s/", c->base, c->scope);
    lua_pushfstring(L, r->path, id);
  } else {
    lua_pushfstring(L, "%s/%s/", c->base, c->scope);
    lua_pushstring(L, r->path);
  }
  lua_concat(L, 2);
  if (item) {
    const char *id = cf_client_escape(L, c, lua_tostring(L, item));
    lua_pushfstring(L, "%s/%s", lua_tostring(L, -2), id);
    lua_replace(L, -3);
    lua_pop(L, 1);
  }
  url = lua_tostring(L, -1);
  lua_copy(L, -1, top + 1);
  lua_settop(L, top + 1);
  lua_pushlightuserdata(L, (void *)(url + c->base_len));   /* the path */
  rq->method = cf_verb_http(v);
  rq->url = url;
  rq->path = url + c->base_len;
  rq->list = v == CF_LIST;
  rq->create = v == CF_CREATE;
  rq->list_url = (v == CF_LIST || v == CF_CREATE) ? url : NULL;
  rq->match = v == CF_CREATE ? r->match : NULL;
  rq->dup_codes = v == CF_CREATE ? r->dup_codes : NULL;
}
