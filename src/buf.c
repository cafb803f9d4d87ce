/*
** A growable byte buffer owned by a userdata (see cfaccess.h for why not
** luaL_Buffer).
*/
#include <stdlib.h>
#include <string.h>

#include "cfaccess.h"

#define CF_BUF_MT "cfaccess.buf"

static int buf_gc(lua_State *L) {
  cf_buf_free((cf_buf *)luaL_checkudata(L, 1, CF_BUF_MT));
  return 0;
}

void cf_buf_free(cf_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

cf_buf *cf_buf_push(lua_State *L) {
  cf_buf *b = (cf_buf *)lua_newuserdatauv(L, sizeof(cf_buf), 0);
  b->data = NULL;
  b->len = b->cap = 0;
  if (luaL_newmetatable(L, CF_BUF_MT)) {
    lua_pushcfunction(L, buf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return b;
}

void cf_buf_add(lua_State *L, cf_buf *b, const char *s, size_t n) {
  if (n > b->cap - b->len) {
    size_t cap = b->cap ? b->cap : 256;
    char *p;
    while (cap - b->len < n) {
      if (cap > ((size_t)-1) / 2) luaL_error(L, "cfaccess: buffer too large");
      cap *= 2;
    }
    p = (char *)realloc(b->data, cap);
    if (p == NULL) luaL_error(L, "cfaccess: not enough memory");
    b->data = p;
    b->cap = cap;
  }
  if (n) memcpy(b->data + b->len, s, n);
  b->len += n;
}

void cf_buf_addc(lua_State *L, cf_buf *b, char c) {
  if (b->len < b->cap) b->data[b->len++] = c;
  else cf_buf_add(L, b, &c, 1);
}

void cf_buf_adds(lua_State *L, cf_buf *b, const char *s) {
  cf_buf_add(L, b, s, strlen(s));
}
