//! The service layer: vault, secret and key operations, written once for every API.
//!
//! The gRPC adapter (and later the Azure REST adapter) call these functions and translate
//! their results; no operation is implemented anywhere else. This layer validates input,
//! seals values with the vault's data key before proposing them (so the store never sees
//! plaintext), unseals on read, and reads time from the injected [`coffer_types::Clock`].
//! It does not know about transports, TLS or wire formats.

#![forbid(unsafe_code)]

mod auth;
mod authz;
mod backup;
mod data_keys;
mod guards;
mod identity;
mod identity_cache;
mod key_operations;
mod key_rotation;
mod keys;
mod lifecycle;
mod operator;
mod paging;
mod request;
mod roles;
mod secrets;
mod throttle;
mod tokens;
mod vaults;

use std::sync::Arc;

use coffer_crypto::RootKey;
use coffer_store::Store;
use coffer_types::Clock;

pub use auth::{Authenticator, Caller, CallerKind};
pub use backup::BackupStream;
pub use coffer_store::PeerStatus;
pub use guards::{
    DEMAND_EXCHANGE_TIMEOUT, NetworkRulesUpdate, NetworkSettings, ThrottleLimitInput,
};
pub use identity::{AddedCredential, CreatePrincipal, NewCredential};
pub use key_operations::{KeyOperationInput, KeyOperationOutcome, MAX_KEY_OPERATION_BYTES};
pub use key_rotation::{LifetimeActionInput, RotationPolicyBundle};
pub use keys::{CreateKey, DeletedKeyBundle, ImportKey, KeyBundle, KeyUpdate};
pub use lifecycle::DeletedSecretBundle;
pub use operator::{JoinPeer, NodeIdentity};
pub use paging::Listing;
pub use request::{Consistency, RequestContext};
pub use roles::{CreateRoleAssignment, SetAccessPolicy};
pub use secrets::{SecretBundle, SecretUpdate, SetSecret};
pub use tokens::{
    CLIENT_ASSERTION_TYPE, IdentityConfig, IssuedToken, OAuthError, TokenGrant, TrustedIssuer,
};
pub use vaults::{CreateVault, VaultUpdate};

/// The geography of a node whose configuration names none (development servers).
pub const DEFAULT_GEOGRAPHY: &str = "dev";

/// The operations of one node, shared by every request handler. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    store: Store,
    data_keys: Arc<data_keys::KeyCache>,
    loaded_keys: Arc<key_operations::LoadedKeys>,
    tokens: Arc<tokens::Tokens>,
    identity_cache: Arc<identity_cache::IdentityCache>,
    clock: Arc<dyn Clock>,
    /// The geography this cluster belongs to: backups are sealed with its key and only its
    /// backups restore here.
    geography: Arc<str>,
    /// Where vault restores keep the backup they receive until it is verified.
    spool_dir: Arc<std::path::Path>,
    /// Virtual networks and trusted services, from the node configuration.
    network: Arc<guards::NetworkSettings>,
    /// This node's part of every vault's cluster-wide throttle.
    throttle: Arc<throttle::ThrottleTable>,
}

impl Service {
    pub fn new(
        store: Store,
        root: RootKey,
        clock: Arc<dyn Clock>,
        identity: IdentityConfig,
    ) -> Self {
        let node_id = store.node_id();
        Self {
            store,
            data_keys: Arc::new(data_keys::KeyCache::new(root)),
            loaded_keys: Arc::default(),
            tokens: Arc::new(tokens::Tokens::new(identity)),
            identity_cache: Arc::default(),
            clock,
            geography: Arc::from(DEFAULT_GEOGRAPHY),
            spool_dir: Arc::from(std::env::temp_dir().as_path()),
            network: Arc::default(),
            throttle: Arc::new(throttle::ThrottleTable::new(node_id)),
        }
    }

    /// Sets where vault restores spool the backups they receive (sealed frames only). A node
    /// gives its own directory and empties it at start: what is left there belongs to restores
    /// that a crash interrupted.
    pub fn with_spool_dir(mut self, dir: &std::path::Path) -> Self {
        self.spool_dir = Arc::from(dir);
        self
    }

    /// Sets the cluster's geography (from `node.geography`; [`DEFAULT_GEOGRAPHY`] otherwise).
    pub fn with_geography(mut self, geography: &str) -> Self {
        self.geography = Arc::from(geography);
        self
    }

    pub fn geography(&self) -> &str {
        &self.geography
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// Makes this node's copy current enough for `consistency` before a read.
    pub(crate) async fn read_point(
        &self,
        consistency: Consistency,
    ) -> Result<(), coffer_types::Error> {
        match consistency {
            Consistency::Linearizable => self.store.read_barrier().await?,
            Consistency::Stale { max } => self.store.stale_read_allowed(max)?,
        }
        Ok(())
    }
}

/// A random (version 4) UUID in its usual text form: object ids, client ids, assignment ids.
pub(crate) fn new_uuid() -> Result<String, coffer_types::Error> {
    let mut b = [0u8; 16];
    coffer_crypto::fill_random(&mut b).map_err(|e| coffer_types::Error::internal(e.to_string()))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}
