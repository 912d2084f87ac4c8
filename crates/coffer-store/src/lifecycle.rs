//! The object and vault lifecycle in the state machine: active → deleted (recoverable until
//! its scheduled purge date) → purged. Written once for every object kind: a kind only names
//! the column families that hold its heads and versions ([`families`]).
//!
//! Deleting an object leaves its versions where they are and moves its head (the latest
//! version) into `deleted`, keyed `vault \0 kind \0 name`: an object is active exactly when it
//! has a head, so every read that resolves through the head stops seeing it at once, and
//! recovering it moves the head back. Purging removes the versions for good.
//!
//! Deleting a vault moves its record into `deleted_vaults`, which reserves its name; its
//! objects stay in place, unreadable through a vault that does not exist, until the vault is
//! recovered or purged.
//!
//! `purge_queue` indexes everything deleted by its scheduled purge date
//! (`date (u64 BE) ‖ tag ‖ key`, tag `o` for an object keyed as in `deleted`, `v` for a vault),
//! so the purger finds what is due without scanning every deleted object. Every removal from
//! `deleted` or `deleted_vaults` removes the matching queue entry in the same batch.

use coffer_types::authz::Scope;
use coffer_types::records::RECORD_FORMAT;
use coffer_types::{
    DeletedObjectRecord, DeletedVaultRecord, Error, KeyRecord, ObjectKind, SecretRecord,
};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::apply::{load_head_in as load_head, load_vault};
use crate::command::Applied;
use crate::db::{
    self, CF_DELETED, CF_DELETED_VAULTS, CF_HEADS, CF_KEY_HEADS, CF_KEY_POLICIES, CF_KEYS,
    CF_PURGE_QUEUE, CF_SECRETS, CF_VAULTS,
};
use crate::read::Page;

type Outcome = Result<Result<Applied, Error>, StoreError>;

/// Where a kind keeps its objects: (heads family, versions family). Kinds without storage yet
/// are refused where they are asked for.
pub(crate) fn families(kind: ObjectKind) -> Result<(&'static str, &'static str), Error> {
    match kind {
        ObjectKind::Secret => Ok((CF_HEADS, CF_SECRETS)),
        ObjectKind::Key => Ok((CF_KEY_HEADS, CF_KEYS)),
        other => Err(Error::bad_parameter(format!(
            "Objects of kind {} are not supported yet.",
            other.as_str()
        ))),
    }
}

/// Lifecycle changes, proposed through Raft. Times are the proposer's clock readings, so
/// every replica applies the same decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LifecycleCommand {
    /// Moves an active object (all its versions) to the deleted state.
    DeleteObject {
        vault: String,
        kind: ObjectKind,
        name: String,
        deleted_date: i64,
    },
    /// Makes a deleted object active again, with the versions it had.
    RecoverObject {
        vault: String,
        kind: ObjectKind,
        name: String,
    },
    /// Removes a deleted object for good. `due_at: None` is a caller's purge, refused under
    /// purge protection; `Some(now)` is the purger's, applied only if the object's scheduled
    /// purge date is at or before `now` (so a purge proposed for an object recovered and
    /// deleted again in between does nothing).
    PurgeObject {
        vault: String,
        kind: ObjectKind,
        name: String,
        due_at: Option<i64>,
    },
    /// Moves a vault to the deleted state, keeping its objects.
    DeleteVault {
        vault: String,
        deleted_date: i64,
    },
    RecoverVault {
        vault: String,
    },
    /// Removes a deleted vault, its objects and its role assignments for good. `due_at` as for
    /// [`LifecycleCommand::PurgeObject`].
    PurgeVault {
        vault: String,
        due_at: Option<i64>,
    },
    /// Writes objects restored from a backup into an active vault, all or none: refused with
    /// `Conflict` if any name is in use, active or deleted.
    RestoreObjects {
        vault: String,
        vault_id: String,
        objects: Vec<RestoredObject>,
    },
}

