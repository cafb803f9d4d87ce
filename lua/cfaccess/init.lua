--- cfaccess: Cloudflare Access policies from Lua tables.
-- Re-exports the C core (`cfaccess.core`) and adds `cfaccess.rules`.
local core = require("cfaccess.core")

local M = {}
for k, v in pairs(core) do M[k] = v end
M.rules = require("cfaccess.rules")

return M
