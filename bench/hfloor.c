/*
** bench/hfloor.c: the honest floors of `make bench` (issue 13). A Lua C
** module, built by bench/run.sh and loaded by the same lua5.4 that runs
** the client, that does what bench/floor.c does (POST the same body to the
** same URL over one reused libcurl easy handle, or curl multi with CONC
** reused handles in flight) and then what any Lua client must do with the
** answer: decode every response with the same lua-cjson into Lua tables.
** No validation, no retries, no pacing, no integer fix-up: the least work
** a Lua library over libcurl can do per create.
**
**   local hf = package.loadlib(path, "luaopen_hfloor")()
**   secs, cpu = hf.seq(url, body, n, decode)
**   secs, cpu = hf.multi(url, body, n, conc, decode)
** decode: cjson.new().decode (called once per response; its table is
** checked for success = true and dropped). Raises on any failed request.
*/
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include <curl/curl.h>

#include "lua.h"
#include "lauxlib.h"

typedef struct sink { char *data; size_t len, cap; } sink;

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  sink *s = (sink *)ud;
  size_t k = size * n;
  if (s->len + k > s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 4096;
    char *d;
    while (cap < s->len + k) cap *= 2;
    d = (char *)realloc(s->data, cap);
    if (d == NULL) return 0;
    s->data = d;
    s->cap = cap;
  }
  memcpy(s->data + s->len, p, k);
  s->len += k;
  return k;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Everything a run owns, in a userdata so that a raised error frees it. */
typedef struct run {
  CURLM *m;
  CURL *hs[64];
  sink ss[64];
  struct curl_slist *hd;
  int nh;
} run;

static int run_gc(lua_State *L) {
  run *r = (run *)lua_touserdata(L, 1);
  int k;
  for (k = 0; k < r->nh; k++) {
    if (r->hs[k] != NULL) {
      if (r->m != NULL) curl_multi_remove_handle(r->m, r->hs[k]);
      curl_easy_cleanup(r->hs[k]);
    }
    free(r->ss[k].data);
    r->hs[k] = NULL;
    r->ss[k].data = NULL;
  }
  r->nh = 0;
  if (r->m != NULL) curl_multi_cleanup(r->m);
  r->m = NULL;
  curl_slist_free_all(r->hd);
  r->hd = NULL;
  return 0;
}

static run *new_run(lua_State *L, int nh, const char *url, const char *body,
                    size_t blen) {
  run *r = (run *)lua_newuserdatauv(L, sizeof *r, 0);
  int k;
  memset(r, 0, sizeof *r);
  if (luaL_newmetatable(L, "hfloor.run")) {
    lua_pushcfunction(L, run_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  r->hd = curl_slist_append(r->hd, "Content-Type: application/json");
  r->hd = curl_slist_append(r->hd, "Accept: application/json");
  r->hd = curl_slist_append(r->hd, "Expect:");
  r->hd = curl_slist_append(r->hd, "Authorization: Bearer bench-token-not-a-secret");
  for (k = 0; k < nh; k++) {
    CURL *h = curl_easy_init();
    if (h == NULL) luaL_error(L, "hfloor: curl_easy_init failed");
    r->hs[k] = h;
    r->nh = k + 1;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->hd);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, (void *)&r->ss[k]);
    curl_easy_setopt(h, CURLOPT_PRIVATE, (void *)&r->ss[k]);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "cfaccess-hfloor");
  }
  return r;
}

/* Decode sink s with the decoder at index dec; raise unless the envelope
** says success = true. The table is dropped (a client hands it back). */
static void decode(lua_State *L, int dec, sink *s) {
  lua_pushvalue(L, dec);
  lua_pushlstring(L, s->data, s->len);
  lua_call(L, 1, 1);
  if (lua_type(L, -1) != LUA_TTABLE || lua_getfield(L, -1, "success") != LUA_TBOOLEAN ||
      !lua_toboolean(L, -1))
    luaL_error(L, "hfloor: response is not a successful envelope");
  lua_pop(L, 2);
  s->len = 0;
}

static int push_times(lua_State *L, double t0, double c0) {
  lua_pushnumber(L, now() - t0);
  lua_pushnumber(L, cpu() - c0);
  return 2;
}

/* hf.seq(url, body, n, decode) -> seconds, cpu seconds */
static int l_seq(lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  size_t blen;
  const char *body = luaL_checklstring(L, 2, &blen);
  lua_Integer n = luaL_checkinteger(L, 3), i;
  run *r;
  double t0, c0;
  luaL_checktype(L, 4, LUA_TFUNCTION);
  r = new_run(L, 1, url, body, blen);
  t0 = now();
  c0 = cpu();
  for (i = 0; i < n; i++) {
    long status = 0;
    CURLcode rc = curl_easy_perform(r->hs[0]);
    curl_easy_getinfo(r->hs[0], CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status != 201)
      return luaL_error(L, "hfloor: request %d failed: %s (HTTP %d)", (int)i,
                        curl_easy_strerror(rc), (int)status);
    decode(L, 4, &r->ss[0]);
  }
  return push_times(L, t0, c0);
}

/* hf.multi(url, body, n, conc, decode) -> seconds, cpu seconds */
static int l_multi(lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  size_t blen;
  const char *body = luaL_checklstring(L, 2, &blen);
  lua_Integer n = luaL_checkinteger(L, 3), conc = luaL_checkinteger(L, 4);
  lua_Integer started = 0, done = 0, k;
  run *r;
  double t0, c0;
  luaL_checktype(L, 5, LUA_TFUNCTION);
  luaL_argcheck(L, conc >= 1 && conc <= 64, 4, "1 to 64");
  r = new_run(L, (int)conc, url, body, blen);
  r->m = curl_multi_init();
  if (r->m == NULL) return luaL_error(L, "hfloor: curl_multi_init failed");
  curl_multi_setopt(r->m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)conc);
  t0 = now();
  c0 = cpu();
  for (k = 0; k < conc && started < n; k++, started++)
    curl_multi_add_handle(r->m, r->hs[k]);
  while (done < n) {
    int running = 0, left;
    CURLMsg *msg;
    curl_multi_perform(r->m, &running);
    while ((msg = curl_multi_info_read(r->m, &left)) != NULL) {
      long status = 0;
      char *p;
      CURL *h = msg->easy_handle;
      if (msg->msg != CURLMSG_DONE) continue;
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
      if (msg->data.result != CURLE_OK || status != 201)
        return luaL_error(L, "hfloor: request failed: %s (HTTP %d)",
                          curl_easy_strerror(msg->data.result), (int)status);
      curl_multi_remove_handle(r->m, h);
      curl_easy_getinfo(h, CURLINFO_PRIVATE, &p);
      decode(L, 5, (sink *)(void *)p);
      done++;
      if (started < n) {
        curl_multi_add_handle(r->m, h);
        started++;
      }
    }
    if (done < n) curl_multi_poll(r->m, NULL, 0, 1000, NULL);
  }
  return push_times(L, t0, c0);
}

int luaopen_hfloor(lua_State *L);
int luaopen_hfloor(lua_State *L) {
  static const luaL_Reg fns[] = {{"seq", l_seq}, {"multi", l_multi}, {NULL, NULL}};
  curl_global_init(CURL_GLOBAL_DEFAULT);
  luaL_newlib(L, fns);
  return 1;
}
