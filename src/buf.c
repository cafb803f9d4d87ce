/*
** The one growable byte buffer (see cfaccess.h): a cap set at init, appends
** that fail without Lua (for libcurl callbacks) or raise (for walkers).
*/
#include <stdlib.h>
#include <string.h>

#include "cfaccess.h"

#define CF_BUF_MT "cfaccess.buf"

static int buf_gc(lua_State *L) {
  cf_buf_free((cf_buf *)luaL_checkudata(L, 1, CF_BUF_MT));
  return 0;
}

void cf_buf_init(cf_buf *b, size_t toobig) {
  b->data = NULL;
  b->len = b->cap = 0;
  b->toobig = toobig;
  b->too_big = b->oom = 0;
}

void cf_buf_free(cf_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

void cf_buf_reset(cf_buf *b) {
  b->len = 0;
  b->too_big = b->oom = 0;
}

cf_buf *cf_buf_push(lua_State *L) {
  cf_buf *b = (cf_buf *)lua_newuserdatauv(L, sizeof(cf_buf), 0);
  cf_buf_init(b, CF_BUF_NOCAP);
  if (luaL_newmetatable(L, CF_BUF_MT)) {
    lua_pushcfunction(L, buf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return b;
}

int cf_buf_append(cf_buf *b, const char *s, size_t n) {
  if (n > b->toobig - b->len) {   /* the cap counts every byte appended */
    b->too_big = 1;
    return 0;
  }
  if (n > b->cap - b->len) {
    size_t cap = b->cap ? b->cap : 256;
    char *p;
    while (cap - b->len < n) cap = cap > b->toobig / 2 ? b->toobig : cap * 2;
    p = (char *)realloc(b->data, cap);
    if (p == NULL) {
      b->oom = 1;
      return 0;
    }
    b->data = p;
    b->cap = cap;
  }
  if (n) memcpy(b->data + b->len, s, n);
  b->len += n;
  return 1;
}

void cf_buf_add(lua_State *L, cf_buf *b, const char *s, size_t n) {
  if (cf_buf_append(b, s, n)) return;
  if (b->too_big) luaL_error(L, "cfaccess: buffer too large");
  luaL_error(L, "cfaccess: not enough memory");
}

void cf_buf_addc(lua_State *L, cf_buf *b, char c) {
  if (b->len < b->cap) b->data[b->len++] = c;
  else cf_buf_add(L, b, &c, 1);
}

void cf_buf_adds(lua_State *L, cf_buf *b, const char *s) {
  cf_buf_add(L, b, s, strlen(s));
}
