/*
** The Cloudflare Access request bodies as data: every field of
** shared/reference/ACCESS-POLICY-FIELDS.md and the seed (policies), and of
** shared/reference/APPLICATIONS-AND-STATE.md (groups), in canonical output
** order, plus the body kinds. validate.c walks these tables; the only code
** here is cf_field_required.
*/
#include "schema.h"

/* Row shorthands (designated initialisers underneath). */
#define REQ_STR(nm)     { CF_NAME(nm), .type = CF_T_STRING, .fmt = CF_F_NONEMPTY, .flags = CF_FL_REQUIRED }
#define REQ_FMT(nm, fm) { CF_NAME(nm), .type = CF_T_STRING, .fmt = fm, .flags = CF_FL_REQUIRED }
#define OPT_FMT(nm, fm) { CF_NAME(nm), .type = CF_T_STRING, .fmt = fm }
#define BOOL(nm)        { CF_NAME(nm), .type = CF_T_BOOL }
#define SCHEMA(arr, fl, what) { arr, (unsigned)(sizeof(arr) / sizeof(arr[0])), fl, what }

/* ---- enums --------------------------------------------------------------- */

static const char *const decisions[] = {"allow", "deny", "non_identity", "bypass", NULL};
static const char *const risk_levels[] = {"low", "medium", "high", "unscored", NULL};
/* One list per kind (the newest SDK types): app, zone and reusable
** policies; infrastructure policies (ssh_piv_key: Terraform's spelling). */
static const char *const authn_app[] = {"totp", "biometrics", "security_key", NULL};
static const char *const authn_infra[] = {"piv_key", "ssh_fido2_key", "ssh_piv_key", NULL};
static const char *const clipboard_formats[] = {"text", "file", NULL};

/* ---- list elements -------------------------------------------------------- */

static const cf_field email_elem = { .type = CF_T_STRING, .fmt = CF_F_EMAIL };
static const cf_field nonempty_elem = { .type = CF_T_STRING, .fmt = CF_F_NONEMPTY };
static const cf_field risk_elem = { .type = CF_T_STRING, .enumv = risk_levels,
  .enum_text = "low, medium, high, unscored" };
static const cf_field authn_app_elem = { .type = CF_T_STRING, .enumv = authn_app,
  .enum_text = "totp, biometrics, security_key", .foreign = authn_infra,
  .foreign_note = "is for infrastructure policies" };
static const cf_field authn_infra_elem = { .type = CF_T_STRING, .enumv = authn_infra,
  .enum_text = "piv_key, ssh_fido2_key, ssh_piv_key", .foreign = authn_app,
  .foreign_note = "is for app and reusable policies" };
static const cf_field clip_elem = { .type = CF_T_STRING, .enumv = clipboard_formats,
  .enum_text = "text, file" };

/* ---- the rule union: one entry per rule type ---------------------------------
** RULE(json_key, flags, inner fields...) builds the inner object's schema in
** place (a C99 compound literal with static storage); RULE_EMPTY is a type
** whose body is always {}. Adding a rule type is adding one line here.
** Flags: CF_FL_IDENTITY for the identity-based types (APPLICATIONS-AND-
** STATE.md's bypass list, plus cloudflare_account_member), CF_FL_SERVICE
** and CF_FL_LINKED for the types that need Service Auth. */

#define INNER(...) (&(const cf_schema){ (const cf_field[]){ __VA_ARGS__ }, \
  (unsigned)(sizeof((const cf_field[]){ __VA_ARGS__ }) / sizeof(cf_field)), 0, "field" })
#define RULE(nm, fl, ...) { CF_NAME(nm), .type = CF_T_OBJECT, .flags = fl, .child = INNER(__VA_ARGS__) }
#define RULE_EMPTY(nm, fl) { CF_NAME(nm), .type = CF_T_OBJECT, .flags = fl, .child = &s_empty }
#define ID CF_FL_IDENTITY

/* everyone, certificate, any_valid_service_token: always {} */
static const cf_schema s_empty = { NULL, 0, 0, "field" };

