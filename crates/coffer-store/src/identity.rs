//! The identity part of the state machine: tenants, principals, custom roles, role assignments
//! and token signing keys, all in the `identity` column family.
//!
//! Keys (`\0`-joined):
//! - `tenant, id` → TenantRecord
//! - `principal, object id` → PrincipalRecord
//! - `app, client id` → object id (client ids are unique in the cluster)
//! - `role, id` → RoleDefinition (custom roles only; built-in roles live in code)
//! - `assignment, id` → RoleAssignmentRecord
//! - `assigned, principal object id, assignment id` → nothing (the per-principal index that
//!   authorization reads on every request)
//! - `signing-key, kid` → SigningKeyRecord

use coffer_types::authz::{RoleDefinition, Scope};
use coffer_types::identity::{
    MAX_CREDENTIALS, MAX_GROUPS, PrincipalChange, PrincipalKind, PrincipalRecord,
    RoleAssignmentRecord, SigningKeyRecord, TenantRecord,
};
use coffer_types::{Error, ErrorCode};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::command::Applied;
use crate::db::{self, CF_IDENTITY};

const TENANT: &str = "tenant";
const PRINCIPAL: &str = "principal";
const APP: &str = "app";
const ROLE: &str = "role";
const ASSIGNMENT: &str = "assignment";
const ASSIGNED: &str = "assigned";
const SIGNING_KEY: &str = "signing-key";

/// Custom role definitions per cluster, as Azure limits them per tenant.
const MAX_CUSTOM_ROLES: usize = 5_000;

/// A change to identities, proposed through Raft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdentityCommand {
    CreateTenant {
        record: TenantRecord,
    },
    /// Refused with `Conflict` if the object id or client id is taken.
    CreatePrincipal {
        record: PrincipalRecord,
    },
    ChangePrincipal {
        object_id: String,
        change: PrincipalChange,
        updated: i64,
    },
    /// Removes the principal, its role assignments and (for a group) every membership in it.
    DeletePrincipal {
        object_id: String,
    },
    /// Creates or replaces a custom role.
    PutRoleDefinition {
        record: RoleDefinition,
    },
    /// Refused while the role is assigned.
    DeleteRoleDefinition {
        id: String,
    },
    /// Refused with `Conflict` if the principal already has the role at the scope.
    CreateRoleAssignment {
        record: RoleAssignmentRecord,
    },
    DeleteRoleAssignment {
        id: String,
    },
    /// Adds a signing key that takes over from the current ones, which stay valid until
    /// `retire_others_at`; keys retired before `now` are dropped. Without `rotate`, an active
    /// key already present wins and the new one is dropped (every node may propose the first
    /// key at start).
    AddSigningKey {
        record: SigningKeyRecord,
        retire_others_at: i64,
        now: i64,
        rotate: bool,
    },
}

impl IdentityCommand {
    pub fn name(&self) -> &'static str {
        match self {
            IdentityCommand::CreateTenant { .. } => "create_tenant",
            IdentityCommand::CreatePrincipal { .. } => "create_principal",
            IdentityCommand::ChangePrincipal { .. } => "change_principal",
            IdentityCommand::DeletePrincipal { .. } => "delete_principal",
            IdentityCommand::PutRoleDefinition { .. } => "put_role_definition",
            IdentityCommand::DeleteRoleDefinition { .. } => "delete_role_definition",
            IdentityCommand::CreateRoleAssignment { .. } => "create_role_assignment",
            IdentityCommand::DeleteRoleAssignment { .. } => "delete_role_assignment",
            IdentityCommand::AddSigningKey { .. } => "add_signing_key",
        }
    }
}

type Outcome = Result<Result<Applied, Error>, StoreError>;

fn get<T: serde::de::DeserializeOwned>(db: &DB, parts: &[&str]) -> Result<Option<T>, StoreError> {
    db.get_cf(db::cf(db, CF_IDENTITY)?, db::join_key(parts))
        .map_err(StoreError::storage)?
        .map(|bytes| db::decode(&bytes))
        .transpose()
}

fn put<T: Serialize>(
    db: &DB,
    batch: &mut WriteBatch,
    parts: &[&str],
    value: &T,
) -> Result<(), StoreError> {
    batch.put_cf(
        db::cf(db, CF_IDENTITY)?,
        db::join_key(parts),
        db::encode(value)?,
    );
    Ok(())
}

fn delete(db: &DB, batch: &mut WriteBatch, parts: &[&str]) -> Result<(), StoreError> {
    batch.delete_cf(db::cf(db, CF_IDENTITY)?, db::join_key(parts));
    Ok(())
}

