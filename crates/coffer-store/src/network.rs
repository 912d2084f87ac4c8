//! openraft's network traits over a [`Transport`]: each Raft message is encoded here (JSON, the
//! encoding of the log itself) and handed to the transport as bytes; the answer comes back the
//! same way. [`crate::Store::serve_rpc`] is the other end.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::OptionalSend;
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::errors::{
    Fatal, NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::network::RaftNetworkFactory;
use openraft::network::v2::RaftNetworkV2;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::transport::{RpcKind, Transport, TransportError};
use crate::type_config::{NodeId, NodeInfo, TypeConfig};

/// Hands out one [`Peer`] per replication target.
#[derive(Clone)]
pub(crate) struct ClusterNetwork {
    pub(crate) transport: Arc<dyn Transport>,
}

impl RaftNetworkFactory<TypeConfig> for ClusterNetwork {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> Self::Network {
        Peer {
            transport: self.transport.clone(),
            target,
            addr: node.addr.clone(),
        }
    }
}

pub(crate) struct Peer {
    transport: Arc<dyn Transport>,
    target: NodeId,
    addr: String,
}

/// What precedes a snapshot sent to a follower: who sends it and what it covers.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct SnapshotTransfer {
    pub(crate) vote: VoteOf<TypeConfig>,
    pub(crate) meta: openraft::alias::SnapshotMetaOf<TypeConfig>,
}

fn rpc_error(e: TransportError) -> RPCError<TypeConfig> {
    match e {
        // A peer that is down or partitioned: openraft backs off before trying it again.
        TransportError::Unreachable { .. } | TransportError::Timeout { .. } => {
            RPCError::Unreachable(Unreachable::new(&e))
        }
        TransportError::Remote { .. } => RPCError::Network(NetworkError::new(&e)),
    }
}

impl Peer {
    async fn call<Req, Resp>(
        &self,
        kind: RpcKind,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<TypeConfig>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let body =
            serde_json::to_vec(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let answer = self
            .transport
            .call(self.target, &self.addr, kind, body, timeout)
            .await
            .map_err(rpc_error)?;
        let decoded: Result<Resp, RaftError<TypeConfig>> = serde_json::from_slice(&answer)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        // A peer whose Raft stopped is as good as down: back off and try it later.
        decoded.map_err(|e| match e {
            RaftError::Fatal(fatal) => RPCError::Unreachable(Unreachable::new(&fatal)),
            RaftError::APIError(never) => match never {},
        })
    }
}

impl RaftNetworkV2<TypeConfig> for Peer {
    type SnapshotData = std::io::Cursor<Vec<u8>>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(RpcKind::AppendEntries, &rpc, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(RpcKind::Vote, &rpc, option.hard_ttl()).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(RpcKind::PreVote, &rpc, option.hard_ttl()).await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(RpcKind::TransferLeader, &req, option.hard_ttl())
            .await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, Self::SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let header = serde_json::to_vec(&SnapshotTransfer {
            vote,
            meta: snapshot.meta,
        })
        .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let data = snapshot.snapshot.into_inner();
        let send =
            self.transport
                .send_snapshot(self.target, &self.addr, header, data, option.hard_ttl());
        let answer = tokio::select! {
            answer = send => answer,
            closed = cancel => return Err(StreamingError::Closed(closed)),
        };
        let answer = answer.map_err(|e| match rpc_error(e) {
            RPCError::Unreachable(u) => StreamingError::Unreachable(u),
            other => StreamingError::Network(NetworkError::new(&other)),
        })?;
        let decoded: Result<SnapshotResponse<TypeConfig>, Fatal<TypeConfig>> =
            serde_json::from_slice(&answer)
                .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        decoded.map_err(|fatal| StreamingError::Network(NetworkError::new(&fatal)))
    }
}
