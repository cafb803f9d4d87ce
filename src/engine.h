/*
** cfaccess request engine (engine.c): runs operations, one (a sequential
** method) or many at once (a batch), each with retries, Retry-After,
** pacing, pagination and the no-duplicate create.
*/
#ifndef CFACCESS_ENGINE_H
#define CFACCESS_ENGINE_H

#include "client.h"

/* Is the listed item at listed the server's copy of the decoded request
** body at req (both absolute stack indices), a body of `kind`? The
** resource's own rules (for policies: cfaccess.same) live in the matcher;
** the engine adds the created-no-earlier guard (dedupe.c). */
typedef int (*cf_match_fn)(lua_State *L, int req, int listed, cf_kind kind);

/* One operation as the engine runs it. Strings are owned by Lua values
** that stay alive while the operation runs. */
typedef struct cf_req {
  const char *method;
  const char *url;
  const char *path;         /* url without the base, for messages */
  const char *body;         /* NULL: none */
  size_t body_len;
  int create;               /* POST that creates: no blind re-send */
  int list;                 /* GET of a collection: follow its pages */
  const char *list_url;     /* list, or create: the collection (checked
                            ** after an ambiguous create) */
  lua_Integer page, per_page;   /* list: page > 0 gets only that page */
  cf_match_fn match;        /* create: finds the item it may have made */
  cf_kind kind;             /* create: the body's kind, for the matcher */
  int warnings;             /* which value prep pushed (1-4) is the body's
                            ** validation warnings (results[i].warnings); 0: none */
  const int *dup_codes;     /* create: API error codes (0-terminated) that,
                            ** after an ambiguous try, mean "it exists" */
} cf_req;

/* Fill rq for operation i (1-based). arg is the stack index of the
** caller's argument (cf_exec_spec.arg). Values it pushes (at most 4) are
** kept alive while the operation runs: rq's strings may point into them.
** body is a buffer of the operation's slot, for an encoded body. Returns
** 1, or 0 with an err pushed (the operation then fails with it). */
typedef int (*cf_prep_fn)(lua_State *L, cf_client *c, int arg, int i,
                          cf_req *rq, cf_buf *body);

typedef struct cf_exec_spec {
  int n;                    /* operations */
  int concurrency;          /* transfers in flight at most (>= 1) */
  int arg;                  /* stack index handed to prep */
  cf_prep_fn prep;
  int results;              /* stack index of a table for results[i] =
                            ** {ok=, result= | err=}; 0: one operation, its
                            ** value returned */
  int progress;             /* stack index of on_progress(done, total), or 0 */
} cf_exec_spec;

/* Run the operations: up to `concurrency` at once on the client's multi
** handle. With results == 0: pushes the value (returns 1) or the err
** (returns 0). Else fills the results table and returns 1. A Lua error
** raised by on_log or on_progress propagates after every transfer is taken
** off the multi. */
CF_INTERNAL int cf_client_exec(lua_State *L, cf_client *c, const cf_exec_spec *sp);
/* Run rq alone (a batch of one): returns 1 with the value pushed, or 2
** with nil, err (a method's return). */
CF_INTERNAL int cf_client_run(lua_State *L, cf_client *c, cf_req *rq);

#endif
