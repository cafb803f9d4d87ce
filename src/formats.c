/*
** cfaccess format checkers: pure C (no Lua), each takes (s, n) and returns
** 1 when the n bytes at s have the format, 0 otherwise. An embedded NUL
** never matches. These are fuzz targets: no allocation, no recursion, every
** read bounded by n.
*/
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include "formats.h"

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_alpha(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static int is_hex(unsigned char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, <= U+10FFFF.
** Hand-written because neither libc nor Lua's utf8 library offers a strict
** check over a (pointer, length) pair without a Lua state. */
int cf_is_utf8(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) { i++; continue; }
    if (c >= 0xC2 && c <= 0xDF) {
      if (n - i < 2 || (s[i + 1] & 0xC0) != 0x80) return 0;
      i += 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      unsigned char lo = 0x80, hi = 0xBF;
      if (c == 0xE0) lo = 0xA0;         /* overlong */
      else if (c == 0xED) hi = 0x9F;    /* surrogates */
      if (n - i < 3 || s[i + 1] < lo || s[i + 1] > hi ||
          (s[i + 2] & 0xC0) != 0x80) return 0;
      i += 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      unsigned char lo = 0x80, hi = 0xBF;
      if (c == 0xF0) lo = 0x90;         /* overlong */
      else if (c == 0xF4) hi = 0x8F;    /* > U+10FFFF */
      if (n - i < 4 || s[i + 1] < lo || s[i + 1] > hi ||
          (s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80) return 0;
      i += 4;
    } else {
      return 0;
    }
  }
  return 1;
}

/* ---- Go durations ------------------------------------------------------ */

#define GO_MAX ((uint64_t)1 << 63)

/* Go's time.ParseDuration grammar and overflow rules, reimplemented (there
** is no C library for it): [-+]?("0" | ([0-9]*(\.[0-9]*)?unit)+) with at
** least one digit per number, units ns us µs μs ms s m h, the total at most
** 2^63-1 ns (2^63 when negative). On success *neg and *total are set. */
static int go_duration(const char *str, size_t n, int *neg, uint64_t *total) {
  static const struct { const char *u; size_t len; uint64_t ns; } units[] = {
    {"ns", 2, 1}, {"us", 2, 1000}, {"\xC2\xB5s", 3, 1000},
    {"\xCE\xBCs", 3, 1000}, {"ms", 2, 1000000}, {"s", 1, 1000000000},
    {"m", 1, UINT64_C(60000000000)}, {"h", 1, UINT64_C(3600000000000)},
  };
  const unsigned char *s, *e;
  uint64_t d = 0;
  *neg = 0;
  if (str == NULL || n == 0) return 0;
  s = (const unsigned char *)str;
  e = s + n;
  if (s < e && (*s == '-' || *s == '+')) { *neg = (*s == '-'); s++; }
  if (e - s == 1 && *s == '0') { *total = 0; return 1; }
  if (s == e) return 0;
  while (s < e) {
    uint64_t v = 0, f = 0, unit = 0;
    double scale = 1.0;
    int pre = 0, post = 0, overflow = 0;
    size_t i, k;
    if (!(*s == '.' || is_digit(*s))) return 0;
    while (s < e && is_digit(*s)) {           /* leading integer */
      if (v > GO_MAX / 10) return 0;
      v = v * 10 + (uint64_t)(*s - '0');
      if (v > GO_MAX) return 0;
      s++; pre = 1;
    }
    if (s < e && *s == '.') {                 /* fraction */
      s++;
      while (s < e && is_digit(*s)) {
        post = 1;
        if (!overflow) {
          uint64_t y;
          if (f > (GO_MAX - 1) / 10) { overflow = 1; }
          else {
            y = f * 10 + (uint64_t)(*s - '0');
            if (y > GO_MAX) overflow = 1;
            else { f = y; scale *= 10; }
          }
        }
        s++;
      }
    }
    if (!pre && !post) return 0;
    for (i = 0; s + i < e && s[i] != '.' && !is_digit(s[i]); i++) {}
    if (i == 0) return 0;                     /* missing unit */
    for (k = 0; k < sizeof units / sizeof units[0]; k++)
      if (units[k].len == i && memcmp(s, units[k].u, i) == 0) {
        unit = units[k].ns;
        break;
      }
    if (unit == 0) return 0;                  /* unknown unit */
    s += i;
    if (v > GO_MAX / unit) return 0;
    v *= unit;
    if (f > 0) {
      v += (uint64_t)((double)f * ((double)unit / scale));
      if (v > GO_MAX) return 0;
    }
    d += v;
    if (d > GO_MAX) return 0;
  }
  if (!*neg && d > GO_MAX - 1) return 0;
  *total = d;
  return 1;
}

int cf_is_go_duration(const char *s, size_t n) {
  int neg;
  uint64_t d;
  if (!go_duration(s, n, &neg, &d)) return 0;
  return !neg || d == 0;
}

int cf_go_duration_negative(const char *s, size_t n) {
  int neg;
  uint64_t d;
  return go_duration(s, n, &neg, &d) && neg && d != 0;
}

/* MFA session duration: digits then m or h, 0m..720h (43200m). */
int cf_is_mfa_duration(const char *s, size_t n) {
  uint64_t v = 0;
  size_t i;
  if (n < 2) return 0;
  for (i = 0; i + 1 < n; i++) {
    if (!is_digit((unsigned char)s[i])) return 0;
    v = v * 10 + (uint64_t)(s[i] - '0');
    if (v > 43200) return 0;                  /* keeps v bounded */
  }
  if (s[n - 1] == 'm') return v <= 43200;
  if (s[n - 1] == 'h') return v <= 720;
  return 0;
}

/* ---- addresses ----------------------------------------------------------- */

/* An IPv4 or IPv6 address (inet_pton does the parsing) with an optional
** /prefix: decimal, no sign or leading zero, at most 32 or 128. */
int cf_is_ip_or_cidr(const char *s, size_t n) {
  char addr[INET6_ADDRSTRLEN + 1];
  unsigned char bin[16];
  const char *slash;
  size_t alen;
  int v6, maxbits, bits = 0;
  if (s == NULL || n == 0) return 0;
  slash = memchr(s, '/', n);
  alen = slash ? (size_t)(slash - s) : n;
  if (alen == 0 || alen >= sizeof addr || memchr(s, '\0', n)) return 0;
  memcpy(addr, s, alen);
  addr[alen] = '\0';
  if (inet_pton(AF_INET, addr, bin) == 1) v6 = 0;
  else if (inet_pton(AF_INET6, addr, bin) == 1) v6 = 1;
  else return 0;
  if (!slash) return 1;
  maxbits = v6 ? 128 : 32;
  {
    const char *p = slash + 1, *e = s + n;
    if (p == e || e - p > 3) return 0;
    if (*p == '0' && e - p > 1) return 0;     /* leading zero */
    for (; p < e; p++) {
      if (!is_digit((unsigned char)*p)) return 0;
      bits = bits * 10 + (*p - '0');
    }
  }
  return bits <= maxbits;
}

/* A DNS name: dot-separated labels of [A-Za-z0-9-] (1..63 bytes, no leading
** or trailing '-'), at least two labels, at most 253 bytes. */
int cf_is_domain(const char *s, size_t n) {
  size_t i, label = 0, dots = 0;
  if (n == 0 || n > 253) return 0;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '.') {
      if (label == 0 || s[i - 1] == '-') return 0;
      label = 0;
      dots++;
    } else if (is_alpha(c) || is_digit(c) || c == '-') {
      if (label == 0 && c == '-') return 0;
      if (++label > 63) return 0;
    } else {
      return 0;
    }
  }
  return label > 0 && s[n - 1] != '-' && dots > 0;
}

