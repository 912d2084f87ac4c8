//! Role definitions: named sets of action patterns, as Azure RBAC defines them.

use serde::{Deserialize, Serialize};

use super::actions::{action_matches, pattern_covers, pattern_problem, patterns_may_overlap};
use super::builtin::find_built_in;
use super::mgmt;
use super::scope::Scope;
use crate::error::{Error, quote_user_text};

/// At most this many patterns in each of a custom role's four lists, and scopes in its
/// `assignableScopes`.
pub const MAX_ROLE_PATTERNS: usize = 100;
/// Longest custom role name, in characters.
pub const MAX_ROLE_NAME_CHARS: usize = 128;
/// Longest custom role description, in characters.
pub const MAX_ROLE_DESCRIPTION_CHARS: usize = 2048;

/// A role: what its holders may do, as `actions` (management plane) and `dataActions` (data
/// plane) patterns minus the `notActions` and `notDataActions` patterns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleDefinition {
    /// A GUID, Azure's role definition name (`8e3af657-…` for Owner).
    pub id: String,
    /// Azure's `roleName`, e.g. "Key Vault Secrets User".
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub actions: Vec<String>,
    #[serde(default)]
    pub not_actions: Vec<String>,
    #[serde(default)]
    pub data_actions: Vec<String>,
    #[serde(default)]
    pub not_data_actions: Vec<String>,
    pub assignable_scopes: Vec<Scope>,
    #[serde(default)]
    pub built_in: bool,
    /// The role definition ids this role's `roleAssignments/write` and `/delete` may act on;
    /// `None` places no limit. Coffer's form of the ABAC condition Azure attaches to Key Vault
    /// Data Access Administrator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignable_roles: Option<Vec<String>>,
}

impl RoleDefinition {
    /// Whether the role allows the management action: some `actions` pattern matches it and no
    /// `notActions` pattern does.
    pub fn allows_action(&self, action: &str) -> bool {
        allows(&self.actions, &self.not_actions, action)
    }

    /// Whether the role allows the data action, by `dataActions` and `notDataActions`.
    pub fn allows_data_action(&self, action: &str) -> bool {
        allows(&self.data_actions, &self.not_data_actions, action)
    }

    /// Whether the role certainly allows every action `pattern` can match (data actions when
    /// `data`): one of its patterns covers it ([`pattern_covers`]) and none of its exclusions
    /// could remove any part of it ([`patterns_may_overlap`]). A role restricted by
    /// `assignable_roles` is never counted as holding a pattern that could match a role
    /// assignment write or delete, since what it holds there is less than the bare pattern
    /// says. Sound, not complete: the building block for [`super::role_within_holdings`].
    pub fn grants_pattern(&self, pattern: &str, data: bool) -> bool {
        let (allowed, denied) = if data {
            (&self.data_actions, &self.not_data_actions)
        } else {
            (&self.actions, &self.not_actions)
        };
        if !allowed.iter().any(|held| pattern_covers(held, pattern)) {
            return false;
        }
        if denied.iter().any(|not| patterns_may_overlap(not, pattern)) {
            return false;
        }
        let restricted = !data
            && self.assignable_roles.is_some()
            && (patterns_may_overlap(pattern, mgmt::ROLE_ASSIGNMENT_WRITE)
                || patterns_may_overlap(pattern, mgmt::ROLE_ASSIGNMENT_DELETE));
        !restricted
    }

    /// Whether this role's assignment rights extend to assignments of role `role_id` (GUIDs
    /// compared without regard to case). Check it for role assignment writes and deletes, on
    /// top of [`RoleDefinition::allows_action`].
    pub fn may_assign_role(&self, role_id: &str) -> bool {
        match &self.assignable_roles {
            None => true,
            Some(ids) => ids.iter().any(|id| id.eq_ignore_ascii_case(role_id)),
        }
    }

    /// Whether the role may be assigned at `scope`: inside one of its assignable scopes.
    pub fn is_assignable_at(&self, scope: &Scope) -> bool {
        self.assignable_scopes.iter().any(|s| s.contains(scope))
    }

