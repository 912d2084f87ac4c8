//! Applying one command to the state machine: validation that depends on current state
//! (existence, conflicts) and the writes that follow, gathered in one batch so an entry's
//! effects and the `last_applied` marker land atomically.

use coffer_types::authz::{AccessPolicyEntry, MAX_ACCESS_POLICIES};
use coffer_types::{Error, SecretRecord, VaultRecord};
use rocksdb::{DB, WriteBatch};

use crate::StoreError;
use crate::command::{Applied, Command, SecretPatch, VaultPatch};
use crate::db::{self, CF_HEADS, CF_SECRETS, CF_VAULTS};

/// Computes the writes for `command` into `batch` and the answer to return. A refused command
/// leaves `batch` untouched and answers [`Applied::Failed`].
pub(crate) fn apply_command(
    db: &DB,
    batch: &mut WriteBatch,
    command: &Command,
) -> Result<Applied, StoreError> {
    let outcome = match command {
        Command::CreateVault { record } => create_vault(db, batch, record),
        Command::UpdateVault {
            vault,
            patch,
            updated,
        } => update_vault(db, batch, vault, patch, *updated),
        Command::DeleteVault { vault } => delete_vault_at_once(db, batch, vault),
        Command::Lifecycle(command) => crate::lifecycle::apply(db, batch, command),
        Command::AddGeographyKey {
            record,
            activate,
            if_none,
        } => crate::geography::add_key(db, batch, record, *activate, *if_none),
        Command::PutSecret {
            vault,
            vault_id,
            record,
        } => put_secret(db, batch, vault, vault_id, record),
        Command::UpdateSecret {
            vault,
            name,
            version,
            patch,
            updated,
        } => update_secret(db, batch, vault, name, version.as_deref(), patch, *updated),
        Command::PutKey {
            vault,
            vault_id,
            record,
            expected_head,
        } => crate::keys::put_key(db, batch, vault, vault_id, record, expected_head.as_deref()),
        Command::UpdateKey {
            vault,
            name,
            version,
            patch,
            updated,
        } => crate::keys::update_key(db, batch, vault, name, version.as_deref(), patch, *updated),
        Command::SetKeyRotationPolicy {
            vault,
            name,
            policy,
        } => crate::keys::set_rotation_policy(db, batch, vault, name, policy),
        Command::ChangeAccessPolicy {
            vault,
            object_id,
            entry,
            updated,
        } => change_access_policy(db, batch, vault, object_id, entry.as_ref(), *updated),
        Command::Identity(command) => crate::identity::apply(db, batch, command),
        Command::Restore { records } => restore(db, batch, records),
    }?;
    Ok(outcome.unwrap_or_else(Applied::Failed))
}

type Outcome = Result<Result<Applied, Error>, StoreError>;

pub(crate) fn load_vault(db: &DB, vault: &str) -> Result<Option<VaultRecord>, StoreError> {
    let cf = db::cf(db, CF_VAULTS)?;
    db.get_cf(cf, vault.as_bytes())
        .map_err(StoreError::storage)?
        .map(|bytes| db::decode(&bytes))
        .transpose()
}

pub(crate) fn load_head(db: &DB, vault: &str, name: &str) -> Result<Option<String>, StoreError> {
    load_head_in(db, CF_HEADS, vault, name)
}

/// The latest version of an active object whose heads live in `cf_name`; `None` when the
/// object does not exist or is deleted.
pub(crate) fn load_head_in(
    db: &DB,
    cf_name: &str,
    vault: &str,
    name: &str,
) -> Result<Option<String>, StoreError> {
    let cf = db::cf(db, cf_name)?;
    db.get_cf(cf, db::join_key(&[vault, name]))
        .map_err(StoreError::storage)?
        .map(|bytes| db::decode(&bytes))
        .transpose()
}

pub(crate) fn load_secret(
    db: &DB,
    vault: &str,
    name: &str,
    version: &str,
) -> Result<Option<SecretRecord>, StoreError> {
    let cf = db::cf(db, CF_SECRETS)?;
    db.get_cf(cf, db::join_key(&[vault, name, version]))
        .map_err(StoreError::storage)?
        .map(|bytes| db::decode(&bytes))
        .transpose()
}

