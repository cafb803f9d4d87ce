/*
** formats_cli: feed the format checkers from stdin for the differential
** oracle (ip_oracle.py). Each input line is "<checker> <hex bytes>", each
** output line the verdict "0" or "1". Checkers: utf8 duration mfa ip email
** uuid hex32 country. Hex on the wire so that NUL, CR and LF can be tested.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfaccess.h"

int main(void);

static int unhex(const char *h, char *out, size_t *n) {
  size_t i = 0;
  while (h[0] && h[0] != '\n' && h[1] && h[1] != '\n') {
    unsigned v;
    if (sscanf(h, "%2x", &v) != 1) return 0;
    out[i++] = (char)v;
    h += 2;
  }
  *n = i;
  return 1;
}

int main(void) {
  static char line[65536], buf[32768];
  while (fgets(line, sizeof line, stdin) != NULL) {
    char *sp = strchr(line, ' ');
    size_t n = 0;
    int v;
    if (sp == NULL) { fprintf(stderr, "formats_cli: bad line\n"); return 2; }
    *sp = '\0';
    if (!unhex(sp + 1, buf, &n)) return 2;
    if (strcmp(line, "utf8") == 0) v = cf_is_utf8(buf, n);
    else if (strcmp(line, "duration") == 0) v = cf_is_go_duration(buf, n);
    else if (strcmp(line, "mfa") == 0) v = cf_is_mfa_duration(buf, n);
    else if (strcmp(line, "ip") == 0) v = cf_is_ip_or_cidr(buf, n);
    else if (strcmp(line, "email") == 0) v = cf_is_email(buf, n);
    else if (strcmp(line, "uuid") == 0) v = cf_is_uuid(buf, n);
    else if (strcmp(line, "hex32") == 0) v = cf_is_hex32(buf, n);
    else if (strcmp(line, "country") == 0) v = cf_is_country(buf, n);
    else { fprintf(stderr, "formats_cli: unknown checker %s\n", line); return 2; }
    printf("%d\n", v ? 1 : 0);
    fflush(stdout);
  }
  return 0;
}