/* The 2025 shapes: azureAD, gsuite, github-organization and okta take
** identity_provider_id, okta takes name, saml requires identity_provider_id.
** With opts.legacy the 2024 shapes pass too: connection_id instead of
** identity_provider_id (group 1: exactly one), okta email instead of name
** (group 2), saml without an IdP. IDs inside rules are plain non-empty
** strings. auth_method: outside RFC 8176 is a warning (CF_F_AMR). */
#define IDP_NEW { CF_NAME("identity_provider_id"), .type = CF_T_STRING, .fmt = CF_F_NONEMPTY, .group = 1 }
#define IDP_OLD { CF_NAME("connection_id"), .type = CF_T_STRING, .fmt = CF_F_NONEMPTY, .group = 1, \
                  .flags = CF_FL_LEGACY, .renamed = "identity_provider_id" }
static const cf_field f_rule[] = {
  RULE("email", ID, REQ_FMT("email", CF_F_EMAIL)),
  RULE("email_list", ID, REQ_STR("id")),
  RULE("email_domain", ID, REQ_FMT("domain", CF_F_DOMAIN)),
  RULE_EMPTY("everyone", 0),
  RULE("ip", 0, REQ_FMT("ip", CF_F_IP)),
  RULE("ip_list", 0, REQ_STR("id")),
  RULE_EMPTY("certificate", 0),
  RULE("common_name", 0, REQ_STR("common_name")),
  RULE("group", ID, REQ_STR("id")),
  RULE("azureAD", ID, REQ_STR("id"), IDP_NEW, IDP_OLD),
  RULE("github-organization", ID, REQ_STR("name"), IDP_NEW, IDP_OLD, OPT_FMT("team", CF_F_NONEMPTY)),
  RULE("gsuite", ID, REQ_FMT("email", CF_F_EMAIL), IDP_NEW, IDP_OLD),
  RULE("okta", ID, { CF_NAME("name"), .type = CF_T_STRING, .fmt = CF_F_NONEMPTY, .group = 2 },
       { CF_NAME("email"), .type = CF_T_STRING, .fmt = CF_F_NONEMPTY, .group = 2,
         .flags = CF_FL_LEGACY, .renamed = "name" },
       IDP_NEW, IDP_OLD),
  RULE("saml", ID, REQ_STR("attribute_name"), REQ_STR("attribute_value"),
       { CF_NAME("identity_provider_id"), .type = CF_T_STRING, .fmt = CF_F_NONEMPTY,
         .flags = CF_FL_NEW_REQ }),
  RULE("oidc", ID, REQ_STR("claim_name"), REQ_STR("claim_value"), REQ_STR("identity_provider_id")),
  RULE("auth_context", ID, REQ_STR("id"), REQ_STR("ac_id"), REQ_STR("identity_provider_id")),
  RULE("login_method", ID, REQ_STR("id")),
  RULE("auth_method", ID, REQ_FMT("auth_method", CF_F_AMR)),
  RULE("service_token", CF_FL_SERVICE, REQ_STR("token_id")),
  RULE_EMPTY("any_valid_service_token", CF_FL_SERVICE),
  RULE("external_evaluation", ID, REQ_FMT("evaluate_url", CF_F_URL), REQ_FMT("keys_url", CF_F_URL)),
  RULE("geo", 0, REQ_FMT("country_code", CF_F_COUNTRY)),
  RULE("device_posture", 0, REQ_STR("integration_uid")),
  RULE("linked_app_token", CF_FL_LINKED, REQ_STR("app_uid")),
  RULE("user_risk_score", ID, { CF_NAME("user_risk_score"), .type = CF_T_LIST,
       .flags = CF_FL_REQUIRED | CF_FL_NONEMPTY, .elem = &risk_elem }),
  RULE("cloudflare_account_member", ID, OPT_FMT("account_id", CF_F_HEX32)),
};
const cf_schema cf_rule_schema = SCHEMA(f_rule, CF_S_ONE_KEY, "rule type");
static const cf_field rule_elem = { .type = CF_T_OBJECT, .child = &cf_rule_schema };

/* ---- approval groups, mfa_config, connection_rules ---------------------------- */

