#!/usr/bin/env python3
"""Differential oracle for the C format checkers (src/formats.c).

Feeds inputs to build/fuzz/formats_cli (which calls cf_is_*) and compares
each verdict with an independent reference from the Python standard library:

  ip        ipaddress.ip_network(s, strict=False)
  utf8      bytes.decode("utf-8")          (strict: no surrogates/overlongs)
  uuid      8-4-4-4-12 hex regex
  hex32     32 hex digits regex
  duration  a transcription of Go's time.ParseDuration (units ns us µs μs ms
            s m h, fractions, int64 overflow), restricted to values >= 0

Inputs: every file in the given corpus directories (first byte % 8 selects
the checker exactly as in fuzz_formats.c) plus the built-in edge cases below.

Known, intended differences (counted and printed, never a failure):
  ip/netmask     Python accepts "1.2.3.0/255.255.255.0" and host masks;
                 Cloudflare takes prefix lengths only, so we must reject.
  ip/scope-id    Python accepts IPv6 zone ids ("fe80::1%eth0"); a zone id
                 means nothing to a remote server: we must reject.
  ip/host-bits   "10.0.0.1/8" is accepted by strict=False and rejected by
                 strict=True. Either verdict is allowed but it must be the
                 same for every such input (consistency is checked).
  ip/prefix-zero "1.2.3.0/024": Python reads the prefix as 24. Either way.
  uuid,hex32/upper-case   either verdict, but consistent.
  duration/sign  "+5m" and "-0s": Go accepts them; either verdict, consistent.
  duration/near-overflow  totals within a factor 2 of 2^63 ns: either.
Everything else that differs is printed and makes the script exit 1.
"""
import ipaddress
import os
import re
import subprocess
import sys

SEL = {0: "utf8", 1: "duration", 2: "mfa", 3: "ip", 4: "email", 5: "uuid",
       6: "hex32", 7: "country"}

EDGE = {
    "ip": ["1.2.3.4", "1.2.3.4/32", "10.0.0.0/8", "10.0.0.1/8", "0.0.0.0/0",
           "255.255.255.255", "256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4",
           "1.2.3.4/33", "1.2.3.4/", "/24", "1.2.3.4/024", "1.2.3.4/-1",
           "1.2.3.4/+8", " 1.2.3.4", "1.2.3.4 ", "1.2.3.4\n", "1.2.3.4\0",
           "::", "::1", "::/0", "2400:cb00:21:10a::/64", "2400:cb00::1/64",
           "::ffff:1.2.3.4", "::ffff:1.2.3.4/128", "::ffff:1.2.3.256",
           "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "1::2::3", ":::",
           "1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7", "12345::", "g::",
           "fe80::1%eth0", "fe80::1%eth0/64", "::/129", "::/128",
           "1.2.3.0/255.255.255.0", "1.2.3.4/0.0.0.255", "0x1.2.3.4",
           "1.2.3.4/8/8", "", "/", "::ffff:1.2.3.4/96", "1.2.3.4/08",
           "2001:db8::/032", "a:b:c:d:e:f:1.2.3.4", "a:b:c:d:e:f:0:1.2.3.4",
           "\u0661.2.3.4", "1.2.3.4/\u0662\u0664", "FFFF::", "ffff::FFFF"],
    "utf8": ["", "abc", "\u00e9", "\U0010ffff", "\ud7ff"],
    "uuid": ["f174e90a-fafe-4643-bbbc-4a0ed4fc8415",
             "F174E90A-FAFE-4643-BBBC-4A0ED4FC8415",
             "f174e90afafe4643bbbc4a0ed4fc8415",
             "{f174e90a-fafe-4643-bbbc-4a0ed4fc8415}",
             "f174e90a-fafe-4643-bbbc-4a0ed4fc841", "g174e90a-fafe-4643-bbbc-4a0ed4fc8415",
             "f174e90a-fafe-4643-bbbc-4a0ed4fc84150", "f174e90a_fafe-4643-bbbc-4a0ed4fc8415"],
    "hex32": ["023e105f4ecef8ad9ca31a8372d0c353", "023E105F4ECEF8AD9CA31A8372D0C353",
              "023e105f4ecef8ad9ca31a8372d0c35", "023e105f4ecef8ad9ca31a8372d0c3533",
              "023e105f4ecef8ad9ca31a8372d0c35g", ""],
    "duration": ["0", "0s", "-0s", "+5m", "5m", "300ms", "2h45m", "1.5h", ".5h",
                 "5.m", ".s", "1", "1x", "1h1", "24h", "1µs", "1μs", "1us", "1ns",
                 "9223372036854775807ns", "9223372036854775808ns",
                 "2562047h47m16.854775807s", "2562048h", "-5m", "", " 5m",
                 "5m ", "5M", "1h-1m", "00001s", "1.000000000000000000001s",
                 "99999999999999999999s"],
}

BAD_UTF8 = [b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
            b"\xf8\x88\x80\x80\x80", b"\xc3", b"\x80", b"\xef\xbf\xbf", b"a\xff"]

UNITS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "\u03bcs": 10**3,
         "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
GO_DUR = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]+)")


