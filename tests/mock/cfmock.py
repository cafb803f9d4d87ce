#!/usr/bin/env python3
"""cfmock: a local, stateful stand-in for the Cloudflare API v4 Access policy
endpoints, for cfaccess's tests, demo and benchmarks.

Python 3 standard library only. Serves HTTP/1.1 with keep-alive on 127.0.0.1
(never another address), optionally over TLS, under the prefix /client/v4:

  /accounts/{account_id}/access/apps/{app_id}/policies[/{policy_id}]
  /zones/{zone_id}/access/apps/{app_id}/policies[/{policy_id}]
  /accounts/{account_id}/access/policies[/{policy_id}]          (reusable)

with GET (list) and POST (create) on each collection and GET, PUT, DELETE on
each policy. A control API without authentication lives under /__mock/:

  POST /__mock/reset             clear policies, apps (--app ones too), faults,
                                 log, rate counters; restore config defaults
  POST /__mock/apps              {"scope","scope_id","app_id","type"} -> 201
  POST /__mock/faults            a fault object or a list of them (FIFO queue)
  GET  /__mock/faults            the faults still queued (addition)
  DELETE /__mock/faults          drop every queued fault (addition)
  GET  /__mock/log               {"requests":[...]} in arrival order
  GET  /__mock/state             {"policies":[...]}
  POST /__mock/config            {"ratelimit_remaining":N, "max_body_bytes":N,
                                  "enforce_ratelimit":bool, "log_max":N}

Fault actions: status, rate_limit, delay, reset_before, reset_after_headers,
garbage, truncated, html, oversize, success_false, commit_then_fail, headers,
repeat_page (semantics in Handler.handle_fault). Additions beyond the contract:
  * "times": -1 applies a fault forever (until reset or DELETE /__mock/faults).
  * "process": true on status/rate_limit/garbage/truncated/html/oversize/
    success_false processes the request first (stores a create) and, for
    "truncated", cuts the real response.
  * "repeat_page" only matches list requests (GET on a collection), so a
    create or get in between does not consume it; result_info.page echoes
    the page asked for while the data is always page 1's.
  * with TLS, a second plain-HTTP listener serves only /__mock/ (its port
    is printed as " control <port>" on the startup line).
  * --watch-pid PID: exit when that process is gone (the test runner died).
  * "enforce_ratelimit": true answers 429 once the per-token budget is spent.

Usage:
  python3 tests/mock/cfmock.py [--port N] [--token T] [--api-key K --email E]
      [--tls-cert FILE --tls-key FILE] [--app SCOPE:SCOPE_ID:APP_ID[:TYPE]]...

After binding it prints exactly one line
  cfmock listening on 127.0.0.1:<port> pid <pid>[ control <port2>]
and exits cleanly (status 0) on SIGTERM or SIGINT.
"""

import argparse
import datetime
import ipaddress
import json
import math
import os
import re
import secrets
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PREFIX = "/client/v4"
RATE_QUOTA = 1200
RATE_WINDOW = 300
DEFAULT_MAX_BODY = 16 * 1024 * 1024
DEFAULT_LOG_MAX = 100000  # log entries kept (oldest dropped), for long benchmarks
DECISIONS = ("allow", "deny", "non_identity", "bypass")
RULE_LISTS = ("include", "exclude", "require")
HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Application-scoped and reusable policy routes (path after PREFIX).
APP_ROUTE = re.compile(
    r"^/(accounts|zones)/([^/]+)/access/apps/([^/]+)/policies(?:/([^/]+))?/?$")
REUSABLE_ROUTE = re.compile(r"^/accounts/([^/]+)/access/policies(?:/([^/]+))?/?$")
FAULT_ACTIONS = (
    "status", "rate_limit", "delay", "reset_before", "reset_after_headers",
    "garbage", "truncated", "html", "oversize", "success_false",
    "commit_then_fail", "headers", "repeat_page")

# Error codes. 10000 (authentication, rate limit) and 7003 (no route) are
# Cloudflare's; 12130 (precedence must be unique) is part of the contract the
# client's tests rely on; the rest are picked from the Access 12xxx family.
E_AUTH = 10000
E_SUCCESS_FALSE = 10001
E_INTERNAL = 10002
E_TOO_LARGE = 10013
E_METHOD = 10405
E_NO_ROUTE = 7003
E_APP_NOT_FOUND = 12001
E_POLICY_NOT_FOUND = 12002
E_PRECEDENCE_UNIQUE = 12130
E_BAD_JSON = 12131
E_BAD_FIELD = 12132
E_BAD_DECISION = 12133
E_BAD_PRECEDENCE = 12135
E_BAD_IP = 12137
E_BAD_PAGE = 12138


