--- cfaccess quickstart: a tour of the library against the Cloudflare API
-- (or the local mock: `make demo`).
--
-- Configured only by environment variables, so the same file runs against
-- the mock and against the real API:
--   CLOUDFLARE_API_TOKEN               an API token ("Access: Apps and Policies Write"),
--     or CLOUDFLARE_API_KEY + CLOUDFLARE_EMAIL (a Global API key and its email)
--   CLOUDFLARE_ACCOUNT_ID              the account (32 hex characters)
--   CFACCESS_APP_ID                    an existing Access application of that account
--   CLOUDFLARE_BASE_URL                optional; default https://api.cloudflare.com/client/v4
--
-- It first takes the recommended path: three reusable policies, attached
-- to the application in order, listed, reordered, detached and deleted;
-- then the seed's application-scoped ("legacy") endpoint: one policy
-- created, listed, updated, read and deleted. Everything it makes is named
-- "cfaccess quickstart <time> ..." and is removed again (also when a later
-- step fails); the application's other policies are left as they are. The
-- credentials are never printed.
local cfaccess = require("cfaccess")
local r = cfaccess.rules

local getenv = os.getenv
io.stdout:setvbuf("line")   -- keep stdout and stderr lines in order when piped

local function say(fmt, ...)
  io.stdout:write(fmt:format(...), "\n")
end

-- A failure: print the error as a user sees it and leave non-zero.
local function fail(step, err)
  io.stderr:write(("quickstart: %s failed: %s\n"):format(step, tostring(err)))
  if type(err) == "table" then
    if err.ray_id then io.stderr:write(("  cf-ray %s (quote it to Cloudflare support)\n"):format(err.ray_id)) end
    for _, e in ipairs(err.errors or {}) do
      io.stderr:write(("  Cloudflare error %s: %s\n"):format(tostring(e.code), tostring(e.message)))
    end
    for _, p in ipairs(err.problems or {}) do
      io.stderr:write(("  %s: %s\n"):format(p.path, p.message))
    end
  end
end

-- ---- configuration ---------------------------------------------------------