    /// Checks a custom role: a GUID id that is no built-in role's, a name of 1 to 128
    /// characters without control characters that is no built-in role's, a description of at
    /// most 2048 characters, at least one action or data action, at most 100 patterns per list,
    /// each non-empty, at most 256 characters of printable ASCII without whitespace, 1 to 100
    /// assignable scopes, and GUIDs in `assignable_roles`. `built_in` must be false.
    pub fn validate(&self) -> Result<(), Error> {
        if self.built_in {
            return Err(Error::bad_parameter(
                "A custom role definition cannot be marked as built in.",
            ));
        }
        if !is_guid(&self.id) {
            return Err(Error::bad_parameter(format!(
                "The role definition id {} is invalid: it must be a GUID.",
                quote_user_text(&self.id)
            )));
        }
        let chars = self.name.chars().count();
        if !(1..=MAX_ROLE_NAME_CHARS).contains(&chars)
            || self.name.chars().any(char::is_control)
            || self.name.trim().is_empty()
        {
            return Err(Error::bad_parameter(format!(
                "The role name must be 1 to {MAX_ROLE_NAME_CHARS} characters without control \
                 characters."
            )));
        }
        for key in [&self.id, &self.name] {
            if let Some(existing) = find_built_in(key) {
                return Err(Error::new(
                    crate::ErrorCode::Conflict,
                    format!(
                        "{} is the built-in role '{}' ({}); a custom role needs its own name and id.",
                        quote_user_text(key),
                        existing.name,
                        existing.id
                    ),
                ));
            }
        }
        if self.description.chars().count() > MAX_ROLE_DESCRIPTION_CHARS {
            return Err(Error::bad_parameter(format!(
                "The role description must be at most {MAX_ROLE_DESCRIPTION_CHARS} characters."
            )));
        }
        if self.actions.is_empty() && self.data_actions.is_empty() {
            return Err(Error::bad_parameter(
                "A role definition must have at least one action or data action.",
            ));
        }
        for (field, list) in [
            ("actions", &self.actions),
            ("notActions", &self.not_actions),
            ("dataActions", &self.data_actions),
            ("notDataActions", &self.not_data_actions),
        ] {
            if list.len() > MAX_ROLE_PATTERNS {
                return Err(Error::bad_parameter(format!(
                    "A role definition's {field} may hold at most {MAX_ROLE_PATTERNS} patterns."
                )));
            }
            for pattern in list {
                if let Some(problem) = pattern_problem(pattern) {
                    return Err(Error::bad_parameter(format!(
                        "The pattern {} in {field} {problem}.",
                        quote_user_text(pattern)
                    )));
                }
            }
        }
        if self.assignable_scopes.is_empty() || self.assignable_scopes.len() > MAX_ROLE_PATTERNS {
            return Err(Error::bad_parameter(format!(
                "A role definition needs 1 to {MAX_ROLE_PATTERNS} assignable scopes."
            )));
        }
        if let Some(ids) = &self.assignable_roles {
            if ids.len() > MAX_ROLE_PATTERNS {
                return Err(Error::bad_parameter(format!(
                    "A role definition may name at most {MAX_ROLE_PATTERNS} assignable roles."
                )));
            }
            if let Some(bad) = ids.iter().find(|id| !is_guid(id)) {
                return Err(Error::bad_parameter(format!(
                    "The assignable role id {} is invalid: it must be a GUID.",
                    quote_user_text(bad)
                )));
            }
        }
        Ok(())
    }
}

fn allows(allowed: &[String], denied: &[String], action: &str) -> bool {
    allowed.iter().any(|p| action_matches(p, action))
        && !denied.iter().any(|p| action_matches(p, action))
}

