//! Role definitions, role assignments and vault access policies: the operations that change
//! who may do what. Each is a management operation, and none lets a caller grant more than it
//! holds itself.

use coffer_store::{Applied, Command, IdentityCommand};
use coffer_types::authz::{
    self, AccessPolicyEntry, AccessPolicyPermissions, DataOperation, RoleDefinition, Scope, mgmt,
};
use coffer_types::error::quote_user_text;
use coffer_types::identity::RoleAssignmentRecord;
use coffer_types::records::RECORD_FORMAT;
use coffer_types::{Error, ErrorCode, VaultName, VaultRecord};

use crate::request::RequestContext;
use crate::vaults::expect_vault;
use crate::{Service, new_uuid};

/// Input of [`Service::create_role_assignment`].
#[derive(Debug, Clone)]
pub struct CreateRoleAssignment {
    /// Object id or client id of the assignee.
    pub principal: String,
    /// Role name or id.
    pub role: String,
    pub scope: String,
}

/// Input of [`Service::set_access_policy`]: the entry for one principal, replacing any other.
#[derive(Debug, Clone)]
pub struct SetAccessPolicy {
    pub vault: String,
    /// Object id or client id.
    pub principal: String,
    pub permissions: AccessPolicyPermissions,
}

fn unexpected(other: Applied) -> Error {
    Error::internal(format!("unexpected store answer {other:?}"))
}

