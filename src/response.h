/*
** cfaccess responses (response.c): what one finished exchange means.
** Decoding with the private lua-cjson instance, integer fix-up, the
** Cloudflare envelope turned into an err, Retry-After / x-should-retry,
** and the credential redacted from anything the server echoed.
*/
#ifndef CFACCESS_RESPONSE_H
#define CFACCESS_RESPONSE_H

#include "http.h"

typedef struct cf_try {
  int retryable;
  int ambiguous;            /* the request may have been processed */
  int has_retry_after;
  double retry_after;
  lua_Integer code;         /* errors[1].code of an api error (as sent), else 0 */
} cf_try;

/* Decode the JSON string on top with the private decoder: replaces it with
** the value (tables fixed up: integral numbers as integers, null members
** dropped) and returns 1, or pops it and returns 0. */
CF_INTERNAL int cf_json_decode(lua_State *L);
/* Read the finished exchange x (path: for messages). Pushes the decoded
** envelope (returns 1) or an err with every copy of the credential
** secret[0..secret_len) replaced by "[redacted]" (returns 0); fills t. */
CF_INTERNAL int cf_response_read(lua_State *L, const cf_exchange *x,
                                 const char *path, const char *secret,
                                 size_t secret_len, cf_try *t);
/* err.status and err.ray_id from x, on the err on top. */
CF_INTERNAL void cf_response_fields(lua_State *L, const cf_exchange *x);

#endif