def now_rfc3339():
    """RFC 3339 UTC timestamp with microseconds and a Z, like the API's."""
    return datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def envelope(result, result_info=None):
    env = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        env["result_info"] = result_info
    return env


def failure(errors):
    return {"success": False, "errors": errors, "messages": [], "result": None}


def err(code, message):
    return {"code": code, "message": message}


class ApiError(Exception):
    """A request the API refuses: HTTP status plus Cloudflare error list."""

    def __init__(self, status, errors, headers=None):
        super().__init__(status)
        self.status = status
        self.errors = errors
        self.headers = headers or {}


class MockState:
    """Everything the mock remembers, guarded by one lock (handlers run in
    threads)."""

    def __init__(self, token, api_key, email):
        self.lock = threading.Lock()
        self.token = token
        self.api_key = api_key
        self.email = email
        self.apps = {}          # (scope, scope_id, app_id) -> type
        self.policies = {}      # id -> record dict (insertion ordered)
        self.faults = []        # FIFO of fault dicts with "_left"
        self.log = []
        self.rate = {}          # credential key -> [window_start, remaining]
        self.rate_start = RATE_QUOTA
        self.enforce_ratelimit = False
        self.max_body = DEFAULT_MAX_BODY
        self.log_max = DEFAULT_LOG_MAX
        self.next_conn = 0
        self.seq = 0

    def reset(self):
        with self.lock:
            self.apps.clear()
            self.policies.clear()
            self.faults.clear()
            self.log.clear()
            self.rate.clear()
            self.rate_start = RATE_QUOTA
            self.enforce_ratelimit = False
            self.max_body = DEFAULT_MAX_BODY
            self.log_max = DEFAULT_LOG_MAX

    def add_app(self, data):
        """Register an application (control API or --app)."""
        if not isinstance(data, dict):
            raise ValueError("body must be an object")
        scope, scope_id, app_id = data.get("scope"), data.get("scope_id"), data.get("app_id")
        app_type = data.get("type", "self_hosted")
        if scope not in ("accounts", "zones"):
            raise ValueError('scope must be "accounts" or "zones"')
        if not isinstance(scope_id, str) or not HEX32.match(scope_id):
            raise ValueError("scope_id must be 32 hex characters")
        if not isinstance(app_id, str) or not (UUID_RE.match(app_id) or HEX32.match(app_id)):
            raise ValueError("app_id must be a UUID or 32 hex characters")
        if app_type not in ("self_hosted", "infrastructure"):
            raise ValueError('type must be "self_hosted" or "infrastructure"')
        with self.lock:
            self.apps[(scope, scope_id.lower(), app_id.lower())] = app_type

    def new_connection_id(self):
        with self.lock:
            self.next_conn += 1
            return self.next_conn

    # -- rate limit bookkeeping ------------------------------------------
    def rate_take(self, key, count=True):
        """Count one request for `key` and return (remaining, seconds left
        in the window, exhausted_before). Without `count` only reads."""
        with self.lock:
            t = time.monotonic()
            ent = self.rate.get(key)
            if ent is None or t - ent[0] >= RATE_WINDOW:
                ent = [t, self.rate_start]
                self.rate[key] = ent
            exhausted = ent[1] <= 0
            if count and ent[1] > 0:
                ent[1] -= 1
            left = max(1, int(math.ceil(RATE_WINDOW - (t - ent[0]))))
            return ent[1], left, exhausted

    def set_rate_remaining(self, n):
        with self.lock:
            self.rate_start = n
            t = time.monotonic()
            for ent in self.rate.values():
                ent[1] = n
            if self.token is not None:
                self.rate.setdefault("token:" + self.token, [t, n])

    # -- faults -------------------------------------------------------------
    def take_fault(self, method, path, is_list):
        with self.lock:
            for i, f in enumerate(self.faults):
                if f.get("method") and f["method"].upper() != method:
                    continue
                if f.get("path") and not re.search(f["path"], path):
                    continue
                if f["action"] == "repeat_page" and not is_list:
                    continue
                if f["_left"] > 0:
                    f["_left"] -= 1
                    if f["_left"] == 0:
                        del self.faults[i]
                return dict(f)
            return None


