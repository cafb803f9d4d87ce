/*
** cfaccess listings (pages.c): following the pages of a collection, for a
** list operation and for the check after an ambiguous create, and reading
** each page's shape (a list of objects, or a `decode` err).
*/
#include <string.h>

#include "slot.h"

/* Point slot k at page s->page of its collection (pushes nothing). */
static void set_page(lua_State *L, cf_engine *e, int k) {
  cf_slot *s = &e->slots[k];
  const char *url;
  lua_Integer pp = s->phase == PH_PAGES ? s->rq.per_page : 0;
  if (pp > 0)
    url = lua_pushfstring(L, "%s?page=%I&per_page=%I", s->rq.list_url, s->page, pp);
  else
    url = lua_pushfstring(L, "%s?page=%I", s->rq.list_url, s->page);
  s->x.url = url;
  s->path = url + e->c->base_len;
  cf_anchor(L, e, k, AN_PAGE_URL);
  s->attempt = 0;
}

/* Begin listing the collection (a list operation, or the check after an
** ambiguous create). */
void cf_begin_pages(lua_State *L, cf_engine *e, int k, int phase) {
  cf_slot *s = &e->slots[k];
  s->phase = phase;
  s->page = phase == PH_PAGES && s->rq.page > 0 ? s->rq.page : 1;
  s->total = 0;
  lua_newtable(L);
  cf_anchor(L, e, k, AN_ACC);
  lua_newtable(L);
  cf_anchor(L, e, k, AN_SEEN);
  set_page(L, e, k);
}

/* Is the table at idx a JSON array (keys 1..#t only)? */
static int is_array(lua_State *L, int idx) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
      lua_pop(L, 1);
      return 0;
    }
  }
  return 1;
}

/* Is the value at idx a JSON object (decoded: a table without [1])? */
int cf_is_object(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TTABLE && lua_rawlen(L, idx) == 0;
}

/* Replace the envelope at env with a decode err: "GET path: <what>". */
static int page_bad(lua_State *L, cf_engine *e, int k, int env, const char *what) {
  cf_error_push(L, CF_E_DECODE, "GET %s: %s", e->slots[k].path, what);
  cf_response_fields(L, &e->slots[k].x);
  lua_replace(L, env);
  lua_settop(L, env);
  return -1;
}

/* A page of slot k's collection arrived (envelope on top, popped). Returns
** 1 when the listing is complete (AN_ACC holds it), 0 when the next page is
** scheduled, -1 with a `decode` err pushed when the page is not a list of
** objects or there are more than MAX_PAGES. Listing follows pages until
** total_pages, a short page (by the server's result_info.per_page, which
** may be less than the one asked), an empty one, one that brings no new
** id (a repeated or alternating page; an id seen before is not taken
** twice), or MAX_PAGES: reaching it is an error, never a short list. */
int cf_page_done(lua_State *L, cf_engine *e, int k) {
  cf_slot *s = &e->slots[k];
  int env = lua_gettop(L), arr, acc, seen, have_info = 0;
  lua_Integer n, i, tp = 0, pp = 0, fresh = 0;
  if (lua_getfield(L, env, "result") != LUA_TTABLE || !is_array(L, env + 1))
    return page_bad(L, e, k, env, "result is not a list");
  arr = env + 1;
  n = (lua_Integer)lua_rawlen(L, arr);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, arr, i);
    if (!cf_is_object(L, -1))
      return page_bad(L, e, k, env, lua_pushfstring(L, "result[%I] is not an object (%s)",
                                                    i, luaL_typename(L, -1)));
    lua_pop(L, 1);
  }
  cf_anchored(L, e, k, AN_ACC);
  acc = lua_gettop(L);
  cf_anchored(L, e, k, AN_SEEN);
  seen = lua_gettop(L);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, arr, i);
    if (lua_getfield(L, -1, "id") == LUA_TSTRING) {
      lua_pushvalue(L, -1);
      if (lua_rawget(L, seen) != LUA_TNIL) {   /* seen on an earlier page */
        lua_pop(L, 3);
        continue;
      }
      lua_pop(L, 1);
      lua_pushboolean(L, 1);
      lua_rawset(L, seen);
    } else lua_pop(L, 1);
    fresh++;
    lua_rawseti(L, acc, ++s->total);
  }
  if (lua_getfield(L, env, "result_info") == LUA_TTABLE) {
    have_info = 1;
    if (lua_getfield(L, -1, "total_pages") == LUA_TNUMBER) tp = lua_tointeger(L, -1);
    if (lua_getfield(L, -2, "per_page") == LUA_TNUMBER) pp = lua_tointeger(L, -1);
    lua_pop(L, 2);
  }
  if (pp <= 0 && s->phase == PH_PAGES) pp = s->rq.per_page;
  lua_settop(L, env);
  if ((s->phase == PH_PAGES && s->rq.page > 0) || n == 0 || fresh == 0 ||
      (tp > 0 && s->page >= tp) || (pp > 0 && n < pp) || (!have_info && pp <= 0)) {
    lua_settop(L, env - 1);
    return 1;
  }
  if (s->page >= MAX_PAGES)
    return page_bad(L, e, k, env, lua_pushfstring(L, "more than %d pages (total_pages %I); "
                                                  "not returning a short list", MAX_PAGES, tp));
  lua_settop(L, env - 1);
  s->page++;
  set_page(L, e, k);
  return 0;
}

