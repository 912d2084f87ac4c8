//! [`Store`]: the handle the service layer uses: propose commands, read linearizably, read
//! records, report status.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use coffer_types::{SecretRecord, VaultRecord};
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::{ReadPolicy, ServerState, SnapshotPolicy};
use rocksdb::DB;

use crate::command::{Applied, Command};
use crate::log_store::LogStore;
use crate::network::SingleNodeNetwork;
use crate::read::{self, Page};
use crate::state_machine::StateMachine;
use crate::type_config::{NodeInfo, Raft};
use crate::{StoreError, db};

/// How to open a node's store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub node_id: u64,
    /// Holds `db/` (RocksDB) and `snapshots/`.
    pub data_dir: PathBuf,
    /// Address peers will reach this node at.
    pub advertise_addr: String,
    pub region: String,
    /// Entries between automatic snapshots.
    pub snapshot_every: u64,
}

/// What a probe or operator sees of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStatus {
    pub node_id: u64,
    pub is_leader: bool,
    pub leader: Option<u64>,
    pub term: u64,
    pub last_applied: Option<u64>,
}

/// An open store: a Raft node over RocksDB. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    raft: Raft,
    db: Arc<DB>,
    node_id: u64,
}

impl Store {
    /// Opens (or creates) the store and, on first start, initializes a one-voter group with
    /// this node as its only member. Returns once this node leads the group, so the first
    /// request after start-up does not race the election.
    pub async fn open(config: StoreConfig) -> Result<Self, StoreError> {
        let db = db::open(&config.data_dir.join("db"))?;
        let log_store = LogStore::new(db.clone());
        let state_machine = StateMachine::new(db.clone(), config.data_dir.join("snapshots"))?;

        let raft_config = openraft::Config {
            cluster_name: "coffer".into(),
            heartbeat_interval: 100,
            election_timeout_min: 300,
            election_timeout_max: 600,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: 1_000,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StoreError::Fatal(e.to_string()))?;

        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            SingleNodeNetwork,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| StoreError::Fatal(e.to_string()))?;

        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| StoreError::Fatal(e.to_string()))?;
        if !initialized {
            let member = NodeInfo {
                addr: config.advertise_addr.clone(),
                region: config.region.clone(),
            };
            raft.initialize(BTreeMap::from([(config.node_id, member)]))
                .await
                .map_err(|e| StoreError::Fatal(e.to_string()))?;
        }
        raft.wait(Some(Duration::from_secs(30)))
            .state(ServerState::Leader, "single-node store elects itself")
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self {
            raft,
            db,
            node_id: config.node_id,
        })
    }

    /// Proposes `command` and returns the state machine's answer once it is committed and
    /// applied.
    pub async fn write(&self, command: Command) -> Result<Applied, StoreError> {
        let name = command.name();
        let response = self.raft.client_write(command).await.map_err(|e| {
            tracing::warn!(command = name, error = %e, "proposal failed");
            StoreError::Unavailable(e.to_string())
        })?;
        Ok(response.data)
    }

    /// Waits until this node has applied everything committed before the call (read index),
    /// so reads after it are linearizable.
    pub async fn read_barrier(&self) -> Result<(), StoreError> {
        self.raft
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    pub fn vault(&self, vault: &str) -> Result<Option<VaultRecord>, StoreError> {
        read::vault(&self.db, vault)
    }

    pub fn vaults(&self, after: Option<&str>, max: usize) -> Result<Page<VaultRecord>, StoreError> {
        read::vaults(&self.db, after, max)
    }

    /// A secret version; `version: None` is the latest.
    pub fn secret(
        &self,
        vault: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<SecretRecord>, StoreError> {
        read::secret(&self.db, vault, name, version)
    }

    /// The latest version of each secret in `vault`, by name.
    pub fn secrets(
        &self,
        vault: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<Page<SecretRecord>, StoreError> {
        read::secrets(&self.db, vault, after, max)
    }

    pub fn secret_versions(
        &self,
        vault: &str,
        name: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<Page<SecretRecord>, StoreError> {
        read::secret_versions(&self.db, vault, name, after, max)
    }

    pub fn status(&self) -> StoreStatus {
        let metrics = self.raft.metrics().borrow_watched().clone();
        StoreStatus {
            node_id: self.node_id,
            is_leader: metrics.state == ServerState::Leader,
            leader: metrics.current_leader,
            term: metrics.current_term,
            last_applied: metrics.last_applied.as_ref().map(|id| id.index),
        }
    }

    /// Builds a snapshot now (and lets openraft purge the log it covers).
    pub async fn snapshot_now(&self) -> Result<(), StoreError> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| StoreError::Fatal(e.to_string()))
    }

    /// Stops Raft, then flushes memtables to SST files so the next start need not replay the
    /// write-ahead log. The database closes when the last handle drops.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown reported an error");
        }
        if let Err(e) = db::flush_all(&self.db) {
            tracing::warn!(error = %e, "flushing the store at shutdown failed");
        }
    }
}
