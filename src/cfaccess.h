/*
** cfaccess: internal declarations shared by the C core's files.
** Only luaopen_cfaccess_core is exported from the shared object; everything
** declared here is internal (hidden visibility, cf_ prefix).
*/
#ifndef CFACCESS_H
#define CFACCESS_H

#include <stdarg.h>
#include <stddef.h>

#include "lua.h"
#include "lauxlib.h"

#include "lcfaccess.h"   /* the public luaopen_cfaccess_core prototype */

#define CFACCESS_VERSION "0.1.0"

#if defined(__GNUC__)
#define CF_INTERNAL __attribute__((visibility("hidden")))
#define CF_EXPORT __attribute__((visibility("default")))
#else
#define CF_INTERNAL
#define CF_EXPORT
#endif

/* ---- errors (error.c) ------------------------------------------------ */

/* Registry name of the error metatable (__tostring gives err.message). */
#define CF_ERROR_MT "cfaccess.error"

/* err.kind values (API.md section 9): the only spellings in the C core. */
#define CF_E_INVALID  "invalid"   /* bad data: a policy, an id */
#define CF_E_USAGE    "usage"     /* bad options, a call the client cannot make */
#define CF_E_API      "api"       /* the API answered with an error */
#define CF_E_NETWORK  "network"   /* no usable answer: connection, TLS, memory */
#define CF_E_TIMEOUT  "timeout"
#define CF_E_DECODE   "decode"    /* an answer that is not a Cloudflare envelope */
#define CF_E_CONFLICT "conflict"

/* Push a new error table { kind = kind, message = <formatted> } carrying the
** error metatable. Extra fields are set by the caller with lua_setfield. */
CF_INTERNAL void cf_error_push(lua_State *L, const char *kind,
                               const char *fmt, ...);
/* The `return nil, err` of every function that fails softly: with the err
** on top, push nil below it and return 2. */
CF_INTERNAL int cf_fail(lua_State *L);
/* Push an `invalid` error for the problems list at pidx ({path=, message=}
** items; count problems in all, the list may keep fewer): err.problems is
** that list and err.message reads "invalid <what>: <first path>: <first
** message> (and N more problems)". */
CF_INTERNAL void cf_error_invalid(lua_State *L, const char *what, int pidx,
                                  int count);
/* Pop the path string on top and store { path = it, message = <fmt, ap
** formatted by lua_pushvfstring> } as item n of the problems list at list
** (an absolute index). */
CF_INTERNAL void cf_problem_add(lua_State *L, int list, lua_Integer n,
                                const char *fmt, va_list ap);
/* Create the error metatable if needed (idempotent). */
CF_INTERNAL void cf_error_init(lua_State *L);

/* ---- the one growable byte buffer (buf.c) ---------------------------- */

/* Like curl's dynbuf: the most it may ever hold (`toobig`) is set when it is
** initialised, and an append that would go over it fails (too_big set)
** instead of growing. Unlike luaL_Buffer it does not use the Lua stack, so a
** walker may push and pop freely between appends, and cf_buf_append calls
** no Lua at all (the transport fills response bodies from inside libcurl's
** callbacks with it). Owners: a userdata made by cf_buf_push (its __gc
** frees the memory, so a Lua error raised while writing cannot leak it), or
** a struct that is itself owned by such a userdata (the client, a batch). */
typedef struct cf_buf {
  char *data;
  size_t len, cap;
  size_t toobig;    /* appends may not take len past this */
  int too_big;      /* an append went over toobig */
  int oom;          /* realloc failed */
} cf_buf;

#define CF_BUF_NOCAP (((size_t)-1) / 2)

