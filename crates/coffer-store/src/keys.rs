//! Keys in the state machine: versions in `keys` (`vault \0 name \0 version` → KeyRecord, the
//! private material sealed), the latest version in `key_heads`, and rotation policies in
//! `key_policies` (`vault \0 name` → KeyRotationPolicyRecord). Deletion, recovery, purge and
//! restore go through the shared lifecycle, which knows these families from
//! [`crate::lifecycle::families`].

use coffer_types::keys::KeyOperation;
use coffer_types::{Error, KeyRecord, KeyRotationPolicyRecord, ObjectKind, Tags};
use rocksdb::{DB, WriteBatch};
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::apply::{load_head_in, load_vault};
use crate::command::Applied;
use crate::db::{self, CF_KEY_HEADS, CF_KEY_POLICIES, CF_KEYS};
use crate::read::{Page, scan};

type Outcome = Result<Result<Applied, Error>, StoreError>;

/// Changes to a key version's attributes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPatch {
    pub enabled: Option<bool>,
    pub not_before: Option<i64>,
    pub expires: Option<i64>,
    pub key_ops: Option<Vec<KeyOperation>>,
    pub tags: Option<Tags>,
}

pub(crate) fn load_key(
    db: &DB,
    vault: &str,
    name: &str,
    version: &str,
) -> Result<Option<KeyRecord>, StoreError> {
    db.get_cf(db::cf(db, CF_KEYS)?, db::join_key(&[vault, name, version]))
        .map_err(StoreError::storage)?
        .map(|bytes| db::decode(&bytes))
        .transpose()
}

pub(crate) fn load_key_head(
    db: &DB,
    vault: &str,
    name: &str,
) -> Result<Option<String>, StoreError> {
    load_head_in(db, CF_KEY_HEADS, vault, name)
}

/// Adds a version and makes it the latest. With `expected_head`, applies only while the
/// latest version is still that one: a rotation proposed twice (by a retry, or by two leaders
/// in turn) adds one version, and the second answers `Conflict`.
pub(crate) fn put_key(
    db: &DB,
    batch: &mut WriteBatch,
    vault: &str,
    vault_id: &str,
    record: &KeyRecord,
    expected_head: Option<&str>,
) -> Outcome {
    // As for secrets: material sealed for another incarnation of the vault would not unseal.
    if load_vault(db, vault)?.is_none_or(|v| v.id != vault_id) {
        return Ok(Err(Error::vault_not_found(vault)));
    }
    let name = record.name.to_ascii_lowercase();
    if crate::lifecycle::load_deleted(db, vault, ObjectKind::Key, &name)?.is_some() {
        return Ok(Err(Error::object_deleted_but_recoverable(
            ObjectKind::Key,
            &record.name,
        )));
    }
    let head = load_key_head(db, vault, &name)?;
    if let Some(expected) = expected_head
        && head.as_deref() != Some(expected)
    {
        return Ok(Err(Error::new(
            coffer_types::ErrorCode::Conflict,
            format!(
                "Key {} has a newer version than the one this rotation replaces.",
                coffer_types::error::quote_user_text(&record.name)
            ),
        )));
    }
    if load_key(db, vault, &name, &record.version)?.is_some() {
        return Ok(Err(Error::new(
            coffer_types::ErrorCode::Conflict,
            "This key version already exists.",
        )));
    }
    batch.put_cf(
        db::cf(db, CF_KEYS)?,
        db::join_key(&[vault, &name, &record.version]),
        db::encode(record)?,
    );
    batch.put_cf(
        db::cf(db, CF_KEY_HEADS)?,
        db::join_key(&[vault, &name]),
        db::encode(&record.version)?,
    );
    Ok(Ok(Applied::Key(Box::new(record.clone()))))
}