impl LifecycleCommand {
    pub fn name(&self) -> &'static str {
        match self {
            LifecycleCommand::DeleteObject { .. } => "delete_object",
            LifecycleCommand::RecoverObject { .. } => "recover_object",
            LifecycleCommand::PurgeObject { .. } => "purge_object",
            LifecycleCommand::DeleteVault { .. } => "delete_vault",
            LifecycleCommand::RecoverVault { .. } => "recover_vault",
            LifecycleCommand::PurgeVault { .. } => "purge_vault",
            LifecycleCommand::RestoreObjects { .. } => "restore_objects",
        }
    }

    /// Whether applying it may remove role assignments.
    pub(crate) fn changes_identity(&self) -> bool {
        matches!(
            self,
            LifecycleCommand::PurgeVault { .. } | LifecycleCommand::PurgeObject { .. }
        )
    }
}

/// One object of a restore: every version (values sealed for the target vault) and which is
/// the latest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoredObject {
    pub kind: ObjectKind,
    pub latest_version: String,
    /// The versions of a secret.
    pub versions: Vec<SecretRecord>,
    /// The versions of a key (absent from entries written before keys existed).
    #[serde(default)]
    pub key_versions: Vec<KeyRecord>,
    /// Restore the object straight into the deleted state (a whole-vault backup carries
    /// deleted objects too).
    pub deleted: Option<DeletedObjectRecord>,
}

impl RestoredObject {
    /// (name, version) of every version, whatever the kind.
    fn version_names(&self) -> Vec<(&str, &str)> {
        match self.kind {
            ObjectKind::Key => self
                .key_versions
                .iter()
                .map(|v| (v.name.as_str(), v.version.as_str()))
                .collect(),
            _ => self
                .versions
                .iter()
                .map(|v| (v.name.as_str(), v.version.as_str()))
                .collect(),
        }
    }

    /// (version, stored bytes) of every version.
    fn encoded_versions(&self) -> Result<Vec<(&str, Vec<u8>)>, StoreError> {
        match self.kind {
            ObjectKind::Key => self
                .key_versions
                .iter()
                .map(|v| Ok((v.version.as_str(), db::encode(v)?)))
                .collect(),
            _ => self
                .versions
                .iter()
                .map(|v| Ok((v.version.as_str(), db::encode(v)?)))
                .collect(),
        }
    }
}

/// Something the purger found due: an object or a vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DuePurge {
    Object {
        vault: String,
        kind: ObjectKind,
        name: String,
    },
    Vault {
        vault: String,
    },
}

const TAG_OBJECT: u8 = b'o';
const TAG_VAULT: u8 = b'v';

fn object_key(vault: &str, kind: ObjectKind, name: &str) -> Vec<u8> {
    db::join_key(&[vault, kind.as_str(), name])
}

fn queue_key(date: i64, tag: u8, key: &[u8]) -> Vec<u8> {
    // Dates come from clocks after 1970; a negative one sorts first, which only purges it
    // sooner than asked, never later.
    let mut out = Vec::with_capacity(9 + key.len());
    out.extend_from_slice(&(date.max(0) as u64).to_be_bytes());
    out.push(tag);
    out.extend_from_slice(key);
    out
}

pub(crate) fn apply(db: &DB, batch: &mut WriteBatch, command: &LifecycleCommand) -> Outcome {
    match command {
        LifecycleCommand::DeleteObject {
            vault,
            kind,
            name,
            deleted_date,
        } => delete_object(db, batch, vault, *kind, name, *deleted_date),
        LifecycleCommand::RecoverObject { vault, kind, name } => {
            recover_object(db, batch, vault, *kind, name)
        }
        LifecycleCommand::PurgeObject {
            vault,
            kind,
            name,
            due_at,
        } => purge_object(db, batch, vault, *kind, name, *due_at),
        LifecycleCommand::DeleteVault {
            vault,
            deleted_date,
        } => delete_vault(db, batch, vault, *deleted_date),
        LifecycleCommand::RecoverVault { vault } => recover_vault(db, batch, vault),
        LifecycleCommand::PurgeVault { vault, due_at } => purge_vault(db, batch, vault, *due_at),
        LifecycleCommand::RestoreObjects {
            vault,
            vault_id,
            objects,
        } => restore_objects(db, batch, vault, vault_id, objects),
    }
}

