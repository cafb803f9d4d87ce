--- cfaccess.render: plans, apply reports and the progress line as text.
--
--     print(render.plan(plan))       -- also the plan's __tostring
--     print(render.report(report))
--
-- A plan is API.md section 8's data: `plan.changes` (each `{ action =,
-- type =, name =, id =, app_id =, fields = { { field =, old =, new = }, ...
-- } }`), `plan.summary` and `plan.warnings`. One line per change:
-- `+ ` create, `~ ` update (its differing fields follow on indented lines,
-- `old -> new`, values shortened), `- ` delete, `> ` an application's
-- policy list (its new order, with `+name` / `-name` for links attached
-- and detached), then the warnings and a summary line.
-- @module cfaccess.render
local cjson = require("cjson").new()

local type, ipairs, pairs, tostring = type, ipairs, pairs, tostring
local format, concat = string.format, table.concat

local M = {}

-- Colours, used only when the caller asks (the command: on a terminal and
-- without NO_COLOR).
local SGR = { green = "32", yellow = "33", red = "31", bold = "1", dim = "2" }
local function paint(on, colour, s)
  if not on then return s end
  return "\27[" .. SGR[colour] .. "m" .. s .. "\27[0m"
end
M.paint = paint

--- Longest value shown on an update's field line.
M.MAX_VALUE = 60

-- Keys whose value is a list: an empty one is written [] (a Lua table
-- cannot tell an empty list from an empty object).
local LIST_KEYS = {}
for _, k in ipairs{ "changes", "warnings", "fields", "order", "attach", "detach", "refs", "expect",
                    "results", "policies", "legacy", "include", "exclude", "require", "problems",
                    "errors", "messages", "approval_groups", "user_risk_score" } do
  LIST_KEYS[k] = true
end

-- Compact JSON of a plain value with object keys sorted, so that a value
-- always prints the same (lua-cjson writes keys in table order, which
-- changes from run to run, and an empty list as {}). Hand-written for
-- that; strings go through lua-cjson. Empty tables print as {}, or [] under
-- a LIST_KEYS key; functions and other non-data as their tostring, quoted.
local function compact(v, depth, key)
  local t = type(v)
  if t == "string" then return (cjson.encode(v):gsub("\\/", "/")) end
  if v == nil or v == cjson.null then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    if math.type(v) == "integer" then return tostring(v) end
    for digits = 14, 17 do   -- the shortest text that reads back as v
      local text = format("%." .. digits .. "g", v)
      if tonumber(text) == v or digits == 17 then return text end
    end
  end
  if t ~= "table" or depth > 40 then return compact(tostring(v), depth) end
  local n, keys = 0, {}
  for k in pairs(v) do n = n + 1; keys[#keys + 1] = k end
  if n == 0 then return LIST_KEYS[key] and "[]" or "{}" end
  local parts = {}
  if n == #v then
    for i = 1, n do parts[i] = compact(v[i], depth + 1, key) end
    return "[" .. concat(parts, ",") .. "]"
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for i, k in ipairs(keys) do
    parts[i] = compact(tostring(k), depth + 1) .. ":" .. compact(v[k], depth + 1, tostring(k))
  end
  return "{" .. concat(parts, ",") .. "}"
end

--- A plain value as compact JSON with sorted keys (the same value always
-- gives the same text); an empty table under a list key (`changes`,
-- `fields`, `include`, ...) is `[]`.
-- @param v the value
-- @tparam[opt] string key the key it is stored under
-- @treturn string
function M.json(v, key) return compact(v, 0, key) end

-- A value as one short line: strings quoted, tables as compact JSON,
-- anything longer than MAX_VALUE cut with "...".
local function short(v)
  local s
  if v == nil or v == cjson.null then
    s = "(none)"
  elseif type(v) == "string" then
    s = format("%q", v):gsub("\\\n", "\\n")
  else
    s = compact(v, 0, nil)
  end
  if #s > M.MAX_VALUE then
    -- cut on a UTF-8 character boundary
    local cut = M.MAX_VALUE - 3
    while cut > 0 and (s:byte(cut + 1) or 0) >= 0x80 and (s:byte(cut + 1) or 0) < 0xC0 do cut = cut - 1 end
    s = s:sub(1, cut) .. "..."
  end
  return s
end
M.short = short

local ACTION_MARK = { create = "+", update = "~", delete = "-" }
local ACTION_COLOUR = { create = "green", update = "yellow", delete = "red" }

-- A list entry of an app's policy list: a name, an id, or { name =, id = }.
local function ref_name(r)
  if type(r) == "table" then return tostring(r.name or r.id or "?") end
  return tostring(r)
end

-- The field entry named `name` of a change, if any.
local function field(change, name)
  for _, f in ipairs(change.fields or {}) do
    if f.field == name then return f end
  end
  return nil
end

local function set_of(list)
  local s = {}
  for _, r in ipairs(list or {}) do s[ref_name(r)] = true end
  return s
end

-- What a change is about: `reusable "staff" (id)`, `policy "old" (id) of app X`.
local function subject(c)
  local parts = { tostring(c.type or "policy") }
  if c.name ~= nil then parts[#parts + 1] = format("%q", tostring(c.name)) end
  if c.id ~= nil then parts[#parts + 1] = "(" .. tostring(c.id) .. ")" end
  if c.app_id ~= nil and c.type ~= "app" then parts[#parts + 1] = "of app " .. tostring(c.app_id) end
  return concat(parts, " ")
end

-- "> app X: staff, +contractors, -old": the new order, with links attached
-- (+) and detached (-). The lists come from change.policies / attach /
-- detach when the plan gives them, else from the `policies` field's old
-- and new values.
local function list_line(c, colour)
  local f = field(c, "policies")
  local new = c.policies or c.order or (f and f.new) or {}
  local old = c.old or (f and f.old)
  local attach = c.attach and set_of(c.attach)
  local detach = c.detach
  if not attach then
    local olds = set_of(old)
    attach = {}
    for _, r in ipairs(new) do if not olds[ref_name(r)] then attach[ref_name(r)] = true end end
  end
  if not detach then
    local news = set_of(new)
    detach = {}
    for _, r in ipairs(old or {}) do if not news[ref_name(r)] then detach[#detach + 1] = r end end
  end
  local items = {}
  for _, r in ipairs(new) do
    local n = ref_name(r)
    items[#items + 1] = attach[n] and paint(colour, "green", "+" .. n) or n
  end
  for _, r in ipairs(detach) do items[#items + 1] = paint(colour, "red", "-" .. ref_name(r)) end
  local app = c.app_id or c.id
  local label = "app " .. tostring(app)
  if c.name ~= nil and c.name ~= app then label = label .. " " .. format("%q", tostring(c.name)) end
  return paint(colour, "bold", ">") .. " " .. label .. ": " .. (#items > 0 and concat(items, ", ") or "(no policies)")
end

--- One line per change (an update's fields on indented lines).
-- @tparam table change an element of `plan.changes`
-- @tparam[opt] boolean colour ANSI colours
-- @treturn string the lines, without a final newline
function M.change(change, colour)
  local mark = ACTION_MARK[change.action]
  if not mark then return list_line(change, colour) end
  local lines = { paint(colour, ACTION_COLOUR[change.action], mark) .. " " .. subject(change) }
  if change.action == "update" then
    for _, f in ipairs(change.fields or {}) do
      lines[#lines + 1] = "    " .. tostring(f.field) .. ": " .. short(f.old) .. " -> " .. short(f.new)
    end
  end
  return concat(lines, "\n")
end

local function plural(n, word)
  return n .. " " .. word .. (n == 1 and "" or "s")
end

--- The summary line: `Plan: 1 to create, 2 to update, 0 to delete, 1 link
-- to attach, 0 to detach.`, or `No changes.` when there are none. A plan
-- whose only changes reorder applications' lists counts nothing in the
-- summary, so `nchanges` (how many changes the plan has) tells them apart:
-- `Plan: 2 application lists to reorder.`
function M.summary(summary, nchanges)
  local s = summary or {}
  local c, u, d = s.create or 0, s.update or 0, s.delete or 0
  local a, x = s.attach or 0, s.detach or 0
  if c + u + d + a + x == 0 then
    if (nchanges or 0) > 0 then return format("Plan: %s to reorder.", plural(nchanges, "application list")) end
    return "No changes."
  end
  return format("Plan: %d to create, %d to update, %d to delete, %s to attach, %d to detach.",
    c, u, d, plural(a, "link"), x)
end

--- The readable plan: a line per change, the warnings, the summary.
-- @tparam table plan `{ changes =, summary =, warnings = }`
-- @tparam[opt] boolean colour ANSI colours
-- @treturn string text ending with a newline
function M.plan(plan, colour)
  local out = {}
  for _, c in ipairs(plan.changes or {}) do out[#out + 1] = M.change(c, colour) end
  for _, w in ipairs(plan.warnings or {}) do
    local msg = type(w) == "table" and (w.message or w.path) or w
    if type(w) == "table" and w.path and w.message then msg = w.path .. ": " .. w.message end
    out[#out + 1] = paint(colour, "yellow", "warning:") .. " " .. tostring(msg)
  end
  local summary = plan.summary
  if not summary then
    summary = {}
    for _, c in ipairs(plan.changes or {}) do
      if ACTION_MARK[c.action] then summary[c.action] = (summary[c.action] or 0) + 1 end
    end
  end
  out[#out + 1] = M.summary(summary, #(plan.changes or {}))
  return concat(out, "\n") .. "\n"
end

-- Was this result skipped (a change it depends on failed)?
local function skipped(r)
  return r.skipped == true or (not r.ok and type(r.err) == "table" and r.err.kind == "skipped")
end

--- The readable apply report: one line per change that did not succeed,
-- then `Applied N, failed N, skipped N.`
-- @tparam table report `{ applied =, failed =, skipped =, results = { { change =, ok =, id =, err = } } }`
-- @tparam[opt] boolean colour ANSI colours
-- @treturn string text ending with a newline
function M.report(report, colour)
  local out = {}
  for _, r in ipairs(report.results or {}) do
    local c = r.change or {}
    local what = ACTION_MARK[c.action] and ((ACTION_MARK[c.action]) .. " " .. subject(c)) or
      ("> app " .. tostring(c.app_id or c.id))
    if skipped(r) then
      -- apply's skip errors say "skipped: why": the line says skipped once
      local why = r.err and tostring(r.err):gsub("^skipped: ", "") or "a change it depends on failed"
      out[#out + 1] = paint(colour, "yellow", "skipped:") .. " " .. what .. ": " .. why
    elseif not r.ok then
      out[#out + 1] = paint(colour, "red", "failed:") .. " " .. what .. ": " .. tostring(r.err)
    end
  end
  out[#out + 1] = format("Applied %d, failed %d, skipped %d.", report.applied or 0, report.failed or 0,
    report.skipped or 0)
  return concat(out, "\n") .. "\n"
end

--- The progress line: `[#####-----]  12/40  0:07  waiting 42 s: rate limit`.
-- @tparam integer done
-- @tparam integer total
-- @tparam number elapsed seconds
-- @tparam[opt] table info `{ waiting = seconds, reason = "rate limit" | "retry" }`
-- @tparam[opt] integer width the bar's width in cells (default 20)
-- @treturn string the line (no newline, no control characters)
function M.progress(done, total, elapsed, info, width)
  width = width or 20
  local filled = 0
  if total and total > 0 then filled = math.floor(width * math.min(done, total) / total + 0.5) end
  local e = math.floor(elapsed or 0)
  local line = format("[%s%s] %d/%d  %d:%02d", ("#"):rep(filled), ("-"):rep(width - filled),
    done or 0, total or 0, e // 60, e % 60)
  if type(info) == "table" and info.waiting then
    line = line .. format("  waiting %d s: %s", math.ceil(info.waiting), tostring(info.reason or "wait"))
  end
  return line
end

return M
