//! The state machine: applies committed entries to RocksDB, builds and installs snapshots.
//!
//! A snapshot is a point-in-time copy of the state-machine column families, taken from a
//! RocksDB snapshot, in the format of [`crate::state_machine::encode_snapshot`]. It holds
//! records exactly as stored, so values in it are sealed. The latest one is kept as a file under
//! `snapshots/` (written to a temporary name, synced, then renamed) for lagging followers.

use std::io::{self, Cursor};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{Stream, TryStreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use rocksdb::{DB, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::command::Applied;
use crate::db::{self, CF_SM_META, STATE_CFS};
use crate::dedup::apply_once;
use crate::type_config::TypeConfig;

const KEY_LAST_APPLIED: &[u8] = b"last_applied";
const KEY_MEMBERSHIP: &[u8] = b"membership";
const SNAPSHOT_MAGIC: &[u8] = b"COFFER-SNAPSHOT-1\n";
const END_TAG: u8 = 0xFF;
/// Bytes written between two syncs of a snapshot file.
const SNAPSHOT_SYNC_CHUNK: usize = 1024 * 1024;

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

#[derive(Clone)]
pub struct StateMachine {
    db: Arc<DB>,
    snapshot_dir: PathBuf,
    /// Serializes snapshot file writes: a build and an install may run at the same time.
    files: Arc<std::sync::Mutex<()>>,
    /// Counts applied changes to identities and grants (see [`crate::Store::identity_epoch`]).
    identity_epoch: Arc<AtomicU64>,
}

/// What a snapshot file holds besides the data.
#[derive(Serialize, Deserialize)]
struct SnapshotHeader {
    meta: SnapshotMetaOf<TypeConfig>,
}

impl StateMachine {
    pub(crate) fn new(db: Arc<DB>, snapshot_dir: PathBuf) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&snapshot_dir).map_err(StoreError::storage)?;
        Ok(Self {
            db,
            snapshot_dir,
            files: Arc::default(),
            identity_epoch: Arc::default(),
        })
    }

    pub(crate) fn identity_epoch(&self) -> Arc<AtomicU64> {
        self.identity_epoch.clone()
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        let cf = db::cf(&self.db, CF_SM_META)?;
        self.db
            .get_cf(cf, key)
            .map_err(StoreError::storage)?
            .map(|b| db::decode(&b))
            .transpose()
    }

    fn snapshot_path(&self, meta: &SnapshotMetaOf<TypeConfig>) -> PathBuf {
        // Zero-padded index first, so that name order is log order.
        let index = meta.last_log_id.as_ref().map(|id| id.index()).unwrap_or(0);
        let leader = meta
            .last_log_id
            .as_ref()
            .map(|id| id.committed_leader_id().to_string())
            .unwrap_or_default();
        self.snapshot_dir.join(format!("{index:020}-{leader}.snap"))
    }

    /// Writes `data` (with its meta) as the current snapshot file, unless a newer one exists,
    /// and removes older ones.
    fn save_snapshot_file(
        &self,
        meta: &SnapshotMetaOf<TypeConfig>,
        data: &[u8],
    ) -> Result<(), io::Error> {
        // The guard protects no data of its own, so a poisoned lock is as good as a clean one.
        let _guard = self
            .files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let path = self.snapshot_path(meta);
        if self
            .latest_snapshot_file()?
            .is_some_and(|latest| latest > path)
        {
            return Ok(());
        }
        let header = serde_json::to_vec(&SnapshotHeader { meta: meta.clone() }).map_err(io_err)?;
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&(header.len() as u64).to_be_bytes())?;
            f.write_all(&header)?;
            // Synced a megabyte at a time: one fsync of a large file at the end holds up the
            // log's own fsyncs (the journal commits them together), which stalled writes for
            // most of a second whenever a snapshot of a few tens of megabytes was saved.
            for chunk in data.chunks(SNAPSHOT_SYNC_CHUNK) {
                f.write_all(chunk)?;
                f.sync_data()?;
            }
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        // The rename is durable only once the directory is synced.
        std::fs::File::open(&self.snapshot_dir)?.sync_all()?;
        for entry in std::fs::read_dir(&self.snapshot_dir)? {
            let other = entry?.path();
            if other.extension().is_some_and(|e| e == "snap") && other < path {
                std::fs::remove_file(&other)?;
            }
        }
        Ok(())
    }

    fn latest_snapshot_file(&self) -> Result<Option<PathBuf>, io::Error> {
        let mut latest: Option<PathBuf> = None;
        for entry in std::fs::read_dir(&self.snapshot_dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "snap")
                && latest.as_ref().is_none_or(|l| path > *l)
            {
                latest = Some(path);
            }
        }
        Ok(latest)
    }
}