def go_duration(s):
    """Return (verdict, category). category names an allowed difference."""
    cat = None
    orig = s
    neg = False
    if s[:1] in ("-", "+"):
        neg = s[0] == "-"
        cat = "sign"
        s = s[1:]
    if s == "0":
        return True, cat
    if s == "":
        return False, None
    total = 0
    pos = 0
    while pos < len(s):
        m = GO_DUR.match(s, pos)
        if not m:
            return False, None
        num, unit = m.group(1), m.group(2)
        # Go reads the unit up to the next digit or '.'
        if num in ("", ".") or unit not in UNITS:
            return False, None
        ip, _, fp = num.partition(".")
        v = int(ip or "0")
        if v > (1 << 63) // UNITS[unit] + 1:
            return False, "near-overflow"
        total += v * UNITS[unit]
        if fp:
            total += int(int(fp) * UNITS[unit] // 10 ** len(fp))
        pos = m.end()
    if total >= (1 << 62):
        return total <= (1 << 63) - 1, "near-overflow"
    if neg and total != 0:
        return False, None
    del orig
    return True, cat


def ref_ip(b):
    try:
        s = b.decode("ascii")
    except UnicodeDecodeError:
        return False, None
    if "%" in s:
        try:
            ipaddress.ip_network(s, strict=False)
            return False, "scope-id"
        except ValueError:
            return False, None
    addr, slash, pfx = s.partition("/")
    try:
        ipaddress.ip_network(s, strict=False)
    except ValueError:
        return False, None
    if slash and not pfx.isdigit():
        return False, "netmask"
    if slash and len(pfx) > 1 and pfx[0] == "0":
        return True, "prefix-zero"
    try:
        ipaddress.ip_network(s, strict=True)
    except ValueError:
        return True, "host-bits"
    return True, None


HEX = "[0-9a-fA-F]"
UUID_RE = re.compile("^%s{8}-%s{4}-%s{4}-%s{4}-%s{12}$" % ((HEX,) * 5))
HEX32_RE = re.compile("^%s{32}$" % HEX)


def reference(checker, b):
    if checker == "utf8":
        try:
            b.decode("utf-8")
            return True, None
        except UnicodeDecodeError:
            return False, None
    if checker == "ip":
        return ref_ip(b)
    if checker in ("uuid", "hex32"):
        try:
            s = b.decode("ascii")
        except UnicodeDecodeError:
            return False, None
        ok = bool((UUID_RE if checker == "uuid" else HEX32_RE).match(s)) and "\n" not in s
        if ok and s != s.lower():
            return ok, "upper-case"
        return ok, None
    if checker == "duration":
        try:
            s = b.decode("utf-8")
        except UnicodeDecodeError:
            return False, None
        return go_duration(s)
    return None, None


def main(argv):
    if len(argv) < 2:
        print("usage: oracle.py FORMATS_CLI [CORPUS_DIR...]", file=sys.stderr)
        return 2
    cli = argv[1]
    cases = []
    for checker, items in EDGE.items():
        for s in items:
            cases.append((checker, s.encode("utf-8", "surrogatepass")))
    for b in BAD_UTF8:
        cases.append(("utf8", b))
    for d in argv[2:]:
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), "rb") as f:
                data = f.read()
            if len(data) >= 1 and len(data) < 16000:
                checker = SEL[data[0] % 8]
                if checker in ("utf8", "ip", "uuid", "hex32", "duration"):
                    cases.append((checker, data[1:]))
    cases = list(dict.fromkeys(cases))
    inp = "".join("%s %s\n" % (c, b.hex()) for c, b in cases)
    out = subprocess.run([cli], input=inp.encode(), stdout=subprocess.PIPE,
                         check=True).stdout.decode().split()
    if len(out) != len(cases):
        print("oracle: formats_cli answered %d of %d" % (len(out), len(cases)))
        return 1
    bad = []
    allowed = {}
    stats = {}
    for (checker, b), got in zip(cases, out):
        got = got == "1"
        want, cat = reference(checker, b)
        if want is None:
            continue
        st = stats.setdefault(checker, [0, 0])
        st[0] += 1
        if cat is not None:
            allowed.setdefault(checker + "/" + cat, set()).add(got)
        if got == want:
            continue
        if cat is not None:
            st[1] += 1
            continue
        bad.append((checker, b, got, want))
    for checker, (n, d) in sorted(stats.items()):
        print("oracle: %-8s %6d inputs compared, %d known differences" % (checker, n, d))
    for key, verdicts in sorted(allowed.items()):
        print("oracle: known difference %s: C verdict(s) %s" %
              (key, sorted("accept" if v else "reject" for v in verdicts)))
    rc = 0
    for key, verdicts in allowed.items():
        if len(verdicts) > 1 and key.split("/")[1] in ("host-bits", "upper-case"):
            print("oracle: INCONSISTENT: %s accepted for some inputs and rejected for others" % key)
            rc = 1
    for checker, b, got, want in bad[:50]:
        print("oracle: MISMATCH %s %r: C says %s, reference says %s" %
              (checker, b, "accept" if got else "reject", "accept" if want else "reject"))
    if bad:
        print("oracle: %d unexplained mismatches" % len(bad))
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