pub(crate) fn load_deleted(
    db: &DB,
    vault: &str,
    kind: ObjectKind,
    name: &str,
) -> Result<Option<DeletedObjectRecord>, StoreError> {
    db.get_cf(
        db::cf(db, CF_DELETED)?,
        object_key(vault, kind, &name.to_ascii_lowercase()),
    )
    .map_err(StoreError::storage)?
    .map(|bytes| db::decode(&bytes))
    .transpose()
}

pub(crate) fn load_deleted_vault(
    db: &DB,
    vault: &str,
) -> Result<Option<DeletedVaultRecord>, StoreError> {
    db.get_cf(db::cf(db, CF_DELETED_VAULTS)?, vault.as_bytes())
        .map_err(StoreError::storage)?
        .map(|bytes| db::decode(&bytes))
        .transpose()
}

fn delete_object(
    db: &DB,
    batch: &mut WriteBatch,
    vault: &str,
    kind: ObjectKind,
    name: &str,
    deleted_date: i64,
) -> Outcome {
    let (heads, _) = match families(kind) {
        Ok(f) => f,
        Err(e) => return Ok(Err(e)),
    };
    let Some(record) = load_vault(db, vault)? else {
        return Ok(Err(Error::vault_not_found(vault)));
    };
    let key = name.to_ascii_lowercase();
    let Some(latest) = load_head(db, heads, vault, &key)? else {
        return Ok(Err(not_found(kind, name)));
    };
    let display = load_version_name(db, kind, vault, &key, &latest)?.unwrap_or(key.clone());
    let deleted = DeletedObjectRecord {
        format: RECORD_FORMAT,
        kind,
        name: display,
        latest_version: latest,
        deleted_date,
        scheduled_purge_date: record.scheduled_purge_date(deleted_date),
    };
    let object = object_key(vault, kind, &key);
    batch.delete_cf(db::cf(db, heads)?, db::join_key(&[vault, &key]));
    batch.put_cf(db::cf(db, CF_DELETED)?, &object, db::encode(&deleted)?);
    batch.put_cf(
        db::cf(db, CF_PURGE_QUEUE)?,
        queue_key(deleted.scheduled_purge_date, TAG_OBJECT, &object),
        [],
    );
    Ok(Ok(Applied::DeletedObject(deleted)))
}

fn not_found(kind: ObjectKind, name: &str) -> Error {
    match kind {
        ObjectKind::Secret => Error::secret_not_found(name),
        ObjectKind::Key => Error::key_not_found(name),
        _ => Error::new(
            coffer_types::ErrorCode::NotFound,
            format!(
                "A {} with (name/id) {} was not found in this key vault.",
                kind.as_str(),
                coffer_types::error::quote_user_text(name)
            ),
        ),
    }
}

/// The display name a version record carries (versions keep the name as first written).
fn load_version_name(
    db: &DB,
    kind: ObjectKind,
    vault: &str,
    key: &str,
    version: &str,
) -> Result<Option<String>, StoreError> {
    let (_, versions) = match families(kind) {
        Ok(f) => f,
        Err(_) => return Ok(None),
    };
    // Every kind's version record carries `name`; only that field is read.
    #[derive(Deserialize)]
    struct Named {
        name: String,
    }
    let record: Option<Named> = db
        .get_cf(db::cf(db, versions)?, db::join_key(&[vault, key, version]))
        .map_err(StoreError::storage)?
        .map(|bytes| db::decode(&bytes))
        .transpose()?;
    Ok(record.map(|r| r.name))
}

