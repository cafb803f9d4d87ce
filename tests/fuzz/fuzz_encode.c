/*
** libFuzzer harness for the whole encode/validate path. Each input is a
** small program for a stack machine that builds Lua values: nested tables
** with every value type, schema field names as keys (so that the validator
** gets deep), huge strings, sparse arrays, self-references and cycles, and
** metatables whose __index / __pairs / __len raise or lie. The result is
** passed to cfaccess.core.encode and .validate through lua_pcall (an error
** raised by a hostile metamethod is fine; a crash, a leak or UB is not).
**
** Properties checked on every input:
**  - encode returns a string or (nil, err) with err.kind a string; validate
**    agrees (true exactly when encode gave a string; same kind otherwise);
**  - any returned JSON is valid UTF-8 (cf_is_utf8) and well formed (decoded
**    with lua-cjson when it can be required; cjson is the decoder the client
**    itself uses), and a second encode gives the same bytes.
** The Lua heap is capped by a counting allocator (the cap comes from the
** input) so out-of-memory paths run too.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#include "cfaccess.h"

LUAMOD_API int luaopen_cfaccess_core(lua_State *L);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct heap { size_t used, cap; } heap;

static void *cap_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  heap *h = (heap *)ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) { free(ptr); h->used -= old; return NULL; }
  if (nsize > old && h->used + (nsize - old) > h->cap) return NULL;
  ptr = realloc(ptr, nsize);
  if (ptr != NULL) h->used = h->used - old + nsize;
  return ptr;
}

static const char *const names[] = {
  "name", "decision", "include", "exclude", "require", "precedence",
  "approval_groups", "approval_required", "isolation_required",
  "purpose_justification_required", "purpose_justification_prompt",
  "session_duration", "mfa_config", "connection_rules", "email", "email_list",
  "email_domain", "everyone", "ip", "ip_list", "certificate", "common_name",
  "group", "azureAD", "github-organization", "gsuite", "okta", "saml", "oidc",
  "auth_context", "login_method", "auth_method", "service_token",
  "any_valid_service_token", "external_evaluation", "geo", "device_posture",
  "linked_app_token", "user_risk_score", "cloudflare_account_member", "id",
  "domain", "identity_provider_id", "team", "attribute_name",
  "attribute_value", "claim_name", "claim_value", "ac_id", "token_id",
  "evaluate_url", "keys_url", "country_code", "integration_uid", "app_uid",
  "account_id", "approvals_needed", "email_addresses", "email_list_uuid",
  "allowed_authenticators", "mfa_disabled", "mfa_bypass", "rdp", "ssh",
  "usernames", "allow_email_alias", "allowed_clipboard_local_to_remote_formats",
  "allowed_clipboard_remote_to_local_formats", "sesion_duration"
};
static const char *const strs[] = {
  "allow", "deny", "non_identity", "bypass", "24h", "2h45m", "300ms", "5m",
  "720h", "721h", "a@example.com", "example.com", "10.0.0.0/8", "::1/128",
  "US", "mfa", "totp", "piv_key", "text", "file", "low", "unscored",
  "f174e90a-fafe-4643-bbbc-4a0ed4fc8415", "023e105f4ecef8ad9ca31a8372d0c353",
  "https://example.com/x", "", "\xc3\xa9", "\xff\xfe", "a\0b", "\"\\\n\t\x01",
  "\xed\xa0\x80", "\xf4\x8f\xbf\xbf"
};
#define NNAMES (sizeof names / sizeof names[0])
#define NSTRS (sizeof strs / sizeof strs[0])

/* Lua source of the hostile metamethods (compiled once per state). */
static const char hostile[] =
  "local M = {}\n"
  "M.raise = { __index = function() error('index raised') end }\n"
  "M.raise_obj = { __index = function() error(setmetatable({}, {__tostring = function() error('x') end})) end }\n"
  "M.lie = { __index = function(t, k) return 'allow' end, __len = function() return 3 end }\n"
  "M.pairs_raise = { __pairs = function() error('pairs raised') end }\n"
  "M.pairs_lie = { __pairs = function(t) return function() return nil end, t, nil end }\n"
  "M.len_raise = { __len = function() error('len raised') end }\n"
  "M.len_huge = { __len = function() return math.maxinteger end }\n"
  "M.tostr = { __tostring = function() return 'allow' end, __name = 'Lie' }\n"
  "M.gc_raise = { __gc = function() error('gc raised') end }\n"
  "M.newindex = { __newindex = function() error('ro') end }\n"
  "return M\n";

#define MAXSTACK 64