def check_fault(f):
    """Validate one fault object from the control API; return a clean copy."""
    if not isinstance(f, dict):
        raise ValueError("a fault must be an object")
    action = f.get("action")
    if action not in FAULT_ACTIONS:
        raise ValueError("unknown fault action %r (one of %s)"
                         % (action, ", ".join(FAULT_ACTIONS)))
    times = f.get("times", 1)
    if not isinstance(times, int) or isinstance(times, bool) or times == 0 or times < -1:
        raise ValueError("times must be a positive integer or -1 (forever)")
    for k in ("method", "path", "then", "body"):
        if k in f and not isinstance(f[k], str):
            raise ValueError("%s must be a string" % k)
    if "path" in f:
        re.compile(f["path"])
    if "headers" in f and not isinstance(f["headers"], dict):
        raise ValueError("headers must be an object")
    if "errors" in f and not isinstance(f["errors"], list):
        raise ValueError("errors must be a list")
    for k in ("status", "bytes"):
        if k in f and (not isinstance(f[k], int) or isinstance(f[k], bool)):
            raise ValueError("%s must be an integer" % k)
    for k in ("seconds", "retry_after", "retry_after_ms"):
        if k in f and (not isinstance(f[k], (int, float)) or isinstance(f[k], bool)):
            raise ValueError("%s must be a number" % k)
    if f.get("then", "500") not in ("500", "reset"):
        raise ValueError('then must be "500" or "reset"')
    out = dict(f)
    out["_left"] = times
    return out


