--- cfaccess.eval.client: `client:evaluate(app_id, request [, opts])`, the
-- offline evaluator over an application's live policies (read-only).
--
-- Requests, fewest first: the app's policy list (`client:list_app_policies`:
-- legacy and reusable policies alike, in the app's precedence order; every
-- page), then one `client:get_group(id)` per Access group the policies use
-- (transitively, each group once, none for groups the caller passes in
-- `opts.groups`).
--
-- Lists (`email_list`, `ip_list`): the client has no endpoint for Zero
-- Trust lists (they live under the Gateway API), so their entries come
-- from `opts.lists`; a rule naming a list that is not there is an
-- `invalid` error saying so, never a silent "no match".
-- @module cfaccess.eval.client
local evaluate = require("cfaccess.evaluate")
local copy = require("cfaccess.state.common").copy

local type, pairs, ipairs, next, format = type, pairs, ipairs, next, string.format

local M = {}

-- Access group ids that the rule lists of `body` name.
local function group_refs(body, out)
  for _, sec in ipairs{ "include", "require", "exclude" } do
    local list = body[sec]
    if type(list) == "table" then
      for _, rule in ipairs(list) do
        local g = type(rule) == "table" and rule.group
        if type(g) == "table" and type(g.id) == "string" then out[#out + 1] = g.id end
      end
    end
  end
  return out
end

-- The groups the policies use: opts.groups first, then get_group for the
-- rest. Returns the id -> group table, or nil, err.
local function fetch_groups(client, policies, given)
  local groups, queue = {}, {}
  for id, g in pairs(given or {}) do groups[id] = g end
  for _, p in ipairs(policies) do group_refs(p, queue) end
  local i = 1
  while queue[i] do
    local id = queue[i]
    i = i + 1
    if groups[id] == nil then
      if type(client.get_group) ~= "function" then
        return nil, evaluate.invalid{ { path = "opts.groups",
          message = format("group %q is used by the app's policies; this client cannot read "
            .. "Access groups (no get_group): pass it in opts.groups", id) } }
      end
      local g, err = client:get_group(id)
      if not g then return nil, err end
      groups[id] = g
      group_refs(g, queue)
    end
  end
  return groups
end

--- Read what evaluating application `app_id` needs: its live policies
-- (in the API's order; without precedences when a link lacks one, so that
-- list order decides) and the options for `cfaccess.evaluate` with the
-- groups they use filled in.
-- @return policies, opts; or nil, err
function M.load(client, app_id, opts)
  opts = opts or {}
  local live, err = client:list_app_policies(app_id)
  if not live then return nil, err end
  -- The list comes in precedence order. A link without a precedence (the
  -- API lets reusable links omit it) takes its list position: then the
  -- whole list is evaluated in list order, as the API orders it.
  local all = true
  for _, p in ipairs(live) do if p.precedence == nil then all = false end end
  local policies = live
  if not all then
    policies = {}
    for i, p in ipairs(live) do
      local c = copy(p)
      c.precedence = nil
      policies[i] = c
    end
  end
  local groups, gerr = fetch_groups(client, policies, opts.groups)
  if not groups then return nil, gerr end
  local eopts = {}
  for k, v in pairs(opts) do eopts[k] = v end
  eopts.groups = next(groups) and groups or nil
  -- fields newer than this library must not stop an evaluation of live data
  if eopts.allow_unknown == nil then eopts.allow_unknown = true end
  return policies, eopts
end

--- Evaluate `request` against the live policies of application `app_id`.
-- @param client a `cfaccess.client`
-- @tparam string app_id the application
-- @tparam table request as for `cfaccess.evaluate`
-- @tparam[opt] table opts as for `cfaccess.evaluate` (`groups` given here are not fetched;
-- `lists` must hold every list the policies use)
-- @return the result, or `nil, err`
function M.evaluate(client, app_id, request, opts)
  if type(request) ~= "table" then
    error(format("bad argument #2 to 'evaluate' (table expected, got %s)", type(request)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(format("bad argument #3 to 'evaluate' (table or nil expected, got %s)", type(opts)), 2)
  end
  local policies, eopts = M.load(client, app_id, opts)
  if not policies then return nil, eopts end
  return evaluate.evaluate(policies, request, eopts)
end

--- Add `evaluate` to the client methods (`cfaccess.client` objects).
-- The core keeps its method table as the `__index` of the registered
-- metatable "cfaccess.client"; Lua can reach it only through the registry.
function M.install()
  local reg = debug.getregistry()
  local meta = reg["cfaccess.client"]
  local methods = type(meta) == "table" and meta.__index
  if type(methods) ~= "table" then
    error("cfaccess.eval.client: the core's client metatable has no method table", 0)
  end
  methods.evaluate = M.evaluate
end

return M