local account_id = getenv("CLOUDFLARE_ACCOUNT_ID")
local app_id = getenv("CFACCESS_APP_ID")
local missing = {}
if not account_id or account_id == "" then missing[#missing + 1] = "CLOUDFLARE_ACCOUNT_ID" end
if not app_id or app_id == "" then missing[#missing + 1] = "CFACCESS_APP_ID" end
local has_token = (getenv("CLOUDFLARE_API_TOKEN") or "") ~= ""
local has_key = (getenv("CLOUDFLARE_API_KEY") or "") ~= "" and (getenv("CLOUDFLARE_EMAIL") or "") ~= ""
if not has_token and not has_key then
  missing[#missing + 1] = "CLOUDFLARE_API_TOKEN (or CLOUDFLARE_API_KEY and CLOUDFLARE_EMAIL)"
end
if #missing > 0 then
  io.stderr:write("quickstart: set these environment variables first:\n")
  for _, m in ipairs(missing) do io.stderr:write("  ", m, "\n") end
  io.stderr:write("(`make demo` sets them for the local mock API)\n")
  os.exit(2)
end

local base_url = getenv("CLOUDFLARE_BASE_URL")
if base_url == "" then base_url = nil end
local stamp = os.date("!%Y-%m-%dT%H:%M:%SZ")
local name = "cfaccess quickstart " .. stamp

say("%s quickstart", cfaccess._VERSION)
say("API: %s, account %s, application %s, auth: %s",
  base_url or "https://api.cloudflare.com/client/v4", account_id, app_id,
  has_token and "API token (CLOUDFLARE_API_TOKEN)" or "API key + email")
say("")

-- ---- 1. build a policy and look at its canonical JSON -------------------------

local policy = {
  name = name,
  decision = "allow",
  include = {
    r.email_domain("example.com"),
    r.email("contractor@example.net"),
  },
  exclude = r.countries{ "KP" },
  require = { r.auth_method("mfa") },
  session_duration = "8h",
}
local json, err = cfaccess.encode(policy)
if not json then fail("encoding the policy", err); os.exit(1) end
say("1. A policy built with cfaccess.rules, as the canonical JSON that is sent:")
say("   %s", json)
say("")

-- ---- 2. what a validation error looks like --------------------------------------

local broken = {
  name = "broken",
  decision = "allow",
  include = { r.email("alice@example.com"), { email = { email = 42 } } },
  sesion_duration = "24h",            -- a typo
  require = { { geo = { country_code = "US" }, email = { email = "x@example.com" } } },
}
local ok, verr = cfaccess.validate(broken)
if ok then fail("showing a validation error", "the broken policy validated"); os.exit(1) end
say("2. A policy with mistakes never leaves the process. cfaccess.validate says:")
say("   %s", tostring(verr))
for _, p in ipairs(verr.problems or {}) do
  say("     - %s: %s", p.path, p.message)
end
say("")

-- ---- 3. talk to the API ----------------------------------------------------------

-- Credentials come from the environment (CLOUDFLARE_API_TOKEN, or
-- CLOUDFLARE_API_KEY + CLOUDFLARE_EMAIL), base_url from CLOUDFLARE_BASE_URL.
local client, cerr = cfaccess.client{ account_id = account_id }
if not client then fail("making the client", cerr); os.exit(1) end

local created_app_policy -- ids to clean up on failure
local created_reusable = {}

-- Leave: on failure, take what this run created off the application and
-- delete it (detach before delete: the API refuses to delete a reusable
-- policy still in use), close, exit.
local function finish(code)
  if code ~= 0 then
    for _, id in ipairs(created_reusable) do
      client:detach_policy(app_id, id, { allow_empty = true })
      client:delete_policy(id)
    end
    if created_app_policy then client:delete_app_policy(app_id, created_app_policy) end
  end
  client:close()
  os.exit(code)
end

local function check(step, res, e)
  if res == nil then fail(step, e); finish(1) end
  return res
end

-- The application's policies in precedence order, as "name [reusable]" lines.
local function show_app(step)
  local app = check(step, client:get_app(app_id))
  local items = {}
  for _, p in ipairs(app.policies or {}) do items[#items + 1] = p end
  table.sort(items, function(a, b) return (a.precedence or 0) < (b.precedence or 0) end)
  for _, p in ipairs(items) do
    say("   %s. %q [%s]", tostring(p.precedence), tostring(p.name), p.reusable and "reusable" or "legacy")
  end
  return items
end

-- ---- 3-9. the modern path: reusable policies in the application's list ----------

say("The recommended model: reusable policies, linked from the application's policies list.")
local ids, names = {}, {}
for i, spec in ipairs{
  { "block", "deny", { r.geo("KP") } },
  { "staff", "allow", { r.email_domain("example.com") } },
  { "contractors", "allow", { r.email("contractor@example.net") } },
} do
  names[i] = name .. " " .. spec[1]
  local p = check("creating a reusable policy", client:create_policy{
    name = names[i], decision = spec[2], include = spec[3],
  })
  ids[i] = p.id
  created_reusable[#created_reusable + 1] = p.id
end
say("3. Created reusable policies %q, %q and %q", names[1], names[2], names[3])

for _, id in ipairs(ids) do
  check("attaching a reusable policy", client:attach_policy(app_id, id))
end
say("4. Attached them to the application in that order (attach_policy: after the last one)")

say("5. The application's policies (get_app), in precedence order:")
local items = show_app("getting the application")

-- reorder: "contractors" before "staff", in one write of the whole list,
-- only if the list is still the one just read (expect)
local seen, order = {}, {}
for i, p in ipairs(items) do seen[i] = p.id end
for _, p in ipairs(items) do
  if p.id ~= ids[3] then order[#order + 1] = p.id end
  if p.id == ids[1] then order[#order + 1] = ids[3] end
end
check("reordering the application's policies",
  client:set_app_policies(app_id, order, { expect = seen }))
say("6. Reordered in one write (set_app_policies with expect): contractors now before staff")
show_app("getting the application")

local _, derr = client:delete_policy(ids[2])
if derr == nil then fail("deleting an attached policy", "it was not refused"); finish(1) end
say("7. delete_policy of an attached policy is refused (%s): %s", derr.kind, derr.message)

for _, id in ipairs(ids) do
  check("detaching a reusable policy", client:detach_policy(app_id, id, { allow_empty = true }))
end
say("8. Detached all three (detach_policy); the application keeps its other policies")

for _, id in ipairs(ids) do
  check("deleting a reusable policy", client:delete_policy(id))
end
created_reusable = {}
say("9. Deleted the three reusable policies")
say("")

-- ---- 10-14. the seed's endpoint: application-scoped ("legacy") policies ---------

say("The seed's endpoint: application-scoped policies (legacy; new applications cannot take them).")
local made = check("creating the application policy",
  client:create_app_policy(app_id, policy))
created_app_policy = made.id
say("10. Created application policy %s", made.id)
say("   name %q, precedence %s, session_duration %s, created_at %s",
  made.name, tostring(made.precedence), tostring(made.session_duration),
  tostring(made.created_at))

local list = check("listing the application's policies",
  client:list_app_policies(app_id))
say("11. The application has %d polic%s:", #list, #list == 1 and "y" or "ies")
for _, p in ipairs(list) do
  say("   - %s %q (%s, precedence %s)", p.id, p.name, p.decision, tostring(p.precedence))
end

-- PUT replaces the whole policy: send every field again, with the changes.
local changed = {
  name = name .. " (updated)",
  decision = "allow",
  include = { r.email_domain("example.com") },
  require = { r.auth_method("mfa") },
  session_duration = "4h",
  precedence = made.precedence,
}
local updated = check("updating the application policy",
  client:update_app_policy(app_id, made.id, changed))
say("12. Updated it (PUT): name %q, session_duration %s", updated.name,
  tostring(updated.session_duration))

local got = check("getting the application policy",
  client:get_app_policy(app_id, made.id))
say("13. Got it back: %q, %d include rule(s), session_duration %s, updated_at %s",
  got.name, #got.include, tostring(got.session_duration), tostring(got.updated_at))

local gone = check("deleting the application policy", client:delete_app_policy(app_id, made.id))
created_app_policy = nil
say("14. Deleted application policy %s", gone.id)

say("")
say("Done: every step succeeded.")
finish(0)
