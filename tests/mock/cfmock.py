#!/usr/bin/env python3
"""cfmock: a local, stateful stand-in for the Cloudflare API v4 Access policy
endpoints, for cfaccess's tests, demo and benchmarks.

Python 3 standard library only. Serves HTTP/1.1 with keep-alive on 127.0.0.1
(never another address), optionally over TLS, under the prefix /client/v4
({scope} is accounts or zones):

  /{scope}/{id}/access/apps[/{app_id}]                          applications
  /{scope}/{id}/access/apps/{app_id}/policies[/{policy_id}]     (legacy and linked)
  /accounts/{id}/access/apps/{app_id}/policies/{policy_id}/make_reusable  (PUT)
  /accounts/{id}/access/policies[/{policy_id}]                  (reusable)
  /{scope}/{id}/access/groups[/{group_id}]                      Access groups

with GET (list, paginated with result_info) and POST (create) on each
collection and GET, PUT, DELETE on each item. What each models, and on which
source in shared/reference it rests, is said where it is implemented
(apply_app_policies, check_app_body, render_policy, route_policies,
make_reusable, check_group, MockState.check_invariants). Every response has a
Date header from the server clock (wall clock + config clock_skew), as do
created_at/updated_at. A control API without authentication lives under
/__mock/ (tests/mockctl.lua's header documents each call from Lua):

  POST /__mock/reset             clear policies, apps (--app ones too), groups,
                                 faults, log, rate counters, invariant records;
                                 restore config defaults; start a new log
                                 generation -> {"generation": N}
  POST /__mock/apps              {"scope","scope_id","app_id","type", "domain"?,
                                  "name"?, "body"?: {fields}, "policies"?: [links]}
  GET  /__mock/apps[/{app_id}]   {scope, scope_id, app_id, type, app (as GET
                                 returns it), stored, links, last_put (raw body
                                 of the last PUT or null)} (?scope=&scope_id=)
  POST /__mock/faults            a fault object or a list of them (FIFO queue)
  GET  /__mock/faults            the faults still queued (addition)
  DELETE /__mock/faults          drop every queued fault (addition)
  GET  /__mock/log               {"generation", "requests":[...]} of the current
                                 generation (?generation=all|N for others)
  GET  /__mock/stats             counts of the current generation (by status)
  GET  /__mock/state             {"policies":[...], "apps":[...], "groups":[...]}
  GET  /__mock/invariants        {"ok", "checks", "duplicate_precedence",
                                  "empty_apps", "refused_duplicates"}
  POST /__mock/config            {"ratelimit_remaining":N, "max_body_bytes":N,
                                  "enforce_ratelimit":bool, "log_max":N,
                                  "lockout": {"budget":N,"window":s} | false,
                                  "latency":s, "clock_skew":s, "per_page_cap":N,
                                  "precedence_code":N, "unique_precedence":bool}

Log generations: a request that reaches the mock after a reset, from a
client that sent it before the reset and has closed the connection since
(an op aborted by the previous test), is logged with its old generation,
marked stale and not processed, so it is never counted in the next test.

Fault actions: status, rate_limit, delay, reset_before, reset_after_headers,
garbage, truncated, html, oversize, success_false, commit_then_fail, headers,
repeat_page (semantics in Handler.handle_fault). Additions beyond the contract:
  * "times": -1 applies a fault forever (until reset or DELETE /__mock/faults).
  * "body" on garbage: the text sent instead of "this is {not json".
  * "process": true on status/rate_limit/garbage/truncated/html/oversize/
    success_false processes the request first (stores a create) and, for
    "truncated", cuts the real response.
  * "repeat_page" only matches list requests (GET on a collection), so a
    create or get in between does not consume it; result_info.page echoes
    the page asked for while the data is always page 1's.
  * with TLS, a second plain-HTTP listener serves only /__mock/ (its port
    is printed as " control <port>" on the startup line).
  * --watch-pid PID: exit when that process is gone (the test runner died).
  * "enforce_ratelimit": true answers 429 (code 971) once the per-token
    budget is spent, until its window ends; "lockout" sets budget and window.

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
import select
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
# Routes (path after PREFIX), tried in this order by Handler.route.
APP_ROUTE = re.compile(
    r"^/(accounts|zones)/([^/]+)/access/apps/([^/]+)/policies(?:/([^/]+))?/?$")
REUSABLE_ROUTE = re.compile(r"^/accounts/([^/]+)/access/policies(?:/([^/]+))?/?$")
MAKE_REUSABLE_ROUTE = re.compile(
    r"^/accounts/([^/]+)/access/apps/([^/]+)/policies/([^/]+)/make_reusable/?$")
APPS_ROUTE = re.compile(r"^/(accounts|zones)/([^/]+)/access/apps(?:/([^/]+))?/?$")
GROUPS_ROUTE = re.compile(r"^/(accounts|zones)/([^/]+)/access/groups(?:/([^/]+))?/?$")
FAULT_ACTIONS = (
    "status", "rate_limit", "delay", "reset_before", "reset_after_headers",
    "garbage", "truncated", "html", "oversize", "success_false",
    "commit_then_fail", "headers", "repeat_page")

# Application types and the fields a PUT of each requires (reference:
# APPLICATIONS-AND-STATE.md, TS ApplicationUpdateParams). dash_sso is a type
# the reference lists without saying what its PUT requires: guess "type".
APP_TYPES = {
    "self_hosted": ("domain", "type"), "ssh": ("domain", "type"),
    "vnc": ("domain", "type"), "rdp": ("domain", "target_criteria", "type"),
    "infrastructure": ("target_criteria", "type"),
    "app_launcher": ("type",), "warp": ("type",), "biso": ("type",),
    "proxy_endpoint": ("type",), "mcp": ("type",), "mcp_portal": ("type",),
    "dash_sso": ("type",), "saas": (), "bookmark": (),
}
# Fields of an application the server sets; a PUT carrying them is not
# refused, they are simply not stored (guess: the API ignores them).
APP_READ_ONLY = ("id", "aud", "created_at", "updated_at")
LINK_KEYS = ("id", "precedence", "account_id")

# Error codes. 10000 (authentication), 7003 (no route), 971 (rate limit
# lockout) and 11018 (access.api.error.invalid_policy_precedence) are
# Cloudflare's (reference: APPLICATIONS-AND-STATE.md); the rest are picked
# from the Access 12xxx family. 12130, the code this mock used for duplicate
# precedence before, is still available with config precedence_code.
E_AUTH = 10000
E_SUCCESS_FALSE = 10001
E_INTERNAL = 10002
E_TOO_LARGE = 10013
E_METHOD = 10405
E_NO_ROUTE = 7003
E_RATE_LOCKOUT = 971
E_APP_NOT_FOUND = 12001
E_POLICY_NOT_FOUND = 12002
E_GROUP_NOT_FOUND = 12003
E_PRECEDENCE_UNIQUE = 11018
E_PRECEDENCE_UNIQUE_OLD = 12130
E_BAD_JSON = 12131
E_BAD_FIELD = 12132
E_BAD_DECISION = 12133
E_BAD_PRECEDENCE = 12135
E_BAD_IP = 12137
E_BAD_PAGE = 12138
E_BAD_APP = 12139
E_POLICY_REUSABLE = 12140
E_POLICY_IN_USE = 12141
E_MIXED_POLICIES = 12142
PRECEDENCE_MESSAGE = "access.api.error.invalid_policy_precedence"


def rfc3339(t):
    """RFC 3339 UTC timestamp (seconds since the epoch) with microseconds
    and a Z, like the API's."""
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
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


