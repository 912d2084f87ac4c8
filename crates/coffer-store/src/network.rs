//! The Raft transport of a single-node group. A one-voter group never sends an RPC: it elects
//! itself and commits alone. This network therefore reports every peer unreachable; the
//! cluster transport (node-to-node gRPC over mutual TLS) replaces it when nodes join.

use std::future::Future;

use openraft::OptionalSend;
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::network::RaftNetworkFactory;
use openraft::network::v2::RaftNetworkV2;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};

use crate::type_config::{NodeId, NodeInfo, TypeConfig};

#[derive(Debug, thiserror::Error)]
#[error(
    "node {0} is not reachable: this node runs a single-node group without a cluster transport"
)]
struct NoTransport(NodeId);

pub(crate) struct SingleNodeNetwork;

pub(crate) struct NoPeer(NodeId);

impl RaftNetworkFactory<TypeConfig> for SingleNodeNetwork {
    type Network = NoPeer;

    async fn new_client(&mut self, target: NodeId, _node: &NodeInfo) -> Self::Network {
        NoPeer(target)
    }
}

impl NoPeer {
    fn unreachable(&self) -> RPCError<TypeConfig> {
        RPCError::Unreachable(Unreachable::new(&NoTransport(self.0)))
    }
}

impl RaftNetworkV2<TypeConfig> for NoPeer {
    type SnapshotData = std::io::Cursor<Vec<u8>>;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(self.unreachable())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(self.unreachable())
    }

    async fn full_snapshot(
        &mut self,
        _vote: VoteOf<TypeConfig>,
        _snapshot: SnapshotOf<TypeConfig, Self::SnapshotData>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        Err(StreamingError::Unreachable(Unreachable::new(&NoTransport(
            self.0,
        ))))
    }
}
