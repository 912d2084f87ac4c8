//! The cluster transport: node-to-node gRPC over mutual TLS.
//!
//! [`GrpcTransport`] carries the store's messages to other nodes; [`serve`] answers them. Both
//! sides present a certificate from the cluster CA and accept only peers whose certificate that
//! CA signed, so a machine without one can neither join, vote, nor read the (sealed) data that
//! replication carries. A caller also names its node id, and the receiver accepts the call only
//! if the caller's certificate was issued for that id, so that one member cannot speak for
//! another in votes and replication. This crate moves opaque bytes: it knows nothing of Raft's messages,
//! which stay inside `coffer-store`.

#![forbid(unsafe_code)]

mod server;
mod tls;
mod transport;

pub use server::serve;
pub use tls::{ClusterTls, ClusterTlsError};
pub use transport::GrpcTransport;

/// Largest message either side accepts: an AppendEntries batch of full-size secrets fits.
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Metadata key carrying the caller's node id, checked against its certificate.
pub(crate) const NODE_ID_KEY: &str = "x-coffer-node";

/// Snapshot data travels in chunks of this size.
pub(crate) const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
