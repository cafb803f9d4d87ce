/*
** cfaccess JSON writer: strings (RFC 8259 escapes), integers, floats,
** through the staging array of jsonw.h.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"

void cf_jw_flush(cf_jw *w) {
  if (w->out && w->slen) {
    cf_buf_add(w->L, w->out, w->stage, w->slen);
    w->slen = 0;
  }
}

void cf_jw_big(cf_jw *w, const char *s, size_t n) {
  cf_jw_flush(w);
  if (n > CF_JW_STAGE) { cf_buf_add(w->L, w->out, s, n); return; }
  memcpy(w->stage, s, n);
  w->slen = n;
}

/* JSON escapes (RFC 8259): 0 = copy, 'u' = \u00XX, else the short form.
** Bytes from 0x60 up need no escape. */
static const char json_esc[96] = {
  'u','u','u','u','u','u','u','u','b','t','n','u','f','r','u','u',
  'u','u','u','u','u','u','u','u','u','u','u','u','u','u','u','u',
  0, 0, '"', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '\\', 0, 0, 0,
};

int cf_json_scan(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  unsigned hi = 0;
  int esc = 0;
  size_t i;
  for (i = 0; i < n; i++) {
    unsigned ch = s[i];
    hi |= ch;
    if (ch < 96 && json_esc[ch]) esc = 1;
  }
  return esc | ((hi & 0x80) ? 2 : 0);
}

void cf_jw_string_cls(cf_jw *w, const char *s, size_t n, int cls) {
  size_t i, run = 0;
  if (!w->out) return;
  cf_jw_char(w, '"');
  if (cls & 1) {
    for (i = 0; i < n; i++) {
      unsigned char ch = (unsigned char)s[i];
      char e = ch < 96 ? json_esc[ch] : 0;
      if (e) {
        char esc[8];
        cf_jw_raw(w, s + run, i - run);
        if (e == 'u') {
          snprintf(esc, sizeof esc, "\\u%04x", (unsigned)ch);
          cf_jw_raw(w, esc, 6);
        } else {
          esc[0] = '\\';
          esc[1] = e;
          cf_jw_raw(w, esc, 2);
        }
        run = i + 1;
      }
    }
  }
  cf_jw_raw(w, s + run, n - run);
  cf_jw_char(w, '"');
}

void cf_jw_string(cf_jw *w, const char *s, size_t n) {
  if (w->out) cf_jw_string_cls(w, s, n, cf_json_scan(s, n));
}

void cf_jw_int(cf_jw *w, lua_Integer v) {
  char num[32];
  int n;
  if (!w->out) return;
  n = snprintf(num, sizeof num, "%lld", (long long)v);
  cf_jw_raw(w, num, (size_t)n);
}

void cf_jw_float(cf_jw *w, double d) {
  char num[40];
  int n, i;
  if (!w->out) return;
  n = snprintf(num, sizeof num, "%.14g", d);
  if (strtod(num, NULL) != d) n = snprintf(num, sizeof num, "%.17g", d);
  for (i = 0; i < n; i++)
    if (num[i] == ',') num[i] = '.';
  cf_jw_raw(w, num, (size_t)n);
}
