//! [`Store`]: the handle the service layer uses: propose commands, read linearizably, read
//! records, report status.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_types::authz::RoleDefinition;
use coffer_types::identity::{
    PrincipalRecord, RoleAssignmentRecord, SigningKeyRecord, TenantRecord,
};
use coffer_types::{
    DeletedObjectRecord, DeletedVaultRecord, GeographyKeyRecord, KeyRecord,
    KeyRotationPolicyRecord, ObjectKind, SecretRecord, VaultRecord,
};
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::type_config::async_runtime::instant::Instant as _;
use openraft::{ServerState, SnapshotPolicy};
use rocksdb::DB;

use crate::cluster::{Forwarded, Reply};
use crate::command::{Applied, Command, Proposal};
use crate::lifecycle::{self, DuePurge, VaultExportItem};
use crate::log_store::LogStore;
use crate::network::ClusterNetwork;
use crate::read::{self, Page};
use crate::state_machine::StateMachine;
use crate::transport::Transport;
use crate::type_config::{NodeInfo, Raft};
use crate::{StoreError, db, geography, identity};

/// How to open a node's store.
#[derive(Clone)]
pub struct StoreConfig {
    pub node_id: u64,
    /// Holds `db/` (RocksDB) and `snapshots/`.
    pub data_dir: PathBuf,
    /// Address peers reach this node's cluster listener at.
    pub advertise_addr: String,
    pub region: String,
    /// Entries between automatic snapshots.
    pub snapshot_every: u64,
    pub timeouts: RaftTimeouts,
    pub bootstrap: Bootstrap,
    pub transport: Arc<dyn Transport>,
}

/// How a node finds its group the first time it starts. Ignored once the node's log holds a
/// membership: from then on the replicated membership is the truth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// A one-voter group of this node alone (`coffer server --dev`).
    Alone,
    /// The initial voters, the same list on every initial node: id → member.
    Members(BTreeMap<u64, Member>),
    /// Wait to be added by the leader (after `coffer operator raft join` or a join request).
    Join,
}

/// A member's addresses as the replicated membership records them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    /// The cluster (node-to-node) address.
    pub addr: String,
    pub region: String,
}

/// Raft timing, in milliseconds.
///
/// openraft bounds each replication RPC by the heartbeat interval, so the heartbeat must exceed
/// the round trip between the farthest two voters (plus the time to write a batch), or every
/// replication call to a remote region times out and the leader never commits. The election
/// timeout must be several heartbeats, so that one lost heartbeat does not start an election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftTimeouts {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Bound on sending one whole snapshot to a lagging node.
    pub snapshot_transfer_ms: u64,
}

impl RaftTimeouts {
    /// One data centre or a metro area (round trips under ~10 ms).
    pub const LAN: RaftTimeouts = RaftTimeouts {
        heartbeat_ms: 100,
        election_min_ms: 500,
        election_max_ms: 1_000,
        snapshot_transfer_ms: 60_000,
    };
    /// Regions of one geography (round trips up to ~150 ms).
    pub const REGIONS: RaftTimeouts = RaftTimeouts {
        heartbeat_ms: 400,
        election_min_ms: 2_000,
        election_max_ms: 4_000,
        snapshot_transfer_ms: 300_000,
    };
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
    pub(crate) raft: Raft,
    pub(crate) db: Arc<DB>,
    pub(crate) node_id: u64,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) self_member: Member,
    /// When this node last accepted entries or a heartbeat from a leader: the bound on how
    /// stale a local read can be.
    pub(crate) leader_contact: Arc<std::sync::Mutex<Option<Instant>>>,
    /// How long a client request may wait for a leader or a commit before it is refused as
    /// unavailable.
    pub(crate) request_deadline: Duration,
    pub(crate) heartbeat: Duration,
    pub(crate) identity_epoch: Arc<std::sync::atomic::AtomicU64>,
    /// Answers [`crate::RpcKind::Peer`] messages (the throttle's demand exchange).
    pub(crate) peer_handler: Arc<std::sync::RwLock<Option<PeerHandler>>>,
}

/// Answers a message another member sent with [`Store::call_peer`]: `(sender, body) → answer`.
/// The sender's id is the one its certificate was issued for.
pub type PeerHandler = Arc<dyn Fn(u64, &[u8]) -> Result<Vec<u8>, String> + Send + Sync>;

