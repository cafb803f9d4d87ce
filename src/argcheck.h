/*
** cfaccess option readers (argcheck.c), luaposix style: a table argument is
** read field by field against a descriptor table, unknown keys are rejected
** by name (with a did-you-mean), and every message has one shape:
** "<what><field>: expected <type> <range>, got <value or type>".
** Used by the client options, rate_limit, list options, batch options and
** batch op fields.
*/
#ifndef CFACCESS_ARGCHECK_H
#define CFACCESS_ARGCHECK_H

#include <stddef.h>

#include "cfaccess.h"

typedef enum cf_argtype {
  CF_ARG_STRING = 1,   /* const char *: not empty, no CR/LF/NUL (headers, URLs) */
  CF_ARG_NUMBER,       /* double */
  CF_ARG_INTEGER,      /* lua_Integer (an integral float is accepted) */
  CF_ARG_BOOLEAN,      /* int */
  CF_ARG_FUNCTION,     /* int: 1 when given (the value stays in the table) */
  CF_ARG_TABLE,        /* int: 1 when given */
  CF_ARG_ANY           /* not read here (checked by its owner) */
} cf_argtype;

typedef struct cf_argdesc {
  const char *name;
  cf_argtype type;
  double min;          /* numbers: v >= min (v > min with min_open) */
  int min_open;
  double max;          /* numbers: v <= max, when max > min */
  size_t offset;       /* where the value goes in the caller's struct */
} cf_argdesc;

/* A set of descriptors (NULL-name terminated) and how its messages start. */
typedef struct cf_argset {
  const char *keys_what;    /* "client options": for unknown keys */
  const char *field_what;   /* "client option ": before a field's name */
  const cf_argdesc *args;
} cf_argset;

/* The known name closest to k (edit distance below 3), or NULL. */
CF_INTERNAL const char *cf_arg_nearest(const char *k, const cf_argdesc *args);
/* Check one field of the table at idx; when present and right, store it at
** (char *)out + a->offset (out may be NULL: check only). Returns 1, or 0
** with the message (without the field name) pushed as a string. */
CF_INTERNAL int cf_arg_field(lua_State *L, int idx, const cf_argdesc *a, void *out);
/* Check the keys of the table at idx. Returns 1, or 0 with a message for
** the first unknown key pushed ("unknown option \"k\" (did you mean ...)"). */
CF_INTERNAL int cf_arg_keys(lua_State *L, int idx, const cf_argdesc *args,
                            const char *noun);
/* The whole table at idx: keys, then every field in descriptor order.
** Returns 1, or 0 with a `usage` err pushed. */
CF_INTERNAL int cf_args_read(lua_State *L, int idx, const cf_argset *set, void *out);

#endif
