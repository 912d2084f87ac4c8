//! Authorization vocabulary: scopes, role definitions (built-in and custom), action matching and
//! access-policy permissions. Pure data and rules; the service layer evaluates them.
//!
//! Two models, as in Azure Key Vault. Under RBAC, a principal holds role assignments (a role
//! at a [`Scope`]); a request is allowed when some assignment's scope contains the resource and
//! its role allows the action ([`rbac_allows`]). Under the access-policy model, a vault lists
//! [`AccessPolicyEntry`]s and each [`DataOperation`] needs one named permission. Management
//! actions ([`mgmt`]) are always decided by RBAC, data actions by the vault's model.
//!
//! Nothing here grants by default: an empty set of grants allows nothing, and every
//! approximation ([`pattern_covers`], [`RoleDefinition::grants_pattern`]) errs towards
//! refusing.

mod access_policy;
mod actions;
mod builtin;
mod messages;
pub mod mgmt;
mod operation;
mod roles;
mod scope;

pub use access_policy::{
    ALL as ALL_PERMISSIONS, AccessPolicyEntry, AccessPolicyPermissions, MAX_ACCESS_POLICIES,
    PermissionKind,
};
pub use actions::{MAX_PATTERN_LEN, action_matches, pattern_covers, patterns_may_overlap};
pub use builtin::{built_in_roles, find_built_in, role_ids};
pub use messages::{access_denied, access_denied_message, forbidden_by_rbac_message};
pub use operation::DataOperation;
pub use roles::{
    MAX_ROLE_DESCRIPTION_CHARS, MAX_ROLE_NAME_CHARS, MAX_ROLE_PATTERNS, RoleDefinition, is_guid,
};
pub use scope::Scope;

/// Whether some grant allows `action` on `resource`: its scope contains the resource and its
/// role allows the action (as a data action when `data`, else as a management action).
pub fn rbac_allows<'a>(
    grants: impl IntoIterator<Item = (&'a RoleDefinition, &'a Scope)>,
    resource: &Scope,
    action: &str,
    data: bool,
) -> bool {
    grants.into_iter().any(|(role, scope)| {
        scope.contains(resource)
            && if data {
                role.allows_data_action(action)
            } else {
                role.allows_action(action)
            }
    })
}

/// Whether some grant allows `action` (a role assignment write or delete) on `resource` for an
/// assignment of role `role_id`: as [`rbac_allows`], and the same role's
/// [`RoleDefinition::may_assign_role`] admits `role_id`. A restricted role's right is not
/// widened by another role that merely allows something else.
pub fn rbac_allows_assignment<'a>(
    grants: impl IntoIterator<Item = (&'a RoleDefinition, &'a Scope)>,
    resource: &Scope,
    action: &str,
    role_id: &str,
) -> bool {
    grants.into_iter().any(|(role, scope)| {
        scope.contains(resource) && role.allows_action(action) && role.may_assign_role(role_id)
    })
}

