//! Rust client library for Coffer's public gRPC API (`coffer.v1`).
//!
//! [`CofferClient`] holds one TLS channel to a Coffer node, verified against a single CA that the
//! operator supplies (never the system roots: a Coffer deployment runs its own CA), and adds
//! `authorization: Bearer <token>` to every call. List methods follow every page, so callers see
//! complete results. Errors are [`ClientError`]; a server-side error carries the Azure Key Vault
//! error code the server put in the status metadata.
//!
//! The access token lives in a zeroize-on-drop [`Token`] and no type in this crate prints it in
//! `Debug` or `Display` output. This crate depends only on `coffer-proto` among Coffer's crates
//! (never on server internals), so the client can be built and shipped on its own.
#![forbid(unsafe_code)]

mod client;
mod error;
mod options;

pub use client::CofferClient;
pub use coffer_proto::v1 as proto;
pub use error::ClientError;
pub use options::{ConnectOptions, ENV_ADDR, ENV_CA_CERT, ENV_TOKEN, Token};
