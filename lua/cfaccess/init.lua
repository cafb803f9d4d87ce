--- cfaccess: Cloudflare Access policies from Lua tables.
-- The user-facing module. It re-exports every function of the C core
-- (`cfaccess.core`: validation, canonical JSON, the HTTPS client) on one
-- table and adds the rule builders as `cfaccess.rules`. It writes nothing
-- to `_G` and prints nothing.
--
--     local cfaccess = require("cfaccess")
--     local r = cfaccess.rules
--     local json = assert(cfaccess.encode{
--       name = "staff", decision = "allow", include = { r.email_domain("example.com") },
--     })
-- @module cfaccess
local core = require("cfaccess.core")

local M = {}

-- Copy the core's exports (encode, validate, client, _VERSION and anything
-- the core adds later) so `cfaccess.x` is exactly `cfaccess.core.x`.
for k, v in pairs(core) do M[k] = v end

--- `"cfaccess X.Y.Z"`, the version of the C core.
-- @field _VERSION

--- Validate a policy and encode it to canonical JSON.
-- @function encode
-- @tparam table policy the request body as a Lua table
-- @tparam[opt] table opts `{ kind = "app"|"zone"|"reusable"|"infrastructure", allow_unknown = false }`
-- @treturn string the canonical JSON, or `nil, err` (`err.kind == "invalid"`, `err.problems`)

--- Validate a policy without encoding it.
-- @function validate
-- @tparam table policy the request body as a Lua table
-- @tparam[opt] table opts as for `encode`
-- @treturn boolean `true`, or `nil, err` listing every problem with its path

--- Make an API client (one libcurl handle, reused; close it with
-- `client:close()` or `<close>`).
-- @function client
-- @tparam table opts `account_id` or `zone_id`, credentials, `base_url`,
-- timeouts, retries, pacing (see README.md)
-- @return the client, or `nil, err` (`usage` or `invalid`)

--- The rule builders (see `cfaccess.rules`).
M.rules = require("cfaccess.rules")

-- client:plan, client:apply, client:export (desired state, API.md section 8)
require("cfaccess.plan").install()

return M
