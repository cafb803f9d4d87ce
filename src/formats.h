/*
** cfaccess format checkers (formats.c): pure C, no Lua state, fuzzable.
** Each takes (s, n) and returns 1 when the n bytes at s have the format,
** 0 otherwise; an embedded NUL never matches. The one header for every
** checker the validator, the client and the fuzz harnesses use.
*/
#ifndef CFACCESS_FORMATS_H
#define CFACCESS_FORMATS_H

#include <stddef.h>

#if defined(__GNUC__)
#define CF_FMT_INTERNAL __attribute__((visibility("hidden")))
#else
#define CF_FMT_INTERNAL
#endif

CF_FMT_INTERNAL int cf_is_utf8(const char *s, size_t n);
CF_FMT_INTERNAL int cf_is_go_duration(const char *s, size_t n);   /* >= 0 */
/* 1 when s is a valid Go duration that is negative and non-zero. */
CF_FMT_INTERNAL int cf_go_duration_negative(const char *s, size_t n);
CF_FMT_INTERNAL int cf_is_mfa_duration(const char *s, size_t n);  /* m/h, 0m..720h */
CF_FMT_INTERNAL int cf_is_ip_or_cidr(const char *s, size_t n);
CF_FMT_INTERNAL int cf_is_domain(const char *s, size_t n);
CF_FMT_INTERNAL int cf_is_email(const char *s, size_t n);
CF_FMT_INTERNAL int cf_is_http_url(const char *s, size_t n);
CF_FMT_INTERNAL int cf_is_uuid(const char *s, size_t n);
CF_FMT_INTERNAL int cf_is_hex32(const char *s, size_t n);
CF_FMT_INTERNAL int cf_is_country(const char *s, size_t n);       /* ISO 3166-1 a2 */

/* The RFC 8176 Authentication Method Reference values ("pwd", "mfa", ...),
** NULL-terminated; cf_is_amr is an exact (case-sensitive) match. */
CF_FMT_INTERNAL extern const char *const cf_amr_values[];
CF_FMT_INTERNAL int cf_is_amr(const char *s, size_t n);

/* The length (2..4) of the UTF-8 sequence at s (n bytes left) when it is
** an invisible or format code point that a message should show escaped
** (U+00A0, U+00AD, C1 controls, zero-width and bidi marks, U+2028/9,
** U+FEFF, ...), storing the code point in *cp; 0 otherwise. */
CF_FMT_INTERNAL size_t cf_invisible_at(const char *s, size_t n, unsigned long *cp);

/* Case-insensitive optimal-string-alignment distance (Levenshtein plus
** adjacent transpositions), for "did you mean"; (size_t)-1 when either
** string is longer than 64 bytes. */
CF_FMT_INTERNAL size_t cf_edit_distance(const char *a, size_t an, const char *b,
                                        size_t bn);

#endif
