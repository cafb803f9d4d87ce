/*
** What the server-copy files (match.c: cfaccess.same, body.c:
** cfaccess.request_body) share: the knowledge about the server's fields as
** data, the schema adapter (the only code of the three that reads
** schema.h's tables, so a change of the schema's representation is a
** change here only), and small helpers.
*/
#include <arpa/inet.h>
#include <string.h>

#include "match_int.h"
#include "schema.h"

/* ---- knowledge as data ------------------------------------------------- */

/* Top-level fields the API returns and never takes back. */
const char *const cf_m_read_only[] = {
  "id", "uid", "created_at", "updated_at", "reusable", "app_count",
  "account_id", NULL
};

int cf_m_in_list(const char *const *list, const char *k) {
  for (; *list; list++)
    if (strcmp(*list, k) == 0) return 1;
  return 0;
}

/* ---- schema adapter: the only code that reads schema.h's tables -------- */

static void m_fill(const cf_field *f, int keep_empty, cf_mfield *out) {
  out->type = f->type == CF_T_ONEOF ? 0 : f->type;   /* a one-of: compared as it comes */
  out->cls = f->fmt == CF_F_IP ? CF_M_IP
           : (f->fmt == CF_F_DURATION || f->fmt == CF_F_MFA_DURATION) ? CF_M_DURATION : CF_M_PLAIN;
  out->nullable = (f->flags & CF_FL_NULLABLE) != 0;
  out->keep_empty = keep_empty;
  out->child = f->child;
  out->elem = f->elem;
}

/* The field named k (n bytes) of schema (NULL: the policy body) that the
** kind takes, or of a list descriptor's element when elem is not NULL:
** 1 and *out filled; -1 when the schema has the field but not for this
** kind; 0 when it does not know the field. */
int cf_m_lookup(const void *schema, const void *elem, const char *k, size_t n,
                    cf_kind kind, cf_mfield *out) {
  const cf_schema *s = schema ? (const cf_schema *)schema : cf_body_kinds[kind].schema;
  unsigned i, bit = cf_body_kinds[kind].bit;
  if (elem) {
    m_fill((const cf_field *)elem, 0, out);
    return 1;
  }
  for (i = 0; i < s->n; i++) {
    const cf_field *f = &s->fields[i];
    if (f->len == n && memcmp(f->name, k, n) == 0) {
      if (f->kinds && !(f->kinds & bit)) return -1;
      m_fill(f, (s->flags & CF_S_ONE_KEY) != 0, out);
      return 1;
    }
  }
  return 0;
}

/* ---- small helpers ----------------------------------------------------- */

int cf_m_is_null(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

/* An IP or CIDR in canonical form (inet_ntop), without a prefix that
** covers one address: 1 and buf filled, or 0 when s is not one. */
int cf_m_ip_canon(const char *s, size_t n, char *buf, size_t cap) {
  char addr[INET6_ADDRSTRLEN + 1];
  unsigned char bin[16];
  const char *slash = memchr(s, '/', n);
  size_t alen = slash ? (size_t)(slash - s) : n;
  int v6, full, prefix = -1;
  if (alen == 0 || alen >= sizeof addr) return 0;
  memcpy(addr, s, alen);
  addr[alen] = '\0';
  v6 = memchr(addr, ':', alen) != NULL;
  if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, bin) != 1) return 0;
  full = v6 ? 128 : 32;
  if (slash) {
    size_t i, plen = n - alen - 1;
    if (plen == 0 || plen > 3) return 0;
    prefix = 0;
    for (i = alen + 1; i < n; i++) {
      if (s[i] < '0' || s[i] > '9') return 0;
      prefix = prefix * 10 + (s[i] - '0');
    }
    if (prefix > full) return 0;
    if (prefix == full) prefix = -1;
  }
  if (!inet_ntop(v6 ? AF_INET6 : AF_INET, bin, addr, sizeof addr)) return 0;
  if (prefix < 0) snprintf(buf, cap, "%s", addr);
  else snprintf(buf, cap, "%s/%d", addr, prefix);
  return 1;
}

/* The kind argument at idx: none/nil, a kind name, or { kind =,
** allow_unknown = }. 0 with a `usage` error pushed for an unknown name. */
int cf_m_kind_arg(lua_State *L, int idx, cf_encode_opts *o) {
  if (lua_type(L, idx) == LUA_TSTRING) {
    o->allow_unknown = 0;
    if (cf_kind_from_name(lua_tostring(L, idx), &o->kind)) return 1;
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, idx);
    lua_setfield(L, -2, "kind");
    lua_replace(L, idx);
  } else if (!lua_isnoneornil(L, idx)) {
    luaL_argexpected(L, lua_istable(L, idx), idx, "kind name or options table");
  }
  return cf_encode_opts_read(L, idx, o);
}

