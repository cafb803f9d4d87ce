/*
** cfaccess body schemas as data (schema.c), walked by the one validator in
** validate.c. A schema is a list of field descriptors in canonical output
** order; a body kind is a descriptor naming its schema and its check hook
** (the cross-field rules of that body, policy_check.c). Adding a field or a
** rule type is one descriptor; adding a body kind is one kind row.
*/
#ifndef CFACCESS_SCHEMA_H
#define CFACCESS_SCHEMA_H

#include <stddef.h>

#include "cfaccess.h"

/* Value types. */
enum {
  CF_T_STRING = 1,   /* Lua string (fmt, enumv apply) */
  CF_T_BOOL,
  CF_T_INT,          /* integer >= 0 (integral floats accepted) */
  CF_T_OBJECT,       /* child schema */
  CF_T_LIST,         /* elem describes each element */
  CF_T_ONEOF         /* the first of alts whose type (and tag) fits */
};

/* String formats (CF_T_STRING). */
enum {
  CF_F_ANY = 0,      /* any string */
  CF_F_NONEMPTY,
  CF_F_EMAIL,
  CF_F_DOMAIN,
  CF_F_IP,
  CF_F_COUNTRY,
  CF_F_URL,
  CF_F_UUID,
  CF_F_HEX32,
  CF_F_DURATION,     /* Go duration, >= 0 */
  CF_F_MFA_DURATION,
  CF_F_AMR           /* non-empty; outside RFC 8176: a warning */
};

/* Field flags. */
#define CF_FL_REQUIRED  0x0001u  /* must be present */
#define CF_FL_NULLABLE  0x0002u  /* cfaccess.null accepted, written as null */
#define CF_FL_NONEMPTY  0x0004u  /* list: at least one element */
#define CF_FL_LINKED    0x0008u  /* rule needs decision non_identity/bypass */
#define CF_FL_RULES     0x0010u  /* list of rules (better messages) */
#define CF_FL_DECISION  0x0020u  /* the policy decision (cross-field checks) */
#define CF_FL_IDENTITY  0x0040u  /* rule type is identity-based (no bypass) */
#define CF_FL_LEGACY    0x0080u  /* a 2024 shape only (needs opts.legacy) */
#define CF_FL_SERVICE   0x0100u  /* rule type needs decision non_identity */
#define CF_FL_NEW_REQ   0x0200u  /* required unless opts.legacy (saml's IdP) */
#define CF_FL_EMPTY_OK  0x0400u  /* "" accepted as is (format not applied) */

/* Kinds that take a field (bits 1 << cf_kind); 0 in a descriptor: every
** kind of the schema. 32 kinds fit; no kind count limits a schema. */
#define CF_K(k)    (1u << (k))
#define CF_K_APP   CF_K(CF_KIND_APP)
#define CF_K_ZONE  CF_K(CF_KIND_ZONE)
#define CF_K_REUSE CF_K(CF_KIND_REUSABLE)
#define CF_K_INFRA CF_K(CF_KIND_INFRA)

typedef struct cf_schema cf_schema;
typedef struct cf_field cf_field;

/* Name and its JSON key, for designated-initialiser rows:
** { CF_NAME("precedence"), .type = CF_T_INT, .kinds = CF_K_APP | CF_K_ZONE } */
#define CF_NAME(nm) .name = nm, .jkey = "\"" nm "\":", \
  .len = (unsigned short)(sizeof(nm) - 1), .jlen = (unsigned short)(sizeof(nm) + 2)

