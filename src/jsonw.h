/*
** cfaccess JSON writer (jsonw.c): the canonical encoder's output side.
** Output goes through a fixed staging array (no call, no allocation per
** token) and reaches the caller's cf_buf in large pieces. A writer whose
** out is NULL writes nothing (validate-only walks share the code).
*/
#ifndef CFACCESS_JSONW_H
#define CFACCESS_JSONW_H

#include <string.h>

#include "cfaccess.h"

#define CF_JW_STAGE 4096

typedef struct cf_jw {
  lua_State *L;
  cf_buf *out;                /* NULL: write nothing */
  size_t slen;                /* bytes staged */
  char stage[CF_JW_STAGE];
} cf_jw;

CF_INTERNAL void cf_jw_flush(cf_jw *w);
/* Append n bytes (any size). */
CF_INTERNAL void cf_jw_big(cf_jw *w, const char *s, size_t n);

/* The two hot appends stay inline: they run once per token. */
static inline void cf_jw_raw(cf_jw *w, const char *s, size_t n) {
  if (!w->out) return;
  if (n > CF_JW_STAGE - w->slen) { cf_jw_big(w, s, n); return; }
  memcpy(w->stage + w->slen, s, n);
  w->slen += n;
}

static inline void cf_jw_char(cf_jw *w, char ch) {
  if (!w->out) return;
  if (w->slen == CF_JW_STAGE) cf_jw_flush(w);
  w->stage[w->slen++] = ch;
}

#define CF_JW_LIT(w, lit) cf_jw_raw((w), lit, sizeof(lit) - 1)

/* One pass over s: bit 1 set when a byte needs a JSON escape, bit 2 when a
** byte is not ASCII (then the caller checks UTF-8). */
CF_INTERNAL int cf_json_scan(const char *s, size_t n);
/* s (valid UTF-8) as a JSON string, raw UTF-8 kept; cls from cf_json_scan. */
CF_INTERNAL void cf_jw_string_cls(cf_jw *w, const char *s, size_t n, int cls);
CF_INTERNAL void cf_jw_string(cf_jw *w, const char *s, size_t n);
CF_INTERNAL void cf_jw_int(cf_jw *w, lua_Integer v);
/* A finite float with the fewest of 14 or 17 significant digits that reads
** back exactly; '.' whatever the locale. */
CF_INTERNAL void cf_jw_float(cf_jw *w, double d);

#endif
