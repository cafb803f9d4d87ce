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
-- It creates one application policy and one reusable policy, both named
-- "cfaccess quickstart <time>", and deletes them again (also when a later
-- step fails). The credentials are never printed.
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

local created_app_policy, created_reusable -- ids to clean up on failure

-- Leave: on failure, delete what this run created, close, exit.
local function finish(code)
  if code ~= 0 then
    if created_reusable then client:delete_policy(created_reusable) end
    if created_app_policy then client:delete_app_policy(app_id, created_app_policy) end
  end
  client:close()
  os.exit(code)
end

local function check(step, res, e)
  if res == nil then fail(step, e); finish(1) end
  return res
end

local made = check("creating the application policy",
  client:create_app_policy(app_id, policy))
created_app_policy = made.id
say("3. Created application policy %s", made.id)
say("   name %q, precedence %s, session_duration %s, created_at %s",
  made.name, tostring(made.precedence), tostring(made.session_duration),
  tostring(made.created_at))

local list = check("listing the application's policies",
  client:list_app_policies(app_id))
say("4. The application has %d polic%s:", #list, #list == 1 and "y" or "ies")
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
say("5. Updated it (PUT): name %q, session_duration %s", updated.name,
  tostring(updated.session_duration))

local got = check("getting the application policy",
  client:get_app_policy(app_id, made.id))
say("6. Got it back: %q, %d include rule(s), session_duration %s, updated_at %s",
  got.name, #got.include, tostring(got.session_duration), tostring(got.updated_at))

local reusable = check("creating the reusable policy", client:create_policy{
  name = name .. " (reusable)",
  decision = "allow",
  include = r.emails{ "alice@example.com", "bob@example.com" },
})
created_reusable = reusable.id
say("7. Created reusable policy %s %q (reusable=%s)", reusable.id, reusable.name,
  tostring(reusable.reusable))

local reusables = check("listing reusable policies", client:list_policies())
local found = false
for _, p in ipairs(reusables) do found = found or p.id == reusable.id end
say("8. The account has %d reusable polic%s; ours is %s", #reusables,
  #reusables == 1 and "y" or "ies", found and "among them" or "MISSING")
if not found then fail("listing reusable policies", "the new policy is not listed"); finish(1) end

local gone = check("deleting the reusable policy", client:delete_policy(reusable.id))
created_reusable = nil
say("9. Deleted reusable policy %s", gone.id)

gone = check("deleting the application policy", client:delete_app_policy(app_id, made.id))
created_app_policy = nil
say("10. Deleted application policy %s", gone.id)

say("")
say("Done: every step succeeded.")
finish(0)
