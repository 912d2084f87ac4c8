//! Operator snapshots: a consistent copy of the whole state for disaster recovery, and its
//! restore into a new cluster.
//!
//! The copy uses the Raft snapshot format (values stay sealed with their vaults' data keys,
//! which stay wrapped by the root key), so a restore needs the same root key. A restore is
//! proposed through Raft in batches, so every member applies it and it survives any node.

use coffer_types::VaultRecord;

use crate::command::{Applied, Command, RestoredRecord};
use crate::db::{
    self, CF_DELETED, CF_DELETED_VAULTS, CF_GEOGRAPHY_KEYS, CF_HEADS, CF_IDENTITY, CF_KEY_HEADS,
    CF_KEY_POLICIES, CF_KEYS, CF_PURGE_QUEUE, CF_SECRETS, CF_VAULTS, STATE_CFS,
};
use crate::state_machine::{decode_snapshot, encode_snapshot};
use crate::{Store, StoreError};

/// Records per restore proposal: large enough to restore quickly, small enough that one entry
/// stays a few megabytes.
const RESTORE_BATCH: usize = 500;

/// The families an operator restore writes, by the index a [`RestoredRecord`] names them
/// with. Request ids are left out: they belong to the cluster that made the copy.
pub(crate) const RESTORED_FAMILIES: [&str; 11] = [
    CF_VAULTS,
    CF_HEADS,
    CF_SECRETS,
    CF_IDENTITY,
    CF_DELETED,
    CF_DELETED_VAULTS,
    CF_PURGE_QUEUE,
    CF_GEOGRAPHY_KEYS,
    CF_KEY_HEADS,
    CF_KEYS,
    CF_KEY_POLICIES,
];

/// A decoded operator snapshot.
pub struct Export {
    pub vaults: Vec<VaultRecord>,
    records: Vec<RestoredRecord>,
}

impl Export {
    /// Parses a saved snapshot, refusing a damaged or truncated one.
    pub fn decode(data: &[u8]) -> Result<Self, StoreError> {
        let mut vaults = Vec::new();
        let mut records = Vec::new();
        for (cf_index, key, value) in decode_snapshot(data)? {
            let name = STATE_CFS[cf_index];
            let Some(cf) = RESTORED_FAMILIES.iter().position(|f| *f == name) else {
                continue;
            };
            // At most 11 families: the index fits a byte.
            let cf = cf as u8;
            if cf == 0 {
                vaults.push(db::decode::<VaultRecord>(value)?);
            }
            records.push(RestoredRecord {
                cf,
                key: key.to_vec(),
                value: value.to_vec(),
            });
        }
        Ok(Self { vaults, records })
    }

    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// Whether the copy holds identity records (principals, roles, assignments, signing keys).
    pub fn holds_identity(&self) -> bool {
        self.records.iter().any(|r| r.cf == 3)
    }
}

impl Store {
    /// A consistent copy of the state as of a linearizable point.
    pub async fn export_snapshot(&self) -> Result<Vec<u8>, StoreError> {
        self.read_barrier().await?;
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || encode_snapshot(&db, &db.snapshot()))
            .await
            .map_err(StoreError::storage)?
    }

    /// Writes `export` into this cluster, which must hold no vaults. `request_id` prefixes the
    /// ids of the batches, so a retried restore does not apply a batch twice.
    pub async fn restore_export(&self, request_id: &str, export: Export) -> Result<(), StoreError> {
        self.read_barrier().await?;
        if !read::vaults(&self.db, None, 1)?.items.is_empty()
            || !crate::lifecycle::deleted_vaults(&self.db, None, 1)?
                .items
                .is_empty()
        {
            return Err(StoreError::Refused(
                "this cluster already holds vaults; restore a snapshot into a new cluster".into(),
            ));
        }
        for (i, batch) in export.records.chunks(RESTORE_BATCH).enumerate() {
            let command = Command::Restore {
                records: batch.to_vec(),
            };
            match self.write(format!("{request_id}-{i}"), command).await? {
                Applied::Nothing => {}
                Applied::Failed(e) => return Err(StoreError::Refused(e.message)),
                _ => return Err(StoreError::Corrupt("unexpected answer to a restore".into())),
            }
        }
        Ok(())
    }
}

use crate::read;
