//! Authorization: may this caller do this, here?
//!
//! Management operations (vaults, role assignments, access policies, identities, the cluster)
//! are always decided by RBAC, as Azure's control plane is. Data operations on a vault's
//! objects are decided by the vault's active model: RBAC data actions, or its access policies.
//! The grants of a caller are its own role assignments and those of its groups; every request
//! reads them from this node's applied state, so a revoked assignment or a deleted principal
//! stops working as soon as the node has applied the change.

use coffer_types::authz::{
    self, DataOperation, PermissionKind, RoleDefinition, Scope, access_denied_message,
    forbidden_by_rbac_message, rbac_allows, rbac_allows_assignment,
};
use std::sync::Arc;

use coffer_types::identity::PrincipalRecord;
use coffer_types::{Error, ErrorCode, InnerCode, ObjectKind, VaultRecord};

use crate::request::RequestContext;
use crate::{Caller, Service};

/// The roles a caller holds and where.
pub(crate) struct Grants(Vec<(RoleDefinition, Scope)>);

impl Grants {
    fn allows(&self, resource: &Scope, action: &str, data: bool) -> bool {
        rbac_allows(
            self.0.iter().map(|(role, scope)| (role, scope)),
            resource,
            action,
            data,
        )
    }

    /// Whether the caller holds everything `pattern` could name at `resource`: the rule that
    /// keeps a principal from granting more than it holds.
    fn covers(&self, resource: &Scope, pattern: &str, data: bool) -> bool {
        self.0
            .iter()
            .any(|(role, scope)| scope.contains(resource) && role.grants_pattern(pattern, data))
    }
}

fn object_scope_kind(kind: PermissionKind) -> Option<ObjectKind> {
    match kind {
        PermissionKind::Secrets => Some(ObjectKind::Secret),
        PermissionKind::Keys => Some(ObjectKind::Key),
        PermissionKind::Certificates => Some(ObjectKind::Certificate),
        _ => None,
    }
}

impl Service {
    /// The role definition with this id: built-in or custom.
    pub(crate) fn role(&self, id: &str) -> Result<Option<RoleDefinition>, Error> {
        if let Some(role) = authz::find_built_in(id) {
            return Ok(Some(role.clone()));
        }
        Ok(self.store.role_definition(id)?)
    }

    /// The roles `caller` holds, directly and through its groups, as this node has applied
    /// them (cached until the node applies an identity change).
    pub(crate) fn grants(&self, caller: &Caller) -> Result<Arc<Grants>, Error> {
        let epoch = self.store.identity_epoch();
        let key = caller.object_ids().collect::<Vec<_>>().join(",");
        if let Some(grants) = self.identity_cache.grants(epoch, &key) {
            return Ok(grants);
        }
        let mut grants = Vec::new();
        for object_id in caller.object_ids() {
            for assignment in self.store.role_assignments_of(object_id)? {
                match self.role(&assignment.role_definition_id)? {
                    Some(role) => grants.push((role, assignment.scope)),
                    None => tracing::warn!(
                        assignment = %assignment.id,
                        "role assignment names a role that does not exist"
                    ),
                }
            }
        }
        let grants = Arc::new(Grants(grants));
        self.identity_cache.put_grants(epoch, &key, grants.clone());
        Ok(grants)
    }

    /// Refuses a management `action` at `scope` unless RBAC grants it.
    pub(crate) fn authorize(
        &self,
        ctx: &RequestContext,
        scope: &Scope,
        action: &str,
    ) -> Result<(), Error> {
        if ctx.caller().is_superuser() {
            return Ok(());
        }
        match scope.vault_name() {
            Some(vault) => {
                let record = self.store.vault(vault)?;
                self.authorize_at(ctx, scope, record.as_ref(), action)
            }
            None => self.authorize_at(ctx, scope, None, action),
        }
    }

    /// Like [`Service::authorize`] at the scope of `vault`, whose record the caller already
    /// read (so nothing is read again).
    pub(crate) fn authorize_vault(
        &self,
        ctx: &RequestContext,
        vault: &VaultRecord,
        action: &str,
    ) -> Result<(), Error> {
        let scope = Scope::vault(&vault.name.to_ascii_lowercase())?;
        self.authorize_at(ctx, &scope, Some(vault), action)
    }

    /// The management decision at `scope`, with `vault` the record of the vault the scope
    /// names if it exists.
    pub(crate) fn authorize_at(
        &self,
        ctx: &RequestContext,
        scope: &Scope,
        vault: Option<&VaultRecord>,
        action: &str,
    ) -> Result<(), Error> {
        let caller = ctx.caller();
        if caller.is_superuser() {
            return Ok(());
        }
        if let Some(record) = vault {
            self.check_vault_tenant(caller, record)?;
        }
        if self.grants(caller)?.allows(scope, action, false) {
            return Ok(());
        }
        Err(management_refusal(caller, scope, action))
    }

