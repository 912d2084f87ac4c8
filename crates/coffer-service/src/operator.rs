//! Operator operations: cluster membership and whole-cluster snapshots. They need
//! `Coffer/cluster/read` or `Coffer/cluster/write` at the cluster scope (the Coffer Cluster
//! Operator role, or Owner).

use coffer_store::{Export, Member, PeerStatus};
use coffer_types::Error;
use coffer_types::authz::{Scope, mgmt};

use crate::Service;
use crate::request::RequestContext;
use crate::vaults::is_region_name;

/// Where a node is, as an operator names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    pub id: u64,
    pub address: String,
    pub region: String,
}

/// A node to add to the cluster.
#[derive(Debug, Clone)]
pub struct JoinPeer {
    pub id: u64,
    pub address: String,
    pub region: String,
    pub learner: bool,
    pub force: bool,
}

fn validate_region(region: &str) -> Result<(), Error> {
    if is_region_name(region) {
        Ok(())
    } else {
        Err(Error::bad_parameter(
            "The region must be a region name such as eastus.",
        ))
    }
}

impl Service {
    pub fn node_identity(&self) -> NodeIdentity {
        let member = self.store.self_member();
        NodeIdentity {
            id: self.store.node_id(),
            address: member.addr.clone(),
            region: member.region.clone(),
        }
    }

    fn authorize_cluster(&self, ctx: &RequestContext, write: bool) -> Result<(), Error> {
        let action = if write {
            mgmt::CLUSTER_WRITE
        } else {
            mgmt::CLUSTER_READ
        };
        self.authorize(ctx, &Scope::cluster(), action)
    }

    pub async fn peers(&self, ctx: &RequestContext) -> Result<Vec<PeerStatus>, Error> {
        self.authorize_cluster(ctx, false)?;
        Ok(self.store.peers().await?)
    }

    /// Adds a node as a learner and, unless `learner`, promotes it to voter once it caught up.
    pub async fn join_peer(
        &self,
        ctx: &RequestContext,
        input: JoinPeer,
    ) -> Result<Vec<PeerStatus>, Error> {
        self.authorize_cluster(ctx, true)?;
        validate_region(&input.region)?;
        if input.id == 0 {
            return Err(Error::bad_parameter("The node id must be at least 1."));
        }
        if input.address.is_empty()
            || input.address.len() > 255
            || !input.address.contains(':')
            || input.address.contains('/')
        {
            return Err(Error::bad_parameter(
                "The node address must be the node's cluster address, host:port.",
            ));
        }
        self.store
            .join(
                input.id,
                Member {
                    addr: input.address,
                    region: input.region,
                },
                input.learner,
                input.force,
            )
            .await?;
        Ok(self.store.peers().await?)
    }

    pub async fn remove_peer(
        &self,
        ctx: &RequestContext,
        id: u64,
        force: bool,
    ) -> Result<Vec<PeerStatus>, Error> {
        self.authorize_cluster(ctx, true)?;
        self.store.remove_peer(id, force).await?;
        Ok(self.store.peers().await?)
    }

    pub async fn transfer_leader(
        &self,
        ctx: &RequestContext,
        to: u64,
    ) -> Result<Vec<PeerStatus>, Error> {
        self.authorize_cluster(ctx, true)?;
        self.store.transfer_leader(to).await?;
        Ok(self.store.peers().await?)
    }

    /// Builds a Raft snapshot on this node now; returns the log index it covers.
    pub async fn take_snapshot(&self, ctx: &RequestContext) -> Result<u64, Error> {
        self.authorize_cluster(ctx, true)?;
        Ok(self.store.snapshot_now().await?)
    }

    /// A consistent copy of the whole state (values and keys sealed). Reading it is a write
    /// right: the copy holds every vault.
    pub async fn save_snapshot(&self, ctx: &RequestContext) -> Result<Vec<u8>, Error> {
        self.authorize_cluster(ctx, true)?;
        Ok(self.store.export_snapshot().await?)
    }

    /// Loads a saved copy into this cluster, which must hold no vaults. Refused before anything
    /// is written when the copy is damaged or was sealed under another root key.
    pub async fn restore_snapshot(
        &self,
        ctx: &RequestContext,
        data: &[u8],
    ) -> Result<(usize, usize), Error> {
        self.authorize_cluster(ctx, true)?;
        let export = Export::decode(data).map_err(|_| {
            Error::bad_parameter("The snapshot is damaged or is not a Coffer snapshot.")
        })?;
        if export.holds_identity() && !ctx.caller().is_superuser() {
            // Identity records decide who may do what; restoring them is the cluster owner's
            // act (the bootstrap token), not an operator's.
            return Err(Error::new(
                coffer_types::ErrorCode::Forbidden,
                "The snapshot holds identities and role assignments; restore it with the \
                 bootstrap credential.",
            )
            .with_inner(coffer_types::InnerCode::ForbiddenByRbac));
        }
        for vault in &export.vaults {
            self.data_keys.data_key(vault).map_err(|_| {
                Error::bad_parameter(format!(
                    "The snapshot's vault {} was sealed under another root key; restore it \
                     into a cluster that uses the same root key.",
                    vault.name
                ))
            })?;
        }
        let counts = (export.vaults.len(), export.record_count());
        self.store.restore_export(ctx.request_id(), export).await?;
        Ok(counts)
    }
}
