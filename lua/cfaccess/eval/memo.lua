--- cfaccess.eval.memo: the compiled sets of the last few (policies, opts)
-- that a one-call `cfaccess.evaluate` checked and compiled, found again by
-- their content, so that calling it over and over with the same policies
-- (a test loop, a request handler) does not check and compile them each
-- time (that is nearly all of a one-call evaluation's cost).
--
-- Found by content, never by a table's identity: a caller may change a
-- table between calls, and the next call must see the change. Each kept
-- set has a private deep copy of the arguments it was compiled from, and
-- a call finds it only when its arguments hold exactly the same keys and
-- values (`same`: strings, booleans and integers equal, floats equal to
-- the bit (%a), integer and float apart, tables key by key, with as many
-- keys).
-- Only plain data takes part: a table with a metatable (a proxy's
-- content is not what raw reads see), nesting deeper than DEPTH (so a
-- cycle too), or a function, userdata or thread anywhere makes `get`
-- miss and `put` keep nothing, and the caller compiles as before. Only
-- a valid compile is kept, and a compiled set holds no table of the
-- caller's (compile copies what it keeps; a policy id that is not a
-- string or number, which compile would keep as it is, is not kept), so
-- a later change to the caller's tables cannot reach a kept set.
-- @module cfaccess.eval.memo
local type, next, getmetatable, format, mtype = type, next, getmetatable, string.format, math.type

local M = {}

local DEPTH = 24   -- deeper is no policy list: compile it, keep nothing
local KEEP = 2     -- compiled sets kept (each one app's policies and options)

-- Are two equal numbers the same number (1 and 1.0 are not, nor 0.0 and
-- -0.0)?
local function same_number(v, w)
  local tv = mtype(v)
  if tv ~= mtype(w) then return false end
  return tv ~= "float" or format("%a", v) == format("%a", w)
end

-- Does a (the caller's) hold the same as the private table b? `counts`
-- has the key count of every private table (so a value w is a table when
-- counts[w] is not nil), `nums` says which hold a number value (only
-- there do equal values need a closer look: == across types is false).
local function same(a, b, counts, nums, depth)
  if type(a) ~= "table" or getmetatable(a) ~= nil or depth > DEPTH then return false end
  local n, nb = 0, nums[b]
  for k, v in next, a do
    local w = b[k]
    if w == nil then return false end
    if v ~= w then
      if counts[w] == nil or not same(v, w, counts, nums, depth + 1) then return false end
    elseif nb and not same_number(v, w) then
      return false
    end
    n = n + 1
  end
  return n == counts[b]
end

-- A private deep copy of table v, with its key count in counts and, if
-- it holds a number value, nums[copy] = true; nil when v is not plain
-- data. Table keys are refused too (a copied key would be another table).
local function copy(v, counts, nums, depth)
  if depth > DEPTH or getmetatable(v) ~= nil then return nil end
  local c, n = {}, 0
  for k, x in next, v do
    local tk, tx = type(k), type(x)
    if tk == "table" then return nil end
    if tx == "table" then
      x = copy(x, counts, nums, depth + 1)
      if x == nil then return nil end
    elseif tx == "number" then
      nums[c] = true
    elseif tx ~= "string" and tx ~= "boolean" then
      return nil
    end
    c[k], n = x, n + 1
  end
  counts[c] = n
  return c
end

-- The kept sets, newest first: { policies copy, opts copy, counts, nums, set }.
local kept = {}

--- The compiled set kept for arguments with this content, or nil.
function M.get(policies, opts)
  for i = 1, #kept do
    local e = kept[i]
    if same(policies, e[1], e[3], e[4], 1) and same(opts, e[2], e[3], e[4], 1) then
      if i > 1 then table.remove(kept, i); table.insert(kept, 1, e) end
      return e[5]
    end
  end
  return nil
end

--- Keep `set`, compiled from (policies, opts), unless they are not plain
-- data or a policy id is a table (the oldest set goes past KEEP).
function M.put(policies, opts, set)
  for i = 1, #policies do
    local id = policies[i].id
    if id ~= nil and type(id) ~= "string" and type(id) ~= "number" then return end
  end
  local counts, nums = {}, {}
  local p = copy(policies, counts, nums, 1)
  local o = p and copy(opts, counts, nums, 1)
  if not o then return end
  table.insert(kept, 1, { p, o, counts, nums, set })
  kept[KEEP + 1] = nil
end

--- Forget every kept set.
function M.clear() kept = {} end

return M
