/*
** The Cloudflare Access policy body as data: every field of
** shared/reference/ACCESS-POLICY-FIELDS.md and the seed, in canonical
** output order. validate.c walks these tables; nothing here is code.
*/
#include "schema.h"

#define FIELD(nm, ty, fm, fl, ki, gr, en, et, ch, el) \
  { nm, "\"" nm "\":", (unsigned char)(sizeof(nm) - 1), (unsigned char)(sizeof(nm) + 2), \
    ty, fm, fl, ki, gr, en, et, ch, el }

/* A required non-empty string (the default for rule fields). */
#define REQ_STR(nm)        FIELD(nm, CF_T_STRING, CF_F_NONEMPTY, CF_FL_REQUIRED, CF_K_ALL, 0, NULL, NULL, NULL, NULL)
#define REQ_FMT(nm, fm)    FIELD(nm, CF_T_STRING, fm, CF_FL_REQUIRED, CF_K_ALL, 0, NULL, NULL, NULL, NULL)
#define OPT_FMT(nm, fm)    FIELD(nm, CF_T_STRING, fm, 0, CF_K_ALL, 0, NULL, NULL, NULL, NULL)
/* One of a group: exactly one field of group gr must be present. */
#define ALT_STR(nm, gr)    FIELD(nm, CF_T_STRING, CF_F_NONEMPTY, 0, CF_K_ALL, gr, NULL, NULL, NULL, NULL)
#define LEG_STR(nm, gr)    FIELD(nm, CF_T_STRING, CF_F_NONEMPTY, CF_FL_LEGACY, CF_K_ALL, gr, NULL, NULL, NULL, NULL)
#define BOOL(nm, ki)       FIELD(nm, CF_T_BOOL, 0, 0, ki, 0, NULL, NULL, NULL, NULL)
#define SCHEMA(arr, fl, what) { arr, (unsigned char)(sizeof(arr) / sizeof(arr[0])), fl, what }

const char *const cf_kind_names[] = {"app", "zone", "reusable", "infrastructure", "group", NULL};

/* ---- enums --------------------------------------------------------------- */

static const char *const decisions[] = {"allow", "deny", "non_identity", "bypass", NULL};
static const char *const risk_levels[] = {"low", "medium", "high", "unscored", NULL};
/* Union of app (totp, biometrics, security_key) and infrastructure
** (piv_key, ssh_fido2_key; Terraform: ssh_piv_key) authenticators. */
static const char *const authenticators[] = {
  "totp", "biometrics", "security_key", "piv_key", "ssh_fido2_key",
  "ssh_piv_key", NULL};
static const char *const clipboard_formats[] = {"text", "file", NULL};

/* ---- list elements -------------------------------------------------------- */

static const cf_field email_elem = FIELD("", CF_T_STRING, CF_F_EMAIL, 0, CF_K_ALL, 0, NULL, NULL, NULL, NULL);
static const cf_field nonempty_elem = FIELD("", CF_T_STRING, CF_F_NONEMPTY, 0, CF_K_ALL, 0, NULL, NULL, NULL, NULL);
static const cf_field risk_elem = FIELD("", CF_T_STRING, CF_F_ANY, 0, CF_K_ALL, 0, risk_levels,
                                        "low, medium, high, unscored", NULL, NULL);
static const cf_field authn_elem = FIELD("", CF_T_STRING, CF_F_ANY, 0, CF_K_ALL, 0, authenticators,
                                         "totp, biometrics, security_key, piv_key, ssh_fido2_key, ssh_piv_key",
                                         NULL, NULL);
static const cf_field clip_elem = FIELD("", CF_T_STRING, CF_F_ANY, 0, CF_K_ALL, 0, clipboard_formats,
                                        "text, file", NULL, NULL);

/* ---- the rule union: one entry per rule type ---------------------------------
** RULE(json_key, inner fields...) builds the inner object's schema in place
** (a C99 compound literal with static storage); RULE_EMPTY is a type whose
** body is always {}. Adding a rule type is adding one line here. */

#define INNER(...) (&(const cf_schema){ (const cf_field[]){ __VA_ARGS__ }, \
  (unsigned char)(sizeof((const cf_field[]){ __VA_ARGS__ }) / sizeof(cf_field)), 0, "field" })
#define RULE_FL(nm, fl, ...) FIELD(nm, CF_T_OBJECT, 0, fl, CF_K_ALL, 0, NULL, NULL, INNER(__VA_ARGS__), NULL)
#define RULE(nm, ...) RULE_FL(nm, 0, __VA_ARGS__)
#define RULE_ID(nm, ...) RULE_FL(nm, CF_FL_IDENTITY, __VA_ARGS__)
#define RULE_EMPTY(nm) FIELD(nm, CF_T_OBJECT, 0, 0, CF_K_ALL, 0, NULL, NULL, &s_empty, NULL)

