-- cfaccess section-6 chunks, 1: errors, and what the core checks.
--
-- The chunks of src/apps/ (compiled into the core as src/apps_lua.h by
-- `make`, run by src/apps.c when the core opens, in the Makefile's
-- APPS_LUA order) add the methods and batch ops of API.md section 6 to
-- every client, however the core was loaded (require "cfaccess",
-- require "cfaccess.core", luaL_requiref). Each chunk is called with `ctx`:
-- the client method table (ctx.index), the error metatable, the JSON null,
-- the core's check-only entry points (ctx.check_ops: client:batch's checks,
-- nothing sent; ctx.can_send: the scope of a raw action; ctx.check_body:
-- a method's body and kind check; ctx.invalid: the core's `invalid` error;
-- ctx.per_page_max: the registry's largest page) and the modules of the
-- chunks before it.
--
-- Whatever the registry knows (op names and fields, id formats, scopes,
-- body kinds, list options) is asked of the core here: a section-6 field
-- that is an id is checked as the same field of a core op (the app_id of
-- get_app, the policy_id of get_app_policy), with the core's message.
local ctx = ...
local M = {}

local ERR_MT = ctx.ERR_MT

--- An error (the core's metatable): kind, message and extra fields.
function M.err(kind, message, extra)
  local e = { kind = kind, message = message }
  for k, v in pairs(extra or {}) do e[k] = v end
  return setmetatable(e, ERR_MT)
end

--- The `invalid` error of problems ({ path =, message = }, at least one),
-- its message written by the core.
function M.invalid(what, problems) return ctx.invalid(what, problems) end

--- The op index of a problem path "ops[i]...", or nil.
function M.op_index(path) return tonumber(path:match("^ops%[(%d+)%]")) end

--- Problems sorted by op index, in their order within one op.
function M.sort(problems)
  local order = {}
  for j, p in ipairs(problems) do order[p] = j end
  table.sort(problems, function(a, b)
    local x, y = M.op_index(a.path) or 0, M.op_index(b.path) or 0
    if x ~= y then return x < y end
    return order[a] < order[b]
  end)
  return problems
end

-- ---- a checker: problems found here, and core checks to ask for -------------

local Checker = {}
Checker.__index = Checker

--- A checker for ops of client: problems found in Lua and checks asked of
-- the core, answered together by :problems().
function M.checker(client)
  return setmetatable({ client = client, found = {}, checks = {} }, Checker)
end

--- A problem at "ops[at]<sub>".
function Checker:add(at, sub, message)
  self.found[#self.found + 1] = { path = ("ops[%d]%s"):format(at, sub), message = message }
end

--- The core op `op` checked as ops[at]: fields = nil keeps every problem
-- (paths as they are); else only those of the fields named, each moved to
-- its sub-path ({ policy_id = ".refs[2]" }).
function Checker:core(at, op, fields)
  self.checks[#self.checks + 1] = { at = at, op = op, fields = fields }
end

--- The value v at "ops[at]<sub>" must be an id like the field `field` of
-- the core ("app_id": an application's; "policy_id": a policy's).
function Checker:id(at, sub, field, v)
  local like = field == "app_id" and { op = "get_app", app_id = v }
    or { op = "get_app_policy", policy_id = v }
  self:core(at, like, { [field] = sub })
end

-- The core's problems for checks, at the paths the checks name.
local function core_problems(client, checks)
  if #checks == 0 then return {} end
  local ops = {}
  for j, c in ipairs(checks) do ops[j] = c.op end
  local ok, err = ctx.check_ops(client, ops)
  if ok then return {} end
  local out = {}
  for _, p in ipairs(err.problems or {}) do
    local k, field, rest = p.path:match("^ops%[(%d+)%]%.?([%w_]*)(.*)$")
    local c = k and checks[tonumber(k)]
    local sub
    if c and c.fields == nil then sub = field ~= "" and "." .. field or ""
    elseif c then sub = c.fields[field] end
    if sub then out[#out + 1] = { path = ("ops[%d]%s%s"):format(c.at, sub, rest), message = p.message } end
  end
  return out
end

--- Every problem: those found here, then the core's; sorted by op.
function Checker:problems()
  local out = {}
  for _, p in ipairs(self.found) do out[#out + 1] = p end
  for _, p in ipairs(core_problems(self.client, self.checks)) do out[#out + 1] = p end
  self.found, self.checks = out, {}
  return M.sort(out)
end

--- Does the core take every op of ops as a batch op? (Nothing is sent.)
function M.core_takes(client, ops)
  return ctx.check_ops(client, ops) == true
end

-- ---- option tables ----------------------------------------------------------------

-- The message of an option value x against want ("boolean", "ids",
-- "precedence"), or nil.
local function option_message(k, want, x)
  if want == "ids" then
    if type(x) ~= "table" then return k .. ": expected a list of policy ids" end
  elseif want == "precedence" then
    if not math.tointeger(x) or x < 1 then return k .. ": expected an integer >= 1" end
  elseif type(x) ~= want then
    return ("%s: expected a %s, got %s"):format(k, want, type(x))
  end
end

--- The first problem of an options table v against allowed (name ->
-- "boolean" | "ids" | "precedence"), or nil; ids are left to :options.
function M.options_message(allowed, v)
  if v ~= nil and type(v) ~= "table" then return "expected a table, got " .. type(v) end
  for k, x in pairs(v or {}) do
    local want = allowed[k]
    if not want then return ("unknown option %s"):format(tostring(k)) end
    local msg = option_message(k, want, x)
    if msg then return msg end
  end
end

--- The options table v at "ops[at]<sub>" against allowed; policy ids
-- (want "ids") are asked of the core.
function Checker:options(at, sub, allowed, v)
  local msg = M.options_message(allowed, v)
  if msg then return self:add(at, sub, msg) end
  for k, x in pairs(v or {}) do
    if allowed[k] == "ids" then
      for j, id in ipairs(x) do self:id(at, ("%s.%s[%d]"):format(sub, k, j), "policy_id", id) end
    end
  end
end

return M
