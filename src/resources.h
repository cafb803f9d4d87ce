/*
** cfaccess endpoint registry (resources.c): one row per API resource, read
** by the generated client methods (methods.c) and by batch ops (batch.c).
** The checks every endpoint shares (ids, scope, body kind, list options)
** and their messages live here, once.
*/
#ifndef CFACCESS_RESOURCES_H
#define CFACCESS_RESOURCES_H

#include "argcheck.h"
#include "engine.h"

typedef enum cf_verb {
  CF_LIST = 0,   /* GET the collection, every page (or one)  (parent) [, list opts] */
  CF_GET,        /* GET one item                              (parent, item) */
  CF_CREATE,     /* POST a body to the collection             (parent, body [, opts]) */
  CF_UPDATE,     /* PUT a body to an item                     (parent, item, body [, opts]) */
  CF_DELETE,     /* DELETE an item                            (parent, item) */
  CF_NVERBS
} cf_verb;

typedef enum cf_idfmt {
  CF_ID_UUID = 1,          /* policies, groups */
  CF_ID_UUID_OR_HEX32      /* applications (UUID, or a 32-hex tag) */
} cf_idfmt;

#define CF_SCOPE_ACCOUNT 1u
#define CF_SCOPE_ZONE    2u

typedef struct cf_resource {
  const char *name;              /* plural, for messages: "reusable policies" */
  const char *method[CF_NVERBS]; /* method (= batch op) name per verb; NULL: none */
  const char *path;              /* collection under "<base>/<scope>/"; a "%s"
                                 ** in it is the parent id */
  const char *parent;            /* the parent id's argument/op field, or NULL */
  cf_idfmt parent_fmt;
  const char *item;              /* the item id's argument/op field */
  cf_idfmt item_fmt;
  unsigned scopes;               /* CF_SCOPE_ACCOUNT | CF_SCOPE_ZONE */
  const char *body;              /* op field of the body ("policy"), or NULL */
  const char *const *kinds[2];   /* body kinds allowed [account, zone] (NULL-
                                 ** terminated; the first is the default) */
  cf_match_fn match;             /* create: which listed item it made */
  const int *dup_codes;          /* create: "it exists" API codes (0-ended) */
} cf_resource;

/* The registry (ends with a row whose name is NULL). */
CF_INTERNAL const cf_resource *cf_resource_list(void);
/* The HTTP method of a verb. */
CF_INTERNAL const char *cf_verb_http(cf_verb v);
/* Find the method/op called name: 1 with *r and *v set, or 0. */
CF_INTERNAL int cf_resource_find(const char *name, const cf_resource **r, cf_verb *v);

/* Ids: the check and what it expects ("a UUID"). */
CF_INTERNAL int cf_id_ok(cf_idfmt f, const char *s, size_t n);
CF_INTERNAL const char *cf_id_expect(cf_idfmt f);
/* Does the resource exist at the client's scope? If not, push the message
** ("reusable policies exist only at account scope (this client has a
** zone_id)") and return 0. */
CF_INTERNAL int cf_scope_check(lua_State *L, const cf_resource *r, const cf_client *c);
/* The body kind for a call: the scope's default when kind_given is 0, else
** *kind must be one the scope allows. Returns 1 (*kind set), or 0 with the
** message pushed ("create_app_policy takes kind \"zone\" on this client"). */
CF_INTERNAL int cf_kind_check(lua_State *L, const cf_resource *r, cf_verb v,
                              const cf_client *c, int kind_given, cf_kind *kind);
/* List options {page=, per_page=}, read into a cf_req. */
CF_INTERNAL const cf_argset *cf_list_options(void);
/* Push the URL of the request (and its path, a light userdata pointing
** into it after the base) and fill rq's method, url, path, list/create
** flags, list_url, matcher and duplicate codes. parent/item: stack indices
** of the id strings (0 when the resource/verb has none). */
CF_INTERNAL void cf_resource_request(lua_State *L, cf_client *c, const cf_resource *r,
                                     cf_verb v, int parent, int item, cf_req *rq);

/* on_log (client at stack index ci) one "warn" line per validator warning
** in the list at w (nil: none): "POST <path>: validation warning at
** <path>: <message>" (methods.c). */
CF_INTERNAL void cf_log_warnings(lua_State *L, int ci, const char *method, const char *path,
                                 int w);

#endif
