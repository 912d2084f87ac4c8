//! The RocksDB layout: column families and key encodings.
//!
//! One database holds the Raft log, Raft's metadata and the state machine, so they share one
//! write-ahead log: a synced log append also makes every earlier state-machine write durable,
//! and a crash leaves a prefix of the writes, never a state machine ahead of its own
//! `last_applied` marker.
//!
//! State-machine keys are built from case-folded names joined by NUL (names never contain NUL):
//! - `vaults`:  `vault` → VaultRecord
//! - `heads`:   `vault \0 name` → latest version of a secret
//! - `secrets`: `vault \0 name \0 version` → SecretRecord
//! - `requests`, `request_order`: request ids already applied (see `dedup`)
//! - `identity`: tenants, principals, roles, role assignments, signing keys (see `identity`)
//! - `deleted`, `deleted_vaults`, `purge_queue`: deleted objects and vaults (see `lifecycle`)
//! - `geography_keys`: the geography backup keys this cluster holds (see `geography`)
//! - `key_heads`, `keys`: as `heads` and `secrets`, for keys (KeyRecord, material sealed)
//! - `key_policies`: `vault \0 name` → the key's rotation policy (see `keys`)

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DB, Options};

use crate::StoreError;

pub(crate) const CF_RAFT_META: &str = "raft_meta";
pub(crate) const CF_RAFT_LOG: &str = "raft_log";
pub(crate) const CF_SM_META: &str = "sm_meta";
pub(crate) const CF_VAULTS: &str = "vaults";
pub(crate) const CF_HEADS: &str = "heads";
pub(crate) const CF_SECRETS: &str = "secrets";
pub(crate) const CF_REQUESTS: &str = "requests";
pub(crate) const CF_REQUEST_ORDER: &str = "request_order";
pub(crate) const CF_IDENTITY: &str = "identity";
pub(crate) const CF_DELETED: &str = "deleted";
pub(crate) const CF_DELETED_VAULTS: &str = "deleted_vaults";
pub(crate) const CF_PURGE_QUEUE: &str = "purge_queue";
pub(crate) const CF_GEOGRAPHY_KEYS: &str = "geography_keys";
pub(crate) const CF_KEY_HEADS: &str = "key_heads";
pub(crate) const CF_KEYS: &str = "keys";
pub(crate) const CF_KEY_POLICIES: &str = "key_policies";

const ALL_CFS: [&str; 16] = [
    CF_RAFT_META,
    CF_RAFT_LOG,
    CF_SM_META,
    CF_VAULTS,
    CF_HEADS,
    CF_SECRETS,
    CF_REQUESTS,
    CF_REQUEST_ORDER,
    CF_IDENTITY,
    CF_DELETED,
    CF_DELETED_VAULTS,
    CF_PURGE_QUEUE,
    CF_GEOGRAPHY_KEYS,
    CF_KEY_HEADS,
    CF_KEYS,
    CF_KEY_POLICIES,
];

/// Column families that make up the state machine (and so a snapshot). A snapshot names a
/// family by its position here, so new families are appended.
pub(crate) const STATE_CFS: [&str; 13] = [
    CF_VAULTS,
    CF_HEADS,
    CF_SECRETS,
    CF_REQUESTS,
    CF_REQUEST_ORDER,
    CF_IDENTITY,
    CF_DELETED,
    CF_DELETED_VAULTS,
    CF_PURGE_QUEUE,
    CF_GEOGRAPHY_KEYS,
    CF_KEY_HEADS,
    CF_KEYS,
    CF_KEY_POLICIES,
];

pub(crate) fn open(path: &Path) -> Result<Arc<DB>, StoreError> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let cfs = ALL_CFS
        .into_iter()
        .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
    let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(StoreError::storage)?;
    Ok(Arc::new(db))
}

/// A column family handle. Every family is created by [`open`], so a missing one means the
/// database was opened some other way: a bug, reported as a storage error rather than a panic.
pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a ColumnFamily, StoreError> {
    db.cf_handle(name)
        .ok_or_else(|| StoreError::Storage(format!("column family {name} missing")))
}

/// Flushes every column family's memtable to an SST file.
pub(crate) fn flush_all(db: &DB) -> Result<(), StoreError> {
    for name in ALL_CFS {
        db.flush_cf(cf(db, name)?).map_err(StoreError::storage)?;
    }
    Ok(())
}

pub(crate) fn join_key(parts: &[&str]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push(0);
        }
        key.extend_from_slice(part.as_bytes());
    }
    key
}

/// The prefix of every key below `parts` (the parts followed by a separator).
pub(crate) fn prefix(parts: &[&str]) -> Vec<u8> {
    let mut key = join_key(parts);
    key.push(0);
    key
}

/// The smallest key greater than every key starting with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    vec![u8::MAX; prefix.len() + 1]
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(StoreError::corrupt)
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(StoreError::corrupt)
}

/// Log indexes are stored big-endian so that key order is index order.
pub(crate) fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

pub(crate) fn key_index(key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StoreError::Corrupt("log key is not 8 bytes".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_cover_exactly_their_children() {
        let p = prefix(&["kv"]);
        let end = prefix_end(&p);
        let child = join_key(&["kv", "a"]);
        let other = join_key(&["kv2", "a"]);
        assert!(child.as_slice() >= p.as_slice() && child < end);
        assert!(!(other.as_slice() >= p.as_slice() && other < end));
        assert_eq!(key_index(&index_key(42)).unwrap(), 42);
        assert!(index_key(9) < index_key(10));
    }
}
