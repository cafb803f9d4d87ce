--- Validating what a state file gives (a state, a list of policies or one
-- policy): every problem and warning with its path from the file's top.
-- The one checker of states: `cfaccess validate` runs it offline and
-- `client:plan` (cfaccess.plan.check) before it reads anything, with the
-- client's scope (`opts.zone`).
-- @module cfaccess.state.check
local core = require("cfaccess.core")
local common = require("cfaccess.state.common")

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local format = string.format
local mkerr, is_list, keypath, sorted_keys = common.mkerr, common.is_list, common.keypath, common.sorted_keys
local NOT_A_LIST, LEGACY_KINDS = common.NOT_A_LIST, common.LEGACY_KINDS

local M = {}

local STATE_KEYS = { policies = true, apps = true }

--- What a file's table is: `"state"` (it has `policies` or `apps`),
-- `"list"` (a non-empty list of policies) or `"policy"`.
function M.shape(t)
  if type(t) ~= "table" then return nil end
  if t.policies ~= nil or t.apps ~= nil then return "state" end
  if t[1] ~= nil and is_list(t) then return "list" end
  return "policy"
end

local function is_uuid(s)
  local h4 = "%x%x%x%x"
  return type(s) == "string" and s:match("^" .. h4 .. h4 .. "%-" .. h4 .. "%-" .. h4 .. "%-" .. h4 .. "%-"
    .. h4 .. h4 .. h4 .. "$") ~= nil
