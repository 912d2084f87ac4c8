//! The gateway: everything between a client's TCP connection and the service layer.
//!
//! Every request takes the same path: TLS (rustls, TLS 1.2 and 1.3 only) → client address →
//! authentication → the service operation (which authorizes) → one audit record and the
//! request metrics. The gRPC API (proto/coffer/v1) and the Azure Key Vault REST API (`rest`,
//! vaults addressed by host) are adapters over coffer-service;
//! `/metrics`, `/healthz` and the identity provider's endpoints (discovery, JWKS, token) are
//! served on the same listener, and the managed-identity endpoint on a loopback listener of
//! its own. Nothing here decides what an operation does, and nothing
//! here writes a secret value or credential to a log, audit record, metric or error.

#![forbid(unsafe_code)]

mod audit;
mod client_addr;
mod convert;
mod grpc;
mod grpc_identity;
mod grpc_keys;
mod grpc_lifecycle;
mod grpc_operator;
mod http_routes;
mod identity_routes;
mod managed_identity;
mod metrics;
mod pipeline;
mod rest;
mod server;
mod tls;

pub use audit::{AuditLog, AuditRecord};
pub use managed_identity::{
    MANAGED_IDENTITY_API_VERSION, ManagedIdentitySettings, generate_identity_header,
    serve_managed_identity,
};
pub use metrics::Metrics;
pub use pipeline::Gateway;
pub use server::{ServeError, serve};
pub use tls::{TlsError, server_tls_config};
