//! The Raft log and Raft's own metadata (vote, last purged id) in RocksDB.
//!
//! Durability: the vote and appended entries are written with `sync = true` before openraft is
//! told they are durable. openraft treats a flushed append as persisted on this node and may
//! count it towards a commit quorum; reporting it early would let a crash lose an acknowledged
//! write. Truncation and purge need no sync: losing them in a crash only leaves entries that
//! openraft ignores or truncates again.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch, WriteOptions};

use crate::StoreError;
use crate::db::{self, CF_RAFT_LOG, CF_RAFT_META};
use crate::type_config::TypeConfig;

const KEY_VOTE: &[u8] = b"vote";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl From<StoreError> for io::Error {
    fn from(e: StoreError) -> Self {
        io::Error::other(e.to_string())
    }
}

/// The log store; cheap to clone (it shares the database and the flusher).
#[derive(Clone)]
pub(crate) struct LogStore {
    db: Arc<DB>,
    flusher: std::sync::mpsc::Sender<IOFlushed<TypeConfig>>,
}

impl LogStore {
    pub(crate) fn new(db: Arc<DB>) -> Self {
        // One thread syncs the write-ahead log and reports appends durable, in the order they
        // were made: openraft reads each report as "everything up to here is on disk". One sync
        // covers every append queued before it, so a burst of appends costs one fsync per wake.
        //
        // The thread holds the database weakly: the last strong handle, and with it the
        // closing of the database, stays with the store's owner. Closed from this detached
        // thread, RocksDB could still be shutting down when the process exits, which aborts
        // in its static destructors.
        let (flusher, queue) = std::sync::mpsc::channel::<IOFlushed<TypeConfig>>();
        let wal = Arc::downgrade(&db);
        std::thread::Builder::new()
            .name("coffer-wal-sync".into())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    let mut waiting = vec![first];
                    waiting.extend(queue.try_iter());
                    let result = match wal.upgrade() {
                        Some(db) => db.flush_wal(true).map_err(|e| e.to_string()),
                        None => Err("the database is closed".to_owned()),
                    };
                    for callback in waiting {
                        callback.io_completed(result.clone().map_err(io::Error::other));
                    }
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!(error = %e, "WAL sync thread did not start"));
        Self { db, flusher }
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        let cf = db::cf(&self.db, CF_RAFT_META)?;
        match self.db.get_cf(cf, key).map_err(StoreError::storage)? {
            Some(bytes) => Ok(Some(db::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    fn synced() -> WriteOptions {
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        opts
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<TypeConfig>>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let cf = db::cf(&self.db, CF_RAFT_LOG)?;
        let start_key = db::index_key(start);
        let mut entries = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&start_key, Direction::Forward))
        {
            let (key, value) = item.map_err(io_err)?;
            let index = db::key_index(&key)?;
            if !range.contains(&index) {
                break;
            }
            let entry: EntryOf<TypeConfig> = db::decode(&value)?;
            if entry.index() != index {
                return Err(io_err(format!(
                    "log entry at key {index} has index {}",
                    entry.index()
                )));
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TypeConfig>>, io::Error> {
        Ok(self.get_meta(KEY_VOTE)?)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let cf = db::cf(&self.db, CF_RAFT_LOG)?;
        let last = match self.db.iterator_cf(cf, IteratorMode::End).next() {
            Some(item) => {
                let (_, value) = item.map_err(io_err)?;
                let entry: EntryOf<TypeConfig> = db::decode(&value)?;
                Some(entry.log_id())
            }
            None => None,
        };
        let last_purged_log_id: Option<LogIdOf<TypeConfig>> = self.get_meta(KEY_LAST_PURGED)?;
        let last_log_id = last.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<TypeConfig>) -> Result<(), io::Error> {
        let db = self.db.clone();
        let bytes = db::encode(vote)?;
        // A vote must be on disk before it is acted on: a node that forgets its vote after a
        // crash can vote twice in one term and elect two leaders.
        tokio::task::spawn_blocking(move || -> Result<(), io::Error> {
            let cf = db::cf(&db, CF_RAFT_META)?;
            db.put_cf_opt(cf, KEY_VOTE, bytes, &Self::synced())
                .map_err(io_err)
        })
        .await
        .map_err(io_err)?
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf<TypeConfig>> + Send,
    {
        let cf = db::cf(&self.db, CF_RAFT_LOG)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(cf, db::index_key(entry.index()), db::encode(&entry)?);
        }
        // The entries must be readable when this returns, so the batch goes into RocksDB here;
        // the fsync of the write-ahead log runs on the sync thread, and only after it succeeds
        // are the entries reported durable.
        self.db.write(batch).map_err(io_err)?;
        self.flusher
            .send(callback)
            .map_err(|_| io_err("the WAL sync thread has stopped"))
    }

    async fn truncate_after(
        &mut self,
        last_log_id: Option<LogIdOf<TypeConfig>>,
    ) -> Result<(), io::Error> {
        let from = last_log_id.map(|id| id.index() + 1).unwrap_or(0);
        let cf = db::cf(&self.db, CF_RAFT_LOG)?;
        self.db
            .delete_range_cf(cf, db::index_key(from), db::index_key(u64::MAX))
            .map_err(io_err)?;
        // delete_range's end is exclusive; remove the last possible index as well.
        self.db
            .delete_cf(cf, db::index_key(u64::MAX))
            .map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogIdOf<TypeConfig>) -> Result<(), io::Error> {
        // The purge marker is written first: entries up to it are ignored by openraft, so a
        // crash between the two writes is harmless.
        let meta = db::cf(&self.db, CF_RAFT_META)?;
        self.db
            .put_cf(meta, KEY_LAST_PURGED, db::encode(&log_id)?)
            .map_err(io_err)?;
        let cf = db::cf(&self.db, CF_RAFT_LOG)?;
        self.db
            .delete_range_cf(cf, db::index_key(0), db::index_key(log_id.index() + 1))
            .map_err(io_err)
    }
}
