/*
** _memcap_resume(limit, co) -> over, status, ...: resume the coroutine co
** (with no arguments) as coroutine.resume does, with the Lua state's
** allocator refusing any allocation that would take the memory allocated
** during the resume over `limit` bytes. status is "ok" (co's results
** follow), "yield" (its yielded values follow), "memory" (co ended with a
** memory error, LUA_ERRMEM; its error object follows) or "error" (another
** error; the error object follows). `over` says whether an allocation
** was refused even after Lua's emergency collection (its retry failed too),
** also when co caught the error itself.
**
** Why C: the state sandbox (lua/cfaccess/state/load.lua) checks memory
** from a hook, between instructions, but one instruction can allocate
** gigabytes (`s .. s .. s ...` with a 16 MiB `s` is one OP_CONCAT of 200
** operands). Only the allocator sees each allocation before it is made;
** lua_getallocf/lua_setallocf swap it for the resume and put the host's
** back afterwards, whatever co did (lua_resume catches every error, and a
** refused allocation is an ordinary LUA_ERRMEM). The allocator is the whole
** Lua state's, so allocations of other coroutines during the resume count
** too: the sandbox runs nothing else meanwhile.
**
** Each refusal makes Lua run a full emergency collection before its retry,
** which costs milliseconds on a large heap: a file catching the error in a
** loop would take hours to reach the instruction limit. So when a retry
** fails the allocator adds call and return events to co's hook (lua_sethook
** only stores fields and may be called at any time, even from a signal
** handler): the sandbox's hook, which asks for line and count events only,
** takes a call or return event as the sign and stops the file. Catching
** the error takes a pcall, whose return is such an event: a file is
** stopped after one failed allocation and its retry.
**
** Frees are credited only down to the memory in place when the resume
** began: freeing the host's older blocks gives the file no allowance.
*/
#include "cfaccess.h"

typedef struct {
  lua_Alloc f;          /* the allocator in place before the resume */
  void *ud;
  lua_State *co;        /* the coroutine whose hook to fire on a failure */
  lua_Integer used;     /* bytes allocated since the resume began (net, >= 0) */
  lua_Integer limit;
  int over;             /* a refused allocation's retry was refused too */
  int pending;          /* the last growing allocation was refused: */
  void *rptr;           /* its arguments, to know Lua's retry of it */
  size_t rosize, rnsize;
} memcap;

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  memcap *m = (memcap *)ud;
  /* for a new block (ptr NULL) osize is a type tag, not a size */
  lua_Integer had = ptr != NULL ? (lua_Integer)osize : 0;
  lua_Integer delta = (lua_Integer)nsize - had;
  void *p;
  if (delta > 0) {
    int retry = m->pending && m->rptr == ptr && m->rosize == osize && m->rnsize == nsize;
    m->pending = 0;
    if (m->used + delta > m->limit) {
      if (retry) {
        m->over = 1;
        if (m->co != NULL)
          lua_sethook(m->co, lua_gethook(m->co), lua_gethookmask(m->co) | LUA_MASKCALL | LUA_MASKRET,
                      lua_gethookcount(m->co));
      } else {
        m->pending = 1;   /* Lua runs an emergency collection, then retries */
        m->rptr = ptr;
        m->rosize = osize;
        m->rnsize = nsize;
      }
      return NULL;
    }
  }
  p = m->f(m->ud, ptr, osize, nsize);
  if (p != NULL || nsize == 0) {
    m->used += delta;
    if (m->used < 0) m->used = 0;
  }
  return p;
}

static int memcap_resume(lua_State *L) {
  memcap m;
  lua_State *co;
  int status, nres = 0;
  m.limit = luaL_checkinteger(L, 1);
  luaL_argcheck(L, m.limit > 0, 1, "a positive number of bytes expected");
  co = lua_tothread(L, 2);
  luaL_argexpected(L, co != NULL, 2, "thread");
  luaL_argcheck(L, co != L && lua_status(co) == LUA_OK && lua_gettop(co) > 0, 2,
                "a coroutine that has not run expected");
  luaL_checkstack(L, 4, NULL);
  m.co = co;
  m.used = 0;
  m.over = 0;
  m.pending = 0;
  m.rptr = NULL;
  m.rosize = m.rnsize = 0;
  m.f = lua_getallocf(L, &m.ud);
  lua_setallocf(L, capped_alloc, &m);
  status = lua_resume(co, L, lua_gettop(co) - 1, &nres);
  lua_setallocf(L, m.f, m.ud);
  lua_settop(L, 0);
  lua_pushboolean(L, m.over);
  if (status == LUA_OK || status == LUA_YIELD) {
    lua_pushstring(L, status == LUA_OK ? "ok" : "yield");
    luaL_checkstack(L, nres, "too many results");
    lua_xmove(co, L, nres);
    return 2 + nres;
  }
  lua_pushstring(L, status == LUA_ERRMEM ? "memory" : "error");
  lua_xmove(co, L, 1);                    /* the error object */
  return 3;
}

void cf_memcap_open(lua_State *L) {
  lua_pushcfunction(L, memcap_resume);
  lua_setfield(L, -2, "_memcap_resume");
}
