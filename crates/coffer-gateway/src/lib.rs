//! The gateway: everything between a client's TCP connection and the service layer.
//!
//! Every request takes the same path: TLS (rustls, TLS 1.2 and 1.3 only) → client address →
//! authentication → the service operation → one audit record and the request metrics. The
//! gRPC API (proto/coffer/v1) is an adapter over coffer-service; `/metrics` and `/healthz`
//! are served on the same listener. Nothing here decides what an operation does, and nothing
//! here writes a secret value or credential to a log, audit record, metric or error.

#![forbid(unsafe_code)]

mod audit;
mod convert;
mod grpc;
mod grpc_operator;
mod http_routes;
mod metrics;
mod pipeline;
mod server;
mod tls;

pub use audit::{AuditLog, AuditRecord};
pub use metrics::Metrics;
pub use pipeline::Gateway;
pub use server::{ServeError, serve};
pub use tls::{TlsError, server_tls_config};
