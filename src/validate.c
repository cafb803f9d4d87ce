/* placeholder until the validator lands */
#include <string.h>
#include "cfaccess.h"
int cf_kind_from_name(const char *name, cf_kind *out) {
  static const char *const names[] = {"app", "zone", "reusable", "infrastructure"};
  int i;
  for (i = 0; i < 4; i++)
    if (strcmp(name, names[i]) == 0) { *out = (cf_kind)i; return 1; }
  return 0;
}
int cf_encode_opts_read(lua_State *L, int idx, cf_encode_opts *o) {
  (void)L; (void)idx; o->kind = CF_KIND_APP; o->allow_unknown = 0; return 1;
}
int cf_policy_encode(lua_State *L, int idx, const cf_encode_opts *o,
                     const char *prefix, cf_buf *out) {
  (void)idx; (void)o; (void)prefix; (void)out;
  cf_error_push(L, "invalid", "not implemented");
  return 0;
}