fn recover_object(
    db: &DB,
    batch: &mut WriteBatch,
    vault: &str,
    kind: ObjectKind,
    name: &str,
) -> Outcome {
    let (heads, _) = match families(kind) {
        Ok(f) => f,
        Err(e) => return Ok(Err(e)),
    };
    if load_vault(db, vault)?.is_none() {
        return Ok(Err(Error::vault_not_found(vault)));
    }
    let key = name.to_ascii_lowercase();
    let Some(deleted) = load_deleted(db, vault, kind, &key)? else {
        return Ok(Err(Error::deleted_object_not_found(kind, name)));
    };
    let object = object_key(vault, kind, &key);
    batch.put_cf(
        db::cf(db, heads)?,
        db::join_key(&[vault, &key]),
        db::encode(&deleted.latest_version)?,
    );
    forget_deleted(db, batch, &object, &deleted)?;
    Ok(Ok(Applied::DeletedObject(deleted)))
}

fn forget_deleted(
    db: &DB,
    batch: &mut WriteBatch,
    object: &[u8],
    deleted: &DeletedObjectRecord,
) -> Result<(), StoreError> {
    batch.delete_cf(db::cf(db, CF_DELETED)?, object);
    batch.delete_cf(
        db::cf(db, CF_PURGE_QUEUE)?,
        queue_key(deleted.scheduled_purge_date, TAG_OBJECT, object),
    );
    Ok(())
}

fn purge_object(
    db: &DB,
    batch: &mut WriteBatch,
    vault: &str,
    kind: ObjectKind,
    name: &str,
    due_at: Option<i64>,
) -> Outcome {
    let (_, versions) = match families(kind) {
        Ok(f) => f,
        Err(e) => return Ok(Err(e)),
    };
    let key = name.to_ascii_lowercase();
    let Some(deleted) = load_deleted(db, vault, kind, &key)? else {
        return Ok(Err(Error::deleted_object_not_found(kind, name)));
    };
    match due_at {
        None => {
            // A caller purges only in a vault that exists (a deleted vault's objects go with
            // it); the purger also purges objects of deleted vaults when they fall due.
            let Some(record) = load_vault(db, vault)? else {
                return Ok(Err(Error::vault_not_found(vault)));
            };
            if record.purge_protection {
                return Ok(Err(Error::purge_protected()));
            }
        }
        Some(now) if deleted.scheduled_purge_date > now => {
            return Ok(Err(Error::bad_parameter(
                "The deleted object is not due to be purged yet.",
            )));
        }
        Some(_) => {}
    }
    // Checked before anything is written, so a refusal leaves the batch untouched.
    let scope = match Scope::object(vault, kind, &key) {
        Ok(scope) => scope,
        Err(e) => return Ok(Err(e)),
    };
    let object = object_key(vault, kind, &key);
    let prefix = db::prefix(&[vault, &key]);
    let end = db::prefix_end(&prefix);
    batch.delete_range_cf(db::cf(db, versions)?, &prefix, &end);
    if kind == ObjectKind::Key {
        batch.delete_cf(db::cf(db, CF_KEY_POLICIES)?, db::join_key(&[vault, &key]));
    }
    forget_deleted(db, batch, &object, &deleted)?;
    // Grants on the object go with it: a new object of the same name starts without them.
    crate::identity::delete_assignments_within(db, batch, &scope)?;
    Ok(Ok(Applied::Deleted))
}

fn delete_vault(db: &DB, batch: &mut WriteBatch, vault: &str, deleted_date: i64) -> Outcome {
    let Some(record) = load_vault(db, vault)? else {
        return Ok(Err(Error::vault_not_found(vault)));
    };
    let deleted = DeletedVaultRecord {
        format: RECORD_FORMAT,
        scheduled_purge_date: record.scheduled_purge_date(deleted_date),
        vault: record,
        deleted_date,
    };
    batch.delete_cf(db::cf(db, CF_VAULTS)?, vault.as_bytes());
    batch.put_cf(
        db::cf(db, CF_DELETED_VAULTS)?,
        vault.as_bytes(),
        db::encode(&deleted)?,
    );
    batch.put_cf(
        db::cf(db, CF_PURGE_QUEUE)?,
        queue_key(deleted.scheduled_purge_date, TAG_VAULT, vault.as_bytes()),
        [],
    );
    Ok(Ok(Applied::DeletedVault(Box::new(deleted))))
}