/// Whether `text` is a GUID in its 8-4-4-4-12 hexadecimal form (either case).
pub fn is_guid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn custom() -> RoleDefinition {
        RoleDefinition {
            id: "5d4e6f7a-1b2c-4d3e-8f9a-0b1c2d3e4f5a".into(),
            name: "Secret Rotator".into(),
            description: "Rotates secrets".into(),
            actions: vec![],
            not_actions: vec![],
            data_actions: vec!["Microsoft.KeyVault/vaults/secrets/*".into()],
            not_data_actions: vec!["Microsoft.KeyVault/vaults/secrets/purge/action".into()],
            assignable_scopes: vec![Scope::vault("kv1").unwrap()],
            built_in: false,
            assignable_roles: None,
        }
    }

    #[test]
    fn not_actions_subtract_from_actions() {
        let r = custom();
        assert!(r.allows_data_action("Microsoft.KeyVault/vaults/secrets/getSecret/action"));
        assert!(!r.allows_data_action("Microsoft.KeyVault/vaults/secrets/purge/action"));
        assert!(!r.allows_data_action("Microsoft.KeyVault/vaults/keys/read"));
        assert!(!r.allows_action("Microsoft.KeyVault/vaults/secrets/getSecret/action"));
        assert!(r.grants_pattern("Microsoft.KeyVault/vaults/secrets/getSecret/action", true));
        assert!(!r.grants_pattern("Microsoft.KeyVault/vaults/secrets/*", true));
        assert!(!r.grants_pattern("Microsoft.KeyVault/vaults/secrets/getSecret/action", false));
    }

    #[test]
    fn custom_roles_are_validated() {
        assert!(custom().validate().is_ok());
        let refused = |f: fn(&mut RoleDefinition)| {
            let mut r = custom();
            f(&mut r);
            r.validate().unwrap_err()
        };
        assert!(refused(|r| r.name.clear()).message.contains("role name"));
        assert!(
            refused(|r| r.name = "x".repeat(129))
                .message
                .contains("role name")
        );
        assert!(
            refused(|r| r.name = "a\nb".into())
                .message
                .contains("role name")
        );
        assert_eq!(
            refused(|r| r.name = "key vault ADMINISTRATOR".into()).code,
            ErrorCode::Conflict
        );
        assert_eq!(
            refused(|r| r.id = "8E3AF657-A8FF-443C-A75C-2FE8C4BCB635".into()).code,
            ErrorCode::Conflict
        );
        assert!(
            refused(|r| r.id = "not-a-guid".into())
                .message
                .contains("GUID")
        );
        assert!(
            refused(|r| r.data_actions.clear())
                .message
                .contains("at least one")
        );
        assert!(
            refused(|r| r.actions = vec![String::new()])
                .message
                .contains("is empty")
        );
        assert!(
            refused(|r| r.actions = vec!["a b".into()])
                .message
                .contains("whitespace")
        );
        assert!(
            refused(|r| r.not_actions = vec!["x".repeat(257)])
                .message
                .contains("256")
        );
        assert!(
            refused(|r| r.data_actions = vec!["a".into(); 101])
                .message
                .contains("at most 100")
        );
        assert!(
            refused(|r| r.assignable_scopes.clear())
                .message
                .contains("assignable scopes")
        );
        assert!(refused(|r| r.built_in = true).message.contains("built in"));
        assert!(
            refused(|r| r.assignable_roles = Some(vec!["x".into()]))
                .message
                .contains("GUID")
        );
        let mut r = custom();
        r.data_actions = vec!["a".into(); 100];
        assert!(r.validate().is_ok());
    }

    #[test]
    fn assignment_restrictions_and_scopes() {
        let mut r = custom();
        assert!(r.may_assign_role("anything"));
        assert!(r.is_assignable_at(&Scope::parse("/vaults/KV1/secrets/a").unwrap()));
        assert!(!r.is_assignable_at(&Scope::parse("/vaults/other").unwrap()));
        assert!(!r.is_assignable_at(&Scope::cluster()));
        r.actions = vec!["Microsoft.Authorization/roleAssignments/*".into()];
        assert!(r.grants_pattern(mgmt::ROLE_ASSIGNMENT_WRITE, false));
        r.assignable_roles = Some(vec!["4633458B-17DE-408A-B874-0445C86B69E6".into()]);
        assert!(r.may_assign_role("4633458b-17de-408a-b874-0445c86b69e6"));
        assert!(!r.may_assign_role("8e3af657-a8ff-443c-a75c-2fe8c4bcb635"));
        assert!(!r.grants_pattern(mgmt::ROLE_ASSIGNMENT_WRITE, false));
        assert!(r.grants_pattern("Microsoft.Authorization/roleAssignments/read", false));
    }

    #[test]
    fn role_definitions_use_camel_case_json() {
        let json = serde_json::to_value(custom()).unwrap();
        assert_eq!(
            json["notDataActions"][0],
            "Microsoft.KeyVault/vaults/secrets/purge/action"
        );
        assert_eq!(json["assignableScopes"][0], "/vaults/kv1");
        assert_eq!(json["builtIn"], false);
        assert!(json.get("assignableRoles").is_none());
        assert_eq!(
            serde_json::from_value::<RoleDefinition>(json).unwrap(),
            custom()
        );
    }

    #[test]
    fn guids() {
        assert!(is_guid("8e3af657-a8ff-443c-a75c-2fe8c4bcb635"));
        assert!(is_guid("8E3AF657-A8FF-443C-A75C-2FE8C4BCB635"));
        assert!(!is_guid("8e3af657a8ff443ca75c2fe8c4bcb635"));
        assert!(!is_guid("8e3af657-a8ff-443c-a75c-2fe8c4bcb63g"));
    }
}
