--- cfaccess.state: desired-state files (API.md section 8), read and written.
--
--     local state = assert(cfaccess.state.load("access.lua"))   -- or .json
--     print(cfaccess.state.dump(state, "lua"))                   -- or "json"
--     local ok, err, warnings = cfaccess.state.validate(state)
--
-- A state is `{ policies = { reusable policy, ... }, apps = { [app_id] =
-- { "name or id", ... } | { legacy = { app policy, ... } } } }`.
-- `load` reads a `.lua` file (a chunk returning a state, run in a sandbox
-- whose environment holds only `rules` and safe basics) or a `.json` file
-- (lua-cjson; syntax errors with line:column). It only reads: it checks that
-- the file gives a table, and leaves the policies to `validate` (so that
-- every problem can be reported with its path) and to `client:plan`.
-- `dump` writes readable text that `load` reads back to an equal state.
--
-- The parts: cfaccess.state.load (reading, the sandbox, JSON line:column),
-- cfaccess.state.check (validation and problem paths),
-- cfaccess.state.tree (canonical JSON as an ordered tree, pretty JSON),
-- cfaccess.state.dump (Lua and JSON text); cfaccess.state.common holds
-- what they share.
-- @module cfaccess.state
local loader = require("cfaccess.state.load")
local check = require("cfaccess.state.check")
local tree = require("cfaccess.state.tree")
local dumper = require("cfaccess.state.dump")

local M = {}

--- Is the Lua dump written with builder calls (`r.email("a@x")`)? False
-- until lua/cfaccess/rulespec.lua is available.
M.uses_builders = dumper.uses_builders

--- Instructions a `.lua` state file may run (a count hook stops it after
-- this many, so a file with an endless loop cannot hang the command).
M.MAX_INSTRUCTIONS = 50000000

--- Line and column (both from 1) of byte offset `pos` (from 1) in `text`.
-- Columns count UTF-8 characters where the line is valid UTF-8, else bytes.
-- @function line_column
M.line_column = loader.line_column

--- Decode JSON text into a Lua value; syntax errors as
-- `nil, err` with `err.line`, `err.column` and a message
-- `"name:line:column: JSON syntax error: ..."`.
-- @function decode_json
-- @tparam string text the JSON text
-- @tparam[opt] string name the file name used in the message
M.decode_json = loader.decode_json

--- Read a state (or a policy, or a list of policies) from a file.
-- `.lua`: a chunk returning a table, run with only `rules` and the safe
-- basics in its environment and at most `MAX_INSTRUCTIONS` instructions;
-- `.json`: decoded with lua-cjson. Nothing is validated here (see `validate`).
-- @tparam string path a `.lua` or `.json` file
-- @return the table, or `nil, err` (`err.kind` `"invalid"`: syntax, a
-- refused global, not a table; `"usage"`: another suffix or an unreadable file)
function M.load(path)
  if type(path) ~= "string" then
    error("cfaccess.state.load: argument #1 (path) expected a string, got " .. type(path), 2)
  end
  return loader.load(path, M.MAX_INSTRUCTIONS)
end

--- What a file's table is: `"state"` (it has `policies` or `apps`),
-- `"list"` (a non-empty list of policies) or `"policy"`.
-- @function shape
M.shape = check.shape

--- Every problem (and warning) of a state, a policy or a list of policies,
-- with paths from the file's top (see cfaccess.state.check).
-- @function problems
-- @tparam table value what `load` returned
-- @tparam[opt] table opts `kind`, `legacy_kind`, `legacy`, `allow_unknown`
-- @treturn table problems, a list of `{ path =, message = }` (empty when valid)
-- @treturn table warnings, the same shape
-- @treturn string the shape: `"state"`, `"list"` or `"policy"`
M.problems = check.problems

--- Validate a state as `cfaccess.validate` does a policy.
-- @function validate
-- @tparam table state
-- @tparam[opt] table opts as for `problems`
-- @return `true, nil, warnings` or `nil, err` (`err.kind == "invalid"`, `err.problems`), warnings
M.validate = check.validate

--- Pretty-print canonical JSON text (two-space indent, key order kept).
-- @function pretty_json
-- @tparam string json e.g. `cfaccess.encode(policy)`
-- @treturn string the same JSON over several lines, ending with a newline
M.pretty_json = tree.pretty_json

--- Readable text of a state that `load` reads back to an equal state
-- (see cfaccess.state.dump): `"lua"` or `"json"`.
-- @function dump
-- @tparam table state
-- @tparam string fmt `"lua"` or `"json"`
-- @tparam[opt] table opts `apps = { [app_id] = { name =, domain = } }`
-- @return the text, or `nil, err` (`invalid`: a policy that does not encode)
M.dump = dumper.dump

return M