def app_label(key):
    """"accounts/<id>/<app_id>" for an app key (reports, invariants)."""
    return "%s/%s/%s" % key


class MockState:
    """Everything the mock remembers, guarded by one lock (handlers run in
    threads)."""

    def __init__(self, token, api_key, email):
        self.lock = threading.Lock()
        self.token = token
        self.api_key = api_key
        self.email = email
        # (scope, scope_id, app_id) -> {"type", "fields" (the stored body
        # without policies), "links" [[policy_id, precedence]], "created_at",
        # "updated_at", "seq", "last_put" (raw body text or None)}
        self.apps = {}
        self.policies = {}      # id -> record dict (insertion ordered)
        self.groups = {}        # id -> {"id", "owner", "group", "created_at", ...}
        self.faults = []        # FIFO of fault dicts with "_left"
        self.log = []
        self.rate = {}          # credential key -> [window_start, remaining]
        self.next_conn = 0
        self.seq = 0
        # Generations: reset() starts a new one at the wall-clock time given;
        # a request that reached the server before that belongs to the old.
        self.generation = 1
        self.gen_starts = [(1, 0.0)]
        self.defaults()

    def defaults(self):
        """Configuration (POST /__mock/config) back to its defaults; also
        clears the invariant records."""
        self.rate_start = RATE_QUOTA
        self.rate_quota = RATE_QUOTA
        self.rate_window = RATE_WINDOW
        self.enforce_ratelimit = False
        self.max_body = DEFAULT_MAX_BODY
        self.log_max = DEFAULT_LOG_MAX
        self.clock_skew = 0.0
        self.per_page_cap = None
        self.latency = 0.0
        self.precedence_code = E_PRECEDENCE_UNIQUE
        self.unique_precedence = True
        self.inv = {"checks": 0, "duplicate_precedence": [], "empty_apps": [],
                    "refused_duplicates": 0}
        self.had_policies = set()   # app keys that have had a policy
        self.dups_now = set()       # (app key, precedence, ids) shared right now

    def reset(self, at=None):
        with self.lock:
            self.apps.clear()
            self.policies.clear()
            self.groups.clear()
            self.faults.clear()
            self.log.clear()
            self.rate.clear()
            self.defaults()
            self.generation += 1
            self.gen_starts.append((self.generation, time.time() if at is None else at))
            del self.gen_starts[:-64]

    def generation_at(self, t):
        """The generation in effect at wall-clock time t; caller holds the lock."""
        g = self.gen_starts[0][0]
        for gen, start in self.gen_starts:
            if start <= t:
                g = gen
        return g

    def now(self):
        """The server clock: wall clock plus the configured skew."""
        return time.time() + self.clock_skew

    def add_app(self, data):
        """Register an application (control API or --app): scope, scope_id,
        app_id, type (default self_hosted), optional domain and name, and
        optional "body" (any other fields, stored as the application's) and
        "policies" (links, as in a PUT)."""
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
        if app_type not in APP_TYPES:
            raise ValueError("type must be one of " + ", ".join(sorted(APP_TYPES)))
        body = data.get("body", {})
        if not isinstance(body, dict):
            raise ValueError("body must be an object (the application's fields)")
        fields = {k: v for k, v in body.items() if k not in APP_READ_ONLY and k != "policies"}
        fields["type"] = app_type
        for k in ("domain", "name"):
            if k in data:
                if not isinstance(data[k], str):
                    raise ValueError("%s must be a string" % k)
                fields[k] = data[k]
        if app_type in ("self_hosted", "ssh", "vnc", "rdp"):
            fields.setdefault("domain", "app-%s.example.com" % app_id.lower()[:8])
        if app_type in ("rdp", "infrastructure"):
            fields.setdefault("target_criteria", [])
        fields.setdefault("name", "app " + app_id.lower()[:8])
        key = (scope, scope_id.lower(), app_id.lower())
        with self.lock:
            ts = rfc3339(self.now())
            self.seq += 1
            self.apps[key] = {"id": app_id.lower(), "type": app_type, "fields": fields,
                              "links": [], "created_at": ts, "updated_at": ts,
                              "seq": self.seq, "last_put": None}
            for pid in [p for p, r in self.policies.items() if r["owner"] == key]:
                del self.policies[pid]   # re-registering starts the app afresh
            self.had_policies.discard(key)
            if data.get("policies") is not None:
                try:
                    apply_app_policies(self, key, data["policies"])
                except ApiError as e:
                    del self.apps[key]
                    raise ValueError("policies: " + "; ".join(x["message"] for x in e.errors))
            self.check_invariants("control: register app")

    def new_connection_id(self):
        with self.lock:
            self.next_conn += 1
            return self.next_conn

    # -- what an app holds ------------------------------------------------
    def app_entries(self, key):
        """[(precedence, policy_id, reusable)] of an app: its legacy policies
        and its links; caller holds the lock."""
        out = [(r["policy"].get("precedence"), pid, False)
               for pid, r in self.policies.items() if r["owner"] == key]
        app = self.apps.get(key)
        if app is not None:
            out.extend((prec, pid, True) for pid, prec in app["links"])
        return out

    def app_count(self, policy_id, counts=None):
        """How many applications link reusable policy `policy_id` (from
        `counts`, link_counts()'s answer, when given)."""
        if counts is not None:
            return counts.get(policy_id, 0)
        return sum(1 for a in self.apps.values() if any(p == policy_id for p, _ in a["links"]))

    def link_counts(self):
        """{policy_id: number of apps linking it}, for rendering many at once."""
        counts = {}
        for a in self.apps.values():
            for pid in {p for p, _ in a["links"]}:
                counts[pid] = counts.get(pid, 0) + 1
        return counts

    def taken_precedences(self, key, skip=None):
        return [prec for prec, pid, _ in self.app_entries(key) if pid != skip]

    def check_invariants(self, what):
        """Record, after a state change, every app where two policies share
        a precedence and every app left with no policy after having had
        some. One pass over the store (it runs on every write). Caller
        holds the lock."""
        self.inv["checks"] += 1
        entries = {key: [(prec, pid) for pid, prec in app["links"]]
                   for key, app in self.apps.items()}
        for pid, r in self.policies.items():
            if r["owner"] in entries:
                entries[r["owner"]].append((r["policy"].get("precedence"), pid))
        now_dups = set()
        for key, held in entries.items():
            seen = {}
            for prec, pid in held:
                seen.setdefault(prec, []).append(pid)
            for prec, ids in seen.items():
                if len(ids) < 2 or prec is None:   # an infrastructure app's have none
                    continue
                dup = (key, prec, tuple(sorted(ids)))
                now_dups.add(dup)
                if dup not in self.dups_now:
                    self.inv["duplicate_precedence"].append(
                        {"app": app_label(key), "precedence": prec, "ids": list(dup[2]),
                         "after": what})
            if held:
                self.had_policies.add(key)
            elif key in self.had_policies:
                self.had_policies.discard(key)   # one record per emptying
                self.inv["empty_apps"].append({"app": app_label(key), "after": what})
        self.dups_now = now_dups

    # -- rate limit bookkeeping ------------------------------------------
    def rate_take(self, key, count=True):
        """Count one request for `key` and return (remaining, seconds left
        in the window, exhausted_before). Without `count` only reads."""
        with self.lock:
            t = time.monotonic()
            ent = self.rate.get(key)
            if ent is None or t - ent[0] >= self.rate_window:
                ent = [t, self.rate_start]
                self.rate[key] = ent
            exhausted = ent[1] <= 0
            if count and ent[1] > 0:
                ent[1] -= 1
            left = max(1, int(math.ceil(self.rate_window - (t - ent[0]))))
            return ent[1], left, exhausted

    def set_rate_remaining(self, n):
        with self.lock:
            self.rate_start = n
            t = time.monotonic()
            for ent in self.rate.values():
                ent[1] = n
            if self.token is not None:
                self.rate.setdefault("token:" + self.token, [t, n])

    def set_lockout(self, budget, window):
        """Cloudflare's lockout, scaled: `budget` requests per `window`
        seconds per credential, then 429 until the window ends."""
        with self.lock:
            self.rate.clear()
            self.rate_start = self.rate_quota = budget
            self.rate_window = window
            self.enforce_ratelimit = True

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


