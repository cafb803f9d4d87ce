--- cfaccess.rules: builders for Cloudflare Access rule objects.
-- Every builder returns a plain table (no metatable) in the API's JSON
-- shape, so builder output and hand-written tables are interchangeable:
--
--     rules.email("alice@example.com") --> { email = { email = "alice@example.com" } }
--
-- Builders check their own arguments (a missing argument, a wrong type or
-- an empty string raises a Lua error naming the builder and the argument);
-- formats (is it an email, a CIDR, a country code?) are the core
-- validator's job (`cfaccess.validate`), which reports every problem with
-- its path.
-- @module cfaccess.rules
local select, type, error, pairs, tostring = select, type, error, pairs, tostring
local format = string.format
local math_type = math.type

local M = {}

-- How a bad value is described in an argument error.
local function describe(v)
  if v == "" then return "an empty string" end
  return type(v)
end

-- Raise the argument error at the level of the builder's caller. `level`
-- counts from the function that calls argerror: 3 = the builder's caller
-- when argerror is called from a check helper called by the builder.
local function argerror(level, builder, n, name, what, got)
  error(format("cfaccess.rules.%s: argument #%d (%s) %s, got %s",
    builder, n, name, what, got), level + 1)
end

-- Check that argument n (named name) of builder is a non-empty string.
local function str(builder, n, name, v)
  if type(v) ~= "string" or v == "" then
    argerror(3, builder, n, name, "expected a non-empty string", describe(v))
  end
  return v
end

-- Same, but nil is allowed (an optional argument).
local function optstr(builder, n, name, v)
  if v ~= nil then str(builder, n, name, v) end
  return v
end

-- Reject arguments beyond the builder's last one (a typo such as
-- rules.email("a@x.com", "b@x.com") is a mistake, not a second rule).
local function maxargs(builder, max, count)
  if count > max then
    error(format("cfaccess.rules.%s: argument #%d unexpected (takes %s)",
      builder, max + 1,
      max == 0 and "no arguments" or
      max == 1 and "1 argument" or (max .. " arguments")), 3)
  end
end

-- Check that v is a sequence (keys 1..n, nothing else) of non-empty
-- strings; `nonempty` also refuses an empty list. Returns a fresh copy so
-- later changes to the caller's table do not change the rule.
local function strlist(builder, n, name, v, nonempty)
  if type(v) ~= "table" then
    argerror(3, builder, n, name, "expected a list of strings", describe(v))
  end
  local len, count = #v, 0
  for k in pairs(v) do
    if math_type(k) ~= "integer" or k < 1 then
      argerror(3, builder, n, name, "expected a list of strings",
        format("a table with key %s", type(k) == "string"
          and format("%q", k) or math_type(k) and tostring(k) or type(k)))
    end
    if k > len then
      argerror(3, builder, n, name, "expected a list of strings",
        "a table with holes")
    end
    count = count + 1
  end
  if count ~= len then
    argerror(3, builder, n, name, "expected a list of strings",
      "a table with holes")
  end
  if nonempty and len == 0 then
    argerror(3, builder, n, name, "expected a non-empty list of strings",
      "an empty table")
  end
  local copy = {}
  for i = 1, len do
    local e = v[i]
    if type(e) ~= "string" or e == "" then
      argerror(3, builder, n, name,
        format("element [%d] expected a non-empty string", i), describe(e))
    end
    copy[i] = e
  end
  return copy
end

--- One user by email address.
-- @tparam string address e.g. `"alice@example.com"`
-- @treturn table `{ email = { email = address } }`
function M.email(...)
  maxargs("email", 1, select("#", ...))
  local address = ...
  return { email = { email = str("email", 1, "address", address) } }
end

--- Everyone whose email is in a domain.
-- @tparam string domain e.g. `"example.com"`
-- @treturn table `{ email_domain = { domain = domain } }`
function M.email_domain(...)
  maxargs("email_domain", 1, select("#", ...))
  local domain = ...
  return { email_domain = { domain = str("email_domain", 1, "domain", domain) } }
end

--- Everyone (encodes as `{"everyone":{}}`).
-- @treturn table `{ everyone = {} }`
function M.everyone(...)
  maxargs("everyone", 0, select("#", ...))
  return { everyone = {} }
end

--- An IPv4 or IPv6 address or CIDR range.
-- @tparam string ip e.g. `"203.0.113.0/24"`
-- @treturn table `{ ip = { ip = ip } }`
function M.ip(...)
  maxargs("ip", 1, select("#", ...))
  local ip = ...
  return { ip = { ip = str("ip", 1, "ip", ip) } }
end

--- Members of an Access group.
-- @tparam string id the group's ID
-- @treturn table `{ group = { id = id } }`
function M.group(...)
  maxargs("group", 1, select("#", ...))
  local id = ...
  return { group = { id = str("group", 1, "id", id) } }
end

--- Addresses in a stored email list.
-- @tparam string id the list's ID
-- @treturn table `{ email_list = { id = id } }`
function M.email_list(...)
  maxargs("email_list", 1, select("#", ...))
  local id = ...
  return { email_list = { id = str("email_list", 1, "id", id) } }
