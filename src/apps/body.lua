-- cfaccess section-6 chunks, 2: the application body round-trip.
--
-- set_app_policies & co. send an application back whole: the PUT body is
-- rebuilt from the decoded GET, every field but the read-only ones
-- (READ_ONLY), `policies` written as `[{id, precedence}]` (never `null`,
-- never the expanded objects a GET returns). A field whose JSON type the
-- decoded GET no longer tells (an empty table: `[]` or `{}`?) that is not
-- in ARRAYS/OBJECTS, a string that is not UTF-8, or a number whose digits
-- were lost is a `conflict` naming the field: not a guess.
--
-- Written here rather than with the core's JSON writer because the
-- application is not a schema body: its fields are whatever the API gave.
local ctx = ...
local M = {}

local err = ctx.check.err
local null = ctx.null

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

local function conflict(path, message) return nil, err("conflict", message, { field = path }) end

-- The JSON of number v (at path), or nil, err.
local function json_number(v, path)
  if math.type(v) == "integer" then return tostring(v) end
  if v ~= v or v == math.huge or v == -math.huge then
    return conflict(path, ("%s: %s cannot be sent back as JSON"):format(path, tostring(v)))
  end
  if v == math.floor(v) and math.abs(v) >= 2^53 then
    return conflict(path, ("the application's field %s holds a number beyond 2^53 (%.17g) whose "
      .. "digits were lost in decoding: not sent back (nothing was changed)"):format(path, v))
  end
  local s = ("%.14g"):format(v)
  if tonumber(s) ~= v then s = ("%.17g"):format(v) end
  return s
end

-- The JSON of an empty table at path: [] or {} by ARRAYS/OBJECTS, or nil, err.
local function json_empty(path)
  local g, star = generic(path)
  if ARRAYS[g] or ARRAYS[star] then return "[]" end
  if OBJECTS[g] or OBJECTS[star] then return "{}" end
  return conflict(path, ("the application's field %s is empty, and whether it is [] or {} "
    .. "is lost in decoding: not sent back (nothing was changed)"):format(path))
end

local write_json

local function write_list(v, path, out)
  out[#out + 1] = "["
  for i = 1, #v do
    if i > 1 then out[#out + 1] = "," end
    local ok, e = write_json(v[i], ("%s[%d]"):format(path, i), out)
    if not ok then return nil, e end
  end
  out[#out + 1] = "]"
  return true
end

local function write_object(v, path, out)
  local keys = {}
  for k in pairs(v) do
    if type(k) ~= "string" then return conflict(path, ("%s: a key that is not a string"):format(path)) end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  out[#out + 1] = "{"
  for i, k in ipairs(keys) do
    if i > 1 then out[#out + 1] = "," end
    local jk = json_string(k)
    if not jk then return conflict(path, ("%s: a key that is not UTF-8"):format(path)) end
    out[#out + 1] = jk .. ":"
    local ok, e = write_json(v[k], path == "" and k or (path .. "." .. k), out)
    if not ok then return nil, e end
  end
  out[#out + 1] = "}"
  return true
end

-- Write value v (at path) as JSON into out; nil, conflict err when its
-- type cannot be told.
write_json = function(v, path, out)
  local t = type(v)
  local s, e   -- the JSON of a scalar, or nil, err
  if t == "string" then
    s = json_string(v)
    if not s then
      return conflict(path, ("the application's field %s is not UTF-8: not sent back"):format(path))
    end
  elseif t == "number" then s, e = json_number(v, path)
  elseif t == "boolean" then s = v and "true" or "false"
  elseif v == null then s = "null"
  elseif t == "table" and next(v) == nil then s, e = json_empty(path)
  elseif t == "table" then
    if is_list(v) then return write_list(v, path, out) end
    return write_object(v, path, out)
  else
    return conflict(path, ("%s: a %s cannot be sent back as JSON"):format(path, t))
  end
  if not s then return nil, e end
  out[#out + 1] = s
  return true
end

--- The PUT body of application `app` (a decoded GET) with links ({ id =,
-- precedence = }, ids checked) as its policies, or nil, conflict err.
function M.app_body(app, links)
  local out, rest = { "{" }, {}
  local keys = {}
  for k, v in pairs(app) do
    if type(k) ~= "string" then
      return nil, err("conflict", "the application has a key that is not a string", { field = tostring(k) })
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
        items[j] = ('{"id":"%s","precedence":%d}'):format(l.id, l.precedence)   -- a checked id
      end
      out[#out + 1] = "[" .. table.concat(items, ",") .. "]"
    else
      local ok, e = write_json(rest[k], k, out)
      if not ok then return nil, e end
    end
  end
  out[#out + 1] = "}"
  return table.concat(out)
end

return M