/* Run the byte program; leaves exactly one value (the root table) above
** the current top. mt: stack index of the hostile metatables. */
static void build(lua_State *L, int mt, const uint8_t *d, size_t n) {
  size_t i = 0;
  int top0 = lua_gettop(L);
  luaL_checkstack(L, MAXSTACK + 8, "fuzz build");
  lua_newtable(L);                          /* the root, always present */
  while (i < n) {
    uint8_t op = d[i++];
    uint8_t arg = i < n ? d[i] : 0;
    int depth = lua_gettop(L) - top0;
    switch (op % 20) {
      case 0: lua_newtable(L); break;
      case 1: lua_pushinteger(L, (lua_Integer)(int8_t)arg); i++; break;
      case 2: {                              /* a float: interesting ones */
        static const double f[] = {1.0, 1.5, -0.0, 1e300, 0.1, 3.0, -1.0,
                                   9007199254740993.0, 1e19, -1e19};
        double v = f[arg % 10];
        if (arg == 250) v = 0.0 / 0.0;
        if (arg == 251) v = 1.0 / 0.0;
        if (arg == 252) v = -1.0 / 0.0;
        lua_pushnumber(L, v); i++; break;
      }
      case 3: lua_pushboolean(L, arg & 1); i++; break;
      case 4: lua_pushstring(L, names[arg % NNAMES]); i++; break;
      case 5: if (arg % NSTRS == 28) lua_pushlstring(L, "a\0b", 3);
              else lua_pushstring(L, strs[arg % NSTRS]);
              i++; break;
      case 6: {                              /* raw bytes from the input */
        size_t len = arg, avail = n - i > 0 ? n - i - 1 : 0;
        if (len > avail) len = avail;
        lua_pushlstring(L, (const char *)d + i + 1, len);
        i += 1 + len; break;
      }
      case 7: {                              /* a huge string */
        size_t len = (size_t)(arg + 1) * 1024;
        luaL_Buffer b;
        char *p = luaL_buffinitsize(L, &b, len);
        memset(p, arg > 128 ? 0xE9 : 'a', len);
        luaL_pushresultsize(&b, len);
        i++; break;
      }
      case 8:                                /* t[k] = v  (.. t k v) */
        if (depth >= 3 && lua_istable(L, -3) && !lua_isnil(L, -2) &&
            !(lua_type(L, -2) == LUA_TNUMBER && lua_tonumber(L, -2) != lua_tonumber(L, -2)))
          lua_rawset(L, -3);
        else if (depth >= 2) lua_pop(L, 1);
        break;
      case 9:                                /* append v to t (.. t v) */
        if (depth >= 2 && lua_istable(L, -2))
          lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        else if (depth >= 2) lua_pop(L, 1);
        break;
      case 10:                               /* sparse: t[arg*1000] = v */
        if (depth >= 2 && lua_istable(L, -2))
          lua_rawseti(L, -2, (lua_Integer)arg * 1000 - 5);
        else if (depth >= 2) lua_pop(L, 1);
        i++; break;
      case 11:                               /* cycle: t[name] = t */
        if (lua_istable(L, -1)) {
          lua_pushstring(L, names[arg % NNAMES]);
          lua_pushvalue(L, -2);
          lua_rawset(L, -3);
        }
        i++; break;
      case 12:                               /* cycle through the root */
        if (lua_istable(L, -1)) {
          lua_pushvalue(L, top0 + 1);
          lua_rawseti(L, -2, 1);
        }
        break;
      case 13:                               /* hostile metatable */
        if (lua_istable(L, -1)) {
          static const char *const mts[] = {"raise", "raise_obj", "lie",
            "pairs_raise", "pairs_lie", "len_raise", "len_huge", "tostr",
            "newindex"};
          lua_getfield(L, mt, mts[arg % 9]);
          lua_setmetatable(L, -2);
        }
        i++; break;
      case 14:                               /* deep nesting: wrap k times */
        if (depth >= 1) {
          int k = (arg % 8 == 7) ? 3000 : arg, j;
          for (j = 0; j < k; j++) {
            lua_createtable(L, 1, 0);
            lua_insert(L, -2);
            lua_rawseti(L, -2, 1);
          }
        }
        i++; break;
      case 15:                               /* many elements */
        if (lua_istable(L, -1) && depth >= 2) {
          int k = arg * 16, j;
          for (j = 1; j <= k; j++) {
            lua_pushvalue(L, -2);
            lua_rawseti(L, -2, j);
          }
        }
        i++; break;
      case 16: lua_pushcfunction(L, luaopen_cfaccess_core); break;
      case 17: lua_newuserdatauv(L, 8, 0); break;
      case 18: if (depth >= 2) lua_pop(L, 1); break;
      default: lua_pushlightuserdata(L, (void *)L); break;
    }
    if (lua_gettop(L) - top0 > MAXSTACK) lua_pop(L, 1);
  }
  lua_settop(L, top0 + 1);                  /* the root */
}