/* everyone, certificate, any_valid_service_token: always {} */
static const cf_schema s_empty = { NULL, 0, 0, "field" };

/* Where the 2024-08 subset differs, both shapes are accepted:
** azureAD, gsuite, github-organization, okta take identity_provider_id or
** the old connection_id (group 1: exactly one); okta takes name or the old
** email (group 2); saml's identity_provider_id is optional; the
** github-organization team is optional. IDs inside rules are plain
** non-empty strings. auth_method: RFC 8176 AMR values are known, but
** Cloudflare does not enumerate them, so any non-empty string passes. */
static const cf_field f_rule[] = {
  RULE_ID("email", REQ_FMT("email", CF_F_EMAIL)),
  RULE_ID("email_list", REQ_STR("id")),
  RULE_ID("email_domain", REQ_FMT("domain", CF_F_DOMAIN)),
  RULE_EMPTY("everyone"),
  RULE("ip", REQ_FMT("ip", CF_F_IP)),
  RULE("ip_list", REQ_STR("id")),
  RULE_EMPTY("certificate"),
  RULE("common_name", REQ_STR("common_name")),
  RULE_ID("group", REQ_STR("id")),
  RULE_ID("azureAD", REQ_STR("id"), ALT_STR("identity_provider_id", 1), LEG_STR("connection_id", 1)),
  RULE_ID("github-organization", REQ_STR("name"), ALT_STR("identity_provider_id", 1),
       LEG_STR("connection_id", 1), OPT_FMT("team", CF_F_NONEMPTY)),
  RULE_ID("gsuite", REQ_FMT("email", CF_F_EMAIL), ALT_STR("identity_provider_id", 1),
       LEG_STR("connection_id", 1)),
  RULE_ID("okta", ALT_STR("name", 2), LEG_STR("email", 2), ALT_STR("identity_provider_id", 1),
       LEG_STR("connection_id", 1)),
  RULE_ID("saml", REQ_STR("attribute_name"), REQ_STR("attribute_value"),
       OPT_FMT("identity_provider_id", CF_F_NONEMPTY)),
  RULE_ID("oidc", REQ_STR("claim_name"), REQ_STR("claim_value"), REQ_STR("identity_provider_id")),
  RULE_ID("auth_context", REQ_STR("id"), REQ_STR("ac_id"), REQ_STR("identity_provider_id")),
  RULE_ID("login_method", REQ_STR("id")),
  RULE_ID("auth_method", REQ_STR("auth_method")),
  RULE("service_token", REQ_STR("token_id")),
  RULE_EMPTY("any_valid_service_token"),
  RULE_ID("external_evaluation", REQ_FMT("evaluate_url", CF_F_URL), REQ_FMT("keys_url", CF_F_URL)),
  RULE("geo", REQ_FMT("country_code", CF_F_COUNTRY)),
  RULE("device_posture", REQ_STR("integration_uid")),
  RULE_FL("linked_app_token", CF_FL_LINKED, REQ_STR("app_uid")),
  RULE_ID("user_risk_score", FIELD("user_risk_score", CF_T_LIST, 0, CF_FL_REQUIRED | CF_FL_NONEMPTY,
                                CF_K_ALL, 0, NULL, NULL, NULL, &risk_elem)),
  RULE_ID("cloudflare_account_member", OPT_FMT("account_id", CF_F_HEX32)),
};
const cf_schema cf_rule_schema = SCHEMA(f_rule, CF_S_ONE_KEY, "rule type");
#define s_rule cf_rule_schema
static const cf_field rule_elem = FIELD("", CF_T_OBJECT, 0, 0, CF_K_ALL, 0, NULL, NULL, &s_rule, NULL);

/* ---- approval groups, mfa_config, connection_rules ---------------------------- */

static const cf_field f_approval[] = {
  FIELD("approvals_needed", CF_T_INT, 0, CF_FL_REQUIRED, CF_K_ALL, 0, NULL, NULL, NULL, NULL),
  FIELD("email_addresses", CF_T_LIST, 0, 0, CF_K_ALL, 0, NULL, NULL, NULL, &email_elem),
  OPT_FMT("email_list_uuid", CF_F_UUID),
};
static const cf_schema s_approval = SCHEMA(f_approval, 0, "field");
static const cf_field approval_elem = FIELD("", CF_T_OBJECT, 0, 0, CF_K_ALL, 0, NULL, NULL, &s_approval, NULL);