def parse_json_object(body):
    """The request body as a JSON object, or a 400 ApiError."""
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, [err(E_BAD_JSON, "invalid JSON in request body")])
    if not isinstance(obj, dict):
        raise ApiError(400, [err(E_BAD_JSON, "request body must be a JSON object")])
    return obj


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_policy(pol, kind, where=""):
    """Check the fields of policy object `pol` the real API would refuse (all
    problems at once) and normalise what it normalises. `where` prefixes
    the messages (e.g. "policies[2]: ")."""
    errors = []
    if not isinstance(pol.get("name"), str) or pol.get("name") == "":
        errors.append(err(E_BAD_FIELD, where + "name is required and must be a non-empty string"))
    if "decision" not in pol:
        errors.append(err(E_BAD_DECISION, where + "decision is required"))
    elif pol["decision"] not in DECISIONS:
        errors.append(err(E_BAD_DECISION, where + "decision must be one of: " + ", ".join(DECISIONS)))
    if not isinstance(pol.get("include"), list):
        errors.append(err(E_BAD_FIELD, where + "include is required and must be an array of rules"))
    for key in ("exclude", "require", "approval_groups"):
        if key in pol and not isinstance(pol[key], list):
            errors.append(err(E_BAD_FIELD, where + "%s must be an array" % key))
    if "precedence" in pol:
        if kind == "reusable":
            errors.append(err(E_BAD_PRECEDENCE, where + "precedence is not allowed on reusable policies"))
        elif not is_int(pol["precedence"]):
            errors.append(err(E_BAD_PRECEDENCE, where + "precedence must be an integer"))
    errors.extend(normalise_rules(pol, where))
    if errors:
        raise ApiError(400, errors)
    return pol


def normalise_rules(obj, where=""):
    """/32 and /128 on single IPs in include/exclude/require; the errors."""
    errors = []
    for key in RULE_LISTS:
        rules = obj.get(key)
        if not isinstance(rules, list):
            continue
        for rule in rules:
            if isinstance(rule, dict) and isinstance(rule.get("ip"), dict) and "ip" in rule["ip"]:
                try:
                    rule["ip"]["ip"] = normalise_ip(rule["ip"]["ip"])
                except ValueError:
                    errors.append(err(E_BAD_IP, "%s%s: %r is not a valid IP address or CIDR"
                                      % (where, key, rule["ip"]["ip"])))
    return errors


def precedence_error(state):
    return ApiError(400, [err(state.precedence_code, PRECEDENCE_MESSAGE)])


