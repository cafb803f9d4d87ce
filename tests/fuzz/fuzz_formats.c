/*
** libFuzzer harness for the pure-C format checkers (src/formats.c).
** The first input byte selects the checker (byte % 8); the rest is the
** candidate string, copied into a heap block of exactly its length (no NUL
** after it) so that ASan reports any read past the end.
**
** Besides "no crash, no overread, no UB", each verdict is checked against
** properties that hold by definition of the format (a UUID is 36 bytes, a
** country code two upper-case letters, every accepted string is UTF-8, an
** MFA duration is also a Go duration...), and cf_is_utf8 is compared with
** an independent strict decoder written from RFC 3629 section 4 (the
** decoder here is deliberately written differently from a table-driven
** one so that the two are unlikely to share a bug).
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cfaccess.h"

/* RFC 3629 reference: returns 1 when s[0..n) is well-formed UTF-8. */
static int ref_utf8(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    unsigned long cp;
    size_t need, k;
    if (c < 0x80) { i++; continue; }
    if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; }
    else return 0;
    if (n - i - 1 < need) return 0;
    for (k = 1; k <= need; k++) {
      unsigned d = s[i + k];
      if ((d & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (d & 0x3F);
    }
    if (need == 2 && cp < 0x800) return 0;              /* overlong */
    if (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;         /* surrogate */
    i += need + 1;
  }
  return 1;
}

static int all_hex(const char *s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
          (s[i] >= 'A' && s[i] <= 'F')))
      return 0;
  return 1;
}

static int has_byte(const char *s, size_t n, unsigned char lo, unsigned char hi) {
  size_t i;
  for (i = 0; i < n; i++)
    if ((unsigned char)s[i] >= lo && (unsigned char)s[i] <= hi) return 1;
  return 0;
}

#define CHECK(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s;
  size_t n;
  int sel, v;
  if (size < 1) return 0;
  sel = data[0] % 8;
  n = size - 1;
  s = (char *)malloc(n ? n : 1);
  if (s == NULL) return 0;
  if (n) memcpy(s, data + 1, n);
  switch (sel) {
    case 0:
      v = cf_is_utf8(s, n);
      CHECK(!!v == ref_utf8((const unsigned char *)s, n));
      break;
    case 1:
      v = cf_is_go_duration(s, n);
      if (v) CHECK(n > 0 && ref_utf8((const unsigned char *)s, n));
      break;
    case 2:
      v = cf_is_mfa_duration(s, n);
      /* every MFA duration (m/h, 0m..720h) is a Go duration too */
      if (v) CHECK(cf_is_go_duration(s, n));
      if (v) CHECK(!has_byte(s, n, 0x80, 0xFF));
      break;
    case 3:
      v = cf_is_ip_or_cidr(s, n);
      /* an address or CIDR is printable ASCII, at most 43 bytes
         (IPv6 with embedded IPv4 plus "/128") */
      if (v) CHECK(n >= 2 && n <= 43 && !has_byte(s, n, 0, 0x20) &&
                   !has_byte(s, n, 0x7F, 0xFF));
      break;
    case 4:
      v = cf_is_email(s, n);
      if (v) CHECK(memchr(s, '@', n) != NULL && ref_utf8((const unsigned char *)s, n) &&
                   !has_byte(s, n, 0, 0x20));
      break;
    case 5:
      v = cf_is_uuid(s, n);
      if (v) CHECK(n == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' &&
                   s[23] == '-' && all_hex(s, 8) && all_hex(s + 9, 4) &&
                   all_hex(s + 14, 4) && all_hex(s + 19, 4) && all_hex(s + 24, 12));
      break;
    case 6:
      v = cf_is_hex32(s, n);
      if (v) CHECK(n == 32 && all_hex(s, n));
      break;
    default:
      v = cf_is_country(s, n);
      if (v) CHECK(n == 2 && !has_byte(s, n, 0, '@') && !has_byte(s, n, 0x80, 0xFF));
      break;
  }
  free(s);
  return 0;
}