static int json_ok(lua_State *L, const char *s, size_t n) {
  int ok;
  if (!cf_is_utf8(s, n)) return 0;
  if (lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.cjson_decode") != LUA_TFUNCTION) {
    lua_pop(L, 1);
    return 1;                                 /* no cjson: UTF-8 check only */
  }
  lua_pushlstring(L, s, n);
  ok = lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1);
  lua_pop(L, 1);
  return ok;
}

/* Call core.<fn>(root, opts) under pcall. Returns: 1 string/true, 0 nil+err,
** -1 raised. Leaves the result (string or err kind) on the stack. */
static int call(lua_State *L, const char *fn, int root, int opts) {
  int st;
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.core");
  lua_getfield(L, -1, fn);
  lua_remove(L, -2);
  lua_pushvalue(L, root);
  lua_pushvalue(L, opts);
  st = lua_pcall(L, 2, 2, 0);
  if (st != LUA_OK) { lua_pop(L, 1); lua_pushnil(L); return -1; }
  if (lua_isnil(L, -2)) {
    if (!lua_istable(L, -1)) abort();         /* nil without an err table */
    lua_getfield(L, -1, "kind");
    if (!lua_isstring(L, -1)) abort();
    lua_replace(L, -3);
    lua_pop(L, 1);
    return 0;
  }
  lua_pop(L, 1);
  return 1;
}

typedef struct input { const uint8_t *data; size_t size; int lowmem; } input;

/* Everything that may raise runs here, under lua_pcall. */
static int run(lua_State *L) {
  input *in = (input *)lua_touserdata(L, 1);
  const uint8_t *data = in->data;
  int root, opts, e1, e2, v;
  lua_settop(L, 0);
  luaL_openlibs(L);
  if (luaL_loadstring(L, "local ok, c = pcall(require, 'cjson'); if not ok then return nil end "
                         "c = c.new(); c.decode_max_depth(10000); return c.decode") == LUA_OK &&
      lua_pcall(L, 0, 1, 0) == LUA_OK)
    lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.cjson_decode");
  lua_settop(L, 0);
  lua_pushcfunction(L, luaopen_cfaccess_core);
  lua_call(L, 0, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.core");
  if (luaL_loadstring(L, hostile) != LUA_OK) lua_error(L);
  lua_call(L, 0, 1);                        /* 1: hostile metatables */
  lua_createtable(L, 0, 2);                 /* 2: opts */
  {
    static const char *const kinds[] = {"app", "zone", "reusable", "infrastructure", "bogus"};
    if (data[1] % 6 < 5) { lua_pushstring(L, kinds[data[1] % 6]); lua_setfield(L, -2, "kind"); }
    lua_pushboolean(L, (data[1] >> 3) & 1);
    lua_setfield(L, -2, "allow_unknown");
  }
  opts = 2;
  build(L, 1, data + 2, in->size - 2);
  root = lua_gettop(L);
  if (in->lowmem) {                         /* only "no crash, no leak" */
    call(L, "encode", root, opts);
    return 0;
  }
  e1 = call(L, "encode", root, opts);
  if (e1 == 1) {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    if (s == NULL || !json_ok(L, s, n)) abort();
  }
  v = call(L, "validate", root, opts);
  if (e1 >= 0 && v >= 0 && e1 != v) abort();  /* encode and validate disagree */
  if (e1 == 0 && v == 0 && strcmp(lua_tostring(L, -1), lua_tostring(L, -2)) != 0)
    abort();                                   /* different err.kind */
  lua_pop(L, 1);
  e2 = call(L, "encode", root, opts);
  if (e1 == 1 && e2 == 1 && !lua_rawequal(L, -1, -2)) abort(); /* not canonical */
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  heap h;
  input in;
  lua_State *L;
  if (size < 2 || size > 4096) return 0;
  h.used = 0;
  in.data = data;
  in.size = size;
  in.lowmem = data[0] < 8;
  h.cap = in.lowmem ? (size_t)(data[0] + 1) * 96 * 1024 : 256u * 1024 * 1024;
  L = lua_newstate(cap_alloc, &h);
  if (L == NULL) return 0;
  lua_pushcfunction(L, run);
  lua_pushlightuserdata(L, &in);
  (void)lua_pcall(L, 1, 0, 0);
  lua_close(L);
  return 0;
}