static const cf_field f_approval[] = {
  { CF_NAME("approvals_needed"), .type = CF_T_INT, .flags = CF_FL_REQUIRED },
  { CF_NAME("email_addresses"), .type = CF_T_LIST, .elem = &email_elem },
  OPT_FMT("email_list_uuid", CF_F_UUID),
};
static const cf_schema s_approval = SCHEMA(f_approval, 0, "field");
static const cf_field approval_elem = { .type = CF_T_OBJECT, .child = &s_approval };

/* mfa_bypass is the seed's (February 2026) name, renamed mfa_disabled in
** March 2026: accepted and sent as written, with a warning. */
#define MFA_BYPASS { CF_NAME("mfa_bypass"), .type = CF_T_BOOL, \
  .note = "mfa_bypass is the February 2026 name of mfa_disabled: it is sent as written, " \
          "and an API that knows only mfa_disabled ignores it; write mfa_disabled" }
/* The two mfa_config bodies differ only in their authenticator list. */
#define MFA_ROWS(authn) \
  { CF_NAME("allowed_authenticators"), .type = CF_T_LIST, .elem = authn }, \
  BOOL("mfa_disabled"), MFA_BYPASS, OPT_FMT("session_duration", CF_F_MFA_DURATION)
static const cf_field f_mfa[] = { MFA_ROWS(&authn_app_elem) };
static const cf_schema s_mfa = SCHEMA(f_mfa, 0, "field");
static const cf_field f_mfa_infra[] = { MFA_ROWS(&authn_infra_elem) };
static const cf_schema s_mfa_infra = SCHEMA(f_mfa_infra, 0, "field");

static const cf_field f_rdp[] = {
  { CF_NAME("allowed_clipboard_local_to_remote_formats"), .type = CF_T_LIST, .elem = &clip_elem },
  { CF_NAME("allowed_clipboard_remote_to_local_formats"), .type = CF_T_LIST, .elem = &clip_elem },
};
static const cf_schema s_rdp = SCHEMA(f_rdp, 0, "field");
static const cf_field f_ssh[] = {
  { CF_NAME("usernames"), .type = CF_T_LIST, .flags = CF_FL_REQUIRED | CF_FL_NONEMPTY,
    .elem = &nonempty_elem },
  BOOL("allow_email_alias"),
};
static const cf_schema s_ssh = SCHEMA(f_ssh, 0, "field");
/* rdp for app/reusable policies, ssh for infrastructure ones. */
static const cf_field f_conn[] = {
  { CF_NAME("rdp"), .type = CF_T_OBJECT, .kinds = CF_K_APP | CF_K_ZONE | CF_K_REUSE, .child = &s_rdp },
  { CF_NAME("ssh"), .type = CF_T_OBJECT, .kinds = CF_K_INFRA, .child = &s_ssh },
};
static const cf_schema s_conn = SCHEMA(f_conn, 0, "field");

/* ---- the policy body --------------------------------------------------------- */

#define K_NOINFRA (CF_K_APP | CF_K_ZONE | CF_K_REUSE)
#define RULES(nm, fl) { CF_NAME(nm), .type = CF_T_LIST, .flags = CF_FL_RULES | (fl), .elem = &rule_elem }

/* The decision comes before the rule lists: the walker knows it when it
** meets the rules. mfa_config has one row per authenticator list; the
** walker takes the row whose kinds include the body's. */
static const cf_field f_policy[] = {
  REQ_STR("name"),
  { CF_NAME("decision"), .type = CF_T_STRING, .flags = CF_FL_REQUIRED | CF_FL_DECISION,
    .enumv = decisions, .enum_text = "allow, deny, non_identity, bypass" },
  RULES("include", CF_FL_REQUIRED | CF_FL_NONEMPTY),
  RULES("exclude", 0),
  RULES("require", 0),
  { CF_NAME("precedence"), .type = CF_T_INT, .kinds = CF_K_APP | CF_K_ZONE },
  { CF_NAME("session_duration"), .type = CF_T_STRING, .fmt = CF_F_DURATION,
    .flags = CF_FL_NULLABLE | CF_FL_EMPTY_OK, .kinds = CF_K_APP | CF_K_REUSE },
  { CF_NAME("approval_required"), .type = CF_T_BOOL, .kinds = K_NOINFRA },
  { CF_NAME("approval_groups"), .type = CF_T_LIST, .kinds = K_NOINFRA, .elem = &approval_elem },
  { CF_NAME("isolation_required"), .type = CF_T_BOOL, .kinds = K_NOINFRA },
  { CF_NAME("purpose_justification_required"), .type = CF_T_BOOL, .kinds = K_NOINFRA },
  { CF_NAME("purpose_justification_prompt"), .type = CF_T_STRING, .kinds = K_NOINFRA },
  { CF_NAME("mfa_config"), .type = CF_T_OBJECT, .kinds = CF_K_APP | CF_K_REUSE, .child = &s_mfa },
  { CF_NAME("mfa_config"), .type = CF_T_OBJECT, .kinds = CF_K_INFRA, .child = &s_mfa_infra },
  { CF_NAME("connection_rules"), .type = CF_T_OBJECT, .kinds = CF_K_APP | CF_K_REUSE | CF_K_INFRA,
    .child = &s_conn },
};
static const cf_schema s_policy = SCHEMA(f_policy, 0, "field");

