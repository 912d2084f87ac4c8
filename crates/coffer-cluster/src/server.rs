//! The cluster listener: answers other nodes' calls by handing them to the store.

use std::future::Future;

use coffer_proto::cluster::v1::cluster_server::{Cluster, ClusterServer};
use coffer_proto::cluster::v1::{CallRequest, CallResponse, Kind, SnapshotChunk};
use coffer_store::{RpcKind, Store, StoreError};
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::tls::certifies_node;
use crate::{ClusterTls, MAX_MESSAGE_BYTES, NODE_ID_KEY};

struct ClusterApi {
    store: Store,
}

fn status(e: StoreError) -> Status {
    match e {
        StoreError::Refused(m) => Status::invalid_argument(m),
        StoreError::Unavailable(m) => Status::unavailable(m),
        other => {
            tracing::error!(error = %other, "serving a cluster call failed");
            Status::internal("the node failed to serve the call")
        }
    }
}

/// The node id the caller claims, if its certificate was issued for it.
fn verified_sender<T>(request: &Request<T>) -> Result<u64, Status> {
    let denied = |why: &str| Status::permission_denied(why.to_owned());
    let id: u64 = request
        .metadata()
        .get(NODE_ID_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| denied("the call does not name the calling node"))?;
    let certs = request
        .peer_certs()
        .ok_or_else(|| denied("the caller presented no certificate"))?;
    let leaf = certs
        .first()
        .ok_or_else(|| denied("the caller presented no certificate"))?;
    if certifies_node(leaf, id) {
        Ok(id)
    } else {
        tracing::warn!(
            claimed = id,
            "a peer's certificate was not issued for the node id it claims"
        );
        Err(denied(
            "the caller's certificate was not issued for the node id it claims",
        ))
    }
}

#[tonic::async_trait]
impl Cluster for ClusterApi {
    async fn call(&self, request: Request<CallRequest>) -> Result<Response<CallResponse>, Status> {
        let from = verified_sender(&request)?;
        let request = request.into_inner();
        let kind = match Kind::try_from(request.kind) {
            Ok(Kind::AppendEntries) => RpcKind::AppendEntries,
            Ok(Kind::Vote) => RpcKind::Vote,
            Ok(Kind::PreVote) => RpcKind::PreVote,
            Ok(Kind::TransferLeader) => RpcKind::TransferLeader,
            Ok(Kind::Forward) => RpcKind::Forward,
            Ok(Kind::Peer) => RpcKind::Peer,
            _ => return Err(Status::invalid_argument("unknown call kind")),
        };
        let body = self
            .store
            .serve_rpc(kind, &request.body, Some(from))
            .await
            .map_err(status)?;
        Ok(Response::new(CallResponse { body }))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<CallResponse>, Status> {
        let from = verified_sender(&request)?;
        let mut stream = request.into_inner();
        let mut header = Vec::new();
        let mut data = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if header.is_empty() {
                header = chunk.header;
            } else if !chunk.header.is_empty() {
                return Err(Status::invalid_argument("a snapshot has one header"));
            }
            data.extend_from_slice(&chunk.data);
        }
        if header.is_empty() {
            return Err(Status::invalid_argument("the snapshot header is missing"));
        }
        let body = self
            .store
            .serve_snapshot(&header, data, Some(from))
            .await
            .map_err(status)?;
        Ok(Response::new(CallResponse { body }))
    }
}

/// Serves the cluster API on `listener` with mutual TLS until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    tls: ClusterTls,
    store: Store,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let service = ClusterServer::new(ClusterApi { store })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .tls_config(tls.server())?
        .add_service(service)
        // Raft messages are small and latency-bound: without TCP_NODELAY, Nagle's algorithm
        // and delayed acknowledgements add tens of milliseconds to every commit.
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}
