/*
** threads: 4 OS threads, each with its own lua_State and the statically
** linked core, encoding policies and (when a mock URL is given) creating,
** listing and deleting policies concurrently. Built with -fsanitize=thread
** by `make tsan`; any data race (for example in curl_global_init or in
** shared state inside the core) aborts with a TSan report.
**
**   threads [MOCK_URL]      MOCK_URL: "http://127.0.0.1:PORT" or ""
** Exit 0 when every thread finished without error.
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#include "lcfaccess.h"

#define NTHREADS 4
#define NENCODE 2000
#define NCREATE 25

int main(int argc, char **argv);

typedef struct job {
  int id;
  const char *url;
  int ok;
  char msg[512];
} job;

static const char script[] =
  "local id, url, nencode, ncreate = ...\n"
  "local core = require('cfaccess.core')\n"
  "local first\n"
  "for i = 1, nencode do\n"
  "  local p = { name = 'thread ' .. id .. ' policy ' .. (i % 7), decision = 'allow',\n"
  "    precedence = i % 7 + 1, session_duration = '24h',\n"
  "    include = { { email = { email = 'u' .. (i % 7) .. '@example.com' } } },\n"
  "    require = { { ip = { ip = '10.' .. (i % 7) .. '.0.0/16' } } } }\n"
  "  local json = assert(core.encode(p))\n"
  "  if i == 7 then first = json elseif i % 7 == 0 then assert(json == first, 'not canonical') end\n"
  "end\n"
  "if url == '' or not core.client then return 'encode only' end\n"
  "local app = string.format('%08x-0000-4000-8000-%012x', id, id)\n"
  "local c = assert(core.client{ account_id = '023e105f4ecef8ad9ca31a8372d0c353',\n"
  "  api_token = 'embed-T0KEN-for-hosts', base_url = url .. '/client/v4', timeout = 10,\n"
  "  max_retries = 2, rate_limit = false })\n"
  "local ids = {}\n"
  "for i = 1, ncreate do\n"
  "  local r, err = c:create_app_policy(app, { name = 't' .. id .. '-' .. i, decision = 'allow',\n"
  "    include = { { everyone = {} } } })\n"
  "  assert(r, err and tostring(err))\n"
  "  ids[#ids + 1] = r.id\n"
  "end\n"
  "local list = assert(c:list_app_policies(app))\n"
  "assert(#list == ncreate, 'listed ' .. #list .. ' policies, created ' .. ncreate)\n"
  "for i = 1, 5 do assert(c:delete_app_policy(app, ids[i])) end\n"
  "c:close()\n"
  "return 'encoded and sent'\n";

static void *worker(void *arg) {
  job *j = (job *)arg;
  lua_State *L = luaL_newstate();
  if (L == NULL) { strcpy(j->msg, "no state"); return NULL; }
  luaL_openlibs(L);
  luaL_requiref(L, "cfaccess.core", luaopen_cfaccess_core, 0);
  lua_pop(L, 1);
  if (luaL_loadstring(L, script) != LUA_OK) {
    snprintf(j->msg, sizeof j->msg, "%s", lua_tostring(L, -1));
  } else {
    lua_pushinteger(L, j->id);
    lua_pushstring(L, j->url);
    lua_pushinteger(L, NENCODE);
    lua_pushinteger(L, NCREATE);
    if (lua_pcall(L, 4, 1, 0) != LUA_OK) {
      snprintf(j->msg, sizeof j->msg, "%s", lua_tostring(L, -1));
    } else {
      snprintf(j->msg, sizeof j->msg, "%s", lua_tostring(L, -1));
      j->ok = 1;
    }
  }
  lua_close(L);
  return NULL;
}

int main(int argc, char **argv) {
  pthread_t th[NTHREADS];
  job jobs[NTHREADS];
  int i, bad = 0;
  const char *url = argc > 1 ? argv[1] : "";
  for (i = 0; i < NTHREADS; i++) {
    jobs[i].id = i + 1;
    jobs[i].url = url;
    jobs[i].ok = 0;
    jobs[i].msg[0] = '\0';
    if (pthread_create(&th[i], NULL, worker, &jobs[i]) != 0) {
      fprintf(stderr, "threads: pthread_create failed\n");
      return 1;
    }
  }
  for (i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
  for (i = 0; i < NTHREADS; i++) {
    printf("threads: thread %d: %s: %s\n", jobs[i].id, jobs[i].ok ? "ok" : "FAILED", jobs[i].msg);
    if (!jobs[i].ok) bad++;
  }
  return bad ? 1 : 0;
}
