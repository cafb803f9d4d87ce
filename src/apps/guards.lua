-- cfaccess section-6 chunks, 4: the safety guards on the core's methods.
--
-- * `delete_policy(id [, { force = true }])` of a reusable policy still
--   attached (`app_count > 0`) is a `conflict` naming the count.
-- * `update_app_policy` / `delete_app_policy` on a policy the app's list
--   marks reusable are `usage` errors pointing at `update_policy` /
--   `detach_policy`.
-- As batch ops (specs like lists.lua's: check, reads, write) and as
-- methods (M.install). Whatever the core checks of these ops (ids, scope,
-- the body and its kind) is asked of the core, never restated.
local ctx = ...
local M = {}

local check = ctx.check
local err = check.err

-- Reads of whole lists: the most a page holds (the registry's per_page
-- maximum; the core pages through the rest).
local READ_PER_PAGE = ctx.per_page_max

local UPDATE_INSTEAD = "change it with update_policy (it is the same policy for every app)"
local DELETE_INSTEAD = "take it off this app with detach_policy (delete_policy deletes it, once no app uses it)"

-- op without the fields in drop: the core op once the guard is passed.
local function core_op(op, drop)
  local c = {}
  for k, v in pairs(op) do if not drop[k] then c[k] = v end end
  return c
end

-- The item of a listed policy_id (ids compared as the API does, any case).
local function listed(list, policy_id)
  for _, p in ipairs(list or {}) do
    if type(p) == "table" and type(p.id) == "string" and p.id:lower() == policy_id:lower() then return p end
  end
end

local function reusable_err(call, app_id, policy_id, instead)
  return err("usage", ("%s: policy %s is a reusable policy linked to app %s: %s")
    :format(call, policy_id, app_id, instead), { app_id = app_id, policy_id = policy_id })
end

local function in_use_err(policy_id, n)
  return err("conflict", ("delete_policy: reusable policy %s is used by %d application%s: detach it "
    .. "first (detach_policy), or pass { force = true } to send the delete anyway"):format(policy_id, n,
    n == 1 and "" or "s"), { policy_id = policy_id, app_count = n })
end

-- ---- batch ops ----------------------------------------------------------------

local OPS = {}
M.OPS = OPS

local function read_app_list(op)
  return { { op = "list_app_policies", app_id = op.app_id, per_page = READ_PER_PAGE } }
end

local function guard_app_policy(call, instead)
  return function(_, op, got)
    local p = listed(got[1], op.policy_id)
    if p and p.reusable == true then return { err = reusable_err(call, op.app_id, op.policy_id, instead) } end
    return { batch = core_op(op, {}) }
  end
end

OPS.update_app_policy = {
  check = function(ck, op, at) ck:core(at, op) end,   -- the core checks it all
  reads = read_app_list,
  write = guard_app_policy("update_app_policy", UPDATE_INSTEAD),
}
OPS.delete_app_policy = {
  check = OPS.update_app_policy.check,
  reads = read_app_list,
  write = guard_app_policy("delete_app_policy", DELETE_INSTEAD),
}

local FORCE = { force = "boolean" }

OPS.delete_policy = {
  check = function(ck, op, at)
    ck:core(at, core_op(op, { opts = true }))
    ck:options(at, ".opts", FORCE, op.opts)
  end,
  reads = function(op)
    if op.opts and op.opts.force then return {} end
    return { { op = "list_policies", per_page = READ_PER_PAGE } }
  end,
  write = function(_, op, got)
    local p = got[1] and listed(got[1], op.policy_id)
    local n = p and math.tointeger(p.app_count)
    if n and n > 0 then return { err = in_use_err(op.policy_id, n) } end
    return { batch = core_op(op, { opts = true }) }
  end,
}

-- ---- methods ------------------------------------------------------------------

local function argtype(fname, n, v, want, optional)
  if (optional and v == nil) or type(v) == want then return end
  error(("bad argument #%d to '%s' (%s expected, got %s)"):format(n, fname, want, type(v)), 3)
end
M.argtype = argtype

-- Does the core take op (nothing sent)? If not, the core's own method
-- says why.
local function takes(client, op) return check.core_takes(client, { op }) end

--- Install the guarded delete_policy, update_app_policy and
-- delete_app_policy into the method table index (over the core's).
function M.install(index)
  local core_delete_policy, core_update_ap, core_delete_ap =
    index.delete_policy, index.update_app_policy, index.delete_app_policy
  local get_policy, get_app_policy = index.get_policy, index.get_app_policy

  -- the app's own view of the policy: marked reusable?
  local function app_guard(client, call, app_id, policy_id, instead)
    if not takes(client, { op = "get_app_policy", app_id = app_id, policy_id = policy_id }) then return true end
    local p, e = get_app_policy(client, app_id, policy_id)
    if not p then return nil, e end
    if p.reusable == true then return nil, reusable_err(call, app_id, policy_id, instead) end
    return true
  end

  --- delete_policy(id [, { force = true }]): refused while apps use it.
  index.delete_policy = function(client, policy_id, opts)
    argtype("delete_policy", 1, policy_id, "string")
    argtype("delete_policy", 2, opts, "table", true)
    local msg = check.options_message(FORCE, opts)
    if msg then return nil, err("usage", "delete_policy: opts: " .. msg) end
    if (opts and opts.force) or not takes(client, { op = "delete_policy", policy_id = policy_id }) then
      return core_delete_policy(client, policy_id)
    end
    local p, e = get_policy(client, policy_id)
    if not p then return nil, e end
    local n = math.tointeger(p.app_count)
    if n and n > 0 then return nil, in_use_err(policy_id, n) end
    return core_delete_policy(client, policy_id)
  end

  --- update_app_policy: refused on a reusable policy the app links.
  index.update_app_policy = function(client, app_id, policy_id, policy, opts)
    argtype("update_app_policy", 1, app_id, "string")
    argtype("update_app_policy", 2, policy_id, "string")
    argtype("update_app_policy", 3, policy, "table")
    argtype("update_app_policy", 4, opts, "table", true)
    -- the body and its kind are checked first, by the core with the
    -- method's options (nothing is read for a bad one: the core's method
    -- refuses it, nothing sent; bad options raise there)
    local ran, valid = pcall(ctx.check_body, client, "update_app_policy", policy, opts)
    if not (ran and valid) then return core_update_ap(client, app_id, policy_id, policy, opts) end
    local ok, e = app_guard(client, "update_app_policy", app_id, policy_id, UPDATE_INSTEAD)
    if not ok then return nil, e end
    return core_update_ap(client, app_id, policy_id, policy, opts)
  end

  --- delete_app_policy: refused on a reusable policy the app links.
  index.delete_app_policy = function(client, app_id, policy_id)
    argtype("delete_app_policy", 1, app_id, "string")
    argtype("delete_app_policy", 2, policy_id, "string")
    local ok, e = app_guard(client, "delete_app_policy", app_id, policy_id, DELETE_INSTEAD)
    if not ok then return nil, e end
    return core_delete_ap(client, app_id, policy_id)
  end
end

return M