end

--- Addresses in a stored IP list.
-- @tparam string id the list's ID
-- @treturn table `{ ip_list = { id = id } }`
function M.ip_list(...)
  maxargs("ip_list", 1, select("#", ...))
  local id = ...
  return { ip_list = { id = str("ip_list", 1, "id", id) } }
end

--- One service token.
-- @tparam string token_id the service token's ID
-- @treturn table `{ service_token = { token_id = token_id } }`
function M.service_token(...)
  maxargs("service_token", 1, select("#", ...))
  local token_id = ...
  return { service_token = {
    token_id = str("service_token", 1, "token_id", token_id) } }
end

--- Any valid service token.
-- @treturn table `{ any_valid_service_token = {} }`
function M.any_valid_service_token(...)
  maxargs("any_valid_service_token", 0, select("#", ...))
  return { any_valid_service_token = {} }
end

--- Any valid mTLS client certificate.
-- @treturn table `{ certificate = {} }`
function M.certificate(...)
  maxargs("certificate", 0, select("#", ...))
  return { certificate = {} }
end

--- A client certificate with this common name.
-- @tparam string cn the certificate CN
-- @treturn table `{ common_name = { common_name = cn } }`
function M.common_name(...)
  maxargs("common_name", 1, select("#", ...))
  local cn = ...
  return { common_name = {
    common_name = str("common_name", 1, "common_name", cn) } }
end

--- Requests from a country.
-- @tparam string country_code ISO 3166-1 alpha-2, e.g. `"US"`
-- @treturn table `{ geo = { country_code = country_code } }`
function M.geo(...)
  maxargs("geo", 1, select("#", ...))
  local country_code = ...
  return { geo = {
    country_code = str("geo", 1, "country_code", country_code) } }
end

--- Users who authenticated with a method (an RFC 8176 AMR value).
-- @tparam string method e.g. `"mfa"`
-- @treturn table `{ auth_method = { auth_method = method } }`
function M.auth_method(...)
  maxargs("auth_method", 1, select("#", ...))
  local method = ...
  return { auth_method = {
    auth_method = str("auth_method", 1, "auth_method", method) } }
end

--- Devices that pass a device posture rule.
-- @tparam string integration_uid the posture rule's ID
-- @treturn table `{ device_posture = { integration_uid = integration_uid } }`
function M.device_posture(...)
  maxargs("device_posture", 1, select("#", ...))
  local uid = ...
  return { device_posture = {
    integration_uid = str("device_posture", 1, "integration_uid", uid) } }
end

--- Users who logged in with an identity provider.
-- @tparam string id the identity provider's ID
-- @treturn table `{ login_method = { id = id } }`
function M.login_method(...)
  maxargs("login_method", 1, select("#", ...))
  local id = ...
  return { login_method = { id = str("login_method", 1, "id", id) } }
end

--- Members of an Azure AD group (JSON key `azureAD`).
-- @tparam string group_id the Azure group ID
-- @tparam string idp_id the identity provider's ID
-- @treturn table `{ azureAD = { id = group_id, identity_provider_id = idp_id } }`
function M.azure_ad(...)
  maxargs("azure_ad", 2, select("#", ...))
  local group_id, idp_id = ...
  return { azureAD = {
    id = str("azure_ad", 1, "group_id", group_id),
    identity_provider_id = str("azure_ad", 2, "idp_id", idp_id),
  } }
end

--- Members of a GitHub organization, optionally of one team (JSON key
-- `github-organization`).
-- @tparam string name the organization
-- @tparam string idp_id the identity provider's ID
-- @tparam[opt] string team a team of the organization
-- @treturn table `{ ["github-organization"] = { name =, identity_provider_id = [, team =] } }`
function M.github_org(...)
  maxargs("github_org", 3, select("#", ...))
  local name, idp_id, team = ...
  return { ["github-organization"] = {
    name = str("github_org", 1, "name", name),
    identity_provider_id = str("github_org", 2, "idp_id", idp_id),
    team = optstr("github_org", 3, "team", team),
  } }
end

--- Members of a Google Workspace group.
-- @tparam string email the group's email address
-- @tparam string idp_id the identity provider's ID
-- @treturn table `{ gsuite = { email = email, identity_provider_id = idp_id } }`
function M.gsuite(...)
  maxargs("gsuite", 2, select("#", ...))
  local email, idp_id = ...
  return { gsuite = {
    email = str("gsuite", 1, "email", email),
    identity_provider_id = str("gsuite", 2, "idp_id", idp_id),
  } }
end

--- Members of an Okta group.
-- @tparam string name the Okta group name
-- @tparam string idp_id the identity provider's ID
-- @treturn table `{ okta = { name = name, identity_provider_id = idp_id } }`
function M.okta(...)
  maxargs("okta", 2, select("#", ...))
  local name, idp_id = ...
  return { okta = {
    name = str("okta", 1, "name", name),
    identity_provider_id = str("okta", 2, "idp_id", idp_id),
  } }
end

