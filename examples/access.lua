-- examples/access.lua: a desired state for `cfaccess plan` and `cfaccess
-- apply` (README.md, "Command line"). Read by cfaccess.state.load: a chunk
-- returning a state, whose environment holds only `rules` (the builders)
-- and safe basics. Reusable policies are matched to live ones by name; the
-- application lists them in precedence order.
local r = rules -- luacheck: read globals rules

return {
  policies = {
    { name = "office", decision = "bypass", include = { r.ip("192.0.2.0/24") } },
    { name = "staff", decision = "allow", include = { r.email_domain("example.com") },
      require = { r.auth_method("mfa") } },
    { name = "contractors", decision = "allow", session_duration = "4h",
      include = r.emails{ "c1@partner.example", "c2@partner.example" } },
  },
  apps = {
    ["f174e90a-fafe-4643-bbbc-4a0ed4fc8415"] = { "office", "staff", "contractors" },
  },
}
