#!/usr/bin/env python3
"""bench/rlserver.py: a loopback model of Cloudflare's API rate limit for
`make bench-ratelimit` (bench/ratelimit.sh). Not a test mock: it models one
thing, the budget and the lockout, scaled down so that a run takes seconds.

Model (per credential: the Authorization or X-Auth-Key header value):
- a budget of BUDGET requests per fixed window of WINDOW seconds; the first
  window starts at the credential's first request (Cloudflare: 1200 per 5
  minutes per token);
- once a request would exceed the budget, that request and every later one
  get 429 with Retry-After (whole seconds, rounded up) until the lockout
  ends: the end of the current window (--lockout window, the default), or
  LOCKOUT seconds after the request that exceeded it (--lockout <seconds>,
  Cloudflare's "blocked for the next five minutes");
- every answer carries `Ratelimit: "default";r=<left>;t=<secs to reset>` and
  `Ratelimit-Policy: "default";q=<budget>;w=<window>`;
- every answer, 429s included, is sent LATENCY seconds after its request
  arrived (requests overlap: asyncio, one task per connection).
Requests are counted when they arrive. A POST to .../apps/<app>/policies
creates (201, the body echoed with a fresh id); a GET of the same path lists
what this credential created there (the client's check after an ambiguous
create). GET /__stats/<credential> returns JSON counters for that
credential: requests, created, r429, duplicates (creates whose policy name
was already created), first/last arrival.

  python3 bench/rlserver.py --budget 60 --window 15 --latency 0.08 --port-file F
writes the port it listens on (127.0.0.1) to F.
"""
import argparse
import asyncio
import json
import math
import os
import re
import time
import uuid

POLICIES = re.compile(r"^/client/v4/(accounts|zones)/[0-9a-f]{32}/access/apps/([0-9a-f-]+)/policies$")


class Budget:
    def __init__(self, budget, window, lockout):
        self.budget, self.window, self.lockout = budget, window, lockout
        self.t0 = None
        self.index = -1
        self.used = 0
        self.locked_until = 0.0
        self.stats = {"requests": 0, "created": 0, "r429": 0, "duplicates": 0,
                      "first": None, "last": None}
        self.names = set()
        self.created = {}

    def admit(self, now):
        """(allowed, remaining, reset_seconds, retry_after)."""
        if self.t0 is None:
            self.t0 = now
        idx = int((now - self.t0) // self.window)
        if idx != self.index:
            self.index, self.used = idx, 0
        window_end = self.t0 + (idx + 1) * self.window
        reset = max(1, math.ceil(window_end - now))
        if now < self.locked_until:
            return False, 0, reset, math.ceil(self.locked_until - now)
        if self.used < self.budget:
            self.used += 1
            return True, self.budget - self.used, reset, 0
        self.locked_until = window_end if self.lockout is None else now + self.lockout
        return False, 0, reset, max(1, math.ceil(self.locked_until - now))


class Server:
    def __init__(self, args):
        self.args = args
        self.budgets = {}

    def budget_of(self, cred):
        b = self.budgets.get(cred)
        if b is None:
            b = self.budgets[cred] = Budget(self.args.budget, self.args.window, self.args.lockout)
        return b

    async def handle(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                hdrs = {}
                for ln in lines[1:]:
                    if ":" in ln:
                        k, v = ln.split(":", 1)
                        hdrs[k.strip().lower()] = v.strip()
                body = b""
                n = int(hdrs.get("content-length", "0") or 0)
                if n:
                    body = await reader.readexactly(n)
                arrived = time.monotonic()
                status, extra, payload = self.answer(method, target, hdrs, body, arrived)
                delay = arrived + self.args.latency - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                out = json.dumps(payload).encode()
                resp = [f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}",
                        "Content-Type: application/json", f"Content-Length: {len(out)}",
                        "cf-ray: 8c2f3a9b1d4e5f60-SJC"] + extra
                writer.write(("\r\n".join(resp) + "\r\n\r\n").encode() + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    def answer(self, method, target, hdrs, body, now):
        path, _, _query = target.partition("?")
        if path.startswith("/__stats/"):
            b = self.budget_of(path[len("/__stats/"):])
            return 200, [], b.stats
        cred = hdrs.get("authorization") or hdrs.get("x-auth-key") or ""
        cred = cred[len("Bearer "):] if cred.startswith("Bearer ") else cred
        b = self.budget_of(cred)
        st = b.stats
        st["requests"] += 1
        st["first"] = st["first"] or now
        st["last"] = now
        ok, left, reset, retry = b.admit(now)
        extra = [f'Ratelimit: "default";r={left};t={reset}',
                 f'Ratelimit-Policy: "default";q={self.args.budget};w={self.args.window}']
        if not ok:
            st["r429"] += 1
            extra.append(f"Retry-After: {retry}")
            return 429, extra, {"success": False, "errors": [{"code": 10000, "message": "Rate limited"}],
                                "messages": [], "result": None}
        m = POLICIES.match(path)
        if m and method == "POST":
            pol = json.loads(body or b"{}")
            pol["id"] = str(uuid.uuid4())
            name = pol.get("name")
            if name in b.names:
                st["duplicates"] += 1
            b.names.add(name)
            st["created"] += 1
            b.created.setdefault(m.group(2), []).append(pol)
            return 201, extra, {"success": True, "errors": [], "messages": [], "result": pol}
        if m and method == "GET":
            items = b.created.get(m.group(2), [])
            return 200, extra, {"success": True, "errors": [], "messages": [], "result": items,
                                "result_info": {"page": 1, "per_page": max(1, len(items)), "count": len(items),
                                                "total_count": len(items), "total_pages": 1}}
        return 404, extra, {"success": False, "errors": [{"code": 7003, "message": "No route"}],
                            "messages": [], "result": None}


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=60)
    ap.add_argument("--window", type=float, default=15.0)
    ap.add_argument("--latency", type=float, default=0.08)
    ap.add_argument("--lockout", default="window")
    ap.add_argument("--port-file", required=True)
    args = ap.parse_args()
    args.lockout = None if args.lockout == "window" else float(args.lockout)
    srv = Server(args)
    server = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.replace(args.port_file + ".tmp", args.port_file)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
