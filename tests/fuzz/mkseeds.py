#!/usr/bin/env python3
"""Regenerate the committed seed corpora (tests/fuzz/corpus/*).
Run from anywhere: python3 tests/fuzz/mkseeds.py. The byte programs for
fuzz_encode follow the stack machine in fuzz_encode.c."""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = open(os.path.join(HERE, "fuzz_encode.c")).read()


def strlist(var):
    body = SRC.split("static const char *const %s[] = {" % var)[1].split("};")[0]
    return [bytes(m, "ascii").decode("unicode_escape") for m in re.findall(r'"((?:[^"\\]|\\.)*)"', body)]


NAMES, STRS = strlist("names"), strlist("strs")


def write(sub, name, data):
    d = os.path.join(HERE, "corpus", sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- fuzz_formats: selector byte + candidate
FORMATS = {
    0: ["plain ascii", "caf\u00e9", "\U0001F600", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"],
    1: ["24h", "2h45m", "300ms", "1.5h", "1\u00b5s", "0", "-5m", "1x", "9223372036854775807ns"],
    2: ["5m", "24h", "720h", "721h", "0m", "30s", "1h30m"],
    3: ["10.0.0.0/8", "1.2.3.4", "::1", "2400:cb00:21:10a::/64", "::ffff:1.2.3.4",
        "10.0.0.1/8", "01.2.3.4", "1.2.3.4/33", "fe80::1%eth0", "1.2.3.0/255.255.255.0"],
    4: ["alice@example.com", "a.b+c@sub.example.co.uk", "@example.com", "a@", "a@b@c.com",
        "a b@example.com"],
    5: ["f174e90a-fafe-4643-bbbc-4a0ed4fc8415", "F174E90A-FAFE-4643-BBBC-4A0ED4FC8415",
        "f174e90afafe4643bbbc4a0ed4fc8415"],
    6: ["023e105f4ecef8ad9ca31a8372d0c353", "023e105f4ecef8ad9ca31a8372d0c35"],
    7: ["US", "GB", "us", "XX", "USA"],
}
for sel, items in FORMATS.items():
    for i, s in enumerate(items):
        b = s if isinstance(s, bytes) else s.encode("utf-8")
        write("fuzz_formats", "sel%d-%02d" % (sel, i), bytes([sel]) + b)


# ---- fuzz_encode: [heap cap byte][opts byte] + program
def N(name):
    return bytes([4, NAMES.index(name)])


def S(s):
    return bytes([5, STRS.index(s)])


T, SET, APPEND = b"\x00", b"\x08", b"\x09"


def field(name, value):
    return N(name) + value + SET


def rule(kind, inner=b""):
    return T + N(kind) + T + inner + SET + APPEND


def rules(*rs):
    return T + b"".join(rs)


BASE = field("name", S("allow")) + field("decision", S("allow"))
PROGRAMS = {
    "minimal": BASE + N("include") + rules(rule("everyone")) + SET,
    "email": BASE + N("include") + rules(rule("email", field("email", S("a@example.com")))) + SET,
    "full": BASE + field("session_duration", S("24h")) + field("precedence", b"\x01\x05")
            + field("approval_required", b"\x03\x01")
            + N("include") + rules(rule("ip", field("ip", S("10.0.0.0/8"))),
                                   rule("geo", field("country_code", S("US")))) + SET
            + N("exclude") + rules(rule("email_domain", field("domain", S("example.com")))) + SET
            + N("require") + rules(rule("auth_method", field("auth_method", S("mfa")))) + SET
            + N("mfa_config") + T + N("allowed_authenticators") + T + S("totp") + APPEND + SET
            + field("session_duration", S("5m")) + SET,
    "float-precedence": BASE + field("precedence", b"\x02\x00") + N("include") + rules(rule("everyone")) + SET,
    "nan": BASE + field("precedence", b"\x02\xfa") + N("include") + rules(rule("everyone")) + SET,
    "cycle": BASE + N("include") + T + b"\x0c" + SET,
    "self": BASE + b"\x0b\x02",
    "hostile-index": BASE + N("include") + T + b"\x0d\x00" + SET,
    "hostile-pairs": BASE + N("include") + rules(rule("everyone")) + b"\x0d\x03" + SET,
    "deep": BASE + N("include") + T + b"\x0e\x07" + SET,
    "huge": BASE + N("name") + b"\x07\x40" + SET + N("include") + rules(rule("everyone")) + SET,
    "sparse": BASE + N("include") + rules(rule("everyone")) + T + b"\x0a\x05" + SET,
    "many": BASE + N("include") + rules(rule("everyone")) + b"\x0f\x40" + SET,
    "raw": BASE + N("name") + b"\x06\x03\xff\xfe\x00" + SET,
}
for name, prog in PROGRAMS.items():
    write("fuzz_encode", name, bytes([255, 0]) + prog)
    write("fuzz_encode", name + "-infra-unknown", bytes([255, 9]) + prog)
write("fuzz_encode", "lowmem", bytes([1, 0]) + PROGRAMS["full"])


# ---- fuzz_response: [op byte] + raw HTTP response
def http(status, body, headers=(), reason="OK", chunked=False):
    h = ["HTTP/1.1 %d %s" % (status, reason), "Content-Type: application/json",
         "cf-ray: 8f1e2d3c4b5a6978-SJC"]
    h += list(headers)
    b = body.encode() if isinstance(body, str) else body
    if chunked:
        h.append("Transfer-Encoding: chunked")
        b = b"%x\r\n%s\r\n0\r\n\r\n" % (len(b), b)
    else:
        h.append("Content-Length: %d" % len(b))
    return ("\r\n".join(h) + "\r\n\r\n").encode() + b


POLICY = ('{"id":"f174e90a-fafe-4643-bbbc-4a0ed4fc8415","name":"p","decision":"allow",'
          '"include":[{"everyone":{}}],"exclude":[],"require":[],"precedence":1,'
          '"session_duration":"24h","created_at":"2014-01-01T05:20:00.12345Z"}')
OK = '{"success":true,"errors":[],"messages":[],"result":%s}' % POLICY
LIST = ('{"success":true,"errors":[],"messages":[],"result":[%s],"result_info":'
        '{"page":1,"per_page":5,"count":1,"total_count":1,"total_pages":1}}' % POLICY)
LIST_MANY = LIST.replace('"total_pages":1', '"total_pages":1000')
FAIL = '{"success":false,"errors":[{"code":12130,"message":"precedence must be unique"}],"messages":[],"result":null}'
RESPONSES = {
    "ok": http(200, OK), "created": http(201, OK), "list": http(200, LIST),
    "list-1000-pages": http(200, LIST_MANY), "deleted": http(202, '{"success":true,"errors":[],"messages":[],"result":{"id":"x"}}'),
    "fail-400": http(400, FAIL, reason="Bad Request"),
    "rate-limited": http(429, FAIL, ["Retry-After: 31536000", "retry-after-ms: 5"]),
    "retry-date": http(503, FAIL, ["Retry-After: Wed, 21 Oct 2037 07:28:00 GMT"]),
    "ratelimit-hdr": http(200, OK, ['Ratelimit: "default";r=0;t=300', 'Ratelimit-Policy: "default";q=1200;w=300']),
    "no-retry": http(500, FAIL, ["x-should-retry: false"]),
    "chunked": http(200, OK, chunked=True),
    "html": http(502, "<html><body>Bad gateway</body></html>"),
    "garbage": http(200, "this is {not json"),
    "truncated": http(200, OK[:40]),
    "success-false": http(200, FAIL),
    # (result null with success true is a regression input in tests/fuzz/regress)
    "numbers": http(200, '{"success":true,"errors":[{"code":1e300,"message":5}],"messages":[1.5],"result":{"precedence":1e19,"x":-0.0}}'),
    "deep": http(200, "[" * 300 + "]" * 300),
    "short-body": b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"success\":true",
    "http10": b"HTTP/1.0 200 OK\r\n\r\n" + OK.encode(),
    "bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "empty": b"",
    # a server that echoes the credential (fuzz_response.c's TOKEN) back
    "echo": http(403, '{"success":false,"errors":[{"code":10000,"message":"bad token fuzz-secret-token-5ee1",'
                 '"documentation_url":"https://x/?t=fuzz-secret-token-5ee1"}],'
                 '"messages":[{"code":1,"message":"fuzz-secret-token-5ee1"}],"result":null}',
                 ["cf-ray: fuzz-secret-token-5ee1"], reason="Forbidden"),
}
for i, (name, resp) in enumerate(sorted(RESPONSES.items())):
    for op in range(5):
        if op == 0 or name in ("ok", "list", "list-1000-pages", "fail-400", "no-retry", "chunked", "echo"):
            write("fuzz_response", "%s-op%d" % (name, op), bytes([op]) + resp)