impl Service {
    /// A role by name or id: built-in roles first, then custom ones.
    pub(crate) fn find_role(&self, name_or_id: &str) -> Result<RoleDefinition, Error> {
        if let Some(role) = authz::find_built_in(name_or_id) {
            return Ok(role.clone());
        }
        if let Some(role) = self.store.role_definition(name_or_id)? {
            return Ok(role);
        }
        self.store
            .role_definitions()?
            .into_iter()
            .find(|r| r.name.eq_ignore_ascii_case(name_or_id))
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::NotFound,
                    format!(
                        "The role definition {} does not exist.",
                        quote_user_text(name_or_id)
                    ),
                )
            })
    }

    /// The name of the role with this id, for display.
    pub fn role_name(&self, id: &str) -> Option<String> {
        self.role(id).ok().flatten().map(|r| r.name)
    }

    pub async fn list_role_definitions(
        &self,
        ctx: &RequestContext,
    ) -> Result<Vec<RoleDefinition>, Error> {
        self.authorize(ctx, &Scope::cluster(), mgmt::ROLE_DEFINITION_READ)?;
        self.read_point(ctx.consistency).await?;
        let mut roles: Vec<RoleDefinition> = authz::built_in_roles().to_vec();
        roles.extend(self.store.role_definitions()?);
        Ok(roles)
    }

    /// Creates or replaces a custom role. The caller must hold everything the role grants.
    pub async fn put_role_definition(
        &self,
        ctx: &RequestContext,
        mut role: RoleDefinition,
    ) -> Result<RoleDefinition, Error> {
        self.authorize(ctx, &Scope::cluster(), mgmt::ROLE_DEFINITION_WRITE)?;
        role.built_in = false;
        role.assignable_roles = None;
        if role.id.is_empty() {
            role.id = new_uuid()?;
        }
        if authz::find_built_in(&role.id).is_some() || authz::find_built_in(&role.name).is_some() {
            return Err(Error::new(
                ErrorCode::Conflict,
                "A built-in role has this name or id.",
            ));
        }
        role.validate()?;
        self.read_point(ctx.consistency).await?;
        if self
            .store
            .role_definitions()?
            .iter()
            .any(|r| r.id != role.id && r.name.eq_ignore_ascii_case(&role.name))
        {
            return Err(Error::new(
                ErrorCode::Conflict,
                "A custom role with this name exists.",
            ));
        }
        let grants = self.grants(ctx.caller())?;
        self.check_no_escalation(ctx, &grants, &role, &Scope::cluster())?;
        match self
            .store
            .write(
                ctx.request_id().to_owned(),
                Command::Identity(IdentityCommand::PutRoleDefinition { record: role }),
            )
            .await?
        {
            Applied::RoleDefinition(role) => Ok(role),
            Applied::Failed(e) => Err(e),
            other => Err(unexpected(other)),
        }
    }

    pub async fn delete_role_definition(
        &self,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<(), Error> {
        self.authorize(ctx, &Scope::cluster(), mgmt::ROLE_DEFINITION_DELETE)?;
        self.read_point(ctx.consistency).await?;
        let role = self.find_role(id)?;
        if role.built_in {
            return Err(Error::bad_parameter("Built-in roles cannot be deleted."));
        }
        match self
            .store
            .write(
                ctx.request_id().to_owned(),
                Command::Identity(IdentityCommand::DeleteRoleDefinition { id: role.id }),
            )
            .await?
        {
            Applied::Deleted => Ok(()),
            Applied::Failed(e) => Err(e),
            other => Err(unexpected(other)),
        }
    }

    pub async fn create_role_assignment(
        &self,
        ctx: &RequestContext,
        input: CreateRoleAssignment,
    ) -> Result<RoleAssignmentRecord, Error> {
        let scope = Scope::parse(&input.scope)?;
        self.read_point(ctx.consistency).await?;
        let role = self.find_role(&input.role)?;
        self.authorize_assignment(ctx, &role, &scope, mgmt::ROLE_ASSIGNMENT_WRITE)?;
        if !role.assignable_scopes.is_empty()
            && !role.assignable_scopes.iter().any(|s| s.contains(&scope))
        {
            return Err(Error::bad_parameter(format!(
                "The role {} cannot be assigned at scope {scope}.",
                quote_user_text(&role.name)
            )));
        }
        if let Some(vault) = scope.vault_name() {
            // Assignments to a vault that does not exist would silently apply to one created
            // later under that name.
            self.store
                .vault(vault)?
                .ok_or_else(|| Error::vault_not_found(vault))?;
        }
        let principal = self.find_principal(&input.principal)?;
        self.check_own_tenant(ctx, &principal.tenant)?;
        let record = RoleAssignmentRecord {
            format: RECORD_FORMAT,
            id: new_uuid()?,
            principal_id: principal.object_id,
            role_definition_id: role.id,
            scope,
            created: self.clock.now_unix(),
            created_by: ctx.caller().id.clone(),
        };
        match self
            .store
            .write(
                ctx.request_id().to_owned(),
                Command::Identity(IdentityCommand::CreateRoleAssignment { record }),
            )
            .await?
        {
            Applied::RoleAssignment(record) => Ok(record),
            Applied::Failed(e) => Err(e),
            other => Err(unexpected(other)),
        }
    }

    pub async fn delete_role_assignment(
        &self,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<RoleAssignmentRecord, Error> {
        self.read_point(ctx.consistency).await?;
        let existing = self
            .store
            .role_assignments()?
            .into_iter()
            .find(|a| a.id == id)
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::NotFound,
                    format!(
                        "The role assignment {} does not exist.",
                        quote_user_text(id)
                    ),
                )
            })?;
        match self.role(&existing.role_definition_id)? {
            Some(role) => self.authorize_assignment(
                ctx,
                &role,
                &existing.scope,
                mgmt::ROLE_ASSIGNMENT_DELETE,
            )?,
            // An assignment of a deleted custom role grants nothing; removing it needs only
            // the right to delete assignments.
            None => self.authorize(ctx, &existing.scope, mgmt::ROLE_ASSIGNMENT_DELETE)?,
        }
        match self
            .store
            .write(
                ctx.request_id().to_owned(),
                Command::Identity(IdentityCommand::DeleteRoleAssignment { id: id.to_owned() }),
            )
            .await?
        {
            Applied::RoleAssignment(record) => Ok(record),
            Applied::Failed(e) => Err(e),
            other => Err(unexpected(other)),
        }
    }

    /// Role assignments at or below `scope` (all when `None`), optionally of one principal.
    pub async fn list_role_assignments(
        &self,
        ctx: &RequestContext,
        scope: Option<&str>,
        principal: Option<&str>,
    ) -> Result<Vec<RoleAssignmentRecord>, Error> {
        let scope = scope
            .map(Scope::parse)
            .transpose()?
            .unwrap_or_else(Scope::cluster);
        self.authorize(ctx, &scope, mgmt::ROLE_ASSIGNMENT_READ)?;
        self.read_point(ctx.consistency).await?;
        let principal = principal.map(|p| self.find_principal(p)).transpose()?;
        Ok(self
            .store
            .role_assignments()?
            .into_iter()
            .filter(|a| scope.contains(&a.scope))
            .filter(|a| {
                principal
                    .as_ref()
                    .is_none_or(|p| p.object_id == a.principal_id)
            })
            .collect())
    }

    /// Adds or replaces the access policy of one principal on a vault; returns the vault and
    /// the entry as stored (permission names in Azure's spelling).
    pub async fn set_access_policy(
        &self,
        ctx: &RequestContext,
        input: SetAccessPolicy,
    ) -> Result<(VaultRecord, AccessPolicyEntry), Error> {
        let name = VaultName::parse(&input.vault)?;
        let vault = self
            .authorized_vault(ctx, &name, mgmt::ACCESS_POLICY_WRITE)
            .await?;
        let principal = self.find_principal(&input.principal)?;
        self.check_own_tenant(ctx, &principal.tenant)?;
        let mut entry = AccessPolicyEntry {
            tenant_id: principal.tenant.clone(),
            object_id: principal.object_id.clone(),
            application_id: None,
            permissions: input.permissions,
        };
        entry.validate()?;
        let granted: Vec<DataOperation> = DataOperation::all()
            .iter()
            .copied()
            .filter(|op| {
                let (kind, permission) = op.access_policy_permission();
                entry.grants(kind, permission)
            })
            .collect();
        self.check_policy_within_holdings(ctx, &vault, &granted)?;
        let vault = expect_vault(
            self.store
                .write(
                    ctx.request_id().to_owned(),
                    Command::ChangeAccessPolicy {
                        vault: name.key(),
                        object_id: principal.object_id,
                        entry: Some(entry.clone()),
                        updated: self.clock.now_unix(),
                    },
                )
                .await?,
        )?;
        Ok((vault, entry))
    }

    /// Removes the access policy of one principal from a vault.
    pub async fn delete_access_policy(
        &self,
        ctx: &RequestContext,
        vault: &str,
        principal: &str,
    ) -> Result<VaultRecord, Error> {
        let name = VaultName::parse(vault)?;
        self.authorize(ctx, &Scope::vault(&name.key())?, mgmt::ACCESS_POLICY_WRITE)?;
        self.read_point(ctx.consistency).await?;
        let object_id = match self.find_principal(principal) {
            Ok(p) => p.object_id,
            // A policy can outlive its principal; it is removed by the id it names.
            Err(_) => principal.to_owned(),
        };
        expect_vault(
            self.store
                .write(
                    ctx.request_id().to_owned(),
                    Command::ChangeAccessPolicy {
                        vault: name.key(),
                        object_id,
                        entry: None,
                        updated: self.clock.now_unix(),
                    },
                )
                .await?,
        )
    }
}
