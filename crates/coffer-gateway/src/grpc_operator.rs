//! The operator gRPC API: cluster membership and whole-cluster snapshots.

use std::pin::Pin;

use coffer_proto::v1 as pb;
use coffer_proto::v1::operator_service_server::OperatorService;
use coffer_service::{JoinPeer, PeerStatus};
use coffer_types::Error;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::grpc::GrpcApi;
use crate::pipeline::{Audited, Target};

/// The largest snapshot a restore accepts.
const MAX_RESTORE_BYTES: usize = 4 * 1024 * 1024 * 1024;

fn peer_to_pb(p: &PeerStatus) -> pb::Peer {
    pb::Peer {
        id: p.id,
        address: p.addr.clone(),
        region: p.region.clone(),
        voter: p.voter,
        leader: p.leader,
        match_index: p.matched,
        lag: p.lag,
    }
}

fn peers_to_pb(peers: &[PeerStatus]) -> Vec<pb::Peer> {
    peers.iter().map(peer_to_pb).collect()
}

impl Audited for pb::Peer {}
impl Audited for pb::ListPeersResponse {}
impl Audited for pb::MembershipResponse {}
impl Audited for pb::RestoreSnapshotResponse {}
impl Audited for pb::TakeSnapshotResponse {}

/// A saved snapshot on its way to the caller.
struct SnapshotBytes(Vec<u8>);
impl Audited for SnapshotBytes {}

fn cluster_target() -> Target {
    Target {
        vault: None,
        id: Some("cluster".into()),
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::SnapshotData, Status>> + Send>>;

#[tonic::async_trait]
impl OperatorService for GrpcApi {
    async fn node_info(
        &self,
        request: Request<pb::NodeInfoRequest>,
    ) -> Result<Response<pb::Peer>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "NodeInfo",
            request,
            |_| cluster_target(),
            |_, _| async move {
                let me = svc.node_identity();
                Ok(pb::Peer {
                    id: me.id,
                    address: me.address,
                    region: me.region,
                    ..Default::default()
                })
            },
        )
        .await
    }

    async fn list_peers(
        &self,
        request: Request<pb::ListPeersRequest>,
    ) -> Result<Response<pb::ListPeersResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "RaftListPeers",
            request,
            |_| cluster_target(),
            |_, ctx| async move {
                Ok(pb::ListPeersResponse {
                    peers: peers_to_pb(&svc.peers(&ctx).await?),
                })
            },
        )
        .await
    }

    async fn join_peer(
        &self,
        request: Request<pb::JoinPeerRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "RaftJoin",
            request,
            |_| cluster_target(),
            |r, ctx| async move {
                let peers = svc
                    .join_peer(
                        &ctx,
                        JoinPeer {
                            id: r.id,
                            address: r.address,
                            region: r.region,
                            learner: r.learner,
                            force: r.force,
                        },
                    )
                    .await?;
                Ok(pb::MembershipResponse {
                    peers: peers_to_pb(&peers),
                })
            },
        )
        .await
    }

    async fn remove_peer(
        &self,
        request: Request<pb::RemovePeerRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "RaftRemovePeer",
            request,
            |_| cluster_target(),
            |r, ctx| async move {
                Ok(pb::MembershipResponse {
                    peers: peers_to_pb(&svc.remove_peer(&ctx, r.id, r.force).await?),
                })
            },
        )
        .await
    }

    async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "RaftTransferLeader",
            request,
            |_| cluster_target(),
            |r, ctx| async move {
                Ok(pb::MembershipResponse {
                    peers: peers_to_pb(&svc.transfer_leader(&ctx, r.to).await?),
                })
            },
        )
        .await
    }

    async fn take_snapshot(
        &self,
        request: Request<pb::TakeSnapshotRequest>,
    ) -> Result<Response<pb::TakeSnapshotResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "RaftSnapshotTake",
            request,
            |_| cluster_target(),
            |_, ctx| async move {
                let index = svc.take_snapshot(&ctx).await?;
                Ok(pb::TakeSnapshotResponse {
                    node: svc.node_identity().id,
                    index,
                })
            },
        )
        .await
    }

    type SaveSnapshotStream = SnapshotStream;

    async fn save_snapshot(
        &self,
        request: Request<pb::SaveSnapshotRequest>,
    ) -> Result<Response<Self::SaveSnapshotStream>, Status> {
        let svc = self.gateway.service.clone();
        let saved = self
            .run(
                "RaftSnapshotSave",
                request,
                |_| cluster_target(),
                |_, ctx| async move { Ok(SnapshotBytes(svc.save_snapshot(&ctx).await?)) },
            )
            .await?;
        let (metadata, SnapshotBytes(data), extensions) = saved.into_parts();
        let chunks: Vec<Result<pb::SnapshotData, Status>> = data
            .chunks(1024 * 1024)
            .map(|c| Ok(pb::SnapshotData { data: c.to_vec() }))
            .collect();
        let stream: SnapshotStream = Box::pin(tokio_stream::iter(chunks));
        Ok(Response::from_parts(metadata, stream, extensions))
    }

    async fn restore_snapshot(
        &self,
        request: Request<Streaming<pb::SnapshotData>>,
    ) -> Result<Response<pb::RestoreSnapshotResponse>, Status> {
        let (metadata, extensions, mut stream) = request.into_parts();
        let mut data = Vec::new();
        let mut too_large = false;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if data.len() + chunk.data.len() > MAX_RESTORE_BYTES {
                too_large = true;
                break;
            }
            data.extend_from_slice(&chunk.data);
        }
        let request = Request::from_parts(metadata, extensions, data);
        let svc = self.gateway.service.clone();
        self.run(
            "RaftSnapshotRestore",
            request,
            |_| cluster_target(),
            move |data, ctx| async move {
                if too_large {
                    return Err(Error::bad_parameter(
                        "The snapshot is larger than a restore accepts.",
                    ));
                }
                let (vaults, records) = svc.restore_snapshot(&ctx, &data).await?;
                Ok(pb::RestoreSnapshotResponse {
                    vaults: vaults as u64,
                    records: records as u64,
                })
            },
        )
        .await
    }

    async fn list_geography_keys(
        &self,
        request: Request<pb::ListGeographyKeysRequest>,
    ) -> Result<Response<pb::ListGeographyKeysResponse>, Status> {
        self.list_geography_keys_impl(request).await
    }

    async fn export_geography_key(
        &self,
        request: Request<pb::ExportGeographyKeyRequest>,
    ) -> Result<Response<pb::ExportGeographyKeyResponse>, Status> {
        self.export_geography_key_impl(request).await
    }

    async fn import_geography_key(
        &self,
        request: Request<pb::ImportGeographyKeyRequest>,
    ) -> Result<Response<pb::GeographyKey>, Status> {
        self.import_geography_key_impl(request).await
    }
}
