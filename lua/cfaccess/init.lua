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

--- Validate a policy (or group) and encode it to canonical JSON.
-- @function encode
-- @tparam table policy the request body as a Lua table
-- @tparam[opt] table opts `{ kind = "app"|"zone"|"reusable"|"infrastructure"|"group",
-- allow_unknown = false, strict = false, legacy = false }`
-- @treturn string the canonical JSON, then `nil` and the warnings (a list of
-- `{ path =, message = }`) when there are any; or `nil, err` (`err.kind == "invalid"`, `err.problems`)

--- Validate a policy (or group) without encoding it.
-- @function validate
-- @tparam table policy the request body as a Lua table
-- @tparam[opt] table opts as for `encode`
-- @treturn boolean `true` (then `nil, warnings` when there are any), or `nil, err`
-- listing every problem with its path

--- lua-cjson's null: where the API takes null (`session_duration`), sent as `null`.
-- @field null

--- The schema as a read-only table: `rule_types`, `rules[key]` (`identity`,
-- `linked`, `fields`), `kinds`.
-- @field schema

--- Make an API client (one libcurl handle, reused; close it with
-- `client:close()` or `<close>`).
-- @function client
-- @tparam table opts `account_id` or `zone_id`, credentials, `base_url`,
-- timeouts, retries, pacing (see README.md)
-- @return the client, or `nil, err` (`usage` or `invalid`)

--- The rule builders (see `cfaccess.rules`).
M.rules = require("cfaccess.rules")

--- Desired-state files: load, dump, validate (see `cfaccess.state`).
M.state = require("cfaccess.state")

-- client:plan, client:apply, client:export (desired state, API.md section 8)
require("cfaccess.plan").install()

--- Offline evaluation: `cfaccess.evaluate`, `cfaccess.evaluator`, `client:evaluate`.
require("cfaccess.evaluate").install(M)

return M