/// Every (key suffix, value) under `parts`, in key order.
fn scan(db: &DB, parts: &[&str]) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let cf = db::cf(db, CF_IDENTITY)?;
    let prefix = db::prefix(parts);
    let mut out = Vec::new();
    for item in db.iterator_cf(cf, IteratorMode::From(&prefix, Direction::Forward)) {
        let (key, value) = item.map_err(StoreError::storage)?;
        let Some(rest) = key.strip_prefix(prefix.as_slice()) else {
            break;
        };
        let rest = std::str::from_utf8(rest).map_err(StoreError::corrupt)?;
        out.push((rest.to_owned(), value.to_vec()));
    }
    Ok(out)
}

fn not_found(what: &str, id: &str) -> Error {
    Error::new(
        ErrorCode::NotFound,
        format!(
            "The {what} {} does not exist.",
            coffer_types::error::quote_user_text(id)
        ),
    )
}

pub(crate) fn apply(db: &DB, batch: &mut WriteBatch, command: &IdentityCommand) -> Outcome {
    match command {
        IdentityCommand::CreateTenant { record } => {
            if get::<TenantRecord>(db, &[TENANT, &record.id])?.is_some() {
                return Ok(Err(Error::new(
                    ErrorCode::Conflict,
                    format!("The tenant {} already exists.", record.id),
                )));
            }
            put(db, batch, &[TENANT, &record.id], record)?;
            Ok(Ok(Applied::Tenant(record.clone())))
        }
        IdentityCommand::CreatePrincipal { record } => create_principal(db, batch, record),
        IdentityCommand::ChangePrincipal {
            object_id,
            change,
            updated,
        } => change_principal(db, batch, object_id, change, *updated),
        IdentityCommand::DeletePrincipal { object_id } => delete_principal(db, batch, object_id),
        IdentityCommand::PutRoleDefinition { record } => {
            if get::<RoleDefinition>(db, &[ROLE, &record.id])?.is_none()
                && scan(db, &[ROLE])?.len() >= MAX_CUSTOM_ROLES
            {
                return Ok(Err(Error::bad_parameter(format!(
                    "A cluster holds at most {MAX_CUSTOM_ROLES} custom roles."
                ))));
            }
            put(db, batch, &[ROLE, &record.id], record)?;
            Ok(Ok(Applied::RoleDefinition(record.clone())))
        }
        IdentityCommand::DeleteRoleDefinition { id } => {
            if get::<RoleDefinition>(db, &[ROLE, id])?.is_none() {
                return Ok(Err(not_found("role definition", id)));
            }
            for (_, value) in scan(db, &[ASSIGNMENT])? {
                let assignment: RoleAssignmentRecord = db::decode(&value)?;
                if assignment.role_definition_id == *id {
                    return Ok(Err(Error::new(
                        ErrorCode::Conflict,
                        "The role definition is assigned; delete its role assignments first.",
                    )));
                }
            }
            delete(db, batch, &[ROLE, id])?;
            Ok(Ok(Applied::Deleted))
        }
        IdentityCommand::CreateRoleAssignment { record } => create_assignment(db, batch, record),
        IdentityCommand::DeleteRoleAssignment { id } => {
            let Some(record) = get::<RoleAssignmentRecord>(db, &[ASSIGNMENT, id])? else {
                return Ok(Err(not_found("role assignment", id)));
            };
            delete(db, batch, &[ASSIGNMENT, id])?;
            delete(db, batch, &[ASSIGNED, &record.principal_id, id])?;
            Ok(Ok(Applied::RoleAssignment(record)))
        }
        IdentityCommand::AddSigningKey {
            record,
            retire_others_at,
            now,
            rotate,
        } => {
            if !rotate {
                for (kid, value) in scan(db, &[SIGNING_KEY])? {
                    let existing: SigningKeyRecord = db::decode(&value)?;
                    if existing.retire_at.is_none() {
                        return Ok(Ok(Applied::SigningKey(kid)));
                    }
                }
            }
            for (kid, value) in scan(db, &[SIGNING_KEY])? {
                let mut other: SigningKeyRecord = db::decode(&value)?;
                match other.retire_at {
                    Some(at) if at <= *now => delete(db, batch, &[SIGNING_KEY, &kid])?,
                    Some(_) => {}
                    None => {
                        other.retire_at = Some(*retire_others_at);
                        put(db, batch, &[SIGNING_KEY, &kid], &other)?;
                    }
                }
            }
            put(db, batch, &[SIGNING_KEY, &record.kid], record)?;
            Ok(Ok(Applied::SigningKey(record.kid.clone())))
        }
    }
}