pub(crate) fn update_key(
    db: &DB,
    batch: &mut WriteBatch,
    vault: &str,
    name: &str,
    version: Option<&str>,
    patch: &KeyPatch,
    updated: i64,
) -> Outcome {
    if load_vault(db, vault)?.is_none() {
        return Ok(Err(Error::vault_not_found(vault)));
    }
    let key = name.to_ascii_lowercase();
    let Some(latest) = load_key_head(db, vault, &key)? else {
        return Ok(Err(Error::key_not_found(name)));
    };
    let version = version.map(str::to_owned).unwrap_or(latest);
    let Some(mut record) = load_key(db, vault, &key, &version)? else {
        return Ok(Err(Error::key_version_not_found(name, &version)));
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
    if let Some(ops) = &patch.key_ops {
        record.key_ops = ops.clone();
    }
    if let Some(tags) = &patch.tags {
        record.tags = tags.clone();
    }
    record.updated = updated;
    batch.put_cf(
        db::cf(db, CF_KEYS)?,
        db::join_key(&[vault, &key, &version]),
        db::encode(&record)?,
    );
    Ok(Ok(Applied::Key(Box::new(record))))
}

/// Sets the rotation policy of an active key, keeping the first `created` time.
pub(crate) fn set_rotation_policy(
    db: &DB,
    batch: &mut WriteBatch,
    vault: &str,
    name: &str,
    policy: &KeyRotationPolicyRecord,
) -> Outcome {
    if load_vault(db, vault)?.is_none() {
        return Ok(Err(Error::vault_not_found(vault)));
    }
    let key = name.to_ascii_lowercase();
    if load_key_head(db, vault, &key)?.is_none() {
        return Ok(Err(Error::key_not_found(name)));
    }
    let mut policy = policy.clone();
    if let Some(existing) = load_policy(db, vault, &key)? {
        policy.created = existing.created;
    }
    batch.put_cf(
        db::cf(db, CF_KEY_POLICIES)?,
        db::join_key(&[vault, &key]),
        db::encode(&policy)?,
    );
    Ok(Ok(Applied::KeyRotationPolicy(policy)))
}

pub(crate) fn load_policy(
    db: &DB,
    vault: &str,
    name: &str,
) -> Result<Option<KeyRotationPolicyRecord>, StoreError> {
    db.get_cf(db::cf(db, CF_KEY_POLICIES)?, db::join_key(&[vault, name]))
        .map_err(StoreError::storage)?
        .map(|bytes| db::decode(&bytes))
        .transpose()
}

/// A key version; `version: None` is the latest. Only an active key is read.
pub(crate) fn key(
    db: &DB,
    vault: &str,
    name: &str,
    version: Option<&str>,
) -> Result<Option<KeyRecord>, StoreError> {
    let Some(latest) = load_key_head(db, vault, name)? else {
        return Ok(None);
    };
    load_key(db, vault, name, version.unwrap_or(&latest))
}

pub(crate) fn keys(
    db: &DB,
    vault: &str,
    after: Option<&str>,
    max: usize,
) -> Result<Page<KeyRecord>, StoreError> {
    let prefix = db::prefix(&[vault]);
    scan(db, CF_KEY_HEADS, &prefix, after, max, |name, value| {
        let version: String = db::decode(value)?;
        load_key(db, vault, name, &version)
    })
}

pub(crate) fn key_versions(
    db: &DB,
    vault: &str,
    name: &str,
    after: Option<&str>,
    max: usize,
) -> Result<Page<KeyRecord>, StoreError> {
    if load_key_head(db, vault, name)?.is_none() {
        return Ok(Page {
            items: Vec::new(),
            next: None,
        });
    }
    let prefix = db::prefix(&[vault, name]);
    scan(db, CF_KEYS, &prefix, after, max, |_, value| {
        Ok(Some(db::decode(value)?))
    })
}

/// A key's rotation policy with its vault and (case-folded) name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyEntry {
    pub vault: String,
    pub name: String,
    pub policy: KeyRotationPolicyRecord,
}

/// Up to `max` rotation policies of every vault, in key order after `after` (the opaque
/// position this returned as `next`; `next` is `None` after the last).
pub(crate) fn rotation_policies(
    db: &DB,
    after: Option<&[u8]>,
    max: usize,
) -> Result<(Vec<PolicyEntry>, Option<Vec<u8>>), StoreError> {
    let cf = db::cf(db, CF_KEY_POLICIES)?;
    let mut start = after.map(<[u8]>::to_vec).unwrap_or_default();
    if after.is_some() {
        // The smallest key after `after` itself.
        start.push(0);
    }
    let mut out = Vec::new();
    let mut last = None;
    let iter = db.iterator_cf(
        cf,
        rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward),
    );
    for item in iter {
        let (key, value) = item.map_err(StoreError::storage)?;
        if out.len() == max {
            return Ok((out, last));
        }
        let text = std::str::from_utf8(&key).map_err(StoreError::corrupt)?;
        let Some((vault, name)) = text.split_once('\0') else {
            return Err(StoreError::Corrupt("malformed key policy key".into()));
        };
        out.push(PolicyEntry {
            vault: vault.to_owned(),
            name: name.to_owned(),
            policy: db::decode(&value)?,
        });
        last = Some(key.to_vec());
    }
    Ok((out, None))
}