/// Serializes every state-machine record visible in `db` at one RocksDB snapshot:
/// `magic, then per record: cf index (u8), key length (u32 BE), key, value length (u32 BE),
/// value; then END_TAG and the record count (u64 BE)`. The trailer makes a snapshot cut short
/// at a record boundary detectable.
pub(crate) fn encode_snapshot(
    db: &DB,
    snapshot: &rocksdb::Snapshot<'_>,
) -> Result<Vec<u8>, StoreError> {
    let mut out = SNAPSHOT_MAGIC.to_vec();
    let mut count: u64 = 0;
    for (index, name) in STATE_CFS.iter().enumerate() {
        let cf = db::cf(db, name)?;
        for item in snapshot.iterator_cf(cf, IteratorMode::Start) {
            let (key, value) = item.map_err(StoreError::storage)?;
            out.push(index as u8);
            for part in [&key, &value] {
                let len = u32::try_from(part.len())
                    .map_err(|_| StoreError::Corrupt("record too large".into()))?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(part);
            }
            count += 1;
        }
    }
    out.push(END_TAG);
    out.extend_from_slice(&count.to_be_bytes());
    Ok(out)
}

/// Parses [`encode_snapshot`]'s format into (cf index, key, value) records.
/// One snapshot record: column family index, key, value.
type SnapshotRecord<'a> = (usize, &'a [u8], &'a [u8]);

