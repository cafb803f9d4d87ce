-- cfaccess section-6 chunks, 6: the methods, installed into the client
-- method table (ctx.index) over the core's: batch (the core's, plus the
-- section-6 ops: rounds.lua), set_app_policies, attach_policy,
-- detach_policy, make_reusable (each a batch of one), and the guarded
-- delete_policy, update_app_policy, delete_app_policy (guards.lua).
local ctx = ...
local M = {}

local index, rounds, argtype = ctx.index, ctx.rounds, ctx.guards.argtype

-- Run one section-6 op as a method: its result, or nil, err.
local function run_one(client, op)
  local rs, err = client:batch({ op })
  if not rs then
    -- one op: its problem paths without the "ops[1]." of the batch
    for _, p in ipairs(err.problems or {}) do p.path = p.path:gsub("^ops%[1%]%.?", "") end
    if err.problems and err.problems[1] then
      local path, msg = err.problems[1].path, err.problems[1].message
      err.message = ("%s: %s%s"):format(op.op, path ~= "" and (path .. ": ") or "", msg)
    end
    return nil, err
  end
  if rs[1].ok then return rs[1].result end
  return nil, rs[1].err
end

local core_batch = index.batch

--- client:batch(ops [, opts]): the core's, plus the section-6 ops.
index.batch = function(client, ops, bopts)
  if rounds.has_special(ops) then return rounds.batch(core_batch, client, ops, bopts) end
  return core_batch(client, ops, bopts)
end

--- Set an application's whole policies list (read-modify-write of the app).
index.set_app_policies = function(client, app_id, refs, opts)
  argtype("set_app_policies", 1, app_id, "string")
  argtype("set_app_policies", 2, refs, "table")
  argtype("set_app_policies", 3, opts, "table", true)
  return run_one(client, { op = "set_app_policies", app_id = app_id, refs = refs, opts = opts })
end

-- attach_policy / detach_policy(app_id, policy_id [, opts])
local function link_method(name)
  return function(client, app_id, policy_id, opts)
    argtype(name, 1, app_id, "string")
    argtype(name, 2, policy_id, "string")
    argtype(name, 3, opts, "table", true)
    return run_one(client, { op = name, app_id = app_id, policy_id = policy_id, opts = opts })
  end
end

--- Attach a reusable policy to an application (default: after the last one).
index.attach_policy = link_method("attach_policy")
--- Detach a reusable policy from an application.
index.detach_policy = link_method("detach_policy")

--- Make an application's legacy policy reusable (it stays linked to the app).
index.make_reusable = function(client, app_id, policy_id)
  argtype("make_reusable", 1, app_id, "string")
  argtype("make_reusable", 2, policy_id, "string")
  return run_one(client, { op = "make_reusable", app_id = app_id, policy_id = policy_id })
end

ctx.guards.install(index)

return M