fn create_principal(db: &DB, batch: &mut WriteBatch, record: &PrincipalRecord) -> Outcome {
    if get::<TenantRecord>(db, &[TENANT, &record.tenant])?.is_none() {
        return Ok(Err(not_found("tenant", &record.tenant)));
    }
    if get::<PrincipalRecord>(db, &[PRINCIPAL, &record.object_id])?.is_some() {
        return Ok(Err(Error::new(
            ErrorCode::Conflict,
            "A principal with this object id already exists.",
        )));
    }
    if let Some(app_id) = &record.app_id {
        if get::<String>(db, &[APP, app_id])?.is_some() {
            return Ok(Err(Error::new(
                ErrorCode::Conflict,
                "A principal with this client id already exists.",
            )));
        }
        put(db, batch, &[APP, app_id], &record.object_id)?;
    }
    put(db, batch, &[PRINCIPAL, &record.object_id], record)?;
    Ok(Ok(Applied::Principal(Box::new(record.clone()))))
}

fn change_principal(
    db: &DB,
    batch: &mut WriteBatch,
    object_id: &str,
    change: &PrincipalChange,
    updated: i64,
) -> Outcome {
    let Some(mut record) = get::<PrincipalRecord>(db, &[PRINCIPAL, object_id])? else {
        return Ok(Err(not_found("principal", object_id)));
    };
    let too_many = || {
        Error::bad_parameter(format!(
            "A principal holds at most {MAX_CREDENTIALS} credentials of each kind."
        ))
    };
    match change {
        PrincipalChange::AddSecret(c) => {
            if record.secrets.len() >= MAX_CREDENTIALS {
                return Ok(Err(too_many()));
            }
            record.secrets.push(c.clone());
        }
        PrincipalChange::AddCertificate(c) => {
            if record.certificates.len() >= MAX_CREDENTIALS {
                return Ok(Err(too_many()));
            }
            if record.certificates.iter().any(|e| e.der == c.der) {
                return Ok(Err(Error::new(
                    ErrorCode::Conflict,
                    "This certificate is already registered for the principal.",
                )));
            }
            record.certificates.push(c.clone());
        }
        PrincipalChange::AddFederated(c) => {
            if record.federated.len() >= MAX_CREDENTIALS {
                return Ok(Err(too_many()));
            }
            if record.federated.iter().any(|e| {
                e.name.eq_ignore_ascii_case(&c.name)
                    || (e.issuer == c.issuer && e.subject == c.subject)
            }) {
                return Ok(Err(Error::new(
                    ErrorCode::Conflict,
                    "A federated credential with this name or issuer and subject exists.",
                )));
            }
            record.federated.push(c.clone());
        }
        PrincipalChange::RemoveCredential(id) => {
            let before = record.secrets.len() + record.certificates.len() + record.federated.len();
            record.secrets.retain(|c| c.id != *id);
            record.certificates.retain(|c| c.id != *id);
            record
                .federated
                .retain(|c| !c.name.eq_ignore_ascii_case(id));
            if record.secrets.len() + record.certificates.len() + record.federated.len() == before {
                return Ok(Err(not_found("credential", id)));
            }
        }
        PrincipalChange::JoinGroup(group) => {
            match get::<PrincipalRecord>(db, &[PRINCIPAL, group])? {
                Some(g) if g.kind == PrincipalKind::Group && g.tenant == record.tenant => {}
                _ => return Ok(Err(not_found("group", group))),
            }
            if group == object_id {
                return Ok(Err(Error::bad_parameter(
                    "A group cannot be a member of itself.",
                )));
            }
            if !record.member_of.contains(group) {
                if record.member_of.len() >= MAX_GROUPS {
                    return Ok(Err(Error::bad_parameter(format!(
                        "A principal is a member of at most {MAX_GROUPS} groups."
                    ))));
                }
                record.member_of.push(group.clone());
            }
        }
        PrincipalChange::LeaveGroup(group) => {
            if !record.member_of.contains(group) {
                return Ok(Err(not_found("group membership", group)));
            }
            record.member_of.retain(|g| g != group);
        }
    }
    record.updated = updated;
    put(db, batch, &[PRINCIPAL, object_id], &record)?;
    Ok(Ok(Applied::Principal(Box::new(record))))
}

fn delete_principal(db: &DB, batch: &mut WriteBatch, object_id: &str) -> Outcome {
    let Some(record) = get::<PrincipalRecord>(db, &[PRINCIPAL, object_id])? else {
        return Ok(Err(not_found("principal", object_id)));
    };
    delete(db, batch, &[PRINCIPAL, object_id])?;
    if let Some(app_id) = &record.app_id {
        delete(db, batch, &[APP, app_id])?;
    }
    for (assignment, _) in scan(db, &[ASSIGNED, object_id])? {
        delete(db, batch, &[ASSIGNMENT, &assignment])?;
        delete(db, batch, &[ASSIGNED, object_id, &assignment])?;
    }
    if record.kind == PrincipalKind::Group {
        for (member_id, value) in scan(db, &[PRINCIPAL])? {
            let mut member: PrincipalRecord = db::decode(&value)?;
            if member.member_of.iter().any(|g| g == object_id) {
                member.member_of.retain(|g| g != object_id);
                put(db, batch, &[PRINCIPAL, &member_id], &member)?;
            }
        }
    }
    Ok(Ok(Applied::Deleted))
}