def store_policy(state, owner, kind, old, pol):
    """Insert or replace (PUT) a policy, filling the API's defaults; returns
    the record. Caller holds the lock."""
    infra = kind != "reusable" and state.apps.get(owner, {}).get("type") == "infrastructure"
    if infra and "precedence" in pol:
        # an infrastructure application's policies have no precedence (the
        # reference's smaller shape: ACCESS-POLICY-FIELDS.md)
        raise ApiError(400, [err(E_BAD_PRECEDENCE, "precedence is not allowed on infrastructure policies")])
    if kind != "reusable" and not infra:
        taken = state.taken_precedences(owner, skip=old["id"] if old else None)
        if "precedence" in pol:
            if pol["precedence"] in taken:
                if state.unique_precedence:
                    state.inv["refused_duplicates"] += 1
                    raise precedence_error(state)
        elif old is not None and "precedence" in old["policy"]:
            pol["precedence"] = old["policy"]["precedence"]
        else:
            pol["precedence"] = max([p for p in taken if is_int(p)] + [0]) + 1
    filled = {}
    if kind != "zone":
        filled["session_duration"] = "24h"
    for k in ("approval_required", "isolation_required", "purpose_justification_required"):
        filled[k] = False
    for k in ("exclude", "require", "approval_groups"):
        filled[k] = []
    for k, v in filled.items():
        pol.setdefault(k, v)
    for k in ("id", "created_at", "updated_at", "reusable", "app_count"):
        pol.pop(k, None)   # read-only: never stored from a body
    ts = rfc3339(state.now())
    state.seq += 1
    rec = {
        "id": old["id"] if old else str(uuid.uuid4()),
        "owner": owner, "kind": kind, "policy": pol,
        "created_at": old["created_at"] if old else ts, "updated_at": ts,
        "seq": old["seq"] if old else state.seq,
    }
    state.policies[rec["id"]] = rec
    return rec


def render_policy(state, rec, precedence=None, counts=None):
    """A policy as the API returns it. Reusable ones carry reusable: true
    and app_count (and, as an app's item, that app's `precedence`); legacy
    ones reusable: false (a guess: the reference says items "carry
    reusable"; no source shows it on legacy ones)."""
    out = {"id": rec["id"]}
    out.update(rec["policy"])
    if rec["kind"] == "reusable":
        out.pop("precedence", None)
        if precedence is not None:
            out["precedence"] = precedence
        out["reusable"] = True
        out["app_count"] = state.app_count(rec["id"], counts)
    else:
        out["reusable"] = False
    out["created_at"] = rec["created_at"]
    out["updated_at"] = rec["updated_at"]
    return out


def page_params(state, query, default, maximum=1000):
    """(page, per_page) from a list query: positive integers (400
    otherwise), per_page at most `maximum` and at most the configured cap."""
    q = parse_qs(query)

    def intparam(name, dflt):
        vals = q.get(name)
        if not vals:
            return dflt
        try:
            v = int(vals[-1])
        except ValueError:
            raise ApiError(400, [err(E_BAD_PAGE, "%s must be a positive integer" % name)])
        if v < 1:
            raise ApiError(400, [err(E_BAD_PAGE, "%s must be a positive integer" % name)])
        return v

    page = intparam("page", 1)
    per_page = min(intparam("per_page", default), maximum)
    if state.per_page_cap:
        per_page = min(per_page, state.per_page_cap)
    return page, per_page, q


def paginate(state, items, query, default, repeat=False):
    """One page of `items` (already in order, rendered lazily by calling
    each) as a list envelope with result_info. `repeat` (fault) serves page
    1's data whatever page is asked, with total_pages 1000."""
    page, per_page, _ = page_params(state, query, default)
    shown = 1 if repeat else page
    chunk = [f() for f in items[(shown - 1) * per_page:shown * per_page]]
    info = {"page": page, "per_page": per_page, "count": len(chunk),
            "total_count": len(items),
            "total_pages": 1000 if repeat else int(math.ceil(len(items) / per_page))}
    return 200, envelope(chunk, info)


def apply_app_policies(state, key, items):
    """Make `items` (the `policies` of an application PUT) the whole list of
    app `key`'s policies, or raise ApiError having changed nothing. Items:
    a policy id string or {id, precedence?, account_id?} (a link to a
    reusable policy, or a reference keeping one of the app's legacy
    policies), or any other object (an inline app-scoped policy: updated
    when its id is one of the app's legacy policies, created when it has
    no id). A missing precedence is one more than the previous item's (the
    list is "in ascending order of precedence"): a guess. Legacy policies
    left out are deleted, as the API garbage-collects them. Caller holds
    the lock."""
    app = state.apps[key]
    kind = "zone" if key[0] == "zones" else "app"
    if not isinstance(items, list):
        raise ApiError(400, [err(E_BAD_FIELD, "policies must be an array (or null: no change)")])
    legacy = {pid: r for pid, r in state.policies.items() if r["owner"] == key}
    errors, plan, last = [], [], 0
    n_links = n_inline = 0
    for i, item in enumerate(items):
        where = "policies[%d]: " % i
        if isinstance(item, str) or (isinstance(item, dict) and "id" in item
                                     and set(item) <= set(LINK_KEYS)):
            link = {"id": item} if isinstance(item, str) else item
            pid = link["id"]
            if not isinstance(pid, str):
                errors.append(err(E_BAD_FIELD, where + "id must be a string"))
                continue
            pid = pid.lower()
            rec = state.policies.get(pid)
            if pid in legacy:
                what = "legacy"
            elif (rec is not None and rec["kind"] == "reusable" and key[0] == "accounts"
                  and rec["owner"][1] == key[1]):
                what = "link"
                n_links += 1
            else:
                errors.append(err(E_POLICY_NOT_FOUND, where + "policy %s not found%s" % (
                    pid, " (zone applications take no reusable policies)" if key[0] == "zones"
                    and rec is not None and rec["kind"] == "reusable" else "")))
                continue
            prec = link.get("precedence")
            body = None
        elif isinstance(item, dict):
            pid = item.get("id")
            if pid is not None and (not isinstance(pid, str) or pid.lower() not in legacy):
                errors.append(err(E_BAD_FIELD, where + "inline policy %s is not one of this "
                                  "application's policies (a reusable policy is linked with "
                                  "{id, precedence}, not sent expanded)" % (pid,)))
                continue
            pid = pid.lower() if pid else None
            body = {k: v for k, v in item.items()}
            try:
                check_policy(body, kind, where)
            except ApiError as e:
                errors.extend(e.errors)
                continue
            what = "inline"
            n_inline += 1
            prec = body.get("precedence")
        else:
            errors.append(err(E_BAD_FIELD, where + "must be a policy id, an {id, precedence} "
                              "link or a policy object"))
            continue
        if prec is None:
            prec = last + 1
        elif not is_int(prec):
            errors.append(err(E_BAD_PRECEDENCE, where + "precedence must be an integer"))
            continue
        last = max(last, prec)
        plan.append((what, pid, prec, body))
    if n_links and n_inline:
        errors.append(err(E_MIXED_POLICIES, "policies: reusable policy links and inline "
                          "policies cannot be mixed in one request"))
    if n_links and app["type"] == "infrastructure":
        errors.append(err(E_BAD_FIELD, "policies: infrastructure applications take inline "
                          "infrastructure policies only"))
    if n_inline and not app.get("legacy_ok", True):
        errors.append(err(E_BAD_FIELD, "policies: legacy (app-scoped) policies cannot be added "
                          "to newly created applications; link reusable policies"))
    ids = [pid for _, pid, _, _ in plan if pid]
    if len(set(ids)) != len(ids):
        errors.append(err(E_BAD_FIELD, "policies: a policy is listed twice"))
    if errors:
        raise ApiError(400, errors)
    precs = [p for _, _, p, _ in plan]
    if len(set(precs)) != len(precs) and state.unique_precedence:
        state.inv["refused_duplicates"] += 1
        raise precedence_error(state)
    # Everything checked: apply.
    kept = set()
    app["links"] = []
    for what, pid, prec, body in plan:
        if what == "link":
            app["links"].append([pid, prec])
        elif what == "legacy":
            legacy[pid]["policy"]["precedence"] = prec
            kept.add(pid)
        else:
            body["precedence"] = prec
            rec = store_policy_unchecked(state, key, kind, legacy.get(pid), body)
            kept.add(rec["id"])
    for pid in legacy:
        if pid not in kept:
            del state.policies[pid]


