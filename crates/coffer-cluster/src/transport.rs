//! [`GrpcTransport`]: the store's [`Transport`] over tonic channels with mutual TLS.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coffer_proto::cluster::v1::cluster_client::ClusterClient;
use coffer_proto::cluster::v1::{CallRequest, CallResponse, Kind, SnapshotChunk};
use coffer_store::{RpcKind, Transport, TransportError};
use futures::future::BoxFuture;
use tonic::transport::{Channel, Endpoint};

use crate::{ClusterTls, MAX_MESSAGE_BYTES, NODE_ID_KEY, SNAPSHOT_CHUNK_BYTES};

/// One lazily connected channel per peer address, reused across calls.
#[derive(Clone)]
pub struct GrpcTransport {
    /// This node's id, sent with every call; the receiver checks it against our certificate.
    node_id: u64,
    tls: ClusterTls,
    /// Node id → address to dial instead of the advertised one (NAT, tunnels, test proxies).
    /// The peer's certificate is still checked against its advertised host.
    overrides: Arc<BTreeMap<u64, String>>,
    channels: Arc<Mutex<HashMap<(u64, String), Channel>>>,
}

impl GrpcTransport {
    pub fn new(node_id: u64, tls: ClusterTls, overrides: BTreeMap<u64, String>) -> Self {
        Self {
            node_id,
            tls,
            overrides: Arc::new(overrides),
            channels: Arc::default(),
        }
    }

    fn channel(&self, target: u64, addr: &str) -> Result<Channel, TransportError> {
        let unreachable = |reason: String| TransportError::Unreachable {
            node: target,
            reason,
        };
        let key = (target, addr.to_owned());
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = channels.get(&key) {
            return Ok(channel.clone());
        }
        let host = host_of(addr).ok_or_else(|| unreachable(format!("bad address {addr}")))?;
        let dial = self.overrides.get(&target).map_or(addr, String::as_str);
        let endpoint = Endpoint::from_shared(format!("https://{dial}"))
            .map_err(|e| unreachable(e.to_string()))?
            .tls_config(self.tls.client(host))
            .map_err(|e| unreachable(e.to_string()))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            // Find a dead peer (kill -9, a partition) on an idle connection within seconds.
            .http2_keep_alive_interval(Duration::from_secs(2))
            .keep_alive_timeout(Duration::from_secs(2))
            .keep_alive_while_idle(true);
        let channel = endpoint.connect_lazy();
        channels.insert(key, channel.clone());
        Ok(channel)
    }

    fn client(&self, target: u64, addr: &str) -> Result<ClusterClient<Channel>, TransportError> {
        Ok(ClusterClient::new(self.channel(target, addr)?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

/// The host part of `host:port` or `[v6]:port`.
fn host_of(addr: &str) -> Option<&str> {
    let (host, port) = addr.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

fn kind_of(kind: RpcKind) -> Kind {
    match kind {
        RpcKind::AppendEntries => Kind::AppendEntries,
        RpcKind::Vote => Kind::Vote,
        RpcKind::PreVote => Kind::PreVote,
        RpcKind::TransferLeader => Kind::TransferLeader,
        RpcKind::Peer => Kind::Peer,
        _ => Kind::Forward,
    }
}

fn status_error(target: u64, status: tonic::Status) -> TransportError {
    match status.code() {
        // What tonic reports for refused connections, failed handshakes and resets.
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
            TransportError::Unreachable {
                node: target,
                reason: status.message().to_owned(),
            }
        }
        _ => TransportError::Remote {
            node: target,
            reason: status.message().to_owned(),
        },
    }
}

/// Awaits `call` for at most `timeout` and turns its outcome into the answer's bytes or a
/// [`TransportError`].
async fn bounded(
    target: u64,
    timeout: Duration,
    call: impl std::future::Future<Output = Result<tonic::Response<CallResponse>, tonic::Status>>,
) -> Result<Vec<u8>, TransportError> {
    let timed_out = TransportError::Timeout {
        node: target,
        timeout,
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(response)) => Ok(response.into_inner().body),
        Ok(Err(status)) if status.code() == tonic::Code::DeadlineExceeded => Err(timed_out),
        Ok(Err(status)) => Err(status_error(target, status)),
        Err(_) => Err(timed_out),
    }
}

impl Transport for GrpcTransport {
    fn call(
        &self,
        target: u64,
        addr: &str,
        kind: RpcKind,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>> {
        let client = self.client(target, addr);
        let node_id = self.node_id;
        Box::pin(async move {
            let mut client = client?;
            let mut request = tonic::Request::new(CallRequest {
                kind: kind_of(kind) as i32,
                body,
            });
            request.set_timeout(timeout);
            request.metadata_mut().insert(NODE_ID_KEY, node_id.into());
            bounded(target, timeout, client.call(request)).await
        })
    }

    fn send_snapshot(
        &self,
        target: u64,
        addr: &str,
        header: Vec<u8>,
        data: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>> {
        let client = self.client(target, addr);
        let node_id = self.node_id;
        Box::pin(async move {
            let mut client = client?;
            let mut chunks: Vec<SnapshotChunk> = data
                .chunks(SNAPSHOT_CHUNK_BYTES)
                .map(|c| SnapshotChunk {
                    header: Vec::new(),
                    data: c.to_vec(),
                })
                .collect();
            if chunks.is_empty() {
                chunks.push(SnapshotChunk::default());
            }
            chunks[0].header = header;
            drop(data);
            let mut request = tonic::Request::new(tokio_stream::iter(chunks));
            request.set_timeout(timeout);
            request.metadata_mut().insert(NODE_ID_KEY, node_id.into());
            bounded(target, timeout, client.install_snapshot(request)).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn hosts_are_taken_from_addresses() {
        assert_eq!(host_of("127.0.0.1:9501"), Some("127.0.0.1"));
        assert_eq!(host_of("node1.example.com:9501"), Some("node1.example.com"));
        assert_eq!(host_of("[::1]:9501"), Some("::1"));
        assert_eq!(host_of("no-port"), None);
        assert_eq!(host_of(":9501"), None);
    }
}
