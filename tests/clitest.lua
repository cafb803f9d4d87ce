--- Helpers of the command's specs (cli_spec, cli_tty_spec,
-- cli_install_spec): run `cfaccess` as a subprocess in a scratch directory
-- with only the environment a test gives it, and compare its exit status,
-- stdout and stderr.
local mockctl = require("mockctl")
local assert = require("luassert")

local M = {}

M.ROOT = os.getenv("CFACCESS_TEST_ROOT") or "."
M.LUA = os.getenv("LUA") or "lua5.4"
M.O = os.getenv("O") or "."
M.q = mockctl.shell_quote
M.read_file = mockctl.read_file

M.ACCT = "0123456789abcdef0123456789abcdef"
M.ZONE = "fedcba9876543210fedcba9876543210"
M.APP = "3f2d1c7e-8a9b-4c5d-9e0f-1a2b3c4d5e6f"

--- Every variable the command reads: unset unless a test sets it.
M.CF_VARS = { "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_API_KEY", "CLOUDFLARE_EMAIL",
  "CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_ZONE_ID", "CLOUDFLARE_BASE_URL", "NO_COLOR" }

--- Files the specs validate: a valid policy, a list with three problems,
-- and JSON with a syntax error at 4:33.
M.GOOD = '{"name":"staff","decision":"allow","include":[{"email_domain":{"domain":"example.com"}}]}\n'
M.BAD_LIST = '[{"name":"a","decision":"allow","include":[{"email":{"email":5}}],"sesion_duration":"1h"},'
  .. '{"name":"b","decision":"allo","include":[{"everyone":{}}]}]\n'
M.BROKEN = '{\n  "name": "x",\n  "include": [\n    {"email": {"email": "a@x"}},,\n  ]\n}\n'

local q, read_file = M.q, M.read_file

--- The result of a run as text, for assertion messages.
function M.show(r)
  return ("exit %s %s\n--- stdout\n%s--- stderr\n%s"):format(r.how, tostring(r.code), r.out, r.err)
end

--- Asserts a run's exit code, and its stdout and stderr where given.
function M.expect(r, code, out, err)
  assert.are.equal(code, r.code, M.show(r))
  if out then assert.are.equal(out, r.out, M.show(r)) end
  if err then assert.are.equal(err, r.err, M.show(r)) end
end

--- A spec's own scratch directory and token. `t.setup`/`t.teardown` make
-- and remove the directory (give them to busted's setup/teardown);
-- `t.path(name)`, `t.write(name, text)` work in it; `t.run(args, opts)`
-- runs the command there and returns `{ code, out, err }`; `t.env(mock,
-- extra)` is the environment of a run against `mock`; `t.no_token(r)`
-- asserts the token appears in neither stream.
function M.new()
  local t = { token = "cli-spec-token-" .. string.format("%08x", math.random(0, 0x7fffffff)) }
  local dir

  function t.setup()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. q(dir)))
  end
  function t.teardown()
    if dir then os.execute("rm -rf " .. q(dir)) end
  end
  function t.dir() return dir end
  function t.path(name) return dir .. "/" .. name end
  function t.write(name, text)
    local f = assert(io.open(t.path(name), "wb"))
    f:write(text)
    f:close()
    return t.path(name)
  end

  -- opts: cwd, env (name -> value), unset (more names), stdin (text),
  -- command (the script to run; bin/cfaccess by default), exec (the
  -- command is an executable of its own, e.g. LuaRocks' wrapper).
  function t.run(args, opts)
    opts = opts or {}
    local words = { "cd", q(opts.cwd or dir), "&&", "env" }
    for _, v in ipairs(M.CF_VARS) do words[#words + 1] = "-u " .. v end
    for _, v in ipairs(opts.unset or {}) do words[#words + 1] = "-u " .. v end
    for k, v in pairs(opts.env or {}) do words[#words + 1] = q(k .. "=" .. v) end
    words[#words + 1] = "NO_PROXY=127.0.0.1,localhost timeout 120"
    if not opts.exec then words[#words + 1] = q(M.LUA) end
    words[#words + 1] = q(opts.command or (M.ROOT .. "/bin/cfaccess"))
    for _, a in ipairs(args) do words[#words + 1] = q(a) end
    local out, errf = os.tmpname(), os.tmpname()
    local input = "/dev/null"
    if opts.stdin then input = t.write("stdin.txt", opts.stdin) end
    words[#words + 1] = "<" .. q(input) .. " >" .. q(out) .. " 2>" .. q(errf)
    local _, how, code = os.execute(table.concat(words, " "))
    local r = { how = how, code = code, out = read_file(out) or "", err = read_file(errf) or "" }
    os.remove(out)
    os.remove(errf)
    return r
  end

  -- extra: more variables; a false value unsets one of the defaults
  function t.env(mock, extra)
    local e = { CLOUDFLARE_API_TOKEN = t.token, CLOUDFLARE_ACCOUNT_ID = M.ACCT, CLOUDFLARE_BASE_URL = mock.base_url }
    for k, v in pairs(extra or {}) do
      if v == false then e[k] = nil else e[k] = v end
    end
    return e
  end

  function t.no_token(r)
    assert.is_falsy(r.out:find(t.token, 1, true), "token on stdout")
    assert.is_falsy(r.err:find(t.token, 1, true), "token on stderr")
  end

  return t
end

return M