def store_policy_unchecked(state, key, kind, old, body):
    """store_policy without the precedence check (apply_app_policies checked
    the whole list at once)."""
    saved = state.unique_precedence
    state.unique_precedence = False
    try:
        # a kept sibling may still hold this precedence until the list is applied
        return store_policy(state, key, kind, old, body)
    finally:
        state.unique_precedence = saved


def render_app(state, key):
    """An application as GET returns it: its stored fields, read-only ones,
    and `policies` expanded (legacy and linked reusable ones, full objects,
    in precedence order)."""
    app = state.apps[key]
    out = {"id": app["id"]}
    out.update(app["fields"])
    out["aud"] = uuid.uuid5(uuid.NAMESPACE_URL, app_label(key)).hex * 2
    items = []
    for prec, pid, reusable in sorted(state.app_entries(key),
                                      key=lambda e: (e[0] if is_int(e[0]) else 0, e[1])):
        items.append(render_policy(state, state.policies[pid], prec if reusable else None))
    out["policies"] = items
    out["created_at"] = app["created_at"]
    out["updated_at"] = app["updated_at"]
    return out


def check_app_body(body, current_type):
    """The fields a PUT (or POST) of an application must carry for its type
    (the body's `type`, else the stored one), as the failure envelope's
    errors, one per missing field; then the fields to store."""
    app_type = body.get("type", current_type)
    if app_type not in APP_TYPES:
        raise ApiError(400, [err(E_BAD_APP, "type must be one of: " + ", ".join(sorted(APP_TYPES)))])
    missing = [f for f in APP_TYPES[app_type] if body.get(f) is None]
    if missing:
        raise ApiError(400, [err(E_BAD_APP, "%s is required for a %s application" % (f, app_type))
                             for f in missing])
    if "domain" in body and not isinstance(body["domain"], str):
        raise ApiError(400, [err(E_BAD_APP, "domain must be a string")])
    fields = {k: v for k, v in body.items() if k not in APP_READ_ONLY and k != "policies"}
    fields["type"] = app_type
    return app_type, fields


