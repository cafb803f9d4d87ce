-- cfaccess section-6 methods: an application's `policies` list,
-- make_reusable, and the safety rules of API.md section 6, as client
-- methods and batch ops. Part of the C core: src/apps.c runs this chunk
-- when the core opens (it is compiled in as src/apps_lua.h, made from this
-- file by `make`), with the client method table, the error metatable and
-- the JSON null, so that every client has these methods however the core
-- was loaded (require "cfaccess", require "cfaccess.core", luaL_requiref).
--
-- The core reads applications (`list_apps`, `get_app`: registry rows) and
-- sends the whole-application PUT and make_reusable (`client:_send`,
-- src/apps.c). This chunk does the read-modify-write in between:
--
-- * `set_app_policies(app_id, refs [, opts])` GETs the application, keeps
--   every field but the read-only ones (READ_ONLY below), writes `policies`
--   as `[{id, precedence}]` (never `null`, never the expanded objects a GET
--   returns, `[]` only with `opts.allow_empty`) and PUTs it. With
--   `opts.expect` (the ids the caller last saw, in order) a live list that
--   differs is a `conflict` and nothing is sent. A field whose JSON type the
--   decoded GET no longer tells (an empty table: `[]` or `{}`?) that is not
--   in ARRAYS/OBJECTS below is a `conflict` naming the field: not a guess.
-- * `attach_policy`, `detach_policy` are set_app_policies over the live list.
-- * `delete_policy(id [, { force = true }])` of a reusable policy still
--   attached (`app_count > 0`) is a `conflict` naming the count.
-- * `update_app_policy` / `delete_app_policy` on a policy the app's list
--   marks reusable are `usage` errors pointing at `update_policy` /
--   `detach_policy`.
--
-- In a batch these ops run in two rounds: first the reads they need (one
-- GET per application changed, one policy list per application whose
-- policies are updated or deleted, one reusable list for deletes) next to
-- the batch's other ops, then their writes. A batch without them goes to the
-- core's batch unchanged.
--
-- Written in Lua, not C, because it is table manipulation over decoded
-- results (the JSON of an application is rebuilt from them) and it drives
-- the core's own methods and batch; every request still goes through the
-- C engine (retries, pacing, Retry-After, no duplicate create).
local index, ERR_MT, null = ...

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local HEX32 = "^" .. ("%x"):rep(32) .. "$"
local READ_PER_PAGE = 1000

-- Fields of an application the API sets itself: not sent back.
local READ_ONLY = { id = true, uid = true, aud = true, created_at = true, updated_at = true,
                    policies = true }

-- The JSON type of an application's fields where it may arrive empty (an
-- empty table decodes alike from [] and {}): paths, "[]" for any element
-- of a list, "*" for any key of an object. From the application schema of
-- the API (reference: APPLICATIONS-AND-STATE.md; TS ApplicationUpdateParams).
local ARRAYS = {
  allowed_idps = true, custom_pages = true, self_hosted_domains = true, destinations = true,
  tags = true, target_criteria = true, footer_links = true,
  ["cors_headers.allowed_headers"] = true, ["cors_headers.allowed_methods"] = true,
  ["cors_headers.allowed_origins"] = true,
  ["saas_app.custom_attributes"] = true, ["saas_app.custom_claims"] = true,
  ["saas_app.redirect_uris"] = true, ["saas_app.allowed_origins"] = true,
  ["scim_config.mappings"] = true, ["target_criteria[].target_attributes.*"] = true,
  ["target_criteria[].target_attributes.hostname"] = true,
}
local OBJECTS = {
  cors_headers = true, saas_app = true, scim_config = true, landing_page_design = true,
  ["target_criteria[].target_attributes"] = true,
}


local function new_err(kind, message, extra)
  local e = { kind = kind, message = message }
  for k, v in pairs(extra or {}) do e[k] = v end
  return setmetatable(e, ERR_MT)
end

local function invalid(what, problems)
  local first = problems[1]
  local msg = ("invalid %s: %s: %s"):format(what, first.path, first.message)
  if #problems > 1 then
    msg = msg .. (" (and %d more problem%s)"):format(#problems - 1, #problems > 2 and "s" or "")
  end
  return new_err("invalid", msg, { problems = problems })
end

local function zone_client(client)
  return tostring(client):match("^cfaccess%.client %(zones/") ~= nil
end

local function is_app_id(s) return type(s) == "string" and (s:match(UUID) or s:match(HEX32)) ~= nil end
local function is_uuid(s) return type(s) == "string" and s:match(UUID) ~= nil end

-- ---- the application body ----------------------------------------------------

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
                  ["\r"] = "\\r", ["\t"] = "\\t" }