/* Empty buffer (no memory yet) that may grow to toobig bytes. */
CF_INTERNAL void cf_buf_init(cf_buf *b, size_t toobig);
/* Append without Lua: 1, or 0 with too_big or oom set (b unchanged). */
CF_INTERNAL int cf_buf_append(cf_buf *b, const char *s, size_t n);
/* Forget the contents and the failure flags; keeps memory and cap. */
CF_INTERNAL void cf_buf_reset(cf_buf *b);
CF_INTERNAL cf_buf *cf_buf_push(lua_State *L);   /* pushes the owner; no cap */
/* Appends that raise a Lua error when they fail. */
CF_INTERNAL void cf_buf_add(lua_State *L, cf_buf *b, const char *s, size_t n);
CF_INTERNAL void cf_buf_addc(lua_State *L, cf_buf *b, char c);
CF_INTERNAL void cf_buf_adds(lua_State *L, cf_buf *b, const char *s);
CF_INTERNAL void cf_buf_free(cf_buf *b);          /* idempotent */

/* ---- validation and canonical encoding (validate.c, schema.c) -------- */

/* Index into the body kind descriptors (schema.h cf_body_kinds). */
typedef enum cf_kind {
  CF_KIND_APP = 0,      /* account application policy (the seed's body) */
  CF_KIND_ZONE,         /* zone application policy */
  CF_KIND_REUSABLE,     /* account reusable policy */
  CF_KIND_INFRA,        /* infrastructure application policy */
  CF_KIND_GROUP         /* Access group */
} cf_kind;

/* The options of the original entry point (kept for its callers). */
typedef struct cf_encode_opts {
  cf_kind kind;
  int allow_unknown;    /* pass unknown top-level fields through */
} cf_encode_opts;

/* Every option of validate/encode (API.md section 2). */
typedef struct cf_body_opts {
  cf_kind kind;
  int allow_unknown;    /* pass unknown top-level fields through */
  int strict;           /* warnings are errors */
  int legacy;           /* accept the 2024 rule shapes */
} cf_body_opts;

/* Map a public kind name ("app", ..., "group") to a kind; 0 if unknown. */
CF_INTERNAL int cf_kind_from_name(const char *name, cf_kind *out);

/* Read { kind =, allow_unknown =, strict =, legacy = } from the optional
** table at idx (nil or none gives the defaults: app, all false). Raises
** (luaL_argerror) on wrong types; returns 0 and pushes a `usage` error for
** an unknown kind name. */
CF_INTERNAL int cf_body_opts_read(lua_State *L, int idx, cf_body_opts *o);
/* The same, for the original options struct (strict and legacy unread). */
CF_INTERNAL int cf_encode_opts_read(lua_State *L, int idx, cf_encode_opts *o);

/* Validate the body at stack index idx (of kind o->kind). When it is valid
** and out is not NULL, append its canonical JSON to out; return 1 and push
** the warnings: a list of { path =, message = }, or nil when there are
** none. When it is not valid (with o->strict: also when it has warnings),
** push an `invalid` error (err.problems filled) and return 0. Every path
** is prefixed by `prefix` when it is not NULL/empty (e.g. "ops[3].policy").
** Pushes exactly one value; raises only on memory errors. With out NULL it
** is the warnings query: cf_body_encode(L, idx, &o, NULL, NULL). */
CF_INTERNAL int cf_body_encode(lua_State *L, int idx, const cf_body_opts *o,
                               const char *prefix, cf_buf *out);

/* The original entry point: cf_body_encode with strict and legacy off and
** the warnings dropped. Returns 1 with the stack unchanged, or 0 with the
** error pushed. */
CF_INTERNAL int cf_policy_encode(lua_State *L, int idx,
                                 const cf_encode_opts *o, const char *prefix,
                                 cf_buf *out);

/* ---- format checkers: formats.h (pure C, no Lua, fuzzable) ---------- */

#include "formats.h"

/* ---- module parts (core.c registers them in this order) ------------- */

/* Each sets its functions in the module table on top (LuaSocket style). The
** response decoder comes first: it raises when lua-cjson is unusable, so
** `require "cfaccess.core"` fails with a message naming it. */
CF_INTERNAL void cf_response_open(lua_State *L);
/* Register the client metatable and set `client` in the table on top. */
CF_INTERNAL void cf_client_open(lua_State *L);
/* Set `_memcap_resume` (memcap.c) in the table on top. */
CF_INTERNAL void cf_memcap_open(lua_State *L);

#endif