impl Store {
    /// Opens (or creates) the store and bootstraps the group as `config.bootstrap` says. With
    /// [`Bootstrap::Alone`] it returns once this node leads, so the first request after start-up
    /// does not race the election; a cluster node returns at once and finds its leader through
    /// Raft.
    pub async fn open(config: StoreConfig) -> Result<Self, StoreError> {
        let db = db::open(&config.data_dir.join("db"))?;
        let log_store = LogStore::new(db.clone());
        let state_machine = StateMachine::new(db.clone(), config.data_dir.join("snapshots"))?;
        let identity_epoch = state_machine.identity_epoch();

        let t = config.timeouts;
        let raft_config = openraft::Config {
            cluster_name: "coffer".into(),
            heartbeat_interval: t.heartbeat_ms,
            election_timeout_min: t.election_min_ms,
            election_timeout_max: t.election_max_ms,
            install_snapshot_timeout: t.snapshot_transfer_ms,
            // A node that was partitioned away, or removed but still running, would otherwise
            // raise the term with each election it starts and depose a healthy leader.
            enable_pre_vote: Some(true),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: 1_000,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StoreError::Fatal(e.to_string()))?;

        let network = ClusterNetwork {
            transport: config.transport.clone(),
        };
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| StoreError::Fatal(e.to_string()))?;