def check_group(body):
    """An Access group body: name and include required (all problems at
    once); exclude, require default to [] and is_default to false (guess)."""
    errors = []
    if not isinstance(body.get("name"), str) or body.get("name") == "":
        errors.append(err(E_BAD_FIELD, "name is required and must be a non-empty string"))
    if not isinstance(body.get("include"), list):
        errors.append(err(E_BAD_FIELD, "include is required and must be an array of rules"))
    for key in ("exclude", "require"):
        if key in body and not isinstance(body[key], list):
            errors.append(err(E_BAD_FIELD, "%s must be an array of rules" % key))
    if "is_default" in body and not isinstance(body["is_default"], bool):
        errors.append(err(E_BAD_FIELD, "is_default must be a boolean"))
    errors.extend(normalise_rules(body))
    if errors:
        raise ApiError(400, errors)
    out = {k: v for k, v in body.items() if k not in ("id", "created_at", "updated_at")}
    out.setdefault("exclude", [])
    out.setdefault("require", [])
    out.setdefault("is_default", False)
    return out


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
            st = self.server.state
            h["Ratelimit-Policy"] = '"default";q=%d;w=%d' % (st.rate_quota, st.rate_window)
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
            self.send_header("Date", self.date_time_string(self.server.state.now()))
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
        body = self.read_body()
        if body is not None:
            entry["body"] = body.decode("utf-8", errors="replace")
        with state.lock:
            entry["generation"] = gen = self.request_generation()
            state.log.append(entry)
            if len(state.log) > state.log_max:
                del state.log[:len(state.log) - state.log_max]
            stale = gen != state.generation
        if stale:
            # Sent before the last reset by a client that has hung up since:
            # the previous test's world is gone, so it changes nothing.
            entry["stale"] = True
            self.close_connection = True
            return None
        if body is None:
            return self.send_json(413, failure([err(E_TOO_LARGE, "request body too large")]),
                                  entry, None)
        if state.latency > 0:
            time.sleep(state.latency)
        cred = self.credential_key()
        remaining, left, exhausted = state.rate_take(cred)
        rate = (remaining, left)
        is_list = self.command == "GET" and self.is_collection(path)
        fault = state.take_fault(self.command, path, is_list)
        if fault is not None:
            return self.handle_fault(fault, path, query, body, entry, rate)
        if state.enforce_ratelimit and exhausted:
            return self.send_json(429, failure([err(E_RATE_LOCKOUT, (
                "Please wait and consider throttling your request speed"))]), entry,
                (0, left), {"Retry-After": str(left)})
        status, obj, _ = self.process(path, query, body)
        self.send_json(status, obj, entry, rate)

    def request_generation(self):
        """The generation this request belongs to; caller holds the lock.
        The current one, unless the client has already closed the
        connection (EOF is all that is left to read) and the request's
        last bytes reached the kernel (TCP_INFO's tcpi_last_data_recv, ms
        ago) before the last reset: then the generation of that moment. A
        live client, or a request that arrived after the reset, is always
        counted in the current generation. tcpi_last_data_recv is kept in
        jiffies: a request within a few ms of a reset may be put on either
        side of it."""
        state = self.server.state
        if len(state.gen_starts) < 2 or isinstance(self.connection, ssl.SSLSocket):
            return state.generation
        try:
            # poll first: the socket has a timeout, so a recv that finds
            # nothing would wait for it instead of failing at once
            poller = select.poll()
            poller.register(self.connection.fileno(), select.POLLIN)
            if not poller.poll(0):
                return state.generation   # open, nothing pending
            if self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b"":
                return state.generation   # more data: a pipelined request
        except (BlockingIOError, InterruptedError, ValueError):
            return state.generation
        except OSError:
            pass                          # reset by the peer: closed too
        if not hasattr(socket, "TCP_INFO"):
            return state.generation
        try:
            info = self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
            # struct tcp_info: 8 bytes of u8 fields, then u32 rto, ato,
            # snd_mss, rcv_mss, unacked, sacked, lost, retrans, fackets,
            # last_data_sent, last_ack_sent, last_data_recv (offset 52).
            ms_ago = struct.unpack_from("=I", info, 52)[0]
        except (OSError, struct.error):
            return state.generation
        return state.generation_at(time.time() - ms_ago / 1000.0)

    def credential_key(self):
        auth = self.headers.get("Authorization")
        if auth and auth.startswith("Bearer "):
            return "token:" + auth[7:]
        key = self.headers.get("X-Auth-Key")
        if key:
            return "key:" + key
        return "anonymous"

    @classmethod
    def is_collection(cls, path):
        if not path.startswith(PREFIX):
            return False
        r = cls.match_route(path[len(PREFIX):])
        return r is not None and r[0] != "make_reusable" and r[-1] is None

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
            return self.send_all(200, h, f.get("body", "this is {not json"), entry)
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
            self.send_header("Date", self.date_time_string(self.server.state.now()))
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
        None); never raises. Every change is followed by the invariant
        check (MockState.check_invariants)."""
        try:
            status, obj = self.route(path, query, body, repeat)
        except ApiError as e:
            return e.status, failure(e.errors), None
        if self.command != "GET":
            with self.server.state.lock:
                self.server.state.check_invariants("%s %s" % (self.command, path))
        return status, obj, None

    @staticmethod
    def match_route(rest):
        """(resource, scope, scope_id, ids...) for an API path, or None."""
        m = MAKE_REUSABLE_ROUTE.match(rest)
        if m:
            return ("make_reusable", "accounts", m.group(1), m.group(2), m.group(3))
        m = APP_ROUTE.match(rest)
        if m:
            return ("app_policies",) + m.groups()
        m = REUSABLE_ROUTE.match(rest)
        if m:
            return ("reusable", "accounts", m.group(1), None, m.group(2))
        m = APPS_ROUTE.match(rest)
        if m:
            return ("apps",) + m.groups()
        m = GROUPS_ROUTE.match(rest)
        if m:
            return ("groups",) + m.groups()
        return None

    ALLOWED = {
        # resource -> (methods on the collection, methods on one item)
        "app_policies": (("GET", "POST"), ("GET", "PUT", "DELETE")),
        "reusable": (("GET", "POST"), ("GET", "PUT", "DELETE")),
        "apps": (("GET", "POST"), ("GET", "PUT", "DELETE")),
        "groups": (("GET", "POST"), ("GET", "PUT", "DELETE")),
        "make_reusable": ((), ("PUT",)),
    }

    def route(self, path, query, body, repeat):
        state = self.server.state
        if not path.startswith(PREFIX + "/"):
            raise ApiError(404, [err(E_NO_ROUTE, "No route for the URI")])
        r = self.match_route(path[len(PREFIX):])
        if r is None:
            raise ApiError(404, [err(E_NO_ROUTE, "No route for the URI")])
        resource, scope, scope_id = r[0], r[1], r[2]
        item_id = r[-1]
        method = self.command
        if method not in self.ALLOWED[resource][0 if item_id is None else 1]:
            raise ApiError(405, [err(E_METHOD, "Method not allowed")])
        if not HEX32.match(scope_id):
            raise ApiError(404, [err(E_NO_ROUTE, "Could not route to %s, perhaps your object "
                                                 "identifier is invalid?" % path)])
        self.authenticate()
        scope_id = scope_id.lower()
        with state.lock:
            if resource == "apps":
                return self.route_apps(scope, scope_id, item_id, query, body, repeat)
            if resource == "groups":
                return self.route_groups(scope, scope_id, item_id, query, body, repeat)
            if resource == "reusable":
                return self.route_policies((scope, scope_id, None), "reusable", item_id,
                                           query, body, repeat)
            key = (scope, scope_id, r[3].lower())
            if key not in state.apps:
                raise ApiError(404, [err(E_APP_NOT_FOUND, "application not found")])
            if resource == "make_reusable":
                return self.make_reusable(key, item_id.lower())
            return self.route_policies(key, "zone" if scope == "zones" else "app", item_id,
                                       query, body, repeat)

    def route_policies(self, owner, kind, policy_id, query, body, repeat):
        """App-scoped (legacy) and reusable policies; caller holds the lock."""
        state = self.server.state
        method = self.command
        if policy_id is None and method == "GET":
            return self.list_policies(owner, kind, query, repeat)
        if policy_id is None:
            if kind != "reusable" and not state.apps[owner].get("legacy_ok", True):
                raise ApiError(400, [err(E_BAD_FIELD, "legacy (app-scoped) policies cannot be "
                                         "added to newly created applications; create a reusable "
                                         "policy and link it in the application's policies")])
            pol = check_policy(parse_json_object(body), kind)
            return 201, envelope(render_policy(state, store_policy(state, owner, kind, None, pol)))
        policy_id = policy_id.lower()
        rec = state.policies.get(policy_id)
        if rec is None or rec["owner"] != owner:
            link = [prec for pid, prec in state.apps[owner]["links"]
                    if pid == policy_id] if kind != "reusable" else []
            if link and method == "GET":
                return 200, envelope(render_policy(state, rec, link[0]))
            if link:
                raise ApiError(400, [err(E_POLICY_REUSABLE, (
                    "policy %s is a reusable policy linked to this application: change it with "
                    "/accounts/%s/access/policies/%s, or unlink it with the application's PUT")
                    % (policy_id, owner[1], policy_id))])
            raise ApiError(404, [err(E_POLICY_NOT_FOUND, "policy not found")])
        if method == "GET":
            return 200, envelope(render_policy(state, rec))
        if method == "PUT":
            pol = check_policy(parse_json_object(body), kind)
            return 200, envelope(render_policy(state, store_policy(state, owner, kind, rec, pol)))
        if kind == "reusable":
            n = state.app_count(rec["id"])
            if n > 0:
                raise ApiError(400, [err(E_POLICY_IN_USE, (
                    "policy %s is used by %d application%s: remove it from %s before deleting it")
                    % (rec["id"], n, "" if n == 1 else "s", "it" if n == 1 else "them"))])
        del state.policies[rec["id"]]
        return 202, envelope({"id": rec["id"]})

    def list_policies(self, owner, kind, query, repeat):
        """A reusable list (creation order) or an app's list: its legacy
        policies and its linked reusable ones, by precedence."""
        state = self.server.state
        if kind == "reusable":
            recs = sorted((r for r in state.policies.values() if r["owner"] == owner),
                          key=lambda r: r["seq"])
            counts = state.link_counts()
            items = [lambda r=r: render_policy(state, r, None, counts) for r in recs]
            return paginate(state, items, query, 100, repeat)
        entries = sorted(state.app_entries(owner),
                         key=lambda e: (e[0] if is_int(e[0]) else 0, state.policies[e[1]]["seq"]))
        items = [lambda e=e: render_policy(state, state.policies[e[1]], e[0] if e[2] else None)
                 for e in entries]
        return paginate(state, items, query, 200, repeat)

    def make_reusable(self, key, policy_id):
        """PUT .../apps/{app}/policies/{id}/make_reusable: the legacy policy
        becomes a reusable one, leaves the app's legacy list and stays
        linked at its precedence (DOCS)."""
        state = self.server.state
        rec = state.policies.get(policy_id)
        if rec is not None and rec["kind"] == "reusable":
            raise ApiError(400, [err(E_POLICY_REUSABLE, "policy %s is already reusable" % policy_id)])
        if rec is None or rec["owner"] != key:
            raise ApiError(404, [err(E_POLICY_NOT_FOUND, "policy not found")])
        prec = rec["policy"].pop("precedence", None)
        rec["owner"] = ("accounts", key[1], None)
        rec["kind"] = "reusable"
        rec["updated_at"] = rfc3339(state.now())
        state.apps[key]["links"].append([policy_id, prec])
        return 200, envelope(render_policy(state, rec))

    def route_apps(self, scope, scope_id, app_id, query, body, repeat):
        """Applications: list, create, get, PUT (the whole application),
        delete; caller holds the lock."""
        state = self.server.state
        method = self.command
        if app_id is None and method == "GET":
            keys = sorted((k for k in state.apps if k[:2] == (scope, scope_id)),
                          key=lambda k: state.apps[k]["seq"])
            return paginate(state, [lambda k=k: render_app(state, k) for k in keys],
                            query, 25, repeat)
        text = body.decode("utf-8", errors="replace")
        if app_id is None:
            data = parse_json_object(body)
            app_type, fields = check_app_body(data, None)
            new_id = str(uuid.uuid4())
            key = (scope, scope_id, new_id)
            ts = rfc3339(state.now())
            state.seq += 1
            state.apps[key] = {"id": new_id, "type": app_type, "fields": fields, "links": [],
                               "created_at": ts, "updated_at": ts, "seq": state.seq,
                               "last_put": None, "legacy_ok": False}
            if data.get("policies") is not None:
                try:
                    apply_app_policies(state, key, data["policies"])
                except ApiError:
                    del state.apps[key]
                    raise
            return 201, envelope(render_app(state, key))
        key = (scope, scope_id, app_id.lower())
        app = state.apps.get(key)
        if app is None:
            raise ApiError(404, [err(E_APP_NOT_FOUND, "application not found")])
        if method == "GET":
            return 200, envelope(render_app(state, key))
        if method == "DELETE":
            for pid in [p for p, r in state.policies.items() if r["owner"] == key]:
                del state.policies[pid]
            del state.apps[key]
            state.had_policies.discard(key)
            return 202, envelope({"id": app["id"]})
        data = parse_json_object(body)
        app_type, fields = check_app_body(data, app["type"])
        if data.get("policies") is not None:   # null or missing: no change
            apply_app_policies(state, key, data["policies"])
        app["type"], app["fields"], app["last_put"] = app_type, fields, text
        app["updated_at"] = rfc3339(state.now())
        return 200, envelope(render_app(state, key))

    def route_groups(self, scope, scope_id, group_id, query, body, repeat):
        """Access groups CRUD; caller holds the lock."""
        state = self.server.state
        method = self.command
        owner = (scope, scope_id)

        def render(g):
            out = {"id": g["id"]}
            out.update(g["group"])
            out["created_at"], out["updated_at"] = g["created_at"], g["updated_at"]
            return out

        if group_id is None and method == "GET":
            groups = sorted((g for g in state.groups.values() if g["owner"] == owner),
                            key=lambda g: g["seq"])
            _, _, q = page_params(state, query, 25)
            if q.get("name"):
                groups = [g for g in groups if g["group"]["name"] == q["name"][-1]]
            if q.get("search"):
                groups = [g for g in groups if q["search"][-1].lower() in g["group"]["name"].lower()]
            return paginate(state, [lambda g=g: render(g) for g in groups], query, 25, repeat)
        ts = rfc3339(state.now())
        if group_id is None:
            grp = check_group(parse_json_object(body))
            state.seq += 1
            g = {"id": str(uuid.uuid4()), "owner": owner, "group": grp,
                 "created_at": ts, "updated_at": ts, "seq": state.seq}
            state.groups[g["id"]] = g
            return 201, envelope(render(g))
        g = state.groups.get(group_id.lower())
        if g is None or g["owner"] != owner:
            raise ApiError(404, [err(E_GROUP_NOT_FOUND, "group not found")])
        if method == "GET":
            return 200, envelope(render(g))
        if method == "PUT":
            g["group"] = check_group(parse_json_object(body))
            g["updated_at"] = ts
            return 200, envelope(render(g))
        del state.groups[g["id"]]
        return 202, envelope({"id": g["id"]})

    # -- control API ------------------------------------------------------
    def control(self, path):
        state = self.server.state
        received = time.time()
        body = self.read_body()
        if body is None:
            return self.send_json(413, {"ok": False, "error": "body too large"}, None, None)
        try:
            data = json.loads(body.decode("utf-8")) if body.strip() else None
        except (UnicodeDecodeError, ValueError) as e:
            return self.send_json(400, {"ok": False, "error": "invalid JSON: %s" % e}, None, None)
        key = (self.command, path.rstrip("/"))
        q = parse_qs(urlsplit(self.path).query)
        try:
            if key == ("POST", "/__mock/reset"):
                state.reset(at=received)
                return self.send_json(200, {"ok": True, "generation": state.generation}, None, None)
            if key == ("POST", "/__mock/apps"):
                state.add_app(data)
                return self.send_json(201, {"ok": True}, None, None)
            if key == ("GET", "/__mock/apps"):
                with state.lock:
                    out = [self.control_app(k) for k in
                           sorted(state.apps, key=lambda k: state.apps[k]["seq"])]
                return self.send_json(200, {"apps": out}, None, None)
            if key[0] == "GET" and key[1].startswith("/__mock/apps/"):
                app_id = key[1][len("/__mock/apps/"):].lower()
                with state.lock:
                    keys = [k for k in state.apps if k[2] == app_id
                            and k[0] == q.get("scope", [k[0]])[-1]
                            and k[1] == q.get("scope_id", [k[1]])[-1].lower()]
                    if not keys:
                        raise ValueError("no application %s" % app_id)
                    return self.send_json(200, self.control_app(keys[0]), None, None)
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
                want = q.get("generation", ["current"])[-1]
                with state.lock:
                    g = state.generation if want == "current" else (
                        None if want == "all" else int(want))
                    reqs = [dict(e) for e in state.log if g is None or e.get("generation") == g]
                    return self.send_json(200, {"generation": state.generation,
                                                "requests": reqs}, None, None)
            if key == ("GET", "/__mock/stats"):
                with state.lock:
                    cur = [e for e in state.log if e.get("generation") == state.generation]
                    by_status = {}
                    for e in cur:
                        by_status[str(e["status"])] = by_status.get(str(e["status"]), 0) + 1
                    return self.send_json(200, {
                        "generation": state.generation, "requests": len(cur),
                        "by_status": by_status, "rate_limited": by_status.get("429", 0),
                        "writes": sum(1 for e in cur if e["method"] in ("POST", "PUT", "DELETE", "PATCH")),
                    }, None, None)
            if key == ("GET", "/__mock/invariants"):
                with state.lock:
                    inv = json.loads(json.dumps(state.inv))
                inv["ok"] = not inv["duplicate_precedence"] and not inv["empty_apps"]
                return self.send_json(200, inv, None, None)
            if key == ("GET", "/__mock/state"):
                with state.lock:
                    pols = []
                    for r in sorted(state.policies.values(), key=lambda r: r["seq"]):
                        p = render_policy(state, r)
                        p["_scope"], p["_scope_id"], p["_app_id"] = r["owner"]
                        p["_kind"] = r["kind"]
                        pols.append(p)
                    apps = [self.control_app(k) for k in
                            sorted(state.apps, key=lambda k: state.apps[k]["seq"])]
                    groups = []
                    for g in sorted(state.groups.values(), key=lambda g: g["seq"]):
                        item = {"id": g["id"], "_scope": g["owner"][0], "_scope_id": g["owner"][1]}
                        item.update(g["group"])
                        groups.append(item)
                return self.send_json(200, {"policies": pols, "apps": apps, "groups": groups},
                                      None, None)
            if key == ("POST", "/__mock/config"):
                self.configure(data)
                return self.send_json(200, {"ok": True}, None, None)
        except ValueError as e:
            return self.send_json(400, {"ok": False, "error": str(e)}, None, None)
        return self.send_json(404, {"ok": False, "error": "no control route %s %s"
                                    % (self.command, path)}, None, None)

    def control_app(self, key):
        """One application for the control API: where it lives, what GET
        returns, the stored fields and the raw body of the last PUT (null
        before any). Caller holds the lock."""
        state = self.server.state
        app = state.apps[key]
        return {"scope": key[0], "scope_id": key[1], "app_id": key[2], "type": app["type"],
                "app": render_app(state, key), "stored": app["fields"],
                "links": [{"id": p, "precedence": n} for p, n in app["links"]],
                "last_put": app["last_put"]}

    def configure(self, data):
        if not isinstance(data, dict):
            raise ValueError("body must be an object")
        state = self.server.state

        def count(k, v, low=0):
            if not is_int(v) or v < low:
                raise ValueError("%s must be an integer >= %d" % (k, low))
            return v

        def number(k, v):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v != v:
                raise ValueError("%s must be a number" % k)
            return float(v)

        for k, v in data.items():
            if k == "ratelimit_remaining":
                state.set_rate_remaining(count(k, v))
            elif k == "max_body_bytes":
                state.max_body = count(k, v)
            elif k == "log_max":
                with state.lock:
                    state.log_max = count(k, v)
                    del state.log[:max(0, len(state.log) - v)]
            elif k == "enforce_ratelimit":
                if not isinstance(v, bool):
                    raise ValueError("enforce_ratelimit must be a boolean")
                state.enforce_ratelimit = v
            elif k == "lockout":
                if v is False or v is None:
                    with state.lock:
                        state.rate.clear()
                        state.rate_start = state.rate_quota = RATE_QUOTA
                        state.rate_window = RATE_WINDOW
                        state.enforce_ratelimit = False
                elif isinstance(v, dict) and set(v) <= {"budget", "window"}:
                    budget = count("lockout.budget", v.get("budget", RATE_QUOTA), 1)
                    window = number("lockout.window", v.get("window", RATE_WINDOW))
                    if window <= 0:
                        raise ValueError("lockout.window must be > 0")
                    state.set_lockout(budget, window)
                else:
                    raise ValueError("lockout must be {budget = N, window = seconds} or false")
            elif k == "clock_skew":
                state.clock_skew = number(k, v)
            elif k == "latency":
                state.latency = number(k, v)
                if state.latency < 0:
                    raise ValueError("latency must be >= 0")
            elif k == "per_page_cap":
                state.per_page_cap = None if v is None or v == 0 else count(k, v, 1)
            elif k == "precedence_code":
                state.precedence_code = count(k, v, 1)
            elif k == "unique_precedence":
                if not isinstance(v, bool):
                    raise ValueError("unique_precedence must be a boolean")
                state.unique_precedence = v
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
