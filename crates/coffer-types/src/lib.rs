//! Coffer's vocabulary: names, version ids, attributes, tags, persisted records, the clock and
//! the error type every client-visible failure is expressed in.
//!
//! This crate does no I/O and depends on nothing of Coffer's; every other crate depends on it.
//! Validation of user input lives here so that the gRPC and REST adapters, the service layer and
//! the state machine all apply the same rules.

#![forbid(unsafe_code)]

pub mod authz;
pub mod clock;
pub mod error;
pub mod identity;
pub mod keys;
pub mod limits;
pub mod names;
pub mod net;
pub mod network;
pub mod records;
pub mod tags;
pub mod throttle;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, ErrorCode, InnerCode};
pub use keys::{
    CurveName, EncryptionAlgorithm, JsonWebKey, KeyFamily, KeyOperation, KeyRecord,
    KeyRotationPolicyRecord, KeyType, SignatureAlgorithm,
};
pub use names::{ObjectKind, ObjectName, VaultName, Version};
pub use net::IpNet;
pub use network::{NetworkPatch, NetworkRuleSet};
pub use records::{
    DeletedObjectRecord, DeletedVaultRecord, GeographyKeyRecord, SecretRecord, Sku, VaultRecord,
};
pub use tags::Tags;
pub use throttle::{ThrottleClass, ThrottleLimit, ThrottleLimits};
