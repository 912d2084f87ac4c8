//! What a Raft log entry asks the state machine to do, and what it answers.

use coffer_types::authz::{AccessPolicyEntry, RoleDefinition};
use coffer_types::identity::{PrincipalRecord, RoleAssignmentRecord, TenantRecord};
use coffer_types::{
    DeletedObjectRecord, DeletedVaultRecord, Error, GeographyKeyRecord, KeyRecord,
    KeyRotationPolicyRecord, SecretRecord, Sku, Tags, VaultRecord,
};

pub use crate::identity::IdentityCommand;
pub use crate::keys::KeyPatch;
pub use crate::lifecycle::LifecycleCommand;
use serde::{Deserialize, Serialize};

/// A state change, proposed through Raft. Names in commands are the case-folded keys; records
/// carry the display forms. Values inside records are already sealed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Refused with `Conflict` if the vault exists.
    CreateVault {
        record: Box<VaultRecord>,
    },
    UpdateVault {
        vault: String,
        patch: Box<VaultPatch>,
        updated: i64,
    },
    /// Adds a version and makes it the latest. Refused with `VaultNotFound` if the vault is
    /// gone (it may have been deleted after the proposer checked).
    /// `vault_id` is the incarnation whose data key sealed the value.
    PutSecret {
        vault: String,
        vault_id: String,
        record: SecretRecord,
    },
    /// Changes attributes of one version; `version: None` means the latest. `name` is as the
    /// caller gave it; the state machine folds its case.
    UpdateSecret {
        vault: String,
        name: String,
        version: Option<String>,
        patch: SecretPatch,
        updated: i64,
    },
    /// Adds a key version (created, imported or rotated) and makes it the latest; refused
    /// like [`Command::PutSecret`]. With `expected_head`, refused with `Conflict` unless the
    /// latest version is still that one (a rotation replaces exactly the version it read).
    PutKey {
        vault: String,
        vault_id: String,
        record: Box<KeyRecord>,
        expected_head: Option<String>,
    },
    /// Changes attributes of one key version; `version: None` means the latest.
    UpdateKey {
        vault: String,
        name: String,
        version: Option<String>,
        patch: KeyPatch,
        updated: i64,
    },
    /// Sets the rotation policy of an active key.
    SetKeyRotationPolicy {
        vault: String,
        name: String,
        policy: KeyRotationPolicyRecord,
    },
    /// Adds, replaces (`entry: Some`) or removes (`None`) the access policy of `object_id`.
    ChangeAccessPolicy {
        vault: String,
        object_id: String,
        entry: Option<AccessPolicyEntry>,
        updated: i64,
    },
    Identity(IdentityCommand),
    /// Removes a vault and every object in it at once. Written by earlier versions; kept so
    /// their log entries still apply (deletions now go through [`LifecycleCommand`]).
    DeleteVault {
        vault: String,
    },
    /// Deleting, recovering, purging and restoring objects and vaults.
    Lifecycle(LifecycleCommand),
    /// Adds a geography backup key. `activate` makes it the key new backups of its geography
    /// are sealed with; `if_none` refuses (with `Conflict`) when the geography already has an
    /// active key, so nodes that all propose a first key at start agree on one.
    AddGeographyKey {
        record: GeographyKeyRecord,
        activate: bool,
        if_none: bool,
    },
    /// Writes records of a saved snapshot (vaults, secret heads and versions) as they are.
    /// Proposed in batches by an operator restore into a cluster that holds no vaults.
    Restore {
        records: Vec<RestoredRecord>,
    },
}

/// One state-machine record of an operator restore, as a snapshot holds it: the column family
/// by its snapshot index, and the stored key and value (values sealed).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoredRecord {
    pub cf: u8,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// What a Raft log entry carries: a command and the id of the client request it answers.
///
/// The id lets the state machine apply a command once even when the request is retried after
/// its answer was lost (a leader crash, a dropped connection, a forwarded write whose reply never
/// came back): a second proposal with an id already applied returns the first answer and
/// changes nothing (Raft thesis §6.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// 1 to 64 characters of `[0-9a-zA-Z-_]`, unique per logical request.
    pub request_id: String,
    pub command: Command,
}

impl std::fmt::Display for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (request {})", self.command, self.request_id)
    }
}

