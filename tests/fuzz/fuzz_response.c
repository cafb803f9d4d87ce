/*
** libFuzzer harness for the client's response handling: status line,
** headers (cf-ray, Retry-After, retry-after-ms, x-should-retry, Ratelimit,
** Content-Length, chunked framing) and the JSON envelope. The decoder is
** static inside src/client.c, so it is driven the way users drive it: a
** real cfaccess.core.client sends a request to a one-shot TCP server on
** 127.0.0.1 (a thread in this process) that answers with the fuzz bytes
** verbatim and closes the connection.
**
** data[0] picks the call (get, list all pages, list one page, create,
** update, delete, and the reusable-policy calls); the rest is the raw HTTP
** response. Checked: the call
** returns a table, or nil + err with a known err.kind; the API token never
** appears anywhere in err, even when the response echoes it; no crash,
** leak, UB or hang (the client has a 2 s timeout, no retries and no pacing).
*/
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#include "lcfaccess.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TOKEN "fuzz-secret-token-5ee1"

/* Harness state (a fuzz target is a process of its own: statics are fine). */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *cur_data;          /* a private copy: the server thread may
                                      still be answering a late connection */
static size_t cur_size;
static int listen_fd = -1;
static int port;
static lua_State *LS;

/* Read the request (headers, then Content-Length bytes) so that the client
** is never blocked writing; bounded by a 2 s receive timeout. */
static void drain_request(int fd) {
  char buf[8192];
  size_t have = 0;
  long clen = 0;
  char *end = NULL;
  while (have < sizeof buf - 1) {
    ssize_t r = recv(fd, buf + have, sizeof buf - 1 - have, 0);
    if (r <= 0) return;
    have += (size_t)r;
    buf[have] = '\0';
    if ((end = strstr(buf, "\r\n\r\n")) != NULL) break;
  }
  if (end == NULL) return;
  {
    char *cl = strstr(buf, "Content-Length:");
    if (cl == NULL) cl = strstr(buf, "content-length:");
    if (cl != NULL) clen = strtol(cl + 15, NULL, 10);
  }
  clen -= (long)(have - (size_t)(end + 4 - buf));
  while (clen > 0) {
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r <= 0) return;
    clen -= r;
  }
}

static void *server(void *arg) {
  (void)arg;
  for (;;) {
    struct timeval tv = {2, 0};
    int fd = accept(listen_fd, NULL, NULL);
    size_t off = 0;
    if (fd < 0) continue;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    drain_request(fd);
    pthread_mutex_lock(&mu);
    while (off < cur_size) {
      ssize_t w = send(fd, cur_data + off, cur_size - off, MSG_NOSIGNAL);
      if (w <= 0) break;
      off += (size_t)w;
    }
    pthread_mutex_unlock(&mu);
    shutdown(fd, SHUT_RDWR);
    close(fd);
  }
  return NULL;
}

static const char driver[] =
  "local core, port, token = ...\n"
  "local c = assert(core.client{ account_id = '023e105f4ecef8ad9ca31a8372d0c353',\n"
  "  api_token = token, base_url = 'http://127.0.0.1:' .. port .. '/client/v4',\n"
  "  timeout = 2, connect_timeout = 2, max_retries = 0, rate_limit = false,\n"
  "  max_response_bytes = 65536 })\n"
  "local app = 'f174e90a-fafe-4643-bbbc-4a0ed4fc8415'\n"
  "local pol = { name = 'p', decision = 'allow', include = { { everyone = {} } } }\n"
  /* conflict: the no-duplicate create found matches it cannot tell apart,
  ** or a reusable policy the server says is attached; usage: the server
  ** says the app-scoped policy is a reusable one (API.md sections 6, 7) */
  "local kinds = { api = 1, network = 1, timeout = 1, decode = 1, conflict = 1, usage = 1 }\n"
  "local ops = {\n"
  "  function() return c:get_app_policy(app, app) end,\n"
  "  function() return c:list_app_policies(app) end,\n"
  "  function() return c:list_app_policies(app, { page = 2, per_page = 5 }) end,\n"
  "  function() return c:create_app_policy(app, pol) end,\n"
  "  function() return c:delete_policy(app) end,\n"
  "  function() return c:update_app_policy(app, app, pol) end,\n"
  "  function() return c:list_policies() end,\n"
  "  function() return c:create_policy(pol) end,\n"
  "  function() return c:delete_app_policy(app, app) end,\n"
  "}\n"
  "local function scan(v, depth)\n"
  "  if depth > 50 then return end\n"
  "  if type(v) == 'string' then assert(not v:find(token, 1, true), 'token leaked') end\n"
  "  if type(v) == 'table' then for k, x in pairs(v) do scan(k, depth + 1); scan(x, depth + 1) end end\n"
  "end\n"
  "return function(sel)\n"
  "  local r, err = ops[sel % #ops + 1]()\n"
  "  if r == nil then\n"
  "    assert(type(err) == 'table' and kinds[err.kind], 'unexpected err: ' .. tostring(err and err.kind) .. ': ' .. tostring(err and err.message))\n"
  "    assert(type(err.message) == 'string')\n"
  "    assert(not tostring(err):find(token, 1, true), 'token in tostring(err)')\n"
  "    scan(err, 0)\n"
  "  else\n"
  "    assert(type(r) == 'table', 'result is not a table')\n"
  "  end\n"
  "end\n";

static void setup(void) {
  struct sockaddr_in a;
  socklen_t alen = sizeof a;
  pthread_t th;
  int one = 1;
  signal(SIGPIPE, SIG_IGN);
  listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      listen(listen_fd, 64) != 0 ||
      getsockname(listen_fd, (struct sockaddr *)&a, &alen) != 0)
    abort();
  port = ntohs(a.sin_port);
  if (pthread_create(&th, NULL, server, NULL) != 0) abort();
  pthread_detach(th);
  LS = luaL_newstate();
  luaL_openlibs(LS);
  luaL_requiref(LS, "cfaccess.core", luaopen_cfaccess_core, 0);
  if (luaL_loadstring(LS, driver) != LUA_OK) abort();
  lua_insert(LS, -2);
  lua_pushinteger(LS, port);
  lua_pushliteral(LS, TOKEN);
  if (lua_pcall(LS, 3, 1, 0) != LUA_OK) abort();
  lua_setfield(LS, LUA_REGISTRYINDEX, "fuzz.run");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int runs;
  if (size < 1 || size > 70000) return 0;
  if (LS == NULL) setup();
  pthread_mutex_lock(&mu);
  free(cur_data);
  cur_data = (uint8_t *)malloc(size);
  cur_size = cur_data ? size - 1 : 0;
  if (cur_data) memcpy(cur_data, data + 1, size - 1);
  pthread_mutex_unlock(&mu);
  lua_getfield(LS, LUA_REGISTRYINDEX, "fuzz.run");
  lua_pushinteger(LS, data[0]);
  /* Even a response that echoes the token back must not get it into err. */
  if (lua_pcall(LS, 1, 0, 0) != LUA_OK) {
    /* a broken property: print it and crash so libFuzzer saves the input */
    const char *m = lua_tostring(LS, -1);
    write(2, m ? m : "?", m ? strlen(m) : 1);
    write(2, "\n", 1);
    abort();
  }
  if (++runs % 256 == 0) lua_gc(LS, LUA_GCCOLLECT);
  return 0;
}