/* Pragmatic email check (not full RFC 5321): local part of atext and dots
** (no leading, trailing or double dot, at most 64 bytes), one '@', a
** domain as cf_is_domain, at most 254 bytes in all. */
int cf_is_email(const char *s, size_t n) {
  static const char atext_extra[] = "!#$%&'*+-/=?^_`{|}~";
  const char *at;
  size_t i, local;
  if (n == 0 || n > 254) return 0;
  at = memchr(s, '@', n);
  if (!at) return 0;
  local = (size_t)(at - s);
  if (local == 0 || local > 64) return 0;
  for (i = 0; i < local; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '.') {
      if (i == 0 || i == local - 1 || s[i - 1] == '.') return 0;
    } else if (!(is_alpha(c) || is_digit(c) ||
                 (c != '\0' && strchr(atext_extra, c)))) {
      return 0;
    }
  }
  return cf_is_domain(at + 1, n - local - 1);
}

/* http:// or https:// then a non-empty host part; no spaces or controls. */
int cf_is_http_url(const char *s, size_t n) {
  size_t i, skip;
  if (n > 8 && memcmp(s, "https://", 8) == 0) skip = 8;
  else if (n > 7 && memcmp(s, "http://", 7) == 0) skip = 7;
  else return 0;
  if (s[skip] == '/' || s[skip] == '?' || s[skip] == '#') return 0;
  for (i = skip; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c == 0x7F) return 0;
  }
  return 1;
}

/* ---- identifiers ----------------------------------------------------------- */

int cf_is_uuid(const char *s, size_t n) {
  size_t i;
  if (n != 36) return 0;
  for (i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return 0;
    } else if (!is_hex((unsigned char)s[i])) {
      return 0;
    }
  }
  return 1;
}

int cf_is_hex32(const char *s, size_t n) {
  size_t i;
  if (n != 32) return 0;
  for (i = 0; i < 32; i++)
    if (!is_hex((unsigned char)s[i])) return 0;
  return 1;
}