fn recover_vault(db: &DB, batch: &mut WriteBatch, vault: &str) -> Outcome {
    let Some(deleted) = load_deleted_vault(db, vault)? else {
        return Ok(Err(Error::deleted_vault_not_found(vault)));
    };
    if load_vault(db, vault)?.is_some() {
        return Ok(Err(Error::vault_exists(vault)));
    }
    batch.put_cf(
        db::cf(db, CF_VAULTS)?,
        vault.as_bytes(),
        db::encode(&deleted.vault)?,
    );
    forget_deleted_vault(db, batch, vault, &deleted)?;
    Ok(Ok(Applied::Vault(Box::new(deleted.vault))))
}

fn forget_deleted_vault(
    db: &DB,
    batch: &mut WriteBatch,
    vault: &str,
    deleted: &DeletedVaultRecord,
) -> Result<(), StoreError> {
    batch.delete_cf(db::cf(db, CF_DELETED_VAULTS)?, vault.as_bytes());
    batch.delete_cf(
        db::cf(db, CF_PURGE_QUEUE)?,
        queue_key(deleted.scheduled_purge_date, TAG_VAULT, vault.as_bytes()),
    );
    Ok(())
}

fn purge_vault(db: &DB, batch: &mut WriteBatch, vault: &str, due_at: Option<i64>) -> Outcome {
    let Some(deleted) = load_deleted_vault(db, vault)? else {
        return Ok(Err(Error::deleted_vault_not_found(vault)));
    };
    match due_at {
        None if deleted.vault.purge_protection => return Ok(Err(Error::purge_protected())),
        Some(now) if deleted.scheduled_purge_date > now => {
            return Ok(Err(Error::bad_parameter(
                "The deleted vault is not due to be purged yet.",
            )));
        }
        _ => {}
    }
    forget_deleted_vault(db, batch, vault, &deleted)?;
    remove_vault_contents(db, batch, vault)
}

/// Removes every object of `vault` (active and deleted, with their purge-queue entries) and the
/// role assignments within it. Also applies log entries of the `DeleteVault` command of
/// earlier versions, which removed a vault at once.
pub(crate) fn remove_vault_contents(db: &DB, batch: &mut WriteBatch, vault: &str) -> Outcome {
    let scope = Scope::vault(vault).map_err(|e| StoreError::Corrupt(e.message))?;
    // The vault's deleted objects leave the purge queue with it.
    let prefix = db::prefix(&[vault]);
    let deleted_cf = db::cf(db, CF_DELETED)?;
    for item in db.iterator_cf(deleted_cf, IteratorMode::From(&prefix, Direction::Forward)) {
        let (key, value) = item.map_err(StoreError::storage)?;
        if !key.starts_with(&prefix) {
            break;
        }
        let object: DeletedObjectRecord = db::decode(&value)?;
        batch.delete_cf(
            db::cf(db, CF_PURGE_QUEUE)?,
            queue_key(object.scheduled_purge_date, TAG_OBJECT, &key),
        );
    }
    let end = db::prefix_end(&prefix);
    for cf_name in [
        CF_HEADS,
        CF_SECRETS,
        CF_KEY_HEADS,
        CF_KEYS,
        CF_KEY_POLICIES,
        CF_DELETED,
    ] {
        batch.delete_range_cf(db::cf(db, cf_name)?, &prefix, &end);
    }
    crate::identity::delete_assignments_within(db, batch, &scope)?;
    Ok(Ok(Applied::Deleted))
}

