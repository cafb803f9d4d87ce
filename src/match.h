/*
** The server's copy of a policy (match.c): one definition of "the same
** policy" (API.md section 7), for cfaccess.same, cfaccess.request_body,
** the no-duplicate create and the desired-state plan.
*/
#ifndef CFACCESS_MATCH_H
#define CFACCESS_MATCH_H

#include "cfaccess.h"

/* 1 when the policy tables at stack indexes a and b would be stored alike by
** the server as a body of `kind` (server defaults filled in, empty lists and
** false flags as absent, a precedence one side leaves out ignored, single
** IPs with or without /32 and /128, read-only and one-sided unknown fields
** ignored, rules compared as a multiset); 0 otherwise. Raw access only (no
** metamethod runs); raises only on memory errors or nesting deeper than 64. */
CF_INTERNAL int cf_policy_same(lua_State *L, int a, int b, cf_kind kind);
/* The same, and *too_deep (when not NULL) set to 1 when a value nested
** deeper than the comparison follows (then the answer is 0: not the same). */
CF_INTERNAL int cf_policy_same_ex(lua_State *L, int a, int b, cf_kind kind, int *too_deep);

/* Set `same` and `request_body` in the table on top of the stack. */
CF_INTERNAL void cf_match_open(lua_State *L);

#endif
