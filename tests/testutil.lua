--- Helpers shared by the specs: the ids, tokens and policies they use
-- (one copy here, not one per spec), and deep equality.
local M = {}

--- The account every client spec talks to (32 hex).
M.ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
--- A zone id (32 hex).
M.ZONE = "0123456789abcdef0123456789abcdef"
--- The application the specs register with the mock (a UUID).
M.APP = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
--- Two more applications, for specs that need several.
M.APP2 = "0b1c2d3e-4f50-4617-8283-94a5b6c7d8e9"
M.APP3 = "9e8d7c6b-5a49-4837-a625-140f0e1d2c3b"
--- A UUID the mock knows nothing about (or an infrastructure app, where a
-- spec registers it as one).
M.OTHER = "11111111-2222-4333-8444-555555555555"
--- A UUID for ids inside rules (the same as APP: the shape is what counts).
M.UUID = M.APP
--- An identity provider id.
M.IDP = "ea85612a-29c8-46c2-bacb-669d65136971"

--- A token for the spec called `name`, distinct per spec so that a leak
-- names the spec it came from: `"t0k3n-<name>-spec-S3CRET"`.
function M.token(name)
  return "t0k3n-" .. name .. "-spec-S3CRET"
end

--- Deep equality in which numbers compare by value (lua-cjson 2.1.0
-- decodes every number as a float, so 5 must equal 5.0).
-- Returns true, or false and the path of the first difference.
function M.deep_equal(a, b, path)
  path = path or "$"
  if type(a) ~= type(b) then return false, path .. ": " .. type(a) .. " vs " .. type(b) end
  if type(a) ~= "table" then
    if a == b then return true end
    return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b)
  end
  for k, v in pairs(a) do
    local ok, where = M.deep_equal(v, b[k], path .. "." .. tostring(k))
    if not ok then return false, where end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "." .. tostring(k) .. ": missing on the left" end
  end
  return true
end

--- A valid minimal policy with `extra` merged in (a false value removes
-- that field), for specs that vary one field at a time.
function M.policy(extra)
  local p = { name = "p", decision = "allow", include = { { everyone = {} } } }
  for k, v in pairs(extra or {}) do
    if v == false then p[k] = nil else p[k] = v end
  end
  return p
end

--- A valid policy named `name` (one email include), with `extra` fields
-- merged in: what the client specs create against the mock.
function M.named_policy(name, extra)
  local p = { name = name, decision = "allow",
              include = { { email = { email = "alice@example.com" } } } }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

--- Policy number `i` of a stream of valid policies that use every list
-- and several rule types (what the resource spec encodes by the thousand).
function M.busy_policy(i)
  return { name = "resource " .. i, decision = "allow", precedence = i % 1000 + 1,
           session_duration = "24h",
           include = { { email = { email = "u" .. i % 97 .. "@example.com" } },
                       { ip = { ip = "10." .. i % 256 .. ".0.0/16" } } },
           exclude = { { geo = { country_code = "US" } } },
           require = { { auth_method = { auth_method = "mfa" } } } }
end

--- A valid policy named `name` whose only include is everyone (what the
-- batch and pacing specs send in bulk).
function M.everyone_policy(name)
  return { name = name, decision = "allow", include = { { everyone = {} } } }
end

--- `n` batch ops creating policies `prefix .. i` on `app` (default APP),
-- each built by `make` (default `named_policy`).
function M.creates(n, prefix, app, make)
  make = make or M.named_policy
  local ops = {}
  for i = 1, n do
    ops[i] = { op = "create_app_policy", app_id = app or M.APP, policy = make(prefix .. i) }
  end
  return ops
end

--- Plan `state` on client `c` and apply it, asserting the apply failed
-- nothing; returns the plan and the report.
function M.converge(c, state, opts)
  local plan = assert(c:plan(state, opts))
  local report, err = c:apply(plan)
  assert(err == nil, err and tostring(err))
  assert(report.failed == 0, "failed changes: " .. tostring(report.failed))
  return plan, report
end

return M
