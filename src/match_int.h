/*
** What the server-copy files share (match_common.c): the read-only fields,
** the schema adapter, null and IP helpers, the kind argument. Private to
** match.c, match_common.c and body.c.
*/
#ifndef CFACCESS_MATCH_INT_H
#define CFACCESS_MATCH_INT_H

#include "match.h"

#define CF_M_MAX_DEPTH 64   /* nesting guard (cyclic tables) */

enum { CF_M_PLAIN = 0, CF_M_IP, CF_M_DURATION };

typedef struct cf_mfield {
  int type;              /* CF_T_* */
  int cls;               /* M_*: how a string compares */
  int nullable;          /* null is a value ("" for strings) */
  int keep_empty;        /* an empty object is a value (a rule body) */
  const void *child;     /* object: the schema of its fields */
  const void *elem;      /* list: the descriptor of its elements */
} cf_mfield;

/* Top-level fields the API returns and never takes back (NULL-ended). */
CF_INTERNAL extern const char *const cf_m_read_only[];
/* Is k one of the NULL-ended list? */
CF_INTERNAL int cf_m_in_list(const char *const *list, const char *k);
/* The field named k (n bytes) of schema (NULL: the body of kind), or the
** element of a list descriptor elem: 1 with *out filled; -1 when the schema
** has the field but not for this kind; 0 when it does not know it. */
CF_INTERNAL int cf_m_lookup(const void *schema, const void *elem, const char *k, size_t n,
                            cf_kind kind, cf_mfield *out);
/* Is the value at idx lua-cjson's null? */
CF_INTERNAL int cf_m_is_null(lua_State *L, int idx);
/* An IP or CIDR in canonical form, without a prefix that covers one
** address: 1 and buf filled, or 0 when s is not one. */
CF_INTERNAL int cf_m_ip_canon(const char *s, size_t n, char *buf, size_t cap);
/* The kind argument at idx (none, a kind name, or { kind =, allow_unknown = }):
** 1 with *o filled, or 0 with a `usage` error pushed. */
CF_INTERNAL int cf_m_kind_arg(lua_State *L, int idx, cf_encode_opts *o);
/* request_body(result [, kind | opts]) -> body | nil, err (body.c) */
CF_INTERNAL int cf_match_request_body(lua_State *L);

#endif