/* ---- the Access group body ----------------------------------------------------- */

static const cf_field f_group[] = {
  REQ_STR("name"),
  RULES("include", CF_FL_REQUIRED | CF_FL_NONEMPTY),
  RULES("exclude", 0),
  RULES("require", 0),
  BOOL("is_default"),
};
static const cf_schema s_group = SCHEMA(f_group, 0, "field");

/* ---- an application's policies list (internal kind) ------------------------------
** Each item is a reusable policy's id, a link { id, precedence, account_id }
** or an inline policy (a table with a decision): the one-of type. Only the
** policies field of the application body so far, reachable as the internal
** kind "_app_policies" (specs); the applications issue grows it. */
static const cf_field f_link[] = {
  REQ_FMT("id", CF_F_UUID),
  { CF_NAME("precedence"), .type = CF_T_INT },
  OPT_FMT("account_id", CF_F_HEX32),
};
static const cf_schema s_link = SCHEMA(f_link, 0, "field");
static const cf_field ref_id = { .type = CF_T_STRING, .fmt = CF_F_UUID };
static const cf_field ref_inline = { .type = CF_T_OBJECT, .tag = "decision", .child = &s_policy };
static const cf_field ref_link = { .type = CF_T_OBJECT, .child = &s_link };
static const cf_field *const ref_alts[] = { &ref_id, &ref_inline, &ref_link, NULL };
static const cf_field ref_elem = { .type = CF_T_ONEOF, .alts = ref_alts,
  .what = "a policy id, a link { id =, precedence = } or an inline policy" };
static const cf_field f_app_policies[] = {
  { CF_NAME("policies"), .type = CF_T_LIST, .elem = &ref_elem },
};
static const cf_schema s_app_policies = SCHEMA(f_app_policies, 0, "field");

/* ---- body kinds ------------------------------------------------------------------ */

const cf_body_kind cf_body_kinds[] = {
  [CF_KIND_APP] = { .name = "app", .article = "an", .noun = "policy", .schema = &s_policy,
                    .bit = CF_K_APP, .check = cf_policy_check },
  [CF_KIND_ZONE] = { .name = "zone", .article = "a", .noun = "policy", .schema = &s_policy,
                     .bit = CF_K_ZONE, .check = cf_policy_check },
  [CF_KIND_REUSABLE] = { .name = "reusable", .article = "a", .noun = "policy", .schema = &s_policy,
                         .bit = CF_K_REUSE, .check = cf_policy_check },
  [CF_KIND_INFRA] = { .name = "infrastructure", .article = "an", .noun = "policy",
                      .schema = &s_policy, .bit = CF_K_INFRA, .check = cf_policy_check },
  [CF_KIND_GROUP] = { .name = "group", .article = "a", .noun = "group", .schema = &s_group,
                      .bit = CF_K(CF_KIND_GROUP) },
  /* internal: its inline policies take the fields of an app policy */
  { .name = "_app_policies", .article = "an", .noun = "application", .schema = &s_app_policies,
    .bit = CF_K_APP, .internal = 1 },
  { .name = NULL }
};

int cf_field_required(const cf_field *f) {
  return (f->flags & (CF_FL_REQUIRED | CF_FL_NEW_REQ)) || (f->group && !(f->flags & CF_FL_LEGACY));
}