fn create_assignment(db: &DB, batch: &mut WriteBatch, record: &RoleAssignmentRecord) -> Outcome {
    if get::<PrincipalRecord>(db, &[PRINCIPAL, &record.principal_id])?.is_none() {
        return Ok(Err(not_found("principal", &record.principal_id)));
    }
    // Checked here, not only by the proposer: a vault deleted in between would otherwise
    // leave an assignment that a new vault of the same name inherits.
    if let Some(vault) = record.scope.vault_name()
        && crate::apply::load_vault(db, vault)?.is_none()
    {
        return Ok(Err(Error::vault_not_found(vault)));
    }
    for (id, _) in scan(db, &[ASSIGNED, &record.principal_id])? {
        if let Some(existing) = get::<RoleAssignmentRecord>(db, &[ASSIGNMENT, &id])?
            && existing.role_definition_id == record.role_definition_id
            && existing.scope == record.scope
        {
            return Ok(Err(Error::new(
                ErrorCode::Conflict,
                "The role assignment already exists.",
            )));
        }
    }
    put(db, batch, &[ASSIGNMENT, &record.id], record)?;
    put(
        db,
        batch,
        &[ASSIGNED, &record.principal_id, &record.id],
        &(),
    )?;
    Ok(Ok(Applied::RoleAssignment(record.clone())))
}

/// Removes the role assignments at or below `scope` (a vault that is deleted takes its
/// assignments with it, so a new vault of the same name does not inherit them).
pub(crate) fn delete_assignments_within(
    db: &DB,
    batch: &mut WriteBatch,
    scope: &Scope,
) -> Result<(), StoreError> {
    for (id, value) in scan(db, &[ASSIGNMENT])? {
        let record: RoleAssignmentRecord = db::decode(&value)?;
        if scope.contains(&record.scope) {
            delete(db, batch, &[ASSIGNMENT, &id])?;
            delete(db, batch, &[ASSIGNED, &record.principal_id, &id])?;
        }
    }
    Ok(())
}

// Reads, for the service layer.

pub(crate) fn tenant(db: &DB, id: &str) -> Result<Option<TenantRecord>, StoreError> {
    get(db, &[TENANT, id])
}

pub(crate) fn tenants(db: &DB) -> Result<Vec<TenantRecord>, StoreError> {
    scan(db, &[TENANT])?
        .iter()
        .map(|(_, v)| db::decode(v))
        .collect()
}

pub(crate) fn principal(db: &DB, object_id: &str) -> Result<Option<PrincipalRecord>, StoreError> {
    get(db, &[PRINCIPAL, object_id])
}

pub(crate) fn principal_by_app(
    db: &DB,
    app_id: &str,
) -> Result<Option<PrincipalRecord>, StoreError> {
    match get::<String>(db, &[APP, app_id])? {
        Some(object_id) => principal(db, &object_id),
        None => Ok(None),
    }
}

pub(crate) fn principals(db: &DB) -> Result<Vec<PrincipalRecord>, StoreError> {
    scan(db, &[PRINCIPAL])?
        .iter()
        .map(|(_, v)| db::decode(v))
        .collect()
}

pub(crate) fn role_definition(db: &DB, id: &str) -> Result<Option<RoleDefinition>, StoreError> {
    get(db, &[ROLE, id])
}

pub(crate) fn role_definitions(db: &DB) -> Result<Vec<RoleDefinition>, StoreError> {
    scan(db, &[ROLE])?
        .iter()
        .map(|(_, v)| db::decode(v))
        .collect()
}

pub(crate) fn assignments(db: &DB) -> Result<Vec<RoleAssignmentRecord>, StoreError> {
    scan(db, &[ASSIGNMENT])?
        .iter()
        .map(|(_, v)| db::decode(v))
        .collect()
}

/// The role assignments made directly to `principal_id`.
pub(crate) fn assignments_of(
    db: &DB,
    principal_id: &str,
) -> Result<Vec<RoleAssignmentRecord>, StoreError> {
    let mut out = Vec::new();
    for (id, _) in scan(db, &[ASSIGNED, principal_id])? {
        if let Some(record) = get(db, &[ASSIGNMENT, &id])? {
            out.push(record);
        }
    }
    Ok(out)
}

pub(crate) fn signing_keys(db: &DB) -> Result<Vec<SigningKeyRecord>, StoreError> {
    scan(db, &[SIGNING_KEY])?
        .iter()
        .map(|(_, v)| db::decode(v))
        .collect()
}
