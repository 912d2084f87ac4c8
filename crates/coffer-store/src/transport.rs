//! What the store needs from the network: deliver an opaque request to another node and bring
//! back its opaque answer.
//!
//! The store encodes every Raft and forwarding message itself, so the transport (node-to-node
//! gRPC over mutual TLS, in `coffer-cluster`) never sees an openraft type and a Raft upgrade
//! does not touch it. On the receiving node the transport hands the bytes to
//! [`crate::Store::serve_rpc`] or [`crate::Store::serve_snapshot`].

use std::time::Duration;

use futures::future::BoxFuture;

/// Which handler an RPC is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RpcKind {
    AppendEntries,
    Vote,
    /// Would you vote for me? Asked before a real election, so that a node cut off from the
    /// group (or removed from it) cannot raise everyone's term and depose a healthy leader.
    PreVote,
    TransferLeader,
    /// A client request handed to the leader: a write, a read index, a membership change.
    Forward,
    /// A message between the layers above the store on two members (the throttle's demand
    /// reports), answered by the handler set with `Store::set_peer_handler`.
    Peer,
}

/// Why an RPC got no answer.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The peer could not be reached (connection refused, TLS refused, reset). Raft backs off.
    #[error("node {node} is unreachable: {reason}")]
    Unreachable { node: u64, reason: String },
    /// No answer within the deadline; the request may or may not have been handled.
    #[error("node {node} did not answer within {timeout:?}")]
    Timeout { node: u64, timeout: Duration },
    /// The peer answered with an error of its own.
    #[error("node {node} failed the request: {reason}")]
    Remote { node: u64, reason: String },
}

/// Delivers requests to other nodes.
///
/// Implementations must:
/// - bound every call by `timeout`, reporting [`TransportError::Timeout`] when it passes;
/// - authenticate the peer as a member of this cluster before sending it anything (mutual TLS
///   with the cluster CA), since Raft messages carry sealed data and votes;
/// - reach `target` at `addr` unless configured to reach it through another address.
pub trait Transport: Send + Sync + 'static {
    fn call(
        &self,
        target: u64,
        addr: &str,
        kind: RpcKind,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>>;

    /// Sends a whole snapshot: `header` (vote and snapshot meta, small) then `data` (the state,
    /// possibly large), streamed in chunks so that neither side holds a second copy in one
    /// message.
    fn send_snapshot(
        &self,
        target: u64,
        addr: &str,
        header: Vec<u8>,
        data: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>>;
}

/// The transport of a node that runs alone (`coffer server --dev`): there is nobody to call.
#[derive(Debug, Default)]
pub struct NoTransport;

impl Transport for NoTransport {
    fn call(
        &self,
        target: u64,
        _addr: &str,
        _kind: RpcKind,
        _body: Vec<u8>,
        _timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>> {
        Box::pin(async move {
            Err(TransportError::Unreachable {
                node: target,
                reason: "this node runs without a cluster transport".into(),
            })
        })
    }

    fn send_snapshot(
        &self,
        target: u64,
        addr: &str,
        _header: Vec<u8>,
        _data: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>> {
        self.call(target, addr, RpcKind::Forward, Vec::new(), timeout)
    }
}