fn restore_objects(
    db: &DB,
    batch: &mut WriteBatch,
    vault: &str,
    vault_id: &str,
    objects: &[RestoredObject],
) -> Outcome {
    if load_vault(db, vault)?.is_none_or(|v| v.id != vault_id) {
        return Ok(Err(Error::vault_not_found(vault)));
    }
    // Checked first, all of them, so a refused restore writes nothing.
    let mut seen = std::collections::HashSet::new();
    for object in objects {
        if let Err(e) = check_restorable(db, vault, object, &mut seen)? {
            return Ok(Err(e));
        }
    }
    let mut last = None;
    for object in objects {
        let (heads, versions_cf) = match families(object.kind) {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        let names = object.version_names();
        let Some((latest_name, _)) = names
            .iter()
            .find(|(_, version)| *version == object.latest_version)
        else {
            // check_restorable refused such an object before anything was written.
            return Err(StoreError::Corrupt(
                "a checked restore lacks its latest version".into(),
            ));
        };
        let latest_name = (*latest_name).to_owned();
        let key = latest_name.to_ascii_lowercase();
        for (version, bytes) in object.encoded_versions()? {
            batch.put_cf(
                db::cf(db, versions_cf)?,
                db::join_key(&[vault, &key, version]),
                bytes,
            );
        }
        match &object.deleted {
            None => batch.put_cf(
                db::cf(db, heads)?,
                db::join_key(&[vault, &key]),
                db::encode(&object.latest_version)?,
            ),
            Some(deleted) => {
                let entry = object_key(vault, object.kind, &key);
                batch.put_cf(db::cf(db, CF_DELETED)?, &entry, db::encode(deleted)?);
                batch.put_cf(
                    db::cf(db, CF_PURGE_QUEUE)?,
                    queue_key(deleted.scheduled_purge_date, TAG_OBJECT, &entry),
                    [],
                );
            }
        }
        last = Some((latest_name, object.latest_version.clone()));
    }
    let Some((name, latest_version)) = last else {
        return Ok(Err(Error::bad_parameter("The backup holds no objects.")));
    };
    Ok(Ok(Applied::Restored {
        name,
        latest_version,
    }))
}

/// Refuses an object whose versions disagree on its name, whose name is taken (active or
/// deleted), or that appears twice in one restore.
fn check_restorable(
    db: &DB,
    vault: &str,
    object: &RestoredObject,
    seen: &mut std::collections::HashSet<(ObjectKind, String)>,
) -> Result<Result<(), Error>, StoreError> {
    let (heads, _) = match families(object.kind) {
        Ok(f) => f,
        Err(e) => return Ok(Err(e)),
    };
    let names = object.version_names();
    let Some(&(first_name, _)) = names.first() else {
        return Ok(Err(Error::bad_parameter(
            "A restored object holds no versions.",
        )));
    };
    if names
        .iter()
        .any(|(name, _)| !name.eq_ignore_ascii_case(first_name))
    {
        return Ok(Err(Error::bad_parameter(
            "The versions of a restored object must share one name.",
        )));
    }
    if !names
        .iter()
        .any(|(_, version)| *version == object.latest_version)
    {
        return Ok(Err(Error::bad_parameter(
            "A restored object lacks its latest version.",
        )));
    }
    let key = first_name.to_ascii_lowercase();
    if !seen.insert((object.kind, key.clone())) {
        return Ok(Err(Error::bad_parameter(
            "The backup holds the same object twice.",
        )));
    }
    if load_head(db, heads, vault, &key)?.is_some() {
        return Ok(Err(Error::new(
            coffer_types::ErrorCode::Conflict,
            format!(
                "{} {} already exists in this vault: restore into another vault, or delete and \
                 purge the existing one first.",
                object.kind.display(),
                coffer_types::error::quote_user_text(first_name)
            ),
        )));
    }
    if load_deleted(db, vault, object.kind, &key)?.is_some() {
        return Ok(Err(Error::object_deleted_but_recoverable(
            object.kind,
            first_name,
        )));
    }
    Ok(Ok(()))
}

// Reads.

pub(crate) fn deleted_objects(
    db: &DB,
    vault: &str,
    kind: ObjectKind,
    after: Option<&str>,
    max: usize,
) -> Result<Page<DeletedObjectRecord>, StoreError> {
    let prefix = db::prefix(&[vault, kind.as_str()]);
    crate::read::scan(db, CF_DELETED, &prefix, after, max, |_, value| {
        Ok(Some(db::decode(value)?))
    })
}

pub(crate) fn deleted_vaults(
    db: &DB,
    after: Option<&str>,
    max: usize,
) -> Result<Page<DeletedVaultRecord>, StoreError> {
    crate::read::scan(db, CF_DELETED_VAULTS, b"", after, max, |_, value| {
        Ok(Some(db::decode(value)?))
    })
}

/// Up to `limit` deleted objects and vaults whose scheduled purge date is at or before `now`,
/// earliest first.
pub(crate) fn due_for_purge(db: &DB, now: i64, limit: usize) -> Result<Vec<DuePurge>, StoreError> {
    let mut due = Vec::new();
    let cf = db::cf(db, CF_PURGE_QUEUE)?;
    for item in db.iterator_cf(cf, IteratorMode::Start) {
        let (key, _) = item.map_err(StoreError::storage)?;
        if due.len() == limit || key.len() < 9 {
            break;
        }
        let mut date = [0u8; 8];
        date.copy_from_slice(&key[..8]);
        if u64::from_be_bytes(date) > now.max(0) as u64 {
            break;
        }
        let rest = &key[9..];
        let text = std::str::from_utf8(rest).map_err(StoreError::corrupt)?;
        match key[8] {
            TAG_VAULT => due.push(DuePurge::Vault {
                vault: text.to_owned(),
            }),
            TAG_OBJECT => {
                let mut parts = text.split('\0');
                let (Some(vault), Some(kind), Some(name)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(StoreError::Corrupt("malformed purge queue key".into()));
                };
                let kind = match kind {
                    "secret" => ObjectKind::Secret,
                    "key" => ObjectKind::Key,
                    "certificate" => ObjectKind::Certificate,
                    _ => return Err(StoreError::Corrupt("unknown kind in purge queue".into())),
                };
                due.push(DuePurge::Object {
                    vault: vault.to_owned(),
                    kind,
                    name: name.to_owned(),
                });
            }
            _ => return Err(StoreError::Corrupt("unknown purge queue tag".into())),
        }
    }
    Ok(due)
}

/// One object of a vault export: every version, which is the latest, and its deletion if it
/// is deleted. A secret's versions are in `versions`, a key's in `key_versions`.
#[derive(Debug, Clone)]
pub struct ExportedObject {
    pub kind: ObjectKind,
    pub latest_version: String,
    pub deleted: Option<DeletedObjectRecord>,
    pub versions: Vec<SecretRecord>,
    pub key_versions: Vec<KeyRecord>,
}

impl ExportedObject {
    fn new(kind: ObjectKind, latest_version: String) -> Self {
        Self {
            kind,
            latest_version,
            deleted: None,
            versions: Vec::new(),
            key_versions: Vec::new(),
        }
    }

    fn push(&mut self, value: &[u8]) -> Result<(), StoreError> {
        match self.kind {
            ObjectKind::Key => self.key_versions.push(db::decode(value)?),
            _ => self.versions.push(db::decode(value)?),
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.versions.len() + self.key_versions.len()
    }
}

/// The kinds that have storage, in the order a vault export visits them.
const STORED_KINDS: [ObjectKind; 2] = [ObjectKind::Secret, ObjectKind::Key];

/// What [`export_vault`] hands out, in order: the vault record once, then each object.
#[derive(Debug, Clone)]
pub enum VaultExportItem {
    Vault(Box<coffer_types::VaultRecord>),
    Object(ExportedObject),
}

/// Reads the vault and every object in it (active and deleted) from one RocksDB snapshot, so
/// the copy is consistent as of one applied index, and hands them to `visit` one at a time:
/// only one object's versions are in memory at once. Blocking; run it off the async runtime.
pub(crate) fn export_vault<E: From<StoreError>>(
    db: &DB,
    vault: &str,
    mut visit: impl FnMut(VaultExportItem) -> Result<(), E>,
) -> Result<(), E> {
    let snapshot = db.snapshot();
    let get = |cf_name: &str, key: &[u8]| -> Result<Option<Vec<u8>>, StoreError> {
        snapshot
            .get_cf(db::cf(db, cf_name)?, key)
            .map_err(StoreError::storage)
    };
    let Some(record) = get(CF_VAULTS, vault.as_bytes())? else {
        return Err(StoreError::Refused(format!("vault {vault} not found")).into());
    };
    visit(VaultExportItem::Vault(Box::new(db::decode(&record)?)))?;
    let prefix = db::prefix(&[vault]);
    for kind in STORED_KINDS {
        let (heads, versions_cf) = families(kind).map_err(|e| StoreError::Refused(e.message))?;
        let flush = |name: String,
                     mut object: ExportedObject,
                     visit: &mut dyn FnMut(VaultExportItem) -> Result<(), E>|
         -> Result<(), E> {
            let head = get(heads, &db::join_key(&[vault, &name]))?;
            let deleted = get(CF_DELETED, &object_key(vault, kind, &name))?;
            match (head, deleted) {
                (Some(head), _) => object.latest_version = db::decode::<String>(&head)?,
                (None, Some(deleted)) => {
                    let deleted: DeletedObjectRecord = db::decode(&deleted)?;
                    object.latest_version = deleted.latest_version.clone();
                    object.deleted = Some(deleted);
                }
                // Neither active nor deleted: nothing a reader could reach, so nothing to copy.
                (None, None) => return Ok(()),
            }
            visit(VaultExportItem::Object(object))
        };
        let mut current: Option<(String, ExportedObject)> = None;
        let iter = snapshot.iterator_cf(
            db::cf(db, versions_cf)?,
            IteratorMode::From(&prefix, Direction::Forward),
        );
        for item in iter {
            let (key, value) = item.map_err(StoreError::storage)?;
            let Some(rest) = key.strip_prefix(prefix.as_slice()) else {
                break;
            };
            let name_len = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
            let name = std::str::from_utf8(&rest[..name_len]).map_err(StoreError::corrupt)?;
            match &mut current {
                Some((current_name, object)) if current_name == name => object.push(&value)?,
                _ => {
                    if let Some((done, object)) = current.take() {
                        flush(done, object, &mut visit)?;
                    }
                    let mut object = ExportedObject::new(kind, String::new());
                    object.push(&value)?;
                    current = Some((name.to_owned(), object));
                }
            }
        }
        if let Some((done, object)) = current.take() {
            flush(done, object, &mut visit)?;
        }
    }
    Ok(())
}

/// One active object with every version, read from one RocksDB snapshot (so a concurrent write
/// or delete cannot tear it); `None` if it is not active. Stops with `Ok(Err(count))` once it
/// has seen more than `max_versions` versions, without reading the rest.
pub(crate) fn export_object(
    db: &DB,
    vault: &str,
    kind: ObjectKind,
    name: &str,
    max_versions: usize,
) -> Result<Option<Result<ExportedObject, usize>>, StoreError> {
    let (heads, versions_cf) = families(kind).map_err(|e| StoreError::Refused(e.message))?;
    let snapshot = db.snapshot();
    let Some(head) = snapshot
        .get_cf(db::cf(db, heads)?, db::join_key(&[vault, name]))
        .map_err(StoreError::storage)?
    else {
        return Ok(None);
    };
    let mut object = ExportedObject::new(kind, db::decode(&head)?);
    let prefix = db::prefix(&[vault, name]);
    for item in snapshot.iterator_cf(
        db::cf(db, versions_cf)?,
        IteratorMode::From(&prefix, Direction::Forward),
    ) {
        let (key, value) = item.map_err(StoreError::storage)?;
        if !key.starts_with(&prefix) {
            break;
        }
        if object.len() == max_versions {
            return Ok(Some(Err(max_versions + 1)));
        }
        object.push(&value)?;
    }
    Ok(Some(Ok(object)))
}