/* mfa_bypass is the seed's name, mfa_disabled the SDKs': either or both. */
static const cf_field f_mfa[] = {
  FIELD("allowed_authenticators", CF_T_LIST, 0, 0, CF_K_ALL, 0, NULL, NULL, NULL, &authn_elem),
  BOOL("mfa_disabled", CF_K_ALL),
  BOOL("mfa_bypass", CF_K_ALL),
  OPT_FMT("session_duration", CF_F_MFA_DURATION),
};
static const cf_schema s_mfa = SCHEMA(f_mfa, 0, "field");

static const cf_field f_rdp[] = {
  FIELD("allowed_clipboard_local_to_remote_formats", CF_T_LIST, 0, 0, CF_K_ALL, 0, NULL, NULL, NULL, &clip_elem),
  FIELD("allowed_clipboard_remote_to_local_formats", CF_T_LIST, 0, 0, CF_K_ALL, 0, NULL, NULL, NULL, &clip_elem),
};
static const cf_schema s_rdp = SCHEMA(f_rdp, 0, "field");
static const cf_field f_ssh[] = {
  FIELD("usernames", CF_T_LIST, 0, CF_FL_REQUIRED | CF_FL_NONEMPTY, CF_K_ALL, 0, NULL, NULL, NULL, &nonempty_elem),
  BOOL("allow_email_alias", CF_K_ALL),
};
static const cf_schema s_ssh = SCHEMA(f_ssh, 0, "field");
/* rdp for app/reusable policies, ssh for infrastructure ones. */
static const cf_field f_conn[] = {
  FIELD("rdp", CF_T_OBJECT, 0, 0, CF_K_APP | CF_K_ZONE | CF_K_REUSE, 0, NULL, NULL, &s_rdp, NULL),
  FIELD("ssh", CF_T_OBJECT, 0, 0, CF_K_INFRA, 0, NULL, NULL, &s_ssh, NULL),
};
static const cf_schema s_conn = SCHEMA(f_conn, 0, "field");

/* ---- the policy body --------------------------------------------------------- */

#define K_NOINFRA (CF_K_APP | CF_K_ZONE | CF_K_REUSE)

static const cf_field f_policy[] = {
  FIELD("name", CF_T_STRING, CF_F_NONEMPTY, CF_FL_REQUIRED, CF_K_ALL, 0, NULL, NULL, NULL, NULL),
  FIELD("decision", CF_T_STRING, CF_F_ANY, CF_FL_REQUIRED | CF_FL_DECISION, CF_K_ALL, 0, decisions,
        "allow, deny, non_identity, bypass", NULL, NULL),
  FIELD("include", CF_T_LIST, 0, CF_FL_REQUIRED | CF_FL_NONEMPTY | CF_FL_RULES, CF_K_ALL, 0,
        NULL, NULL, NULL, &rule_elem),
  FIELD("exclude", CF_T_LIST, 0, CF_FL_RULES, CF_K_ALL, 0, NULL, NULL, NULL, &rule_elem),
  FIELD("require", CF_T_LIST, 0, CF_FL_RULES, CF_K_ALL, 0, NULL, NULL, NULL, &rule_elem),
  FIELD("precedence", CF_T_INT, 0, 0, CF_K_APP | CF_K_ZONE, 0, NULL, NULL, NULL, NULL),
  FIELD("session_duration", CF_T_STRING, CF_F_DURATION, CF_FL_NULLABLE, CF_K_APP | CF_K_REUSE, 0,
        NULL, NULL, NULL, NULL),
  BOOL("approval_required", K_NOINFRA),
  FIELD("approval_groups", CF_T_LIST, 0, 0, K_NOINFRA, 0, NULL, NULL, NULL, &approval_elem),
  BOOL("isolation_required", K_NOINFRA),
  BOOL("purpose_justification_required", K_NOINFRA),
  FIELD("purpose_justification_prompt", CF_T_STRING, CF_F_ANY, 0, K_NOINFRA, 0, NULL, NULL, NULL, NULL),
  FIELD("mfa_config", CF_T_OBJECT, 0, 0, CF_K_APP | CF_K_REUSE | CF_K_INFRA, 0, NULL, NULL, &s_mfa, NULL),
  FIELD("connection_rules", CF_T_OBJECT, 0, 0, CF_K_APP | CF_K_REUSE | CF_K_INFRA, 0, NULL, NULL, &s_conn, NULL),
};

const cf_schema cf_policy_schema = SCHEMA(f_policy, 0, "field");

/* The walker's presence mask is 32 bits wide (compile-time check). */
typedef char cf_rule_types_fit_mask[sizeof f_rule / sizeof f_rule[0] <= 32 ? 1 : -1];
typedef char cf_policy_fields_fit_mask[sizeof f_policy / sizeof f_policy[0] <= 32 ? 1 : -1];

int cf_field_required(const cf_field *f) {
  return (f->flags & CF_FL_REQUIRED) || (f->group && !(f->flags & CF_FL_LEGACY));
}
