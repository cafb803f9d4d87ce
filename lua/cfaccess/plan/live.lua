--- The live state `client:plan` and `client:export` compare with, read
-- with the fewest requests: the reusable list at per_page 1000, one GET per
-- state app (where the client has `get_app`), one policy list per state app
-- with legacy policies (or per app, without `get_app`), all through one
-- `client:batch`.
-- @module cfaccess.plan.live
local common = require("cfaccess.plan.common")

local M = {}

local num, has_method = common.num, common.has_method
local READ_PER_PAGE = 1000

-- Run read ops through one batch; results in op order, or nil, err (the
-- first failure, its message prefixed with what was read).
local function read_all(client, ops, concurrency)
  if #ops == 0 then return {} end
  local results, err = client:batch(ops, { concurrency = concurrency })
  if not results then return nil, err end
  local out = {}
  for i, r in ipairs(results) do
    if not r.ok then
      local e = r.err
      local where = ops[i].op .. (ops[i].app_id and (" " .. ops[i].app_id) or "")
      if type(e) == "table" and type(e.message) == "string" and not e.message:find(where, 1, true) then
        e.message = where .. ": " .. e.message
      end
      return nil, e
    end
    out[i] = r.result
  end
  return out
end

local function by_precedence(items)
  local sorted = {}
  for i, p in ipairs(items) do sorted[i] = { p = p, i = i } end
  table.sort(sorted, function(a, b)
    local pa, pb = num(a.p.precedence) or math.huge, num(b.p.precedence) or math.huge
    if pa ~= pb then return pa < pb end
    return a.i < b.i
  end)
  for i, s in ipairs(sorted) do sorted[i] = s.p end
  return sorted
end

--- A list of policies in precedence order (those without one last, in
-- their list order).
M.by_precedence = by_precedence

--- The live reusable policies, the state apps' applications and legacy
-- lists: `{ reusable = list, byid =, byname = { name = { policies } },
-- apps = { [app_id] = { app = application or nil, items = policy list or nil } } }`,
-- or `nil, err` (the first failed read).
-- @param client a cfaccess client
-- @tparam table st a checked state (its `apps`: `{ { app_id =, legacy = }, ... }`)
-- @tparam boolean zone a zone client (no reusable policies)
-- @tparam number concurrency the batch's concurrency
function M.read(client, st, zone, concurrency)
  local live = { reusable = {}, byid = {}, byname = {}, apps = {} }
  local ops, where = {}, {}
  if not zone then
    ops[#ops + 1] = { op = "list_policies", per_page = READ_PER_PAGE }
    where[#ops] = { what = "reusable" }
  end
  local get_app = has_method(client, "get_app")
  for _, a in ipairs(st.apps) do
    live.apps[a.app_id] = {}
    if get_app then
      ops[#ops + 1] = { op = "get_app", app_id = a.app_id }
      where[#ops] = { what = "app", app_id = a.app_id }
    end
    -- legacy policies are read from the app's policy list; without the
    -- section-6 GET the list is also where an app's links are seen
    if a.legacy or not get_app then
      ops[#ops + 1] = { op = "list_app_policies", app_id = a.app_id, per_page = READ_PER_PAGE }
      where[#ops] = { what = "items", app_id = a.app_id }
    end
  end
  local results, err = read_all(client, ops, concurrency)
  if not results then return nil, err end
  for i, r in ipairs(results) do
    local w = where[i]
    if w.what == "reusable" then live.reusable = r
    elseif w.what == "app" then live.apps[w.app_id].app = r
    else live.apps[w.app_id].items = by_precedence(r) end
  end
  for _, p in ipairs(live.reusable) do
    if type(p.id) == "string" then live.byid[p.id] = p end
    if type(p.name) == "string" then
      local l = live.byname[p.name] or {}
      l[#l + 1] = p
      live.byname[p.name] = l
    end
  end
  return live
end

--- A live app's policies list split into reusable links and legacy ones,
-- in precedence order.
function M.app_links(live, la)
  local links, legacy = {}, {}
  local items = (la.app and la.app.policies) or la.items or {}
  if type(items) ~= "table" then items = {} end
  for _, p in ipairs(by_precedence(items)) do
    if type(p) == "table" then
      local id = p.id
      if p.reusable == true or (p.reusable == nil and live.byid[id]) then links[#links + 1] = p
      else legacy[#legacy + 1] = p end
    end
  end
  return links, legacy
end

return M