end
local function is_app_id(s)
  return is_uuid(s) or (type(s) == "string" and #s == 32 and s:match("^%x+$") ~= nil)
end

-- The path of a problem or warning at `path` (from cfaccess.validate) of
-- the policy at `prefix`.
local function under(prefix, path)
  path = path or ""
  if path == "" then return prefix end
  if path:sub(1, 1) == "[" or prefix == "" then return prefix .. path end
  return prefix .. "." .. path
end

-- Validate one policy as kind; problems and warnings get `prefix`.
local function check_policy(p, kind, prefix, opts, problems, warnings)
  if type(p) ~= "table" then
    problems[#problems + 1] = { path = prefix, message = "expected a policy (a table), got " .. type(p) }
    return
  end
  local ok, err, warns = core.validate(p, { kind = kind, legacy = opts.legacy, allow_unknown = opts.allow_unknown })
  if not ok then
    for _, pr in ipairs(err.problems or { { path = "", message = err.message } }) do
      problems[#problems + 1] = { path = under(prefix, pr.path), message = pr.message }
    end
  end
  for _, w in ipairs(warns or {}) do
    warnings[#warnings + 1] = { path = under(prefix, w.path), message = w.message }
  end
end

-- Names used twice in a list of policies: a problem at the second use.
local function unique_names(list, prefix, problems)
  local seen = {}
  for i, p in ipairs(list) do
    local name = type(p) == "table" and p.name
    if type(name) == "string" then
      if seen[name] then
        problems[#problems + 1] = { path = format("%s[%d].name", prefix, i),
          message = format("%q is used twice (also %s[%d].name); names must be unique in a state",
            name, prefix, seen[name]) }
      else
        seen[name] = i
      end
    end
  end
  return seen
end

local function describe(v)
  if type(v) == "string" then return format("%q", v) end
  return type(v)
end

-- An app given its legacy policies: `{ legacy = {...} [, kind =] }` at `at`.
local function check_legacy_app(entry, at, opts, problems, warnings)
  local function add(path, message) problems[#problems + 1] = { path = path, message = message } end
  for k in pairs(entry) do
    if k ~= "legacy" and k ~= "kind" then
      add(at .. keypath(k), "unexpected next to legacy (an application has either a list of reusable "
        .. "policies or legacy policies)")
    end
  end
  local kind = opts.legacy_kind or (opts.zone and "zone") or "app"
  if entry.kind ~= nil then
    if not LEGACY_KINDS[entry.kind] then
      add(at .. ".kind", "expected \"app\", \"zone\" or \"infrastructure\", got " .. describe(entry.kind))
    else
      kind = entry.kind
    end
  end
  if not is_list(entry.legacy) then
    add(at .. ".legacy", "expected a list of application policies")
    return
  end
  for i, p in ipairs(entry.legacy) do
    local pp = format("%s.legacy[%d]", at, i)
    check_policy(p, kind, pp, opts, problems, warnings)
    if type(p) == "table" and p.precedence ~= nil then
      add(pp .. ".precedence", "is set by the list order (leave it out)")
    end
  end
  unique_names(entry.legacy, at .. ".legacy", problems)
end

-- An app given its reusable policies (a list of names or ids) at `at`;
-- `names`: the state's policies by name (nil for a state without
-- `policies`, whose lists name live policies: plan looks them up).
local function check_list_app(entry, at, names, opts, problems)
  local function add(path, message) problems[#problems + 1] = { path = path, message = message } end
  if not is_list(entry) then return add(at, NOT_A_LIST) end
  if opts.zone then return add(at, "a zone client's apps take legacy policies only ({ legacy = {...} })") end
  local seen = {}
  for i, ref in ipairs(entry) do
    local p = format("%s[%d]", at, i)
    if type(ref) ~= "string" or ref == "" then
      add(p, "expected a policy name or id, got " .. (ref == "" and "an empty string" or type(ref)))
    elseif names and not names[ref] and not is_uuid(ref) then
      add(p, format("%q is not a policy of this state (nor a policy id)", ref))
    elseif seen[ref] then
      add(p, format("%q is listed twice (also %s[%d])", ref, at, seen[ref]))
    end
    if type(ref) == "string" then seen[ref] = seen[ref] or i end
  end
end

local function check_state(s, opts, problems, warnings)
  local function add(path, message) problems[#problems + 1] = { path = path, message = message } end
  for _, k in ipairs(sorted_keys(s)) do
    if not STATE_KEYS[k] then
      add(tostring(k):match("^[%a_][%w_]*$") and tostring(k) or keypath(k),
        "unknown field (a state has policies and apps)")
    end
  end
  local names
  if s.policies ~= nil then
    if not is_list(s.policies) then
      add("policies", "expected a list of reusable policies")
    else
      if opts.zone and #s.policies > 0 then
        add("policies", "a zone client has no reusable policies (give each app its legacy policies)")
      end
      for i, p in ipairs(s.policies) do
        check_policy(p, "reusable", format("policies[%d]", i), opts, problems, warnings)
      end
      names = unique_names(s.policies, "policies", problems)
    end
  end
  if s.apps == nil then return end
  if type(s.apps) ~= "table" or (s.apps[1] ~= nil) then
    return add("apps", "expected a table of applications by id")
  end
  for _, id in ipairs(sorted_keys(s.apps)) do
    -- an app id is always shown quoted (`apps["0b1c..."]`, `apps["abc..."]`), as plan's paths are
    local entry, at = s.apps[id], "apps" .. (type(id) == "string" and format("[%q]", id) or keypath(id))
    if not is_app_id(id) then add(at, "an application id is a UUID (or 32 hex characters)") end
    if type(entry) ~= "table" then
      add(at, NOT_A_LIST .. ", got " .. type(entry))
    elseif entry.legacy ~= nil then
      check_legacy_app(entry, at, opts, problems, warnings)
    else
      check_list_app(entry, at, names, opts, problems)
    end
  end
end

--- Every problem and warning of `s` taken as a state (whatever its shape:
-- `{}` is an empty state), as `problems` gives them for a state.
-- @tparam table s
-- @tparam[opt] table opts as for `problems`, and `zone` (a zone client's
-- state: no reusable policies, apps with legacy policies only, `"zone"`
-- their default kind)
function M.state_problems(s, opts)
  local problems, warnings = {}, {}
  check_state(s, opts or {}, problems, warnings)
  return problems, warnings
end

--- Every problem (and warning) of a state, a policy or a list of policies,
-- with paths from the file's top: `policies[2].include[1]...` for a state,
-- `[2].include[1]...` for a list, `include[1]...` for a policy.
-- @tparam table value what `load` returned
-- @tparam[opt] table opts `kind` (for a policy or a list; default `"app"`;
-- a state's policies are `"reusable"` and its legacy ones `legacy_kind` or
-- `"app"`), `legacy`, `allow_unknown` (as for `cfaccess.validate`)
-- @treturn table problems, a list of `{ path =, message = }` (empty when valid)
-- @treturn table warnings, the same shape
-- @treturn string the shape: `"state"`, `"list"` or `"policy"`
function M.problems(value, opts)
  opts = opts or {}
  local problems, warnings = {}, {}
  local shape = M.shape(value)
  if shape == "state" then
    check_state(value, opts, problems, warnings)
  elseif shape == "list" then
    for i, p in ipairs(value) do check_policy(p, opts.kind or "app", format("[%d]", i), opts, problems, warnings) end
  elseif shape == "policy" then
    check_policy(value, opts.kind or "app", "", opts, problems, warnings)
  else
    problems[1] = { path = "", message = "expected a table, got " .. type(value) }
  end
  return problems, warnings, shape
end

--- Validate a state as `cfaccess.validate` does a policy.
-- @tparam table state
-- @tparam[opt] table opts as for `problems`
-- @return `true, nil, warnings` or `nil, err` (`err.kind == "invalid"`, `err.problems`), warnings
function M.validate(state, opts)
  local problems, warnings = M.problems(state, opts)
  local warns = #warnings > 0 and warnings or nil
  if #problems == 0 then return true, nil, warns end
  local first = problems[1]
  local msg = "invalid state: " .. (first.path ~= "" and (first.path .. ": ") or "") .. first.message
  if #problems > 1 then
    msg = msg .. format(" (and %d more problem%s)", #problems - 1, #problems > 2 and "s" or "")
  end
  return nil, mkerr("invalid", msg, problems), warns
end

return M