fn create_vault(db: &DB, batch: &mut WriteBatch, record: &VaultRecord) -> Outcome {
    let key = record.name.to_ascii_lowercase();
    if load_vault(db, &key)?.is_some() {
        return Ok(Err(Error::vault_exists(&record.name)));
    }
    if crate::lifecycle::load_deleted_vault(db, &key)?.is_some() {
        return Ok(Err(Error::new(
            coffer_types::ErrorCode::Conflict,
            format!(
                "A vault with name {} is in the deleted state and its name cannot be reused \
                 until it is recovered or purged.",
                coffer_types::error::quote_user_text(&record.name)
            ),
        )));
    }
    batch.put_cf(db::cf(db, CF_VAULTS)?, key.as_bytes(), db::encode(record)?);
    Ok(Ok(Applied::Vault(Box::new(record.clone()))))
}

fn update_vault(
    db: &DB,
    batch: &mut WriteBatch,
    vault: &str,
    patch: &VaultPatch,
    updated: i64,
) -> Outcome {
    let Some(mut record) = load_vault(db, vault)? else {
        return Ok(Err(Error::vault_not_found(vault)));
    };
    if let Some(sku) = patch.sku {
        record.sku = sku;
    }
    match patch.purge_protection {
        Some(false) if record.purge_protection => {
            return Ok(Err(Error::bad_parameter(
                "Purge protection cannot be disabled once it has been enabled.",
            )));
        }
        Some(on) => record.purge_protection = on,
        None => {}
    }
    if let Some(tags) = &patch.tags {
        record.tags = tags.clone();
    }
    if let Some(rbac) = patch.enable_rbac_authorization {
        // The other model's entries stay, inactive, so switching back restores them.
        record.enable_rbac_authorization = rbac;
    }
    if let Some(network) = &patch.network {
        match network.apply(&record.network) {
            Ok(next) => record.network = next,
            Err(e) => return Ok(Err(e)),
        }
    }
    if let Some(throttle) = &patch.throttle {
        throttle.apply(&mut record.throttle);
    }
    record.updated = updated;
    batch.put_cf(
        db::cf(db, CF_VAULTS)?,
        vault.as_bytes(),
        db::encode(&record)?,
    );
    Ok(Ok(Applied::Vault(Box::new(record))))
}

fn change_access_policy(
    db: &DB,
    batch: &mut WriteBatch,
    vault: &str,
    object_id: &str,
    entry: Option<&AccessPolicyEntry>,
    updated: i64,
) -> Outcome {
    let Some(mut record) = load_vault(db, vault)? else {
        return Ok(Err(Error::vault_not_found(vault)));
    };
    let position = record
        .access_policies
        .iter()
        .position(|p| p.object_id.eq_ignore_ascii_case(object_id));
    match (entry, position) {
        (Some(entry), Some(i)) => record.access_policies[i] = entry.clone(),
        (Some(entry), None) => {
            if record.access_policies.len() >= MAX_ACCESS_POLICIES {
                return Ok(Err(Error::bad_parameter(format!(
                    "A vault holds at most {MAX_ACCESS_POLICIES} access policies."
                ))));
            }
            record.access_policies.push(entry.clone());
        }
        (None, Some(i)) => {
            record.access_policies.remove(i);
        }
        (None, None) => {
            return Ok(Err(Error::new(
                coffer_types::ErrorCode::NotFound,
                format!(
                    "The vault has no access policy for the object id {}.",
                    coffer_types::error::quote_user_text(object_id)
                ),
            )));
        }
    }
    record.updated = updated;
    batch.put_cf(
        db::cf(db, CF_VAULTS)?,
        vault.as_bytes(),
        db::encode(&record)?,
    );
    Ok(Ok(Applied::Vault(Box::new(record))))
}