--- Users with a SAML attribute value.
-- @tparam string attr_name the attribute's name
-- @tparam string attr_value the value to match
-- @tparam string idp_id the identity provider's ID
-- @treturn table `{ saml = { attribute_name =, attribute_value =, identity_provider_id = } }`
function M.saml(...)
  maxargs("saml", 3, select("#", ...))
  local attr_name, attr_value, idp_id = ...
  return { saml = {
    attribute_name = str("saml", 1, "attr_name", attr_name),
    attribute_value = str("saml", 2, "attr_value", attr_value),
    identity_provider_id = str("saml", 3, "idp_id", idp_id),
  } }
end

--- Users with an OIDC claim value.
-- @tparam string claim_name the claim's name
-- @tparam string claim_value the value to match
-- @tparam string idp_id the identity provider's ID
-- @treturn table `{ oidc = { claim_name =, claim_value =, identity_provider_id = } }`
function M.oidc(...)
  maxargs("oidc", 3, select("#", ...))
  local claim_name, claim_value, idp_id = ...
  return { oidc = {
    claim_name = str("oidc", 1, "claim_name", claim_name),
    claim_value = str("oidc", 2, "claim_value", claim_value),
    identity_provider_id = str("oidc", 3, "idp_id", idp_id),
  } }
end

--- An Azure authentication context.
-- @tparam string id the context's ID
-- @tparam string ac_id the authentication context ID
-- @tparam string idp_id the identity provider's ID
-- @treturn table `{ auth_context = { id =, ac_id =, identity_provider_id = } }`
function M.auth_context(...)
  maxargs("auth_context", 3, select("#", ...))
  local id, ac_id, idp_id = ...
  return { auth_context = {
    id = str("auth_context", 1, "id", id),
    ac_id = str("auth_context", 2, "ac_id", ac_id),
    identity_provider_id = str("auth_context", 3, "idp_id", idp_id),
  } }
end

--- An external evaluation endpoint.
-- @tparam string evaluate_url the URL that evaluates the request
-- @tparam string keys_url the URL of the keys that sign its answer
-- @treturn table `{ external_evaluation = { evaluate_url =, keys_url = } }`
function M.external_evaluation(...)
  maxargs("external_evaluation", 2, select("#", ...))
  local evaluate_url, keys_url = ...
  return { external_evaluation = {
    evaluate_url = str("external_evaluation", 1, "evaluate_url", evaluate_url),
    keys_url = str("external_evaluation", 2, "keys_url", keys_url),
  } }
end

--- A token from a linked Access OIDC SaaS app (only with decision
-- `non_identity` or `bypass`).
-- @tparam string app_uid the linked app's ID
-- @treturn table `{ linked_app_token = { app_uid = app_uid } }`
function M.linked_app_token(...)
  maxargs("linked_app_token", 1, select("#", ...))
  local app_uid = ...
  return { linked_app_token = {
    app_uid = str("linked_app_token", 1, "app_uid", app_uid) } }
end

--- Users whose risk score is one of the levels.
-- @tparam {string,...} levels a non-empty list: `"low"`, `"medium"`, `"high"`, `"unscored"`
-- @treturn table `{ user_risk_score = { user_risk_score = levels } }` (a copy of levels)
function M.user_risk_score(...)
  maxargs("user_risk_score", 1, select("#", ...))
  local levels = ...
  return { user_risk_score = {
    user_risk_score = strlist("user_risk_score", 1, "levels", levels, true),
  } }
end

--- Members of a Cloudflare account (needs a Cloudflare identity provider).
-- @tparam[opt] string account_id a 32-hex account ID; without it, the
-- account that owns the application
-- @treturn table `{ cloudflare_account_member = { account_id = account_id } }`
function M.cloudflare_account_member(...)
  maxargs("cloudflare_account_member", 1, select("#", ...))
  local account_id = ...
  return { cloudflare_account_member = {
    account_id = optstr("cloudflare_account_member", 1, "account_id",
      account_id),
  } }
end

-- A list helper: check the list, then one rule per element.
local function lister(name, argname, builder)
  return function(...)
    maxargs(name, 1, select("#", ...))
    local list = strlist(name, 1, argname, (...), false)
    local out = {}
    for i = 1, #list do out[i] = builder(list[i]) end
    return out
  end
end

--- One `email` rule per address.
-- @function emails
-- @tparam {string,...} addresses
-- @treturn {table,...} `{ rules.email(addresses[1]), ... }`
M.emails = lister("emails", "addresses", M.email)

--- One `email_domain` rule per domain.
-- @function email_domains
-- @tparam {string,...} domains
-- @treturn {table,...}
M.email_domains = lister("email_domains", "domains", M.email_domain)

--- One `ip` rule per address or range.
-- @function ips
-- @tparam {string,...} ips
-- @treturn {table,...}
M.ips = lister("ips", "ips", M.ip)

--- One `group` rule per group ID.
-- @function groups
-- @tparam {string,...} ids
-- @treturn {table,...}
M.groups = lister("groups", "ids", M.group)

--- One `geo` rule per country code.
-- @function countries
-- @tparam {string,...} country_codes
-- @treturn {table,...}
M.countries = lister("countries", "country_codes", M.geo)

return M
