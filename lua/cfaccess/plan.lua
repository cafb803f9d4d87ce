--- Desired state: `client:plan(state [, opts])` and `client:export([opts])`
-- (API.md section 8), over the core's public methods.
--
-- A state names the account's reusable policies (matched to live ones by
-- name) and, for each application it lists, either its reusable policies
-- (names or ids, in precedence order) or its legacy app-scoped policies (in
-- precedence order). `plan` checks the whole state first, reads the live
-- state with the fewest requests (the reusable list at per_page 1000, one
-- GET per state app, one policy list per state app with legacy policies),
-- and diffs with `cfaccess.same`. The plan is plain data plus a
-- `__tostring`; `client:apply(plan)` (apply.lua) carries it out.
--
-- Change records (`plan.changes[i]`), all plain data:
--   { action = "create" | "update" | "delete", type = "reusable", name =, id =, body =, fields = }
--   { action = "set", type = "app", app_id =, name =, order = { names }, refs = { { id = } | { name = } },
--     expect = { ids }, attach = { names }, detach = { names }, allow_empty = bool }
--   { action = "create" | "update" | "delete", type = "policy", app_id =, name =, id =, kind =,
--     body =, from = live precedence, to = target precedence, fields = }
-- `fields` of an update: { { field = "require", old = <live value>, new = <state value> }, ... }.
-- Updates and prune deletes also carry `updated_at`, the live policy's as
-- the plan read it: apply refuses the change if the policy has changed since.
--
-- The parts: cfaccess.plan.check (the state, checked before anything is
-- read), cfaccess.plan.live (reading the live state), cfaccess.plan.diff
-- (the changes), cfaccess.plan.export; cfaccess.plan.common holds what
-- they and cfaccess.apply share. The text is cfaccess.render's.
-- @module cfaccess.plan
local common = require("cfaccess.plan.common")
local check = require("cfaccess.plan.check")
local live_state = require("cfaccess.plan.live")
local diff = require("cfaccess.plan.diff")
local export = require("cfaccess.plan.export")
local render = require("cfaccess.render")

local M = {}

local check_opts, scope_of = common.check_opts, common.scope_of

-- Kept for callers of the earlier single module (cfaccess.apply used them).
M._new_err = common.new_err
M._has_method = common.has_method
M._check_opts = common.check_opts

--- Check a state (API.md section 8); see cfaccess.plan.check.
M.check_state = check.check_state

-- A plan prints as cfaccess.render.plan writes it: one line per change,
-- "+ " create, "~ " update (its differing fields on indented lines, `old
-- -> new`, values shortened), "- " delete, "> " an app's list (its new
-- order, +name attached, -name detached); then the warnings and a summary.
local PLAN_MT = { __tostring = function(plan) return render.plan(plan) end }

--- Plan the changes that bring the live state to `state`.
-- @param client a cfaccess client
-- @tparam table state `{ policies = {...}, apps = { [app_id] = { names/ids } | { legacy = {...} } } }`
-- @tparam[opt] table opts `{ prune = false, allow_empty = false, concurrency = 4 }`
-- @return the plan (`changes`, `summary`, `warnings`; `tostring(plan)` prints it), or `nil, err`
function M.plan(client, state, opts)
  opts = check_opts(opts, { prune = "boolean", allow_empty = "boolean", concurrency = "number" }, "plan")
  local zone = scope_of(client) == "zones"
  local st, err = M.check_state(state, zone)
  if not st then return nil, err end
  local live
  live, err = live_state.read(client, st, zone, opts.concurrency or common.DEFAULT_CONCURRENCY)
  if not live then return nil, err end
  local plan
  plan, err = diff.diff(st, live, opts, zone)
  if not plan then return nil, err end
  return setmetatable(plan, PLAN_MT)
end

--- The live state as a state: `plan(export())` has no changes (see
-- cfaccess.plan.export).
-- @function export
M.export = export.export

--- Install `plan`, `apply` and `export` as methods of every client (the
-- core's client metatable, found in the registry under its name: the core
-- has no public way to add client methods).
function M.install()
  local mt = debug.getregistry()["cfaccess.client"]
  if type(mt) ~= "table" or type(mt.__index) ~= "table" then return false end
  local apply = require("cfaccess.apply")
  mt.__index.plan = M.plan
  mt.__index.export = M.export
  mt.__index.apply = apply.apply
  return true
end

return M