def normalise_ip(value):
    """Single addresses get /32 or /128 as the API stores them; networks are
    checked (host bits may be set, as the API allows) and kept as given."""
    if not isinstance(value, str):
        raise ValueError("ip must be a string")
    if "/" in value:
        ipaddress.ip_network(value, strict=False)
        return value
    addr = ipaddress.ip_address(value)
    return "%s/%d" % (value, 32 if addr.version == 4 else 128)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cloudflare"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are dropped after this

    # -- plumbing -----------------------------------------------------------
    def setup(self):
        super().setup()
        # Small responses go out at once (no Nagle + delayed-ACK stalls).
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.conn_id = self.server.state.new_connection_id()

    def log_message(self, format, *args):  # noqa: A002 (BaseHTTPRequestHandler's name)
        if self.server.verbose:
            sys.stderr.write("cfmock: %s\n" % (format % args))

    def do_GET(self):
        try:
            self.dispatch()
        except (ConnectionError, ssl.SSLError, TimeoutError):
            self.close_connection = True
        except Exception:  # a mock bug: answer 500 rather than hang up
            traceback.print_exc()
            self.close_connection = True
            self.send_json(500, failure([err(E_INTERNAL, "cfmock internal error")]), None, None)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def read_body(self):
        """Read the request body (Content-Length or chunked). Returns bytes,
        or None when it is over the configured cap; such a body is still
        read (and dropped) so the connection stays usable for the 413."""
        cap = self.server.state.max_body
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            parts, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                data = self.drain(size) if total > cap else self.rfile.read(size)
                if total <= cap:
                    parts.append(data)
                self.rfile.readline(65537)
            return b"".join(parts) if total <= cap else None
        n = int(self.headers.get("Content-Length") or 0)
        if n > cap:
            self.drain(n)
            return None
        return self.rfile.read(n) if n > 0 else b""

    def drain(self, n):
        """Read and drop n bytes without holding them."""
        while n > 0:
            got = self.rfile.read(min(n, 65536))
            if not got:
                break
            n -= len(got)
        return b""

    def base_headers(self, rate):
        h = {"cf-ray": secrets.token_hex(8) + "-SJC",
             "Content-Type": "application/json"}
        if rate is not None:
            remaining, left = rate
            h["Ratelimit"] = '"default";r=%d;t=%d' % (remaining, left)
            h["Ratelimit-Policy"] = '"default";q=%d;w=%d' % (RATE_QUOTA, RATE_WINDOW)
        return h

    @staticmethod
    def merge_headers(h, extra):
        """Add `extra` to `h`, replacing same-named headers case-insensitively."""
        for k, v in (extra or {}).items():
            for old in [o for o in h if o.lower() == k.lower()]:
                del h[old]
            h[k] = str(v)
        return h

    def send_all(self, status, headers, body, entry, partial=None):
        """Write one response. `partial` (bytes count) sends only that much
        of the body and then resets the connection."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        if entry is not None:
            entry["status"] = status
        try:
            self.send_response_only(status)
            self.send_header("Date", self.date_time_string())
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            # Headers and body in one write: one segment for small replies.
            self._headers_buffer.append(b"\r\n")
            if self.command != "HEAD":
                self._headers_buffer.append(body if partial is None else body[:partial])
            self.flush_headers()
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True
            return
        if partial is not None:
            self.reset_connection()

    def send_json(self, status, obj, entry, rate, extra=None, partial=None):
        h = self.merge_headers(self.base_headers(rate), extra)
        self.send_all(status, h, json.dumps(obj, separators=(",", ":")), entry, partial)

    def reset_connection(self):
        """Drop the TCP connection with an RST (SO_LINGER 0), no response."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            sock = self.connection
            if isinstance(sock, ssl.SSLSocket):
                sock = socket.socket(fileno=sock.detach())
            sock.close()
            self.rfile.close()  # the makefile reference keeps the fd open
        except OSError:
            pass
        self.server.skip_shutdown.add(id(self.connection))

    # -- request entry point ---------------------------------------------
    def dispatch(self):
        state = self.server.state
        url = urlsplit(self.path)
        path, query = url.path, url.query
        if path.startswith("/__mock/") or path == "/__mock":
            return self.control(path)
        if self.server.control_only:
            return self.send_json(404, failure([err(E_NO_ROUTE, "No route for the URI")]),
                                  None, None)
        entry = {
            "method": self.command, "path": path, "query": query,
            "headers": {k.lower(): ("[redacted]" if k.lower() in ("authorization", "x-auth-key")
                                    else v) for k, v in self.headers.items()},
            "body": "", "time": time.time(), "status": None,
            "connection": self.conn_id,
        }
        with state.lock:
            state.log.append(entry)
            if len(state.log) > state.log_max:
                del state.log[:len(state.log) - state.log_max]
        body = self.read_body()
        if body is None:
            return self.send_json(413, failure([err(E_TOO_LARGE, "request body too large")]),
                                  entry, None)
        entry["body"] = body.decode("utf-8", errors="replace")

        cred = self.credential_key()
        remaining, left, exhausted = state.rate_take(cred)
        rate = (remaining, left)
        is_list = self.command == "GET" and self.is_collection(path)
        fault = state.take_fault(self.command, path, is_list)
        if fault is not None:
            return self.handle_fault(fault, path, query, body, entry, rate)
        if state.enforce_ratelimit and exhausted:
            return self.send_json(429, failure([err(E_AUTH, "Rate limited")]), entry,
                                  (0, left), {"Retry-After": str(left)})
        status, obj, _ = self.process(path, query, body)
        self.send_json(status, obj, entry, rate)

    def credential_key(self):
        auth = self.headers.get("Authorization")
        if auth and auth.startswith("Bearer "):
            return "token:" + auth[7:]
        key = self.headers.get("X-Auth-Key")
        if key:
            return "key:" + key
        return "anonymous"

    @staticmethod
    def is_collection(path):
        if not path.startswith(PREFIX):
            return False
        rest = path[len(PREFIX):]
        m = APP_ROUTE.match(rest)
        if m:
            return m.group(4) is None
        m = REUSABLE_ROUTE.match(rest)
        return bool(m) and m.group(2) is None

    # -- faults -------------------------------------------------------------
    def handle_fault(self, f, path, query, body, entry, rate):
        """Answer a request the way fault `f` says. Only delay,
        reset_after_headers, commit_then_fail, headers and repeat_page run
        the request against the store (and the others with "process": true);
        the rest answer without touching it."""
        action = f["action"]
        extra = f.get("headers")

        def processed():
            return self.process(path, query, body, repeat=(action == "repeat_page"))

        if f.get("process") and action in ("status", "rate_limit", "garbage", "truncated",
                                           "html", "oversize", "success_false"):
            real_status, real_obj, _ = processed()
        else:
            real_status = real_obj = None

        if action == "status":
            status = f.get("status", 500)
            h = self.merge_headers(self.base_headers(rate), extra)
            if "body" in f:
                return self.send_all(status, h, f["body"], entry)
            errors = f.get("errors") or [err(E_INTERNAL, "mock fault: HTTP %d" % status)]
            return self.send_all(status, h, json.dumps(failure(errors)), entry)
        if action == "rate_limit":
            ra = f.get("retry_after", 1)
            h = {"Retry-After": str(ra)}
            if "retry_after_ms" in f:
                h["retry-after-ms"] = str(f["retry_after_ms"])
            h.update(extra or {})
            return self.send_json(429, failure([err(E_AUTH, "Rate limited")]), entry,
                                  (0, max(1, int(math.ceil(ra)))), h)
        if action == "delay":
            time.sleep(float(f.get("seconds", 1)))
            status, obj, _ = processed()
            return self.send_json(status, obj, entry, rate, extra)
        if action == "reset_before":
            return self.reset_connection()
        if action == "reset_after_headers":
            status, obj, _ = processed()
            raw = json.dumps(obj, separators=(",", ":"))
            return self.send_json(status, obj, entry, rate, extra, partial=len(raw) // 2)
        if action == "garbage":
            h = self.merge_headers(self.base_headers(rate), extra)
            return self.send_all(200, h, "this is {not json", entry)
        if action == "truncated":
            obj = real_obj if real_obj is not None else envelope(
                {"id": str(uuid.uuid4()), "name": "truncated"})
            raw = json.dumps(obj, separators=(",", ":"))
            h = self.merge_headers(self.base_headers(rate), extra)
            return self.send_all(real_status or 200, h, raw[:len(raw) // 2], entry)
        if action == "html":
            status = f.get("status", 502)
            h = self.base_headers(rate)
            h["Content-Type"] = "text/html"
            self.merge_headers(h, extra)
            page = ("<html>\r\n<head><title>%d Bad Gateway</title></head>\r\n<body>\r\n"
                    "<center><h1>%d Bad Gateway</h1></center>\r\n<hr><center>cloudflare"
                    "</center>\r\n</body>\r\n</html>\r\n" % (status, status))
            return self.send_all(status, h, page, entry)
        if action == "oversize":
            return self.send_oversize(int(f.get("bytes", 20 * 1024 * 1024)), entry, rate, extra)
        if action == "success_false":
            return self.send_json(200, failure([err(E_SUCCESS_FALSE, "mock: success is false")]),
                                  entry, rate, extra)
        if action == "commit_then_fail":
            processed()
            if f.get("then", "500") == "reset":
                return self.reset_connection()
            return self.send_json(500, failure([err(E_INTERNAL, "Internal server error")]),
                                  entry, rate, extra)
        if action in ("headers", "repeat_page"):
            status, obj, _ = processed()
            return self.send_json(status, obj, entry, rate, extra)
        return None

    def send_oversize(self, size, entry, rate, extra):
        """A valid envelope of exactly `size` bytes, streamed in chunks so
        the padding is never held in memory as one string."""
        head = ('{"success":true,"errors":[],"messages":[],"result":{"id":"%s","padding":"'
                % uuid.uuid4()).encode()
        tail = b'"}}'
        pad = max(0, size - len(head) - len(tail))
        h = self.merge_headers(self.base_headers(rate), extra)
        entry["status"] = 200
        try:
            self.send_response_only(200)
            self.send_header("Date", self.date_time_string())
            for k, v in h.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(head) + pad + len(tail)))
            self.end_headers()
            self.wfile.write(head)
            chunk = b"x" * 65536
            while pad > 0:
                n = min(pad, len(chunk))
                self.wfile.write(chunk[:n])
                pad -= n
            self.wfile.write(tail)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    # -- the API proper -------------------------------------------------------
    def authenticate(self):
        state = self.server.state
        auth = self.headers.get("Authorization")
        key = self.headers.get("X-Auth-Key")
        email = self.headers.get("X-Auth-Email")
        if auth is None and key is None and email is None:
            raise ApiError(401, [err(E_AUTH, "Authentication error")])
        if auth is not None and state.token is not None and auth == "Bearer " + state.token:
            return
        if (key is not None and state.api_key is not None and key == state.api_key
                and email == state.email):
            return
        raise ApiError(403, [err(E_AUTH, "Authentication error")])

    def process(self, path, query, body, repeat=False):
        """Run one API request against the store. Returns (status, envelope,
        route info); never raises."""
        try:
            return self.route(path, query, body, repeat)
        except ApiError as e:
            return e.status, failure(e.errors), None

    def route(self, path, query, body, repeat):
        state = self.server.state
        if not path.startswith(PREFIX + "/"):
            raise ApiError(404, [err(E_NO_ROUTE, "No route for the URI")])
        rest = path[len(PREFIX):]
        m = APP_ROUTE.match(rest)
        if m:
            scope, scope_id, app_id, policy_id = m.groups()
        else:
            m = REUSABLE_ROUTE.match(rest)
            if not m:
                raise ApiError(404, [err(E_NO_ROUTE, "No route for the URI")])
            scope, scope_id, policy_id = "accounts", m.group(1), m.group(2)
            app_id = None
        method = self.command
        allowed = ("GET", "PUT", "DELETE") if policy_id else ("GET", "POST")
        if method not in allowed:
            raise ApiError(405, [err(E_METHOD, "Method not allowed")])
        if not HEX32.match(scope_id):
            raise ApiError(404, [err(E_NO_ROUTE, "Could not route to %s, perhaps your object "
                                                 "identifier is invalid?" % path)])
        self.authenticate()
        kind = "reusable" if app_id is None else ("zone" if scope == "zones" else "app")
        with state.lock:
            app_type = None
            if app_id is not None:
                app_type = state.apps.get((scope, scope_id.lower(), app_id.lower()))
                if app_type is None:
                    raise ApiError(404, [err(E_APP_NOT_FOUND, "application not found")])
            owner = (scope, scope_id.lower(), app_id.lower() if app_id else None)
            if policy_id is None and method == "GET":
                return self.list_policies(owner, kind, query, repeat)
            if policy_id is None:
                pol = self.parse_policy(body, kind)
                return 201, envelope(self.store(owner, kind, None, pol)), owner
            rec = state.policies.get(policy_id.lower())
            if rec is None or rec["owner"] != owner:
                raise ApiError(404, [err(E_POLICY_NOT_FOUND, "policy not found")])
            if method == "GET":
                return 200, envelope(self.render(rec)), owner
            if method == "PUT":
                pol = self.parse_policy(body, kind)
                return 200, envelope(self.store(owner, kind, rec, pol)), owner
            del state.policies[rec["id"]]
            return 202, envelope({"id": rec["id"]}), owner

    @staticmethod
    def parse_policy(body, kind):
        """Check the fields the real API would refuse (all problems at once)
        and fill the defaults it fills."""
        try:
            pol = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ApiError(400, [err(E_BAD_JSON, "invalid JSON in request body")])
        if not isinstance(pol, dict):
            raise ApiError(400, [err(E_BAD_JSON, "request body must be a JSON object")])
        errors = []
        if not isinstance(pol.get("name"), str) or pol.get("name") == "":
            errors.append(err(E_BAD_FIELD, "name is required and must be a non-empty string"))
        if "decision" not in pol:
            errors.append(err(E_BAD_DECISION, "decision is required"))
        elif pol["decision"] not in DECISIONS:
            errors.append(err(E_BAD_DECISION, "decision must be one of: " + ", ".join(DECISIONS)))
        if not isinstance(pol.get("include"), list):
            errors.append(err(E_BAD_FIELD, "include is required and must be an array of rules"))
        for key in ("exclude", "require", "approval_groups"):
            if key in pol and not isinstance(pol[key], list):
                errors.append(err(E_BAD_FIELD, "%s must be an array" % key))
        if "precedence" in pol:
            p = pol["precedence"]
            if kind == "reusable":
                errors.append(err(E_BAD_PRECEDENCE, "precedence is not allowed on reusable policies"))
            elif not isinstance(p, int) or isinstance(p, bool):
                errors.append(err(E_BAD_PRECEDENCE, "precedence must be an integer"))
        for key in RULE_LISTS:
            rules = pol.get(key)
            if not isinstance(rules, list):
                continue
            for rule in rules:
                if isinstance(rule, dict) and isinstance(rule.get("ip"), dict) and "ip" in rule["ip"]:
                    try:
                        rule["ip"]["ip"] = normalise_ip(rule["ip"]["ip"])
                    except ValueError:
                        errors.append(err(E_BAD_IP, "%s: %r is not a valid IP address or CIDR"
                                          % (key, rule["ip"]["ip"])))
        if errors:
            raise ApiError(400, errors)
        return pol

    def store(self, owner, kind, old, pol):
        """Insert or replace (PUT) a policy; caller holds the lock."""
        state = self.server.state
        siblings = [r for r in state.policies.values()
                    if r["owner"] == owner and (old is None or r["id"] != old["id"])]
        if kind != "reusable":
            if "precedence" in pol:
                if any(r["policy"].get("precedence") == pol["precedence"] for r in siblings):
                    raise ApiError(400, [err(E_PRECEDENCE_UNIQUE, "precedence must be unique")])
            elif old is not None and "precedence" in old["policy"]:
                pol["precedence"] = old["policy"]["precedence"]
            else:
                pol["precedence"] = max([r["policy"].get("precedence", 0) for r in siblings] + [0]) + 1
        filled = {}
        if kind != "zone":
            filled["session_duration"] = "24h"
        for k in ("approval_required", "isolation_required", "purpose_justification_required"):
            filled[k] = False
        for k in ("exclude", "require", "approval_groups"):
            filled[k] = []
        for k, v in filled.items():
            pol.setdefault(k, v)
        ts = now_rfc3339()
        state.seq += 1
        rec = {
            "id": old["id"] if old else str(uuid.uuid4()),
            "owner": owner, "kind": kind, "policy": pol,
            "created_at": old["created_at"] if old else ts, "updated_at": ts,
            "seq": old["seq"] if old else state.seq,
        }
        state.policies[rec["id"]] = rec
        return self.render(rec)

    @staticmethod
    def render(rec):
        out = {"id": rec["id"]}
        out.update(rec["policy"])
        if rec["kind"] == "reusable":
            out.pop("precedence", None)
            out["reusable"] = True
            out["app_count"] = 0
        out["created_at"] = rec["created_at"]
        out["updated_at"] = rec["updated_at"]
        return out

    def list_policies(self, owner, kind, query, repeat):
        state = self.server.state
        q = parse_qs(query)

        def intparam(name, default):
            vals = q.get(name)
            if not vals:
                return default
            try:
                v = int(vals[-1])
            except ValueError:
                raise ApiError(400, [err(E_BAD_PAGE, "%s must be a positive integer" % name)])
            if v < 1:
                raise ApiError(400, [err(E_BAD_PAGE, "%s must be a positive integer" % name)])
            return v

        page = intparam("page", 1)
        per_page = min(intparam("per_page", 100 if kind == "reusable" else 200), 1000)
        recs = [r for r in state.policies.values() if r["owner"] == owner]
        if kind == "reusable":
            recs.sort(key=lambda r: r["seq"])
        else:
            recs.sort(key=lambda r: (r["policy"].get("precedence", 0), r["seq"]))
        total = len(recs)
        shown = 1 if repeat else page
        items = [self.render(r) for r in recs[(shown - 1) * per_page:shown * per_page]]
        info = {"page": page, "per_page": per_page, "count": len(items),
                "total_count": total,
                "total_pages": 1000 if repeat else int(math.ceil(total / per_page))}
        return 200, envelope(items, info), owner

    # -- control API ------------------------------------------------------
    def control(self, path):
        state = self.server.state
        body = self.read_body()
        if body is None:
            return self.send_json(413, {"ok": False, "error": "body too large"}, None, None)
        try:
            data = json.loads(body.decode("utf-8")) if body.strip() else None
        except (UnicodeDecodeError, ValueError) as e:
            return self.send_json(400, {"ok": False, "error": "invalid JSON: %s" % e}, None, None)
        key = (self.command, path.rstrip("/"))
        try:
            if key == ("POST", "/__mock/reset"):
                state.reset()
                return self.send_json(200, {"ok": True}, None, None)
            if key == ("POST", "/__mock/apps"):
                state.add_app(data)
                return self.send_json(201, {"ok": True}, None, None)
            if key == ("POST", "/__mock/faults"):
                items = data if isinstance(data, list) else [data]
                clean = [check_fault(f) for f in items]
                with state.lock:
                    state.faults.extend(clean)
                return self.send_json(201, {"ok": True, "queued": len(clean)}, None, None)
            if key == ("GET", "/__mock/faults"):
                with state.lock:
                    out = [{k: v for k, v in f.items() if k != "_left"} | {"left": f["_left"]}
                           for f in state.faults]
                return self.send_json(200, {"faults": out}, None, None)
            if key == ("DELETE", "/__mock/faults"):
                with state.lock:
                    state.faults.clear()
                return self.send_json(200, {"ok": True}, None, None)
            if key == ("GET", "/__mock/log"):
                with state.lock:
                    reqs = [dict(e) for e in state.log]
                return self.send_json(200, {"requests": reqs}, None, None)
            if key == ("GET", "/__mock/state"):
                with state.lock:
                    pols = []
                    for r in sorted(state.policies.values(), key=lambda r: r["seq"]):
                        p = self.render(r)
                        p["_scope"], p["_scope_id"], p["_app_id"] = r["owner"]
                        p["_kind"] = r["kind"]
                        pols.append(p)
                return self.send_json(200, {"policies": pols}, None, None)
            if key == ("POST", "/__mock/config"):
                self.configure(data)
                return self.send_json(200, {"ok": True}, None, None)
        except ValueError as e:
            return self.send_json(400, {"ok": False, "error": str(e)}, None, None)
        return self.send_json(404, {"ok": False, "error": "no control route %s %s"
                                    % (self.command, path)}, None, None)

    def configure(self, data):
        if not isinstance(data, dict):
            raise ValueError("body must be an object")
        state = self.server.state
        for k, v in data.items():
            if k == "ratelimit_remaining":
                if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                    raise ValueError("ratelimit_remaining must be a non-negative integer")
                state.set_rate_remaining(v)
            elif k == "max_body_bytes":
                if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                    raise ValueError("max_body_bytes must be a non-negative integer")
                state.max_body = v
            elif k == "log_max":
                if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                    raise ValueError("log_max must be a non-negative integer")
                with state.lock:
                    state.log_max = v
                    del state.log[:max(0, len(state.log) - v)]
            elif k == "enforce_ratelimit":
                if not isinstance(v, bool):
                    raise ValueError("enforce_ratelimit must be a boolean")
                state.enforce_ratelimit = v
            else:
                raise ValueError("unknown config key %r" % k)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, state, tls=None, control_only=False, verbose=False):
        self.state = state
        self.tls = tls
        self.control_only = control_only
        self.verbose = verbose
        self.skip_shutdown = set()
        super().__init__(addr, Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.tls is not None:
            # The handshake runs on the first read, in the handler's thread,
            # so a silent client cannot stall the accept loop.
            sock = self.tls.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False)
        return sock, addr

    def shutdown_request(self, request):
        # A connection we reset must not get a FIN first (shutdown(SHUT_WR)).
        if id(request) in self.skip_shutdown:
            self.skip_shutdown.discard(id(request))
            self.close_request(request)
            return
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError, OSError)):
            return
        super().handle_error(request, client_address)