fn delete_vault_at_once(db: &DB, batch: &mut WriteBatch, vault: &str) -> Outcome {
    if load_vault(db, vault)?.is_none() {
        return Ok(Err(Error::vault_not_found(vault)));
    }
    batch.delete_cf(db::cf(db, CF_VAULTS)?, vault.as_bytes());
    crate::lifecycle::remove_vault_contents(db, batch, vault)
}

fn put_secret(
    db: &DB,
    batch: &mut WriteBatch,
    vault: &str,
    vault_id: &str,
    record: &SecretRecord,
) -> Outcome {
    // A vault deleted and re-created since the value was sealed has another data key: the
    // value would be unreadable there, so the write is refused as if the vault were gone.
    if load_vault(db, vault)?.is_none_or(|v| v.id != vault_id) {
        return Ok(Err(Error::vault_not_found(vault)));
    }
    let name = record.name.to_ascii_lowercase();
    if crate::lifecycle::load_deleted(db, vault, coffer_types::ObjectKind::Secret, &name)?.is_some()
    {
        return Ok(Err(Error::object_deleted_but_recoverable(
            coffer_types::ObjectKind::Secret,
            &record.name,
        )));
    }
    if load_secret(db, vault, &name, &record.version)?.is_some() {
        // Versions are 128 random bits; a repeat means a replayed proposal, not a new write.
        return Ok(Err(Error::new(
            coffer_types::ErrorCode::Conflict,
            "This secret version already exists.",
        )));
    }
    batch.put_cf(
        db::cf(db, CF_SECRETS)?,
        db::join_key(&[vault, &name, &record.version]),
        db::encode(record)?,
    );
    batch.put_cf(
        db::cf(db, CF_HEADS)?,
        db::join_key(&[vault, &name]),
        db::encode(&record.version)?,
    );
    Ok(Ok(Applied::Secret(record.clone())))
}

fn update_secret(
    db: &DB,
    batch: &mut WriteBatch,
    vault: &str,
    name: &str,
    version: Option<&str>,
    patch: &SecretPatch,
    updated: i64,
) -> Outcome {
    if load_vault(db, vault)?.is_none() {
        return Ok(Err(Error::vault_not_found(vault)));
    }
    // `name` is as the caller wrote it (errors echo it, as Azure's do); keys are case-folded.
    let key = name.to_ascii_lowercase();
    // A deleted secret has no head: none of its versions may change until it is recovered.
    let Some(latest) = load_head(db, vault, &key)? else {
        return Ok(Err(Error::secret_not_found(name)));
    };
    let version = version.map(str::to_owned).unwrap_or(latest);
    let Some(mut record) = load_secret(db, vault, &key, &version)? else {
        return Ok(Err(Error::secret_version_not_found(name, &version)));
    };
    if let Some(enabled) = patch.enabled {
        record.enabled = enabled;
    }
    if let Some(nbf) = patch.not_before {
        record.not_before = Some(nbf);
    }
    if let Some(exp) = patch.expires {
        record.expires = Some(exp);
    }
    if let Some(content_type) = &patch.content_type {
        record.content_type = Some(content_type.clone());
    }
    if let Some(tags) = &patch.tags {
        record.tags = tags.clone();
    }
    record.updated = updated;
    batch.put_cf(
        db::cf(db, CF_SECRETS)?,
        db::join_key(&[vault, &key, &version]),
        db::encode(&record)?,
    );
    Ok(Ok(Applied::Secret(record)))
}

/// Writes restored records. Only the object families are accepted (not the request-id ones,
/// which belong to the cluster that made the snapshot).
fn restore(db: &DB, batch: &mut WriteBatch, records: &[crate::command::RestoredRecord]) -> Outcome {
    let families = crate::export::RESTORED_FAMILIES;
    for record in records {
        let Some(name) = families.get(usize::from(record.cf)) else {
            return Ok(Err(Error::bad_parameter(
                "The snapshot holds a record of an unknown kind.",
            )));
        };
        batch.put_cf(db::cf(db, name)?, &record.key, &record.value);
    }
    Ok(Ok(Applied::Nothing))
}