        let self_member = Member {
            addr: config.advertise_addr.clone(),
            region: config.region.clone(),
        };
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| StoreError::Fatal(e.to_string()))?;
        let members = match &config.bootstrap {
            Bootstrap::Alone => Some(BTreeMap::from([(config.node_id, self_member.clone())])),
            Bootstrap::Members(members) => Some(members.clone()),
            Bootstrap::Join => None,
        };
        if let (false, Some(members)) = (initialized, members) {
            let members: BTreeMap<u64, NodeInfo> = members
                .into_iter()
                .map(|(id, m)| {
                    (
                        id,
                        NodeInfo {
                            addr: m.addr,
                            region: m.region,
                        },
                    )
                })
                .collect();
            // Every initial node is given the same list; openraft accepts that, and whichever
            // node wins the first election leads.
            raft.initialize(members)
                .await
                .map_err(|e| StoreError::Fatal(e.to_string()))?;
        }
        if config.bootstrap == Bootstrap::Alone {
            raft.wait(Some(Duration::from_secs(30)))
                .state(ServerState::Leader, "single-node store elects itself")
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        }
        Ok(Self {
            raft,
            db,
            node_id: config.node_id,
            transport: config.transport,
            self_member,
            leader_contact: Arc::default(),
            request_deadline: Duration::from_millis(t.election_max_ms * 4)
                .max(Duration::from_secs(5)),
            heartbeat: Duration::from_millis(t.heartbeat_ms),
            identity_epoch,
            peer_handler: Arc::default(),
        })
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Reads Raft's latest metrics in place. They hold the membership and per-peer maps, so
    /// request paths read the fields they need rather than copy the whole set.
    pub(crate) fn with_metrics<T>(
        &self,
        read: impl FnOnce(&openraft::RaftMetrics<crate::type_config::TypeConfig>) -> T,
    ) -> T {
        let receiver = self.raft.metrics();
        let metrics = receiver.borrow_watched();
        read(&metrics)
    }

    /// This node's cluster address and region.
    pub fn self_member(&self) -> &Member {
        &self.self_member
    }

    /// Whether the membership this node knows of includes it.
    pub fn is_member(&self) -> bool {
        self.member(self.node_id).is_some()
    }

    /// Proposes `command` under `request_id` and returns the state machine's answer once it is
    /// committed and applied. Any node accepts a write: a follower forwards it to the leader.
    /// The request id makes a retry safe: a proposal whose id was already applied answers what
    /// the first one did and changes nothing.
    pub async fn write(&self, request_id: String, command: Command) -> Result<Applied, StoreError> {
        let name = command.name();
        let proposal = Proposal {
            request_id,
            command,
        };
        match self.on_leader(Forwarded::Write(proposal)).await? {
            Reply::Applied(applied) => Ok(applied),
            other => {
                tracing::warn!(
                    command = name,
                    reply = other.name(),
                    "unexpected reply to a write"
                );
                Err(StoreError::Unavailable(format!(
                    "unexpected reply {}",
                    other.name()
                )))
            }
        }
    }

    /// Waits until this node has applied everything committed before the call, so reads after
    /// it are linearizable. The leader confirms its leadership with a quorum (read index); a
    /// follower asks the leader for that index and waits to apply it. Fails as unavailable when
    /// no leader with a quorum answers, rather than serve possibly stale data.
    pub async fn read_barrier(&self) -> Result<(), StoreError> {
        let index = match self.on_leader(Forwarded::ReadIndex).await? {
            Reply::ReadIndex(index) => index,
            other => {
                return Err(StoreError::Unavailable(format!(
                    "unexpected reply {}",
                    other.name()
                )));
            }
        };
        self.raft
            .wait(Some(self.request_deadline))
            .applied_index_at_least(index, "apply up to the read index")
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Unavailable(format!("applying to the read index: {e}")))
    }

    /// Allows a local read whose data is at most `max_staleness` behind the leader: on the leader
    /// while a quorum acknowledged it within that time, on a follower or learner while it heard
    /// from the leader within that time.
    pub fn stale_read_allowed(&self, max_staleness: Duration) -> Result<(), StoreError> {
        let leader_acked = self.with_metrics(|m| {
            (m.state == ServerState::Leader).then(|| {
                m.last_quorum_acked
                    .as_ref()
                    .is_some_and(|at| (**at).elapsed() <= max_staleness)
            })
        });
        let fresh = if let Some(acked) = leader_acked {
            acked
        } else {
            self.leader_contact
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some_and(|at| at.elapsed() <= max_staleness)
        };
        if fresh {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "this node has not heard from a leader within {} ms",
                max_staleness.as_millis()
            )))
        }
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

    /// A key version; `version: None` is the latest. Only active keys are read.
    pub fn key(
        &self,
        vault: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        crate::keys::key(&self.db, vault, name, version)
    }

    /// The latest version of each key in `vault`, by name.
    pub fn keys(
        &self,
        vault: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<Page<KeyRecord>, StoreError> {
        crate::keys::keys(&self.db, vault, after, max)
    }

    pub fn key_versions(
        &self,
        vault: &str,
        name: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<Page<KeyRecord>, StoreError> {
        crate::keys::key_versions(&self.db, vault, name, after, max)
    }

    /// One key version, active or deleted (for deleted-key reads).
    pub fn key_version_any_state(
        &self,
        vault: &str,
        name: &str,
        version: &str,
    ) -> Result<Option<KeyRecord>, StoreError> {
        crate::keys::load_key(&self.db, vault, name, version)
    }

    /// The rotation policy of a key, by case-folded vault and name; `None` if it has none.
    pub fn key_rotation_policy(
        &self,
        vault: &str,
        name: &str,
    ) -> Result<Option<KeyRotationPolicyRecord>, StoreError> {
        crate::keys::load_policy(&self.db, vault, name)
    }

    /// Rotation policies of every vault, `max` at a time, resuming after `after`.
    pub fn rotation_policies(
        &self,
        after: Option<&[u8]>,
        max: usize,
    ) -> Result<(Vec<crate::PolicyEntry>, Option<Vec<u8>>), StoreError> {
        crate::keys::rotation_policies(&self.db, after, max)
    }

    /// A deleted object, by case-folded vault and name.
    pub fn deleted_object(
        &self,
        vault: &str,
        kind: ObjectKind,
        name: &str,
    ) -> Result<Option<DeletedObjectRecord>, StoreError> {
        lifecycle::load_deleted(&self.db, vault, kind, name)
    }

    pub fn deleted_objects(
        &self,
        vault: &str,
        kind: ObjectKind,
        after: Option<&str>,
        max: usize,
    ) -> Result<Page<DeletedObjectRecord>, StoreError> {
        lifecycle::deleted_objects(&self.db, vault, kind, after, max)
    }

    /// One version of an object, active or deleted (for deleted-object reads and backups).
    pub fn secret_version_any_state(
        &self,
        vault: &str,
        name: &str,
        version: &str,
    ) -> Result<Option<SecretRecord>, StoreError> {
        crate::apply::load_secret(&self.db, vault, name, version)
    }

    pub fn deleted_vault(&self, vault: &str) -> Result<Option<DeletedVaultRecord>, StoreError> {
        lifecycle::load_deleted_vault(&self.db, vault)
    }

    pub fn deleted_vaults(
        &self,
        after: Option<&str>,
        max: usize,
    ) -> Result<Page<DeletedVaultRecord>, StoreError> {
        lifecycle::deleted_vaults(&self.db, after, max)
    }

    /// Up to `limit` deleted objects and vaults due to be purged at `now`, earliest first.
    pub fn due_for_purge(&self, now: i64, limit: usize) -> Result<Vec<DuePurge>, StoreError> {
        lifecycle::due_for_purge(&self.db, now, limit)
    }

    /// Reads the vault and all its objects from one consistent snapshot, handing them to
    /// `visit` one at a time (see [`lifecycle::export_vault`]). Blocking.
    pub fn export_vault<E: From<StoreError>>(
        &self,
        vault: &str,
        visit: impl FnMut(VaultExportItem) -> Result<(), E>,
    ) -> Result<(), E> {
        lifecycle::export_vault(&self.db, vault, visit)
    }

    /// One active object with all its versions, from one consistent snapshot; `Ok(Err(n))`
    /// when it has more than `max_versions` versions. Blocking only briefly (one prefix scan).
    pub fn export_object(
        &self,
        vault: &str,
        kind: ObjectKind,
        name: &str,
        max_versions: usize,
    ) -> Result<Option<Result<lifecycle::ExportedObject, usize>>, StoreError> {
        lifecycle::export_object(&self.db, vault, kind, name, max_versions)
    }

    pub fn geography_key(&self, id: &str) -> Result<Option<GeographyKeyRecord>, StoreError> {
        geography::key(&self.db, id)
    }

    pub fn active_geography_key(
        &self,
        geography: &str,
    ) -> Result<Option<GeographyKeyRecord>, StoreError> {
        geography::active_key(&self.db, geography)
    }

    pub fn geography_keys(&self) -> Result<Vec<GeographyKeyRecord>, StoreError> {
        geography::keys(&self.db)
    }

    /// A number that changes whenever this node applies a change to identities or grants
    /// (principals, memberships, roles, role assignments, signing keys, vault deletions,
    /// restores, snapshot installs). Derived data read after observing an epoch may be reused
    /// while the epoch stays the same.
    pub fn identity_epoch(&self) -> u64 {
        self.identity_epoch
            .load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
        identity::tenant(&self.db, id)
    }

    pub fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        identity::tenants(&self.db)
    }

    pub fn principal(&self, object_id: &str) -> Result<Option<PrincipalRecord>, StoreError> {
        identity::principal(&self.db, object_id)
    }

    /// The service principal or managed identity with client id `app_id`.
    pub fn principal_by_app(&self, app_id: &str) -> Result<Option<PrincipalRecord>, StoreError> {
        identity::principal_by_app(&self.db, app_id)
    }

    pub fn principals(&self) -> Result<Vec<PrincipalRecord>, StoreError> {
        identity::principals(&self.db)
    }

    /// A custom role definition (built-in roles are not stored).
    pub fn role_definition(&self, id: &str) -> Result<Option<RoleDefinition>, StoreError> {
        identity::role_definition(&self.db, id)
    }

    pub fn role_definitions(&self) -> Result<Vec<RoleDefinition>, StoreError> {
        identity::role_definitions(&self.db)
    }

    pub fn role_assignments(&self) -> Result<Vec<RoleAssignmentRecord>, StoreError> {
        identity::assignments(&self.db)
    }

    /// The role assignments made directly to one principal.
    pub fn role_assignments_of(
        &self,
        principal_id: &str,
    ) -> Result<Vec<RoleAssignmentRecord>, StoreError> {
        identity::assignments_of(&self.db, principal_id)
    }

    pub fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        identity::signing_keys(&self.db)
    }

    pub fn status(&self) -> StoreStatus {
        self.with_metrics(|metrics| StoreStatus {
            node_id: self.node_id,
            is_leader: metrics.state == ServerState::Leader,
            leader: metrics.current_leader,
            term: metrics.current_term,
            last_applied: metrics.last_applied.as_ref().map(|id| id.index),
        })
    }

    /// Builds a snapshot now (openraft then purges the log it covers, keeping the last 1,000
    /// entries for followers that are only a little behind) and returns the index it covers.
    pub async fn snapshot_now(&self) -> Result<u64, StoreError> {
        let applied = self
            .raft
            .metrics()
            .borrow_watched()
            .last_applied
            .as_ref()
            .map(|id| id.index)
            .unwrap_or(0);
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| StoreError::Fatal(e.to_string()))?;
        let metrics = self
            .raft
            .wait(Some(self.request_deadline))
            .metrics(
                |m| m.snapshot.as_ref().is_some_and(|s| s.index >= applied),
                "snapshot built",
            )
            .await
            .map_err(|e| StoreError::Unavailable(format!("the snapshot was not built: {e}")))?;
        Ok(metrics.snapshot.map(|s| s.index).unwrap_or(0))
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