-- s as a JSON string (UTF-8 kept as it is), or nil when s is not UTF-8.
local function json_string(s)
  if not utf8.len(s) then return nil end
  return '"' .. s:gsub('[%z\1-\31"\\]', function(c)
    return ESCAPES[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

-- Is t a list (keys 1..n, n >= 1)?
local function is_list(t)
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function generic(path)
  -- "a.b[3].c" -> "a.b[].c", and the last key as "*" too
  local g = path:gsub("%[%d+%]", "[]")
  return g, (g:gsub("%.[^.%[]+$", ".*"))
end

-- Write value v (at path) as JSON into out; nil, conflict err when its
-- type cannot be told.
local function write_json(v, path, out)
  local t = type(v)
  if t == "string" then
    local js = json_string(v)
    if not js then
      return nil, new_err("conflict", ("the application's field %s is not UTF-8: not sent back"):format(path),
                          { field = path })
    end
    out[#out + 1] = js
  elseif t == "number" then
    if math.type(v) == "integer" then out[#out + 1] = tostring(v)
    elseif v ~= v or v == math.huge or v == -math.huge then
      return nil, new_err("conflict", ("%s: %s cannot be sent back as JSON"):format(path, tostring(v)),
                          { field = path })
    elseif v == math.floor(v) and math.abs(v) >= 2^53 then
      return nil, new_err("conflict", ("the application's field %s holds a number beyond 2^53 (%.17g) whose "
        .. "digits were lost in decoding: not sent back (nothing was changed)"):format(path, v), { field = path })
    else
      local s = ("%.14g"):format(v)
      if tonumber(s) ~= v then s = ("%.17g"):format(v) end
      out[#out + 1] = s
    end
  elseif t == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif v == null then
    out[#out + 1] = "null"
  elseif t == "table" then
    if next(v) == nil then
      local g, star = generic(path)
      if ARRAYS[g] or ARRAYS[star] then out[#out + 1] = "[]"
      elseif OBJECTS[g] or OBJECTS[star] then out[#out + 1] = "{}"
      else
        return nil, new_err("conflict", ("the application's field %s is empty, and whether it is [] or {} "
          .. "is lost in decoding: not sent back (nothing was changed)"):format(path), { field = path })
      end
    elseif is_list(v) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        local ok, err = write_json(v[i], ("%s[%d]"):format(path, i), out)
        if not ok then return nil, err end
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do
        if type(k) ~= "string" then
          return nil, new_err("conflict", ("%s: a key that is not a string"):format(path), { field = path })
        end
        keys[#keys + 1] = k
      end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        local jk = json_string(k)
        if not jk then
          return nil, new_err("conflict", ("%s: a key that is not UTF-8"):format(path), { field = path })
        end
        out[#out + 1] = jk .. ":"
        local ok, err = write_json(v[k], path == "" and k or (path .. "." .. k), out)
        if not ok then return nil, err end
      end
      out[#out + 1] = "}"
    end
  else
    return nil, new_err("conflict", ("%s: a %s cannot be sent back as JSON"):format(path, t), { field = path })
  end
  return true
end

-- The live policies list of application `app` (a GET result) in
-- precedence order: { { id =, precedence =, reusable = }, ... }, or nil, err.
local function live_list(app, app_id)
  local items = app.policies
  if items == nil then return {} end
  if type(items) ~= "table" then
    return nil, new_err("conflict", ("app %s: policies is not a list in the GET"):format(app_id),
                        { field = "policies" })
  end
  local out = {}
  for i, p in ipairs(items) do
    local id = type(p) == "table" and p.id or p
    if not is_uuid(id) then
      return nil, new_err("conflict", ("app %s: policies[%d] has no policy id: the list cannot be sent back")
        :format(app_id, i), { field = ("policies[%d]"):format(i) })
    end
    local item = { id = id, i = i }
    if type(p) == "table" then item.precedence, item.reusable = math.tointeger(p.precedence), p.reusable end
    out[#out + 1] = item
  end
  table.sort(out, function(a, b)
    local pa, pb = a.precedence or math.maxinteger, b.precedence or math.maxinteger
    if pa ~= pb then return pa < pb end
    return a.i < b.i
  end)
  return out
end

local function ids_of(list)
  local out = {}
  for i, p in ipairs(list) do out[i] = p.id end
  return out
end

-- refs (ids or { id =, precedence = }) checked: a list of { id =,
-- precedence = } with every precedence set and unique; or nil, problems.
local function check_refs(refs, path)
  local problems, out, seen, used = {}, {}, {}, {}
  if type(refs) ~= "table" then
    return nil, { { path = path, message = "expected a list of policy ids or { id =, precedence = } links, got "
      .. type(refs) } }
  end
  local n = #refs
  for k in pairs(refs) do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      problems[#problems + 1] = { path = path, message = "expected a list (keys 1..n), got key " .. tostring(k) }
      return nil, problems
    end
  end
  for i = 1, n do
    local r, rp = refs[i], ("%s[%d]"):format(path, i)
    local id, prec = r, nil
    if type(r) == "table" then
      id, prec = r.id, r.precedence
      for k in pairs(r) do
        if k ~= "id" and k ~= "precedence" then
          problems[#problems + 1] = { path = rp .. "." .. tostring(k),
                                      message = "unknown field (a link has id and precedence)" }
        end
      end
    end
    if not is_uuid(id) then
      problems[#problems + 1] = { path = type(r) == "table" and rp .. ".id" or rp,
                                  message = "expected a policy id (a UUID)" }
    elseif seen[id:lower()] then
      problems[#problems + 1] = { path = rp,
                                  message = ("policy %s is listed twice (also [%d])"):format(id, seen[id:lower()]) }
    else
      seen[id:lower()] = i
    end
    if prec ~= nil then
      prec = math.tointeger(prec)
      if not prec or prec < 1 then
        problems[#problems + 1] = { path = rp .. ".precedence", message = "expected an integer >= 1" }
      end
    end
    out[i] = { id = id, precedence = prec }
  end
  -- precedence left out: one more than the one before (the list is in
  -- precedence order)
  local last = 0
  for i, r in ipairs(out) do
    if not r.precedence then r.precedence = last + 1 end
    if r.precedence <= last and refs[i] and type(refs[i]) == "table" and refs[i].precedence then
      problems[#problems + 1] = { path = ("%s[%d].precedence"):format(path, i),
        message = ("%d is not above the one before (%d): refs are in precedence order"):format(r.precedence, last) }
    end
    if used[r.precedence] then
      problems[#problems + 1] = { path = ("%s[%d].precedence"):format(path, i),
        message = ("%d is used twice (the API refuses it)"):format(r.precedence) }
    end
    used[r.precedence] = true
    last = math.max(last, r.precedence)
  end
  if #problems > 0 then return nil, problems end
  return out
end

-- The PUT body of application `app` with links as its policies, or nil, err.
local function app_body(app, links)
  local out, rest = { "{" }, {}
  local keys = {}
  for k, v in pairs(app) do
    if type(k) ~= "string" then
      return nil, new_err("conflict", "the application has a key that is not a string", { field = tostring(k) })
    end
    if not READ_ONLY[k] then rest[k] = v; keys[#keys + 1] = k end
  end
  keys[#keys + 1] = "policies"
  table.sort(keys)
  for i, k in ipairs(keys) do
    if i > 1 then out[#out + 1] = "," end
    out[#out + 1] = (json_string(k) or '"?"') .. ":"
    if k == "policies" then
      -- written here, so that an empty list is [] (never {} or null)
      local items = {}
      for j, l in ipairs(links) do
        items[j] = ('{"id":"%s","precedence":%d}'):format(l.id, l.precedence)   -- a checked UUID
      end
      out[#out + 1] = "[" .. table.concat(items, ",") .. "]"
    else
      local ok, err = write_json(rest[k], k, out)
      if not ok then return nil, err end
    end
  end
  out[#out + 1] = "}"
  return table.concat(out)
end

-- ---- the ops: argument checks, then what each reads and writes -----------------

-- Each section-6 op: fields (name -> check), what it reads, and `write`
-- turning what was read into { send = raw op } | { batch = core op } |
-- { result = value } | { err = err }.
local OPS = {}

local function opt_table(v) return v == nil or type(v) == "table" end

-- Problems of ops[i] (op: the table) for spec; appended to problems.
local function check_fields(spec, op, prefix, problems)
  for k in pairs(op) do
    if k ~= "op" and not spec.fields[k] then
      problems[#problems + 1] = { path = prefix .. "." .. tostring(k), message = "unknown field for " .. op.op }
    end
  end
  for name, check in pairs(spec.fields) do
    local msg = check(op[name], op)
    if msg then problems[#problems + 1] = { path = prefix .. "." .. name, message = msg } end
  end
end

local function need_app(v)
  if v == nil then return "missing (expected a UUID or 32 hex characters)" end
  if not is_app_id(v) then return "expected a UUID or 32 hex characters" end
end
local function need_policy(v)
  if v == nil then return "missing (expected a UUID)" end
  if not is_uuid(v) then return "expected a UUID" end
end
local function opts_of(allowed)
  return function(v)
    if not opt_table(v) then return "expected a table, got " .. type(v) end
    for k, x in pairs(v or {}) do
      local want = allowed[k]
      if not want then return ("unknown option %s"):format(tostring(k)) end
      if want == "ids" then
        if type(x) ~= "table" then return k .. ": expected a list of policy ids" end
        for j, id in ipairs(x) do
          if not is_uuid(id) then return ("%s[%d]: expected a policy id (a UUID)"):format(k, j) end
        end
      elseif want == "precedence" then
        if not math.tointeger(x) or x < 1 then return k .. ": expected an integer >= 1" end
      elseif type(x) ~= want then
        return ("%s: expected a %s, got %s"):format(k, want, type(x))
      end
    end
  end
end

-- A set of the app's live list (after the GET): the checks of expect and
-- of an empty list, then the PUT.
local function put_list(app, app_id, links, opts, live)
  opts = opts or {}
  if opts.expect then
    local have = ids_of(live)
    local same = #have == #opts.expect
    for i = 1, #have do same = same and have[i]:lower() == tostring(opts.expect[i]):lower() end
    if not same then
      return { err = new_err("conflict", ("app %s: its policies are %s, not the expected %s: nothing was sent")
        :format(app_id, "[" .. table.concat(have, ", ") .. "]", "[" .. table.concat(opts.expect, ", ") .. "]"),
        { app_id = app_id, live = have, expect = opts.expect }) }
    end
  end
  if #links == 0 and not opts.allow_empty then
    return { err = new_err("conflict", ("app %s: the new list is empty: policies: [] detaches every policy and "
      .. "the API deletes the app's legacy ones; pass { allow_empty = true } to mean it"):format(app_id),
      { app_id = app_id }) }
  end
  local body, err = app_body(app, links)
  if not body then
    err.app_id = app_id
    err.message = ("app %s: %s"):format(app_id, err.message)
    return { err = err }
  end
  return { send = { action = "put_app", app_id = app_id, body = body } }
end

OPS.set_app_policies = {
  fields = {
    app_id = need_app,
    refs = function(v) if v == nil then return "missing (expected a list of policy ids)" end end,
    opts = opts_of({ expect = "ids", allow_empty = "boolean" }),
  },
  check = function(op, prefix, problems)
    if op.refs == nil then return end
    local links, bad = check_refs(op.refs, prefix .. ".refs")
    for _, p in ipairs(bad or {}) do problems[#problems + 1] = p end
    if links and #links == 0 and not (op.opts and op.opts.allow_empty) then
      problems[#problems + 1] = { path = prefix .. ".refs", message = "an empty list detaches every policy of the "
        .. "app (and the API deletes its legacy ones): pass opts.allow_empty = true to mean it" }
    end
  end,
  reads = function(op) return { { op = "get_app", app_id = op.app_id } } end,
  write = function(op, got)
    local live, err = live_list(got[1], op.app_id)
    if not live then return { err = err } end
    return put_list(got[1], op.app_id, (check_refs(op.refs, "refs")), op.opts, live)
  end,
}

-- Links in order, each given a precedence above the one before where it
-- has none (or one not above); returns the highest.
local function fill_precedences(links)
  local maxp = 0
  for _, p in ipairs(links) do
    if not p.precedence or p.precedence <= maxp then p.precedence = maxp + 1 end
    maxp = p.precedence
  end
  return maxp
end

local function links_of(live)
  local out = {}
  for i, p in ipairs(live) do out[i] = { id = p.id, precedence = p.precedence } end
  return out
end

OPS.attach_policy = {
  fields = { app_id = need_app, policy_id = need_policy, opts = opts_of({ precedence = "precedence" }) },
  reads = OPS.set_app_policies.reads,
  write = function(op, got)
    local live, err = live_list(got[1], op.app_id)
    if not live then return { err = err } end
    local want = op.opts and math.tointeger(op.opts.precedence)
    local links = {}
    for _, p in ipairs(links_of(live)) do
      if p.id:lower() == op.policy_id:lower() then
        if not want or want == p.precedence then return { result = got[1] } end   -- already there
      else
        links[#links + 1] = p
      end
    end
    local maxp = fill_precedences(links)
    local new = { id = op.policy_id, precedence = want or (maxp + 1) }
    if want then   -- make room: what stands at or after it moves up by one
      local taken = false
      for _, p in ipairs(links) do taken = taken or p.precedence == want end
      if taken then
        for _, p in ipairs(links) do if p.precedence >= want then p.precedence = p.precedence + 1 end end
      end
    end
    links[#links + 1] = new
    table.sort(links, function(a, b) return a.precedence < b.precedence end)
    return put_list(got[1], op.app_id, links, { allow_empty = true }, live)
  end,
}

OPS.detach_policy = {
  fields = { app_id = need_app, policy_id = need_policy, opts = opts_of({ allow_empty = "boolean" }) },
  reads = OPS.set_app_policies.reads,
  write = function(op, got)
    local live, err = live_list(got[1], op.app_id)
    if not live then return { err = err } end
    local links, found = {}, nil
    for _, p in ipairs(live) do
      if p.id:lower() == op.policy_id:lower() then found = p
      else links[#links + 1] = { id = p.id, precedence = p.precedence } end
    end
    if not found then
      return { err = new_err("conflict", ("app %s: policy %s is not attached to it: nothing was sent")
        :format(op.app_id, op.policy_id), { app_id = op.app_id }) }
    end
    if found.reusable == false then
      return { err = new_err("usage", ("app %s: policy %s is a legacy policy of the app: left out of its list "
        .. "the API deletes it; delete it with delete_app_policy if that is meant"):format(op.app_id, op.policy_id),
        { app_id = op.app_id }) }
    end
    fill_precedences(links)
    return put_list(got[1], op.app_id, links, { allow_empty = op.opts and op.opts.allow_empty }, live)
  end,
}

OPS.make_reusable = {
  fields = { app_id = need_app, policy_id = need_policy },
  account_only = true,
  reads = function() return {} end,
  write = function(op) return { send = { action = "make_reusable", app_id = op.app_id, policy_id = op.policy_id } } end,
}

-- The guarded ops of the core: their core op once the guard is passed.
local function core_op(op, drop)
  local c = {}
  for k, v in pairs(op) do if not drop[k] then c[k] = v end end
  return c
end

-- Is policy_id marked reusable in the app's list?
local function marked_reusable(list, policy_id)
  for _, p in ipairs(list or {}) do
    if type(p) == "table" and type(p.id) == "string" and p.id:lower() == policy_id:lower() then
      return p.reusable == true
    end
  end
  return false
end

local function guard_app_policy(call, instead)
  return function(op, got)
    if marked_reusable(got[1], op.policy_id) then
      return { err = new_err("usage", ("%s: policy %s is a reusable policy linked to app %s: %s")
        :format(call, op.policy_id, op.app_id, instead), { app_id = op.app_id, policy_id = op.policy_id }) }
    end
    return { batch = core_op(op, {}) }
  end
end

OPS.update_app_policy = {
  core = true,   -- the core checks its fields (ids, the policy and its kind)
  reads = function(op) return { { op = "list_app_policies", app_id = op.app_id, per_page = READ_PER_PAGE } } end,
  write = guard_app_policy("update_app_policy", "change it with update_policy (it is the same policy for every app)"),
}
OPS.delete_app_policy = {
  core = true,
  reads = OPS.update_app_policy.reads,
  write = guard_app_policy("delete_app_policy", "take it off this app with detach_policy "
    .. "(delete_policy deletes it, once no app uses it)"),
}

local function attached_count(list, policy_id)
  for _, p in ipairs(list or {}) do
    if type(p) == "table" and type(p.id) == "string" and p.id:lower() == policy_id:lower() then
      return math.tointeger(p.app_count)
    end
  end
end

local function in_use_err(policy_id, n)
  return new_err("conflict", ("delete_policy: reusable policy %s is used by %d application%s: detach it "
    .. "first (detach_policy), or pass { force = true } to send the delete anyway"):format(policy_id, n,
    n == 1 and "" or "s"), { policy_id = policy_id, app_count = n })
end

OPS.delete_policy = {
  core = true,
  extra = { opts = opts_of({ force = "boolean" }) },
  reads = function(op)
    if op.opts and op.opts.force then return {} end
    return { { op = "list_policies", per_page = READ_PER_PAGE } }
  end,
  write = function(op, got)
    local n = got[1] and attached_count(got[1], op.policy_id)
    if n and n > 0 then return { err = in_use_err(op.policy_id, n) } end
    return { batch = core_op(op, { opts = true }) }
  end,
}


-- ---- the batch -------------------------------------------------------------------

local function key_of(read)
  return read.op .. "|" .. (read.app_id or "")
end

-- Rewrite "ops[k]..." paths of a core batch err with map[k] = original index.
local function remap(err, map)
  for _, p in ipairs(err.problems or {}) do
    p.path = p.path:gsub("^ops%[(%d+)%]", function(k) return ("ops[%d]"):format(map[tonumber(k)] or 0) end)
  end
  if err.problems and err.problems[1] then
    err.message = ("invalid batch: %s: %s"):format(err.problems[1].path, err.problems[1].message)
      .. (#err.problems > 1 and (" (and %d more problem%s)"):format(#err.problems - 1,
          #err.problems > 2 and "s" or "") or "")
  end
  return err
end

-- The batch of `ops` with section-6 ops in it (see the module comment).
local function batch(core_batch, client, ops, bopts)
  local n = #ops
  local problems, special, changed_apps = {}, {}, {}
  for i = 1, n do
    local op = ops[i]
    local spec = type(op) == "table" and OPS[op.op]
    if spec then
      special[i] = spec
      local prefix = ("ops[%d]"):format(i)
      if spec.account_only and zone_client(client) then
        problems[#problems + 1] = { path = prefix .. ".op", message = op.op .. " exists only at account scope "
          .. "(this client has a zone_id)" }
      end
      if spec.fields then
        check_fields(spec, op, prefix, problems)
        if spec.check then spec.check(op, prefix, problems) end
        if is_app_id(op.app_id) and spec.reads(op)[1] then
          local k = op.app_id:lower()
          if changed_apps[k] then
            problems[#problems + 1] = { path = prefix .. ".app_id", message = ("ops[%d] changes this "
              .. "application's list too: one list change per application and batch"):format(changed_apps[k]) }
          end
          changed_apps[k] = i
        end
      elseif spec.extra then
        for name, check in pairs(spec.extra) do
          local msg = check(op[name], op)
          if msg then problems[#problems + 1] = { path = prefix .. "." .. name, message = msg } end
        end
      end
    end
  end
  -- round 1: the other ops, the reads (one per distinct read), and (to be
  -- checked with them) the guarded core ops, held back: the checks only
  local round1, map1, readidx = {}, {}, {}
  for i = 1, n do
    if not special[i] then
      round1[#round1 + 1] = ops[i]
      map1[#round1] = i
    end
  end
  local plain = #round1
  for i = 1, n do
    if special[i] and not (special[i].fields and #problems > 0) then
      for _, rd in ipairs(special[i].reads(ops[i])) do
        local k = key_of(rd)
        if not readidx[k] then
          round1[#round1 + 1] = rd
          map1[#round1] = i
          readidx[k] = #round1
        end
      end
    end
  end
  -- the guarded ops' own fields are the core's to check: checked in a
  -- batch that cannot run (its last op is invalid), as are the others when
  -- this module already found problems (so that every problem is listed)
  local function core_problems(all)
    local check, cmap = {}, {}
    for i = 1, n do
      if (special[i] and special[i].core) or (all and not special[i]) then
        check[#check + 1] = special[i] and core_op(ops[i], special[i].extra or {}) or ops[i]
        cmap[#check] = i
      end
    end
    if #check == 0 then return {} end
    check[#check + 1] = { op = "get_app", app_id = "" }   -- never valid: nothing runs
    local _, cerr = core_batch(client, check)
    local out = {}
    for _, p in ipairs(remap(cerr, cmap).problems or {}) do
      if not p.path:match("^ops%[0%]") then out[#out + 1] = p end
    end
    return out
  end
  local found = core_problems(#problems > 0)
  if #found > 0 and #problems == 0 then found = core_problems(true) end
  for _, p in ipairs(found) do problems[#problems + 1] = p end
  if #problems > 0 then
    local order = {}
    for j, p in ipairs(problems) do order[p] = j end
    table.sort(problems, function(a, b)   -- by op, stable
      local x, y = tonumber(a.path:match("^ops%[(%d+)%]")) or 0, tonumber(b.path:match("^ops%[(%d+)%]")) or 0
      if x ~= y then return x < y end
      return order[a] < order[b]
    end)
    return nil, invalid("batch", problems)
  end
  local total, done = n, 0
  local on_progress = bopts and bopts.on_progress
  local concurrency = bopts and bopts.concurrency
  local function progress(d, info)
    if on_progress and d > done then done = d; on_progress(d, total, info)
    elseif on_progress and info then on_progress(done, total, info) end
  end
  local results = {}
  if #round1 > 0 then
    local r1, err = core_batch(client, round1, { concurrency = concurrency,
      on_progress = on_progress and function(d, t, info) progress(math.floor(d * plain / t), info) end })
    if not r1 then return nil, remap(err, map1) end
    for j = 1, plain do results[map1[j]] = r1[j] end
    for k, j in pairs(readidx) do readidx[k] = r1[j] end
  end
  progress(plain)
  -- round 2: the writes
  local round2, map2, sends, maps = {}, {}, {}, {}
  local finished = plain
  for i = 1, n do
    if special[i] then
      local got, failed = {}, nil
      for j, rd in ipairs(special[i].reads(ops[i])) do
        local r = readidx[key_of(rd)]
        if r.ok then got[j] = r.result else failed = r.err end
      end
      local w = failed and { err = failed } or special[i].write(ops[i], got)
      if w.batch then round2[#round2 + 1] = w.batch; map2[#round2] = i
      elseif w.send then sends[#sends + 1] = w.send; maps[#sends] = i
      else
        results[i] = w.err and { ok = false, err = w.err } or { ok = true, result = w.result }
        finished = finished + 1
      end
    end
  end
  progress(finished)
  if #round2 > 0 then
    local base = finished
    local r2, err = core_batch(client, round2, { concurrency = concurrency,
      on_progress = on_progress and function(d, _, info) progress(base + d, info) end })
    if not r2 then
      for j = 1, #round2 do results[map2[j]] = { ok = false, err = remap(err, map2) } end
    else
      for j = 1, #round2 do results[map2[j]] = r2[j] end
    end
    finished = finished + #round2
    progress(finished)
  end
  if #sends > 0 then
    local r3 = client:_send(sends, concurrency)
    for j = 1, #sends do results[maps[j]] = r3[j] end
    finished = finished + #sends
    progress(finished)
  end
  return results
end

-- ---- methods -----------------------------------------------------------------------

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

local function argtype(fname, n, v, want, optional)
  if (optional and v == nil) or type(v) == want then return end
  error(("bad argument #%d to '%s' (%s expected, got %s)"):format(n, fname, want, type(v)), 3)
end

-- ---- installed into the method table ----------------------------------------------

local core_batch = index.batch
local core_delete_policy, core_update_ap, core_delete_ap =
  index.delete_policy, index.update_app_policy, index.delete_app_policy
local get_policy, get_app_policy = index.get_policy, index.get_app_policy

-- The core's validate, looked up when first needed (the core is still
-- opening while this chunk runs); nil when the core is not in
-- package.loaded (then the core's own method checks the body, after the
-- guard's read).
local function core_validate(...)
  local core = type(package) == "table" and package.loaded["cfaccess.core"]
  if type(core) ~= "table" or type(core.validate) ~= "function" then return true end
  return core.validate(...)
end

--- client:batch(ops [, opts]): the core's, plus the ops of this module.
index.batch = function(client, ops, bopts)
  if type(ops) == "table" then
    for i = 1, #ops do
      if type(ops[i]) == "table" and OPS[ops[i].op] then return batch(core_batch, client, ops, bopts) end
    end
  end
  return core_batch(client, ops, bopts)
end

--- Set an application's whole policies list (read-modify-write of the app).
index.set_app_policies = function(client, app_id, refs, opts)
  argtype("set_app_policies", 1, app_id, "string")
  argtype("set_app_policies", 2, refs, "table")
  argtype("set_app_policies", 3, opts, "table", true)
  return run_one(client, { op = "set_app_policies", app_id = app_id, refs = refs, opts = opts })
end
--- Attach a reusable policy to an application (default: after the last one).
index.attach_policy = function(client, app_id, policy_id, opts)
  argtype("attach_policy", 1, app_id, "string")
  argtype("attach_policy", 2, policy_id, "string")
  argtype("attach_policy", 3, opts, "table", true)
  return run_one(client, { op = "attach_policy", app_id = app_id, policy_id = policy_id, opts = opts })
end
--- Detach a reusable policy from an application.
index.detach_policy = function(client, app_id, policy_id, opts)
  argtype("detach_policy", 1, app_id, "string")
  argtype("detach_policy", 2, policy_id, "string")
  argtype("detach_policy", 3, opts, "table", true)
  return run_one(client, { op = "detach_policy", app_id = app_id, policy_id = policy_id, opts = opts })
end
--- Make an application's legacy policy reusable (it stays linked to the app).
index.make_reusable = function(client, app_id, policy_id)
  argtype("make_reusable", 1, app_id, "string")
  argtype("make_reusable", 2, policy_id, "string")
  return run_one(client, { op = "make_reusable", app_id = app_id, policy_id = policy_id })
end

--- delete_policy(id [, { force = true }]): refused while apps use it.
index.delete_policy = function(client, policy_id, opts)
  argtype("delete_policy", 1, policy_id, "string")
  argtype("delete_policy", 2, opts, "table", true)
  local msg = opts_of({ force = "boolean" })(opts)
  if msg then return nil, new_err("usage", "delete_policy: opts: " .. msg) end
  if not is_uuid(policy_id) or (opts and opts.force) then return core_delete_policy(client, policy_id) end
  local p, err = get_policy(client, policy_id)
  if not p then return nil, err end
  local n = math.tointeger(p.app_count)
  if n and n > 0 then return nil, in_use_err(policy_id, n) end
  return core_delete_policy(client, policy_id)
end

-- the app's own view of the policy: marked reusable?
local function app_guard(client, call, app_id, policy_id, instead)
  if not (is_app_id(app_id) and is_uuid(policy_id)) then return true end   -- the core says why
  local p, err = get_app_policy(client, app_id, policy_id)
  if not p then return nil, err end
  if p.reusable == true then
    return nil, new_err("usage", ("%s: policy %s is a reusable policy linked to app %s: %s")
      :format(call, policy_id, app_id, instead), { app_id = app_id, policy_id = policy_id })
  end
  return true
end

--- update_app_policy: refused on a reusable policy the app links.
index.update_app_policy = function(client, app_id, policy_id, policy, opts)
  argtype("update_app_policy", 1, app_id, "string")
  argtype("update_app_policy", 2, policy_id, "string")
  argtype("update_app_policy", 3, policy, "table")
  argtype("update_app_policy", 4, opts, "table", true)
  -- the body is checked first (nothing is read for a bad one): with the
  -- options the core uses, so that the core refuses it too, with its
  -- own error and nothing sent
  local vo = {}
  for k, v in pairs(opts or {}) do vo[k] = v end
  if type(vo.kind) ~= "string" then vo.kind = zone_client(client) and "zone" or "app" end
  local ran, valid = pcall(core_validate, policy, vo)   -- bad options raise
  -- the kind must be one the core takes on this client: asked of the core
  -- (a batch that cannot run, its last op being invalid)
  local _, kerr = core_batch(client, { { op = "update_app_policy", app_id = app_id, policy_id = policy_id,
    policy = policy, kind = opts and opts.kind },
    { op = "get_app", app_id = "" } })
  for _, p in ipairs(type(kerr) == "table" and kerr.problems or {}) do
    if p.path == "ops[1].kind" then valid = false end
  end
  if not ran or not valid then
    return core_update_ap(client, app_id, policy_id, policy, opts)   -- refused there too, nothing sent
  end
  local ok, err = app_guard(client, "update_app_policy", app_id, policy_id,
    "change it with update_policy (it is the same policy for every app)")
  if not ok then return nil, err end
  return core_update_ap(client, app_id, policy_id, policy, opts)
end
--- delete_app_policy: refused on a reusable policy the app links.
index.delete_app_policy = function(client, app_id, policy_id)
  argtype("delete_app_policy", 1, app_id, "string")
  argtype("delete_app_policy", 2, policy_id, "string")
  local ok, err = app_guard(client, "delete_app_policy", app_id, policy_id,
    "take it off this app with detach_policy (delete_policy deletes it, once no app uses it)")
  if not ok then return nil, err end
  return core_delete_ap(client, app_id, policy_id)
end