/// The rule that no principal grants more than it holds: whether every `actions` and
/// `dataActions` pattern of `role` is held, as `holder(pattern, data)` answers for one pattern.
///
/// `role`'s exclusions are ignored: they only take away, so checking its patterns without
/// them asks for at least as much as the role grants. The `holder` closure decides soundness
/// on its side; build it from the caller's grants at the scope with
/// [`RoleDefinition::grants_pattern`], which accounts for the holder's own exclusions and for
/// assignment rights limited by `assignable_roles`. A role's own `assignable_roles` can only
/// narrow it, so it is not checked here.
pub fn role_within_holdings(role: &RoleDefinition, holder: impl Fn(&str, bool) -> bool) -> bool {
    role.actions.iter().all(|p| holder(p, false))
        && role.data_actions.iter().all(|p| holder(p, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(text: &str) -> Scope {
        Scope::parse(text).unwrap()
    }

    fn role(name: &str) -> &'static RoleDefinition {
        find_built_in(name).unwrap()
    }

    #[test]
    fn rbac_allows_needs_scope_and_action() {
        let secrets_user = role("Key Vault Secrets User");
        let at_a = scope("/vaults/kv1/secrets/a");
        let grants = [(secrets_user, &at_a)];
        let get = DataOperation::SecretGet.data_action();
        assert!(rbac_allows(grants, &at_a, get, true));
        assert!(!rbac_allows(
            grants,
            &scope("/vaults/kv1/secrets/b"),
            get,
            true
        ));
        assert!(!rbac_allows(grants, &scope("/vaults/kv1"), get, true));
        assert!(!rbac_allows(
            grants,
            &at_a,
            DataOperation::SecretSet.data_action(),
            true
        ));
        // A data action is never granted through `actions`, nor the reverse.
        assert!(!rbac_allows(grants, &at_a, get, false));
        let cluster = Scope::cluster();
        let owner = [(role("Owner"), &cluster)];
        assert!(rbac_allows(owner, &at_a, mgmt::VAULT_DELETE, false));
        assert!(!rbac_allows(owner, &at_a, get, true));
        assert!(!rbac_allows([], &at_a, mgmt::VAULT_READ, false));
        let two = [(role("Key Vault Reader"), &cluster), (secrets_user, &at_a)];
        assert!(rbac_allows(two, &at_a, get, true));
        assert!(!rbac_allows(
            two,
            &scope("/vaults/kv1/secrets/b"),
            get,
            true
        ));
    }

    #[test]
    fn assignment_rights_respect_assignable_roles() {
        let kv = scope("/vaults/kv1");
        let daa = [(role("Key Vault Data Access Administrator"), &kv)];
        let write = mgmt::ROLE_ASSIGNMENT_WRITE;
        assert!(rbac_allows_assignment(
            daa,
            &kv,
            write,
            role_ids::KEY_VAULT_SECRETS_USER
        ));
        assert!(!rbac_allows_assignment(daa, &kv, write, role_ids::OWNER));
        assert!(!rbac_allows_assignment(
            daa,
            &scope("/vaults/kv12"),
            write,
            role_ids::KEY_VAULT_READER
        ));
        let with_reader = [
            (role("Key Vault Data Access Administrator"), &kv),
            (role("Reader"), &kv),
        ];
        assert!(!rbac_allows_assignment(
            with_reader,
            &kv,
            write,
            role_ids::OWNER
        ));
        let uaa = [(role("User Access Administrator"), &kv)];
        assert!(rbac_allows_assignment(uaa, &kv, write, role_ids::OWNER));
    }

    fn holdings<'a>(grants: &'a [&'static RoleDefinition]) -> impl Fn(&str, bool) -> bool + 'a {
        move |pattern, data| grants.iter().any(|g| g.grants_pattern(pattern, data))
    }

    #[test]
    fn roles_within_holdings() {
        let officer = [role("Key Vault Secrets Officer")];
        assert!(role_within_holdings(
            role("Key Vault Secrets User"),
            holdings(&officer)
        ));
        assert!(!role_within_holdings(
            role("Key Vault Administrator"),
            holdings(&officer)
        ));
        assert!(!role_within_holdings(
            role("Key Vault Certificate User"),
            holdings(&officer)
        ));
        let admin = [role("Key Vault Administrator")];
        for name in [
            "Key Vault Secrets User",
            "Key Vault Crypto User",
            "Key Vault Reader",
        ] {
            assert!(role_within_holdings(role(name), holdings(&admin)), "{name}");
        }
        // Owner holds every action but no data action.
        let owner = [role("Owner")];
        assert!(role_within_holdings(role("Contributor"), holdings(&owner)));
        assert!(!role_within_holdings(
            role("Key Vault Secrets User"),
            holdings(&owner)
        ));
        // Contributor's `*` is cut by its notActions, so it cannot hand on a bare `*`.
        let contributor = [role("Contributor")];
        assert!(!role_within_holdings(role("Owner"), holdings(&contributor)));
        assert!(role_within_holdings(role("Reader"), holdings(&contributor)));
        // Data Access Administrator's restricted assignment right is not a bare one.
        let daa = [role("Key Vault Data Access Administrator")];
        let mut assigner = role("Key Vault Data Access Administrator").clone();
        assert!(!role_within_holdings(&assigner, holdings(&daa)));
        assigner
            .actions
            .retain(|a| !a.starts_with("Microsoft.Authorization/roleAssignments/"));
        assert!(role_within_holdings(&assigner, holdings(&daa)));
        // Nothing held: only an empty role fits.
        assert!(!role_within_holdings(role("Reader"), |_, _| false));
        let mut empty = role("Reader").clone();
        empty.actions.clear();
        assert!(role_within_holdings(&empty, |_, _| false));
    }
}