    /// Refuses a caller of another tenant than the vault's: such a token is not a credential
    /// for the vault at all, so Azure answers 401 (AKV10032), not 403.
    fn check_vault_tenant(&self, caller: &Caller, vault: &VaultRecord) -> Result<(), Error> {
        match (&vault.tenant_id, &caller.tenant) {
            (Some(home), Some(theirs)) if home != theirs => Err(Error::unauthorized(format!(
                "AKV10032: Invalid issuer. Expected one of {}, found {}.",
                self.issuer(home),
                caller.issuer.as_deref().unwrap_or("")
            ))),
            _ => Ok(()),
        }
    }

    /// Refuses to let a principal manage identities of another tenant (the bootstrap token
    /// and the server itself manage every tenant).
    pub(crate) fn check_own_tenant(&self, ctx: &RequestContext, tenant: &str) -> Result<(), Error> {
        match &ctx.caller().tenant {
            Some(own) if own != tenant && !ctx.caller().is_superuser() => Err(Error::new(
                ErrorCode::Forbidden,
                format!(
                    "The caller '{}' may manage identities of its own tenant only.",
                    ctx.caller().describe()
                ),
            )
            .with_inner(InnerCode::ForbiddenByRbac)),
            _ => Ok(()),
        }
    }

    /// Refuses a caller whose tenant the vault does not accept; the check of operations that
    /// need no permission beyond reaching the vault (random bytes).
    pub(crate) fn check_vault_reachable(
        &self,
        ctx: &RequestContext,
        vault: &VaultRecord,
    ) -> Result<(), Error> {
        let caller = ctx.caller();
        if caller.is_superuser() {
            return Ok(());
        }
        self.check_vault_tenant(caller, vault)
    }

    /// Refuses a data operation on `vault` (and, for object operations, the object `name`)
    /// unless the vault's active model grants it.
    pub(crate) fn authorize_data(
        &self,
        ctx: &RequestContext,
        vault: &VaultRecord,
        operation: DataOperation,
        name: Option<&str>,
    ) -> Result<(), Error> {
        let caller = ctx.caller();
        if caller.is_superuser() {
            return Ok(());
        }
        self.check_vault_tenant(caller, vault)?;
        let vault_key = vault.name.to_ascii_lowercase();
        let (kind, permission) = operation.access_policy_permission();
        if vault.enable_rbac_authorization {
            let resource = match (name, object_scope_kind(kind)) {
                (Some(name), Some(kind)) => Scope::object(&vault_key, kind, name)?,
                _ => Scope::vault(&vault_key)?,
            };
            let action = operation.data_action();
            if self.grants(caller)?.allows(&resource, action, true) {
                return Ok(());
            }
            return Err(Error::new(
                ErrorCode::Forbidden,
                forbidden_by_rbac_message(
                    &caller.describe(),
                    action,
                    &resource.to_string(),
                    &vault.name,
                    &vault.location,
                ),
            )
            .with_inner(InnerCode::ForbiddenByRbac));
        }
        let ids: Vec<&str> = caller.object_ids().collect();
        let granted = vault.access_policies.iter().any(|entry| {
            ids.iter()
                .any(|id| entry.object_id.eq_ignore_ascii_case(id))
                && caller
                    .tenant
                    .as_deref()
                    .is_none_or(|t| entry.tenant_id.eq_ignore_ascii_case(t))
                && entry.grants(kind, permission)
        });
        if granted {
            Ok(())
        } else {
            Err(Error::new(
                ErrorCode::Forbidden,
                access_denied_message(&caller.describe(), operation, &vault.name, &vault.location),
            )
            .with_inner(InnerCode::AccessDenied))
        }
    }

    /// Refuses to assign (or remove an assignment of) `role` at `scope` unless the caller may
    /// write role assignments there for that role and holds all of the role there itself.
    /// Roles restricted to handing out certain roles (Key Vault Data Access Administrator)
    /// may assign those without holding them: that is their purpose.
    pub(crate) fn authorize_assignment(
        &self,
        ctx: &RequestContext,
        role: &RoleDefinition,
        scope: &Scope,
        action: &str,
    ) -> Result<(), Error> {
        let caller = ctx.caller();
        if caller.is_superuser() {
            return Ok(());
        }
        let grants = self.grants(caller)?;
        let pairs = || grants.0.iter().map(|(r, s)| (r, s));
        if !rbac_allows_assignment(pairs(), scope, action, &role.id) {
            return Err(management_refusal(caller, scope, action));
        }
        let restricted_grant = grants.0.iter().any(|(held, held_scope)| {
            held_scope.contains(scope)
                && held.assignable_roles.is_some()
                && held.may_assign_role(&role.id)
                && held.allows_action(action)
        });
        if restricted_grant {
            return Ok(());
        }
        self.check_no_escalation(ctx, &grants, role, scope)
    }

