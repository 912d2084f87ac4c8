//! The replicated vault store: an openraft group whose log and state machine live in one
//! RocksDB database.
//!
//! Every openraft type stays inside this crate: the layers above see [`Store`], [`Command`],
//! [`Applied`] and the read methods, so an openraft upgrade touches this crate alone.
//!
//! Invariants:
//! - Commands arrive already sealed: no plaintext secret value is ever handed to this crate,
//!   so none reaches the Raft log, the state machine, snapshots or RocksDB's files.
//! - The log store syncs the vote and appended entries to disk before reporting them durable;
//!   an acknowledged write survives a crash.
//! - Applying a command is deterministic: it reads only the state machine and the command
//!   (timestamps and ids are chosen by the proposer), so every replica reaches the same state.
//!
//! This crate knows the record types of coffer-types but nothing of sealing, the network API or
//! authorization.

#![forbid(unsafe_code)]

mod apply;
mod cluster;
mod command;
mod db;
mod dedup;
mod error;
mod export;
mod geography;
mod identity;
mod keys;
mod lifecycle;
mod log_store;
mod network;
mod read;
mod state_machine;
mod store;
mod transport;
mod type_config;

pub use cluster::PeerStatus;
pub use command::{
    Applied, Command, IdentityCommand, KeyPatch, LifecycleCommand, Proposal, RestoredRecord,
    SecretPatch, VaultPatch,
};
pub use error::StoreError;
pub use export::Export;
pub use keys::PolicyEntry;
pub use lifecycle::{DuePurge, ExportedObject, RestoredObject, VaultExportItem};
pub use read::Page;
pub use store::{Bootstrap, Member, PeerHandler, RaftTimeouts, Store, StoreConfig, StoreStatus};
pub use transport::{NoTransport, RpcKind, Transport, TransportError};

#[cfg(test)]
mod suite_test;
