//! The service layer: vault and secret operations, written once for every API.
//!
//! The gRPC adapter (and later the Azure REST adapter) call these functions and translate
//! their results; no operation is implemented anywhere else. This layer validates input,
//! seals values with the vault's data key before proposing them (so the store never sees
//! plaintext), unseals on read, and reads time from the injected [`coffer_types::Clock`].
//! It does not know about transports, TLS or wire formats.

#![forbid(unsafe_code)]

mod auth;
mod keys;
mod operator;
mod paging;
mod request;
mod secrets;
mod vaults;

use std::sync::Arc;

use coffer_crypto::RootKey;
use coffer_store::Store;
use coffer_types::Clock;

pub use auth::{AdminTokenAuthenticator, Authenticator, Principal};
pub use coffer_store::PeerStatus;
pub use operator::{JoinPeer, NodeIdentity};
pub use paging::Listing;
pub use request::{Consistency, RequestContext};
pub use secrets::{SecretBundle, SecretUpdate, SetSecret};
pub use vaults::{CreateVault, VaultUpdate};

/// The operations of one node, shared by every request handler. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    store: Store,
    keys: Arc<keys::KeyCache>,
    clock: Arc<dyn Clock>,
}

impl Service {
    pub fn new(store: Store, root: RootKey, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            keys: Arc::new(keys::KeyCache::new(root)),
            clock,
        }
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
