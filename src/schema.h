/*
** cfaccess policy schema as data (schema.c), walked by the one validator in
** validate.c. A schema is a list of field descriptors in canonical output
** order; adding a field or a rule type is one descriptor.
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
  CF_T_LIST          /* elem describes each element */
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
  CF_F_MFA_DURATION
};

/* Field flags. */
#define CF_FL_REQUIRED  0x01u   /* must be present */
#define CF_FL_NULLABLE  0x02u   /* cjson.null accepted, written as null */
#define CF_FL_NONEMPTY  0x04u   /* list: at least one element */
#define CF_FL_LINKED    0x08u   /* rule needs decision non_identity/bypass */
#define CF_FL_RULES     0x10u   /* list of rules (better messages) */
#define CF_FL_DECISION  0x20u   /* the policy decision (cross-field checks) */
#define CF_FL_IDENTITY  0x40u   /* rule type is identity-based (no bypass) */
#define CF_FL_LEGACY    0x80u   /* a 2024 shape only (connection_id, okta email) */

/* Kinds that take a field (bit 1 << cf_kind). */
#define CF_K_APP   (1u << CF_KIND_APP)
#define CF_K_ZONE  (1u << CF_KIND_ZONE)
#define CF_K_REUSE (1u << CF_KIND_REUSABLE)
#define CF_K_INFRA (1u << CF_KIND_INFRA)
#define CF_K_ALL   (CF_K_APP | CF_K_ZONE | CF_K_REUSE | CF_K_INFRA)

typedef struct cf_schema cf_schema;
typedef struct cf_field cf_field;

struct cf_field {
  const char *name;
  const char *jkey;         /* the name as JSON key with colon: "\"name\":" */
  unsigned char len;        /* strlen(name) */
  unsigned char jlen;       /* strlen(jkey) */
  unsigned char type;       /* CF_T_* */
  unsigned char fmt;        /* CF_F_* */
  unsigned char flags;      /* CF_FL_* */
  unsigned char kinds;      /* CF_K_* */
  unsigned char group;      /* >0: exactly one field of this group required */
  const char *const *enumv; /* NULL-terminated allowed values, or NULL */
  const char *enum_text;    /* the values for messages, e.g. "a, b, c" */
  const cf_schema *child;   /* CF_T_OBJECT */
  const cf_field *elem;     /* CF_T_LIST */
};

/* Schema flags. */
#define CF_S_ONE_KEY 0x01u      /* a rule: exactly one of the fields */
/* The walker keeps a 32-bit presence mask per object: n <= 32. */

struct cf_schema {
  const cf_field *fields;
  unsigned char n;          /* at most 32 fields */
  unsigned char flags;      /* CF_S_* */
  const char *unknown;      /* "field" or "rule type" in messages */
};

/* The policy body (all kinds; kinds masks select). */
CF_INTERNAL extern const cf_schema cf_policy_schema;

/* The rule union (one field per rule type, schema order). */
CF_INTERNAL extern const cf_schema cf_rule_schema;
/* 1 when the field must be present in the newest API shape. */
CF_INTERNAL int cf_field_required(const cf_field *f);
/* Kind names in cf_kind order, NULL-terminated (core.schema.kinds). */
CF_INTERNAL extern const char *const cf_kind_names[];

/* core.schema (schema_export.c): set `schema` in the table on top. */
CF_INTERNAL void cf_schema_open(lua_State *L);

/* Extra format checkers (formats.c). */
CF_INTERNAL int cf_is_domain(const char *s, size_t n);
CF_INTERNAL int cf_is_http_url(const char *s, size_t n);
/* 1 when s is a valid Go duration that is negative and non-zero. */
CF_INTERNAL int cf_go_duration_negative(const char *s, size_t n);

#endif