pub(crate) fn decode_snapshot(data: &[u8]) -> Result<Vec<SnapshotRecord<'_>>, StoreError> {
    let bad = || StoreError::Corrupt("snapshot is truncated or malformed".into());
    let mut rest = data.strip_prefix(SNAPSHOT_MAGIC).ok_or_else(bad)?;
    let mut records = Vec::new();
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], StoreError> {
        if rest.len() < n {
            return Err(StoreError::Corrupt(
                "snapshot is truncated or malformed".into(),
            ));
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Ok(head)
    }
    loop {
        let tag = take(&mut rest, 1)?[0];
        if tag == END_TAG {
            let count_bytes: [u8; 8] = take(&mut rest, 8)?.try_into().map_err(|_| bad())?;
            if !rest.is_empty() || u64::from_be_bytes(count_bytes) != records.len() as u64 {
                return Err(bad());
            }
            return Ok(records);
        }
        let cf_index = tag as usize;
        if cf_index >= STATE_CFS.len() {
            return Err(bad());
        }
        let mut parts = [&[][..], &[][..]];
        for part in &mut parts {
            let len_bytes: [u8; 4] = take(&mut rest, 4)?.try_into().map_err(|_| bad())?;
            *part = take(&mut rest, u32::from_be_bytes(len_bytes) as usize)?;
        }
        records.push((cf_index, parts[0], parts[1]));
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(
        &mut self,
    ) -> Result<SnapshotOf<TypeConfig, Cursor<Vec<u8>>>, io::Error> {
        let this = self.clone();
        tokio::task::spawn_blocking(
            move || -> Result<SnapshotOf<TypeConfig, Cursor<Vec<u8>>>, io::Error> {
                // Meta and data come from one RocksDB snapshot: openraft applies entries while
                // a builder runs, and a snapshot holding data newer than its recorded index
                // would have those entries applied twice on the node that installs it.
                let snapshot = this.db.snapshot();
                let meta_cf = db::cf(&this.db, CF_SM_META)?;
                let read_meta = |key: &[u8]| -> Result<Option<Vec<u8>>, StoreError> {
                    snapshot.get_cf(meta_cf, key).map_err(StoreError::storage)
                };
                let last_log_id: Option<LogIdOf<TypeConfig>> = read_meta(KEY_LAST_APPLIED)?
                    .map(|b| db::decode(&b))
                    .transpose()?;
                let last_membership: StoredMembershipOf<TypeConfig> = read_meta(KEY_MEMBERSHIP)?
                    .map(|b| db::decode(&b))
                    .transpose()?
                    .unwrap_or_default();
                let data = encode_snapshot(&this.db, &snapshot)?;
                let meta = SnapshotMetaOf::<TypeConfig> {
                    last_log_id,
                    last_membership,
                };
                this.save_snapshot_file(&meta, &data)?;
                Ok(SnapshotOf::<TypeConfig, Cursor<Vec<u8>>> {
                    meta,
                    snapshot: Cursor::new(data),
                })
            },
        )
        .await
        .map_err(io_err)?
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        let last_applied = self.get_meta(KEY_LAST_APPLIED)?;
        let membership = self.get_meta(KEY_MEMBERSHIP)?.unwrap_or_default();
        Ok((last_applied, membership))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let meta_cf = db::cf(&self.db, CF_SM_META)?;
        while let Some((entry, responder)) = entries.try_next().await? {
            // One batch per entry: a later entry in the same call must see an earlier one's
            // writes, and each entry's effects land atomically with its `last_applied` marker.
            let mut batch = WriteBatch::default();
            let log_id = entry.log_id();
            let answer = match &entry.payload {
                EntryPayload::Blank => Applied::Nothing,
                EntryPayload::Normal(proposal) => {
                    apply_once(&self.db, &mut batch, log_id.index(), proposal)?
                }
                EntryPayload::Membership(membership) => {
                    let stored =
                        StoredMembershipOf::<TypeConfig>::new(Some(log_id), membership.clone());
                    batch.put_cf(meta_cf, KEY_MEMBERSHIP, db::encode(&stored)?);
                    Applied::Nothing
                }
            };
            batch.put_cf(meta_cf, KEY_LAST_APPLIED, db::encode(&log_id)?);
            self.db.write(batch).map_err(io_err)?;
            if let EntryPayload::Normal(proposal) = &entry.payload
                && proposal.command.changes_identity()
            {
                // After the write: a reader that sees the new epoch also sees the new state.
                self.identity_epoch.fetch_add(1, Ordering::Release);
            }
            if let Some(responder) = responder {
                responder.send(answer);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let data = snapshot.into_inner();
        let this = self.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || -> Result<(), io::Error> {
            let records = decode_snapshot(&data)?;
            let db = &this.db;
            let mut batch = WriteBatch::default();
            for name in STATE_CFS {
                let cf = db::cf(db, name)?;
                // Keys are NUL-joined ASCII; 0xFF sorts after every one of them.
                batch.delete_range_cf(cf, [0u8].as_slice(), [0xFFu8; 1].as_slice());
                batch.delete_cf(cf, []);
            }
            for (cf_index, key, value) in records {
                batch.put_cf(db::cf(db, STATE_CFS[cf_index])?, key, value);
            }
            let meta_cf = db::cf(db, CF_SM_META)?;
            match &meta.last_log_id {
                Some(id) => batch.put_cf(meta_cf, KEY_LAST_APPLIED, db::encode(id)?),
                None => batch.delete_cf(meta_cf, KEY_LAST_APPLIED),
            }
            batch.put_cf(meta_cf, KEY_MEMBERSHIP, db::encode(&meta.last_membership)?);
            // The sweep position belongs to the replaced state; the next sweep starts over.
            batch.delete_cf(meta_cf, crate::dedup::KEY_FORGOTTEN_BELOW);
            db.write(batch).map_err(io_err)?;
            db.flush_wal(true).map_err(io_err)?;
            this.identity_epoch.fetch_add(1, Ordering::Release);
            this.save_snapshot_file(&meta, &data)
        })
        .await
        .map_err(io_err)?
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, Self::SnapshotData>>, io::Error> {
        let Some(path) = self.latest_snapshot_file()? else {
            return Ok(None);
        };
        let bytes = std::fs::read(&path)?;
        let bad = || io_err(format!("snapshot file {} is malformed", path.display()));
        let len_bytes: [u8; 8] = bytes
            .get(..8)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?;
        let header_len = usize::try_from(u64::from_be_bytes(len_bytes)).map_err(|_| bad())?;
        let header_end = 8usize.checked_add(header_len).ok_or_else(bad)?;
        let header: SnapshotHeader =
            serde_json::from_slice(bytes.get(8..header_end).ok_or_else(bad)?).map_err(io_err)?;
        let data = bytes[header_end..].to_vec();
        Ok(Some(SnapshotOf::<TypeConfig, Self::SnapshotData> {
            meta: header.meta,
            snapshot: Cursor::new(data),
        }))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn records() -> (coffer_types::VaultRecord, coffer_types::SecretRecord) {
        use coffer_types::records::RECORD_FORMAT;
        let vault = coffer_types::VaultRecord {
            format: RECORD_FORMAT,
            id: "11".repeat(16),
            name: "kv".into(),
            location: "eastus".into(),
            sku: coffer_types::Sku::Standard,
            retention_days: 90,
            purge_protection: false,
            tags: coffer_types::Tags::default(),
            created: 1,
            updated: 1,
            wrapped_key: vec![1, 2, 3],
            enable_rbac_authorization: true,
            access_policies: Vec::new(),
            network: Default::default(),
            throttle: Default::default(),
            tenant_id: None,
        };
        let secret = coffer_types::SecretRecord {
            format: RECORD_FORMAT,
            name: "a".into(),
            version: "22".repeat(16),
            sealed_value: vec![9; 40],
            content_type: None,
            enabled: true,
            not_before: None,
            expires: None,
            created: 2,
            updated: 2,
            tags: coffer_types::Tags::default(),
        };
        (vault, secret)
    }

    #[tokio::test]
    async fn a_built_snapshot_installs_into_a_fresh_state_machine() {
        use crate::command::{Command, Proposal};
        use openraft::alias::EntryOf;

        let dir_a = tempfile::tempdir().unwrap();
        let db_a = db::open(&dir_a.path().join("db")).unwrap();
        let mut a = StateMachine::new(db_a.clone(), dir_a.path().join("snapshots")).unwrap();
        let (vault, secret) = records();
        let entries: Vec<Result<EntryResponder<TypeConfig>, io::Error>> = vec![
            Ok((
                EntryOf::<TypeConfig>::new_normal(
                    openraft::testing::log_id::<TypeConfig>(1, 1, 1),
                    Proposal {
                        request_id: "r1".into(),
                        command: Command::CreateVault {
                            record: Box::new(vault.clone()),
                        },
                    },
                ),
                None,
            )),
            Ok((
                EntryOf::<TypeConfig>::new_normal(
                    openraft::testing::log_id::<TypeConfig>(1, 1, 2),
                    Proposal {
                        request_id: "r2".into(),
                        command: Command::PutSecret {
                            vault: "kv".into(),
                            vault_id: vault.id.clone(),
                            record: secret.clone(),
                        },
                    },
                ),
                None,
            )),
        ];
        a.apply(futures::stream::iter(entries)).await.unwrap();
        let built = a
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(built.meta.last_log_id.unwrap().index(), 2);

        let dir_b = tempfile::tempdir().unwrap();
        let db_b = db::open(&dir_b.path().join("db")).unwrap();
        let mut b = StateMachine::new(db_b.clone(), dir_b.path().join("snapshots")).unwrap();
        b.install_snapshot(&built.meta, built.snapshot)
            .await
            .unwrap();

        assert_eq!(
            b.applied_state().await.unwrap().0,
            a.applied_state().await.unwrap().0
        );
        assert_eq!(crate::read::vault(&db_b, "kv").unwrap(), Some(vault));
        assert_eq!(
            crate::read::secret(&db_b, "kv", "a", None).unwrap(),
            Some(secret)
        );
        let current = b
            .get_current_snapshot()
            .await
            .unwrap()
            .expect("installed snapshot is current");
        assert_eq!(current.meta, built.meta);
    }

    #[test]
    fn snapshot_format_round_trips_and_rejects_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(dir.path()).unwrap();
        db.put_cf(db::cf(&db, db::CF_VAULTS).unwrap(), b"kv", b"{}")
            .unwrap();
        db.put_cf(db::cf(&db, db::CF_SECRETS).unwrap(), b"kv\0a\0v", b"rec")
            .unwrap();
        let data = encode_snapshot(&db, &db.snapshot()).unwrap();
        let records = decode_snapshot(&data).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0], (0, &b"kv"[..], &b"{}"[..]));
        assert_eq!(records[1], (2, &b"kv\0a\0v"[..], &b"rec"[..]));
        for cut in 0..data.len() {
            assert!(decode_snapshot(&data[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_snapshot(b"garbage").is_err());
    }
}