struct cf_field {
  const char *name;
  const char *jkey;         /* the name as JSON key with colon: "\"name\":" */
  unsigned short len;       /* strlen(name) */
  unsigned short jlen;      /* strlen(jkey) */
  unsigned char type;       /* CF_T_* */
  unsigned char fmt;        /* CF_F_* */
  unsigned char group;      /* >0: exactly one field of this group required */
  unsigned flags;           /* CF_FL_* */
  unsigned kinds;           /* CF_K_* bits; 0: every kind */
  const char *const *enumv; /* NULL-terminated allowed values, or NULL */
  const char *enum_text;    /* the values for messages, e.g. "a, b, c" */
  const char *const *foreign;  /* values of another kind (did you mean) */
  const char *foreign_note;    /* why they do not fit: "is for ..." */
  const char *note;         /* a warning whenever the field is present */
  const char *renamed;      /* CF_FL_LEGACY: its name in the 2025 API */
  const cf_schema *child;   /* CF_T_OBJECT */
  const cf_field *elem;     /* CF_T_LIST */
  const cf_field *const *alts;  /* CF_T_ONEOF: NULL-terminated */
  const char *tag;          /* object alternative: chosen when this key is set
                               (NULL: the table fallback) */
  const char *what;         /* CF_T_ONEOF: the alternatives for messages */
};

/* Schema flags. */
#define CF_S_ONE_KEY 0x01u      /* a rule: exactly one of the fields */

struct cf_schema {
  const cf_field *fields;
  unsigned n;               /* any number of fields: presence is the walker's
                               value slot per field, not a bit mask */
  unsigned flags;           /* CF_S_* */
  const char *unknown;      /* "field" or "rule type" in messages */
};

/* ---- walker interface for check hooks (validate.c) ------------------- */

typedef struct cf_walk cf_walk;

/* An error / a warning at the walker's current path, plus `leaf` when not
** NULL; fmt as lua_pushfstring (%s %d %I %f %%). With opts.strict a
** warning is an error. */
CF_INTERNAL void cf_walk_error(cf_walk *w, const char *leaf, const char *fmt, ...);
CF_INTERNAL void cf_walk_warn(cf_walk *w, const char *leaf, const char *fmt, ...);
/* Enter / leave a path segment (a key, or a list index). */
CF_INTERNAL size_t cf_walk_key(cf_walk *w, const char *k, size_t n);
CF_INTERNAL size_t cf_walk_index(cf_walk *w, lua_Integer i);
CF_INTERNAL void cf_walk_leave(cf_walk *w, size_t old);
CF_INTERNAL lua_State *cf_walk_L(const cf_walk *w);
CF_INTERNAL cf_kind cf_walk_kind(const cf_walk *w);
/* The body's decision when it is one of the allowed values, else NULL. */
CF_INTERNAL const char *cf_walk_decision(const cf_walk *w);
/* CF_FL_IDENTITY | CF_FL_SERVICE | CF_FL_LINKED bits of the rules seen. */
CF_INTERNAL unsigned cf_walk_rule_flags(const cf_walk *w);

/* ---- body kinds ------------------------------------------------------- */

typedef struct cf_body_kind {
  const char *name;         /* opts.kind */
  const char *article;      /* "an" app policy */
  const char *noun;         /* "policy" | "group": messages, the error */
  const cf_schema *schema;
  unsigned bit;             /* matched against the fields' .kinds */
  /* Cross-field rules of this body, after the walk; idx: the body. */
  void (*check)(cf_walk *w, int idx);
  int internal;             /* not listed in core.schema.kinds */
} cf_body_kind;

/* Indexed by cf_kind; then internal kinds; ends with a NULL name. */
CF_INTERNAL extern const cf_body_kind cf_body_kinds[];
/* The rule union (one field per rule type, schema order). */
CF_INTERNAL extern const cf_schema cf_rule_schema;
/* 1 when the field must be present in the newest API shape. */
CF_INTERNAL int cf_field_required(const cf_field *f);

/* The policy bodies' check hook (policy_check.c). */
CF_INTERNAL void cf_policy_check(cf_walk *w, int idx);

/* core.schema and core.null (schema_export.c): set them in the table on top. */
CF_INTERNAL void cf_schema_open(lua_State *L);

#endif