/// Changes to a vault's mutable properties; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultPatch {
    pub sku: Option<Sku>,
    /// Only `Some(true)` is accepted once protection is on; the state machine enforces it.
    pub purge_protection: Option<bool>,
    pub tags: Option<Tags>,
    pub enable_rbac_authorization: Option<bool>,
    /// Applied to the current rule set atomically, so concurrent rule changes do not lose
    /// each other's rules.
    #[serde(default)]
    pub network: Option<coffer_types::NetworkPatch>,
    #[serde(default)]
    pub throttle: Option<coffer_types::throttle::ThrottlePatch>,
}

/// Changes to a secret version's attributes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretPatch {
    pub enabled: Option<bool>,
    pub not_before: Option<i64>,
    pub expires: Option<i64>,
    pub content_type: Option<String>,
    pub tags: Option<Tags>,
}

/// The state machine's answer to a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// Blank and membership entries.
    Nothing,
    Vault(Box<VaultRecord>),
    Secret(SecretRecord),
    Key(Box<KeyRecord>),
    KeyRotationPolicy(KeyRotationPolicyRecord),
    Deleted,
    DeletedObject(DeletedObjectRecord),
    DeletedVault(Box<DeletedVaultRecord>),
    /// An object restored from a backup: its name and latest version.
    Restored {
        name: String,
        latest_version: String,
    },
    GeographyKey(GeographyKeyRecord),
    Tenant(TenantRecord),
    Principal(Box<PrincipalRecord>),
    RoleDefinition(RoleDefinition),
    RoleAssignment(RoleAssignmentRecord),
    /// The kid of a new signing key.
    SigningKey(String),
    /// The command was refused; nothing changed.
    Failed(Error),
}

impl Command {
    /// Whether applying the command may change principals, role definitions, role
    /// assignments or signing keys (the inputs of authentication and RBAC decisions).
    pub fn changes_identity(&self) -> bool {
        match self {
            Command::Identity(_) | Command::Restore { .. } | Command::DeleteVault { .. } => true,
            Command::Lifecycle(command) => command.changes_identity(),
            _ => false,
        }
    }

    /// The command's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::CreateVault { .. } => "create_vault",
            Command::UpdateVault { .. } => "update_vault",
            Command::DeleteVault { .. } => "delete_vault",
            Command::Lifecycle(command) => command.name(),
            Command::AddGeographyKey { .. } => "add_geography_key",
            Command::PutSecret { .. } => "put_secret",
            Command::UpdateSecret { .. } => "update_secret",
            Command::PutKey { .. } => "put_key",
            Command::UpdateKey { .. } => "update_key",
            Command::SetKeyRotationPolicy { .. } => "set_key_rotation_policy",
            Command::ChangeAccessPolicy { .. } => "change_access_policy",
            Command::Identity(command) => command.name(),
            Command::Restore { .. } => "restore",
        }
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for Command {
    // Hand-written so that sealed values never reach a log line, even as ciphertext.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::CreateVault { record } => write!(f, "CreateVault({})", record.name),
            Command::UpdateVault { vault, .. } => write!(f, "UpdateVault({vault})"),
            Command::DeleteVault { vault } => write!(f, "DeleteVault({vault})"),
            Command::Lifecycle(command) => write!(f, "Lifecycle({})", command.name()),
            Command::AddGeographyKey { record, .. } => {
                write!(f, "AddGeographyKey({}, {})", record.geography, record.id)
            }
            Command::PutSecret { vault, record, .. } => {
                write!(f, "PutSecret({vault}/{}/{})", record.name, record.version)
            }
            Command::PutKey { vault, record, .. } => {
                write!(f, "PutKey({vault}/{}/{})", record.name, record.version)
            }
            Command::UpdateKey {
                vault,
                name,
                version,
                ..
            } => write!(
                f,
                "UpdateKey({vault}/{name}/{})",
                version.as_deref().unwrap_or("latest")
            ),
            Command::SetKeyRotationPolicy { vault, name, .. } => {
                write!(f, "SetKeyRotationPolicy({vault}/{name})")
            }
            Command::Restore { records } => write!(f, "Restore({} records)", records.len()),
            Command::ChangeAccessPolicy {
                vault, object_id, ..
            } => write!(f, "ChangeAccessPolicy({vault}, {object_id})"),
            Command::Identity(command) => write!(f, "Identity({})", command.name()),
            Command::UpdateSecret {
                vault,
                name,
                version,
                ..
            } => {
                write!(
                    f,
                    "UpdateSecret({vault}/{name}/{})",
                    version.as_deref().unwrap_or("latest")
                )
            }
        }
    }
}
