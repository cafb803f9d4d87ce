--- cfaccess.cli_io: the `cfaccess` command's streams (cfaccess.cli):
-- whether each is a terminal, colour, the redaction of the environment's
-- credentials from everything written, and the progress line.
--
-- lua-term (Debian lua-term, rock `lua-term`) for isatty, rather than
-- lua-posix, because Debian 12's lua-posix (33.4) is built for Lua 5.1-5.3
-- only, while lua-term serves 5.4 (and busted already depends on it).
-- @module cfaccess.cli_io
local render = require("cfaccess.render")

local M = {}

local term_ok, term = pcall(require, "term")

--- Is `fh` a terminal? (lua-term's isatty; false when lua-term is absent,
-- so that no progress or colour is ever written into a pipe.)
function M.isatty(fh)
  if not term_ok or not term.isatty then return false end
  local ok, r = pcall(term.isatty, fh)
  return ok and r == true
end

-- The secrets of the environment (API.md section 4: they never appear in
-- any output). The core keeps them out of its errors and logs; but a server
-- at CLOUDFLARE_BASE_URL may echo the token back inside data (a policy's
-- name), which the command prints: every write goes through this.
local SECRET_VARS = { "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_API_KEY" }
local MIN_SECRET = 8   -- shorter values are not credentials the API takes

local function redacting(fh, getenv)
  local secrets = {}
  for _, name in ipairs(SECRET_VARS) do
    local v = getenv(name)
    if type(v) == "string" and #v >= MIN_SECRET then secrets[#secrets + 1] = v end
  end
  if #secrets == 0 then return fh end
  local function clean(text)
    for _, v in ipairs(secrets) do
      local i = 1
      while true do
        local a, b = text:find(v, i, true)
        if not a then break end
        text = text:sub(1, a - 1) .. "[redacted]" .. text:sub(b + 1)
        i = a + #"[redacted]"
      end
    end
    return text
  end
  return {
    write = function(self, ...)
      local parts = table.pack(...)
      for i = 1, parts.n do parts[i] = tostring(parts[i]) end
      local ok, err = fh:write(clean(table.concat(parts, "", 1, parts.n)))
      if not ok then return ok, err end
      return self
    end,
    flush = function() return fh:flush() end,
    setvbuf = function(_, ...) return fh:setvbuf(...) end,
    close = function() return fh:close() end,
  }
end

--- A context for one run: streams (every write redacted), environment,
-- terminal facts, colour. Specs run the command as a subprocess, so the
-- real ones are used there.
function M.context(opts)
  opts = opts or {}
  local ctx = {
    out = opts.out or io.stdout,
    err = opts.err or io.stderr,
    input = opts.input or io.stdin,
    getenv = opts.getenv or os.getenv,
  }
  ctx.out_tty = opts.out_tty
  if ctx.out_tty == nil then ctx.out_tty = M.isatty(ctx.out) end
  ctx.err_tty = opts.err_tty
  if ctx.err_tty == nil then ctx.err_tty = M.isatty(ctx.err) end
  ctx.in_tty = opts.in_tty
  if ctx.in_tty == nil then ctx.in_tty = M.isatty(ctx.input) end
  local no_color = ctx.getenv("NO_COLOR")
  ctx.no_color = no_color ~= nil and no_color ~= ""
  ctx.colour = ctx.out_tty and not ctx.no_color        -- colour on stdout
  ctx.err_colour = ctx.err_tty and not ctx.no_color     -- colour on stderr
  ctx.out, ctx.err = redacting(ctx.out, ctx.getenv), redacting(ctx.err, ctx.getenv)
  return ctx
end

--- A progress display for `on_progress(done, total, info)`: one line on
-- `stream` (`[####----] 12/40  0:07  waiting 42 s: rate limit`), redrawn in
-- place with a carriage return. When `enabled` is false (not a terminal,
-- or --quiet) both functions do nothing.
-- @tparam file stream e.g. `io.stderr`
-- @tparam boolean enabled
-- @return on_progress (or nil when disabled) and finish (clears the line)
function M.progress_display(stream, enabled)
  if not enabled then return nil, function() end end
  local start = os.time()
  local shown = false
  local function on_progress(done, total, info)
    local line = render.progress(done, total, os.difftime(os.time(), start), info)
    stream:write("\r", line, "\27[K")
    stream:flush()
    shown = true
  end
  local function finish()
    if shown then stream:write("\r\27[K"); stream:flush() end
  end
  return on_progress, finish
end


return M
