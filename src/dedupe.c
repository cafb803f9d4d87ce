/*
** cfaccess no-duplicate create: the rule of API.md section 7. A listed item
** is the one a failed create made only when
**  - the resource's matcher takes it for the server's copy of the request
**    (for policies cfaccess.same: never "fields the request left out match
**    anything"), and
**  - it was created no earlier than the create was first sent, by the
**    server's clock: its created_at, at the second, is at least `since`,
**    the Date of a response to the create (or, when none came back, of a
**    listing after it) minus the seconds between the first send and that
**    response, rounded up. Date has one-second resolution, so this is a
**    lower bound: an item created up to about a second (plus the round
**    trip) before the send still counts. If it is the same as the request
**    too, there are two candidates and the answer is `conflict` (with
**    both ids), never a guess.
** One candidate: it is the result. None: the create did not happen. More
** than one, or a same item whose created_at cannot be read (or no Date at
** all): `conflict`, nothing more is sent.
*/
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "dedupe.h"
#include "response.h"

long long cf_http_date(const char *v) {
  time_t t;
  if (v == NULL || v[0] == '\0') return -1;
  t = curl_getdate(v, NULL);
  return t == (time_t)-1 ? -1 : (long long)t;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
** days_from_civil; timegm is not in POSIX). */
static long long days_from_civil(long long y, int m, int d) {
  long long era, yoe, doy, doe;
  y -= m <= 2;
  era = (y >= 0 ? y : y - 399) / 400;
  yoe = y - era * 400;
  doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* n digits at s as a number, or -1. */
static int digits(const char *s, int n) {
  int v = 0, i;
  for (i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

long long cf_rfc3339_secs(const char *s, size_t n) {
  int y, mo, d, h, mi, sec, oh = 0, om = 0;
  size_t i = 19;
  long long t;
  if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      s[13] != ':' || s[16] != ':')
    return -1;
  y = digits(s, 4); mo = digits(s + 5, 2); d = digits(s + 8, 2);
  h = digits(s + 11, 2); mi = digits(s + 14, 2); sec = digits(s + 17, 2);
  if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
      mi > 59 || sec < 0 || sec > 60)
    return -1;
  if (s[i] == '.') {
    for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++) {}
    if (i == 20) return -1;
  }
  if (i < n && (s[i] == 'Z' || s[i] == 'z')) i++;
  else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
    oh = digits(s + i + 1, 2);
    om = digits(s + i + 4, 2);
    if (oh < 0 || om < 0 || oh > 23 || om > 59) return -1;
    if (s[i] == '-') { oh = -oh; om = -om; }
    i += 6;
  } else return -1;
  if (i != n) return -1;
  t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
  return t - (long long)oh * 3600 - (long long)om * 60;
}

long long cf_server_since(long long date_secs, double elapsed) {
  if (date_secs < 0) return CF_SINCE_UNKNOWN;
  if (!(elapsed > 0)) elapsed = 0;
  if (elapsed > 1e9) elapsed = 1e9;
  return date_secs - (long long)ceil(elapsed);
}

/* created_at of the listed item at idx, at the second, or -1. */
static long long created_secs(lua_State *L, int idx) {
  long long t = -1;
  if (lua_getfield(L, idx, "created_at") == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    t = cf_rfc3339_secs(s, n);
  }
  lua_pop(L, 1);
  return t;
}

int cf_dedupe_pick(lua_State *L, int list, const cf_req *rq, long long since,
                   const char *what) {
  int top = lua_gettop(L), req, ids, found = 0, ageless = 0;
  lua_Integer i, n;
  lua_pushlstring(L, rq->body, rq->body_len);
  if (!cf_json_decode(L)) luaL_error(L, "cfaccess: internal error (request body)");
  req = lua_gettop(L);
  lua_newtable(L);
  ids = req + 1;
  lua_pushnil(L);                                   /* the first one found */
  n = (lua_Integer)lua_rawlen(L, list);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    if (lua_type(L, -1) == LUA_TTABLE && rq->match(L, req, lua_gettop(L), rq->kind)) {
      long long created = created_secs(L, lua_gettop(L));
      if (created < 0 || since == CF_SINCE_UNKNOWN) ageless++;
      if (created < 0 || since == CF_SINCE_UNKNOWN || created >= since) {
        found++;
        if (found == 1) lua_copy(L, -1, ids + 1);
        if (lua_getfield(L, -1, "id") != LUA_TSTRING) {
          lua_pop(L, 1);
          lua_pushliteral(L, "?");
        }
        lua_rawseti(L, ids, found);
      }
    }
    lua_pop(L, 1);
  }
  if (found == 1 && ageless == 0) {
    lua_replace(L, top + 1);   /* the one over the body */
    lua_settop(L, top + 1);
    return 1;
  }
  if (found == 0) {
    lua_settop(L, top);
    return 0;
  }
  if (ageless)
    cf_error_push(L, CF_E_CONFLICT, "%s may have been made: %d listed item(s) are the same "
                  "as the request but their age cannot be told (no created_at or Date); not "
                  "creating it again", what, found);
  else
    cf_error_push(L, CF_E_CONFLICT, "%s may have been made: %d listed items are the same "
                  "as the request and were created since it was sent; not creating it "
                  "again, not choosing one (see err.ids)", what, found);
  lua_pushvalue(L, ids);
  lua_setfield(L, -2, "ids");
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
  return -1;
}