def parse_app_flag(s):
    parts = s.split(":")
    if len(parts) not in (3, 4):
        raise argparse.ArgumentTypeError("--app wants SCOPE:SCOPE_ID:APP_ID[:TYPE]")
    return {"scope": parts[0], "scope_id": parts[1], "app_id": parts[2],
            "type": parts[3] if len(parts) == 4 else "self_hosted"}


def main(argv=None):
    ap = argparse.ArgumentParser(description="Local mock of the Cloudflare Access policy API")
    ap.add_argument("--host", default="127.0.0.1", help="must be 127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default=None)
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--email", default=None)
    ap.add_argument("--tls-cert", default=None)
    ap.add_argument("--tls-key", default=None)
    ap.add_argument("--app", action="append", type=parse_app_flag, default=[])
    ap.add_argument("--watch-pid", type=int, default=None,
                    help="exit when this process no longer exists")
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr")
    a = ap.parse_args(argv)
    if a.host != "127.0.0.1":
        ap.error("cfmock binds 127.0.0.1 only")
    if (a.api_key is None) != (a.email is None):
        ap.error("--api-key and --email go together")
    if (a.tls_cert is None) != (a.tls_key is None):
        ap.error("--tls-cert and --tls-key go together")
    token = a.token
    if token is None and a.api_key is None:
        token = "test-token"
    state = MockState(token, a.api_key, a.email)

    tls = None
    try:
        if a.tls_cert:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(a.tls_cert, a.tls_key)
            tls.set_alpn_protocols(["http/1.1"])
        servers = [Server(("127.0.0.1", a.port), state, tls=tls, verbose=a.verbose)]
    except (OSError, ssl.SSLError) as e:
        ap.error(str(e))
    # Apps from the command line, checked like the control API's.
    for app in a.app:
        try:
            state.add_app(app)
        except ValueError as e:
            ap.error("--app: %s" % e)
    line = "cfmock listening on 127.0.0.1:%d pid %d" % (servers[0].server_address[1], os.getpid())
    if tls is not None:
        servers.append(Server(("127.0.0.1", 0), state, control_only=True, verbose=a.verbose))
        line += " control %d" % servers[1].server_address[1]

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for srv in servers[1:]:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    if a.watch_pid:
        def watch():
            while True:
                time.sleep(1)
                try:
                    os.kill(a.watch_pid, 0)
                except ProcessLookupError:
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
                except PermissionError:
                    pass
        threading.Thread(target=watch, daemon=True).start()
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    try:
        servers[0].serve_forever(poll_interval=0.2)
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        for srv in servers:
            srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