/* The 249 assigned ISO 3166-1 alpha-2 codes, sorted (from Debian's
** iso-codes 3166-1 list), searched by bisection. */
static const char countries[] =
  "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBY"
  "BZCACCCDCFCGCHCICKCLCMCNCOCRCUCVCWCXCYCZDEDJDKDMDODZECEEEGEHERESETFIFJFK"
  "FMFOFRGAGBGDGEGFGGGHGIGLGMGNGPGQGRGSGTGUGWGYHKHMHNHRHTHUIDIEILIMINIOIQIR"
  "ISITJEJMJOJPKEKGKHKIKMKNKPKRKWKYKZLALBLCLILKLRLSLTLULVLYMAMCMDMEMFMGMHMK"
  "MLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNINLNONPNRNUNZOMPAPEPFPGPHPKPLPM"
  "PNPRPSPTPWPYQARERORSRURWSASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTF"
  "TGTHTJTKTLTMTNTOTRTTTVTWTZUAUGUMUSUYUZVAVCVEVGVIVNVUWFWSYEYTZAZMZW";

int cf_is_country(const char *s, size_t n) {
  size_t lo = 0, hi = (sizeof countries - 1) / 2;
  if (n != 2 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z')
    return 0;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = memcmp(countries + 2 * mid, s, 2);
    if (c == 0) return 1;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return 0;
}

/* ---- RFC 8176 authentication methods -------------------------------- */

/* RFC 8176 section 2 (the IANA "Authentication Method Reference Values"
** registry as the RFC created it): the values Cloudflare's auth_method
** rule compares with the IdP's amr claim. */
const char *const cf_amr_values[] = {
  "face", "fpt", "geo", "hwk", "iris", "kba", "mca", "mfa", "otp", "pin",
  "pwd", "rba", "retina", "sc", "sms", "swk", "tel", "user", "vbm", "wia", NULL
};

int cf_is_amr(const char *s, size_t n) {
  const char *const *v;
  for (v = cf_amr_values; *v; v++)
    if (strlen(*v) == n && memcmp(*v, s, n) == 0) return 1;
  return 0;
}

/* ---- invisible characters -------------------------------------------- */

/* Code points a reader cannot see in a quoted message (hand-written: a
** short fixed list, no Unicode database is needed for it). */
static int invisible_cp(unsigned long cp) {
  return (cp >= 0x80 && cp <= 0xA0) || cp == 0xAD || cp == 0x034F || cp == 0x061C ||
         cp == 0x115F || cp == 0x1160 || cp == 0x180E ||
         (cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) ||
         (cp >= 0x205F && cp <= 0x206F) || cp == 0x3000 || cp == 0x3164 ||
         (cp >= 0xFE00 && cp <= 0xFE0F) || cp == 0xFEFF || cp == 0xFFA0 ||
         (cp >= 0xFFF0 && cp <= 0xFFFB) || (cp >= 0xE0000 && cp <= 0xE007F);
}

size_t cf_invisible_at(const char *str, size_t n, unsigned long *cp) {
  const unsigned char *s = (const unsigned char *)str;
  size_t len, i;
  unsigned long v;
  if (n == 0 || s[0] < 0xC2) return 0;
  len = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : 2;
  if (len > n || !cf_is_utf8(str, len)) return 0;
  v = s[0] & (len == 2 ? 0x1Fu : len == 3 ? 0x0Fu : 0x07u);
  for (i = 1; i < len; i++) v = (v << 6) | (s[i] & 0x3Fu);
  if (!invisible_cp(v)) return 0;
  *cp = v;
  return len;
}

/* ---- did you mean ---------------------------------------------------- */

static int lower(int ch) { return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch; }

size_t cf_edit_distance(const char *a, size_t an, const char *b, size_t bn) {
  int d[65][65];
  size_t i, j;
  if (an > 64 || bn > 64) return (size_t)-1;
  for (i = 0; i <= an; i++) d[i][0] = (int)i;
  for (j = 0; j <= bn; j++) d[0][j] = (int)j;
  for (i = 1; i <= an; i++)
    for (j = 1; j <= bn; j++) {
      int cost = lower((unsigned char)a[i - 1]) != lower((unsigned char)b[j - 1]);
      int v = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
      if (d[i - 1][j - 1] + cost < v) v = d[i - 1][j - 1] + cost;
      if (i > 1 && j > 1 &&
          lower((unsigned char)a[i - 1]) == lower((unsigned char)b[j - 2]) &&
          lower((unsigned char)a[i - 2]) == lower((unsigned char)b[j - 1]) &&
          d[i - 2][j - 2] + 1 < v)
        v = d[i - 2][j - 2] + 1;
      d[i][j] = v;
    }
  return (size_t)d[an][bn];
}
