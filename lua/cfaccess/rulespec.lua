--- cfaccess.rulespec: the rule builders as data.
-- One entry per builder of `cfaccess.rules`, in the schema's rule order
-- (shared/reference/ACCESS-POLICY-FIELDS.md):
--
--     { builder = "github_org", key = "github-organization",
--       args = { "name", "identity_provider_id", "team" },
--       optional = { team = true },
--       names = { "name", "idp_id", "team" },
--       doc = "Members of a GitHub organization, optionally of one team." }
--
-- - `builder`: the function's name in `cfaccess.rules`;
-- - `key`: the rule's JSON key;
-- - `args`: the rule's inner JSON field names, in builder argument order
--   (`{}` for the empty rules such as `everyone`);
-- - `optional`: set of the args that may be nil (absent: none may);
-- - `list`: set of the args that take a list of strings instead of a
--   string (only `user_risk_score`);
-- - `names`: the arguments' names as errors and docs spell them (absent:
--   the same as `args`);
-- - `doc`: one line saying what the rule matches.
--
-- `rulespec.lists` describes the list helpers (`rules.emails{...}` gives
-- one `rules.email` rule per element): `{ builder =, name =, of = }` where
-- `name` is the list argument's name in errors and `of` the single-rule
-- builder.
--
-- `cfaccess.rules` is generated from this table and checks it against the
-- core's schema when it loads; `cfaccess.state.dump(..., "lua")` uses it
-- to write builder calls. Treat it as read-only.
-- @module cfaccess.rulespec
local IDP = "identity_provider_id"

local M = {
  { builder = "email", key = "email", args = { "email" },
    names = { "address" }, doc = "One user by email address." },
  { builder = "email_list", key = "email_list", args = { "id" },
    doc = "Addresses in a stored email list." },
  { builder = "email_domain", key = "email_domain", args = { "domain" },
    doc = "Everyone whose email is in a domain." },
  { builder = "everyone", key = "everyone", args = {},
    doc = "Everyone (encodes as {\"everyone\":{}})." },
  { builder = "ip", key = "ip", args = { "ip" },
    doc = "An IPv4 or IPv6 address or CIDR range." },
  { builder = "ip_list", key = "ip_list", args = { "id" },
    doc = "Addresses in a stored IP list." },
  { builder = "certificate", key = "certificate", args = {},
    doc = "Any valid mTLS client certificate." },
  { builder = "common_name", key = "common_name", args = { "common_name" },
    doc = "A client certificate with this common name." },
  { builder = "group", key = "group", args = { "id" },
    doc = "Members of an Access group." },
  { builder = "azure_ad", key = "azureAD", args = { "id", IDP },
    names = { "group_id", "idp_id" },
    doc = "Members of an Azure AD group (JSON key azureAD)." },
  { builder = "github_org", key = "github-organization",
    args = { "name", IDP, "team" }, optional = { team = true },
    names = { "name", "idp_id", "team" },
    doc = "Members of a GitHub organization, optionally of one team." },
  { builder = "gsuite", key = "gsuite", args = { "email", IDP },
    names = { "email", "idp_id" },
    doc = "Members of a Google Workspace group." },
  { builder = "okta", key = "okta", args = { "name", IDP },
    names = { "name", "idp_id" }, doc = "Members of an Okta group." },
  { builder = "saml", key = "saml",
    args = { "attribute_name", "attribute_value", IDP },
    names = { "attr_name", "attr_value", "idp_id" },
    doc = "Users with a SAML attribute value." },
  { builder = "oidc", key = "oidc", args = { "claim_name", "claim_value", IDP },
    names = { "claim_name", "claim_value", "idp_id" },
    doc = "Users with an OIDC claim value." },
  { builder = "auth_context", key = "auth_context",
    args = { "id", "ac_id", IDP }, names = { "id", "ac_id", "idp_id" },
    doc = "An Azure authentication context." },
  { builder = "login_method", key = "login_method", args = { "id" },
    doc = "Users who logged in with an identity provider." },
  { builder = "auth_method", key = "auth_method", args = { "auth_method" },
    doc = "Users who authenticated with a method (an RFC 8176 AMR value)." },
  { builder = "service_token", key = "service_token", args = { "token_id" },
    doc = "One service token." },
  { builder = "any_valid_service_token", key = "any_valid_service_token",
    args = {}, doc = "Any valid service token." },
  { builder = "external_evaluation", key = "external_evaluation",
    args = { "evaluate_url", "keys_url" },
    doc = "An external evaluation endpoint." },
  { builder = "geo", key = "geo", args = { "country_code" },
    doc = "Requests from a country (ISO 3166-1 alpha-2, e.g. US)." },
  { builder = "device_posture", key = "device_posture",
    args = { "integration_uid" },
    doc = "Devices that pass a device posture rule." },
  { builder = "linked_app_token", key = "linked_app_token", args = { "app_uid" },
    doc = "A token from a linked Access OIDC SaaS app (decision non_identity or bypass only)." },
  { builder = "user_risk_score", key = "user_risk_score",
    args = { "user_risk_score" }, list = { user_risk_score = true },
    names = { "levels" },
    doc = "Users whose risk score is one of the levels (low, medium, high, unscored)." },
  { builder = "cloudflare_account_member", key = "cloudflare_account_member",
    args = { "account_id" }, optional = { account_id = true },
    doc = "Members of a Cloudflare account (without one: the account that owns the application)." },
}

--- The list helpers: one rule of builder `of` per element of the list.
M.lists = {
  { builder = "emails", name = "addresses", of = "email" },
  { builder = "email_domains", name = "domains", of = "email_domain" },
  { builder = "ips", name = "ips", of = "ip" },
  { builder = "groups", name = "ids", of = "group" },
  { builder = "countries", name = "country_codes", of = "geo" },
}

return M
