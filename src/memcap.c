/*
** _memcap_call(limit, f, ...) -> capped, pcall(f, ...): call f(...) as
** pcall does, with the Lua state's allocator refusing any allocation that
** would take the memory allocated during the call over `limit` bytes.
** `capped` says whether an allocation was refused, also when f caught the
** error itself (a coroutine.resume does).
**
** Why C: the state sandbox (lua/cfaccess/state/load.lua) checks memory
** from a hook, between instructions, but one instruction can allocate
** gigabytes (`s .. s .. s ...` with a 16 MiB `s` is one OP_CONCAT of 200
** operands). Only the allocator sees each allocation before it is made;
** lua_getallocf/lua_setallocf swap it for the call and put the host's
** back afterwards, whatever f did (lua_pcall catches every error, and a
** refused allocation is an ordinary LUA_ERRMEM). The allocator is the whole
** Lua state's, so allocations of other coroutines during the call count
** too: the sandbox runs nothing else meanwhile.
*/
#include "cfaccess.h"

typedef struct {
  lua_Alloc f;          /* the allocator in place before the call */
  void *ud;
  lua_Integer used;     /* bytes allocated since the call began (net) */
  lua_Integer limit;
  int hit;              /* an allocation was refused */
} memcap;

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  memcap *m = (memcap *)ud;
  /* for a new block (ptr NULL) osize is a type tag, not a size */
  lua_Integer had = ptr != NULL ? (lua_Integer)osize : 0;
  lua_Integer delta = (lua_Integer)nsize - had;
  void *p;
  if (delta > 0 && m->used + delta > m->limit) {
    m->hit = 1;
    return NULL;        /* Lua runs an emergency collection, then raises */
  }
  p = m->f(m->ud, ptr, osize, nsize);
  if (p != NULL || nsize == 0) m->used += delta;
  return p;
}

static int memcap_call(lua_State *L) {
  memcap m;
  int status, n;
  m.limit = luaL_checkinteger(L, 1);
  luaL_argcheck(L, m.limit > 0, 1, "a positive number of bytes expected");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  m.used = 0;
  m.hit = 0;
  m.f = lua_getallocf(L, &m.ud);
  lua_setallocf(L, capped_alloc, &m);
  status = lua_pcall(L, lua_gettop(L) - 2, LUA_MULTRET, 0);
  lua_setallocf(L, m.f, m.ud);
  if (status != LUA_OK) {
    lua_pushboolean(L, m.hit);
    lua_pushboolean(L, 0);
    lua_rotate(L, -3, -1);                /* capped, false, the error */
    return 3;
  }
  n = lua_gettop(L) - 1;                  /* f's results, after the limit */
  lua_pushboolean(L, m.hit);
  lua_replace(L, 1);                      /* capped in the limit's slot */
  lua_pushboolean(L, 1);
  lua_insert(L, 2);                       /* capped, true, f's results */
  return n + 2;
}

void cf_memcap_open(lua_State *L) {
  lua_pushcfunction(L, memcap_call);
  lua_setfield(L, -2, "_memcap_call");
}