    /// Refuses `role` at `scope` unless the caller holds all of it there.
    pub(crate) fn check_no_escalation(
        &self,
        ctx: &RequestContext,
        grants: &Grants,
        role: &RoleDefinition,
        scope: &Scope,
    ) -> Result<(), Error> {
        if ctx.caller().is_superuser()
            || authz::role_within_holdings(role, |pattern, data| {
                grants.covers(scope, pattern, data)
            })
        {
            Ok(())
        } else {
            Err(Error::new(
                ErrorCode::Forbidden,
                format!(
                    "The caller '{}' cannot grant the role '{}' at scope '{scope}': it does not \
                     hold every permission of that role there.",
                    ctx.caller().describe(),
                    role.name
                ),
            )
            .with_inner(InnerCode::ForbiddenByRbac))
        }
    }

    /// Refuses granting data permissions on `vault` through an access policy unless the caller
    /// holds them itself (under either model), or holds every data action on the vault.
    pub(crate) fn check_policy_within_holdings(
        &self,
        ctx: &RequestContext,
        vault: &VaultRecord,
        operations: &[DataOperation],
    ) -> Result<(), Error> {
        if ctx.caller().is_superuser() {
            return Ok(());
        }
        let mut as_rbac = vault.clone();
        as_rbac.enable_rbac_authorization = true;
        let mut as_policies = vault.clone();
        as_policies.enable_rbac_authorization = false;
        for operation in operations {
            let held = self.authorize_data(ctx, &as_rbac, *operation, None).is_ok()
                || self
                    .authorize_data(ctx, &as_policies, *operation, None)
                    .is_ok();
            if !held {
                return Err(Error::new(
                    ErrorCode::Forbidden,
                    format!(
                        "The caller '{}' cannot grant {} permission on key vault '{}': it does \
                         not hold that permission itself.",
                        ctx.caller().describe(),
                        operation.describe(),
                        vault.name
                    ),
                )
                .with_inner(InnerCode::AccessDenied));
            }
        }
        Ok(())
    }
}

impl Service {
    /// Refuses to let the caller act for `target` (give it a credential, or make a principal a
    /// member of the group `target`) unless the caller already holds everything `target`
    /// holds: its role assignments, its groups' and its access-policy permissions. Otherwise
    /// an identity administrator could add a secret to an Owner and sign in as it.
    pub(crate) fn check_may_act_as(
        &self,
        ctx: &RequestContext,
        target: &PrincipalRecord,
    ) -> Result<(), Error> {
        if ctx.caller().is_superuser() {
            return Ok(());
        }
        let held = self.grants(ctx.caller())?;
        let mut ids = vec![target.object_id.as_str()];
        ids.extend(target.member_of.iter().map(String::as_str));
        for id in &ids {
            for assignment in self.store.role_assignments_of(id)? {
                if let Some(role) = self.role(&assignment.role_definition_id)? {
                    self.check_no_escalation(ctx, &held, &role, &assignment.scope)?;
                }
            }
        }
        let mut after: Option<String> = None;
        loop {
            let page = self.store.vaults(after.as_deref(), 100)?;
            for vault in &page.items {
                let granted: Vec<DataOperation> = DataOperation::all()
                    .iter()
                    .copied()
                    .filter(|op| {
                        let (kind, permission) = op.access_policy_permission();
                        vault.access_policies.iter().any(|entry| {
                            ids.iter()
                                .any(|id| entry.object_id.eq_ignore_ascii_case(id))
                                && entry.grants(kind, permission)
                        })
                    })
                    .collect();
                if !granted.is_empty() {
                    self.check_policy_within_holdings(ctx, vault, &granted)?;
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }
}

/// Azure Resource Manager's refusal of a management operation.
fn management_refusal(caller: &Caller, scope: &Scope, action: &str) -> Error {
    Error::new(
        ErrorCode::Forbidden,
        format!(
            "The client '{}' with object id '{}' does not have authorization to perform action \
             '{action}' over scope '{scope}' or the scope is invalid.",
            caller.describe(),
            caller.id
        ),
    )
    .with_inner(InnerCode::ForbiddenByRbac)
}
