//! Unwrapped vault data keys, cached so the root key is not used on every request.
//!
//! Entries are keyed by the vault's incarnation id: a vault deleted and created again gets a new
//! id and a new key, and the stale entry is simply never asked for again. The cache is bounded;
//! dropped keys are cleansed by aws-lc.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use coffer_crypto::{DataKey, RootKey};
use coffer_types::{Error, VaultRecord};

const MAX_CACHED_KEYS: usize = 4_096;

pub(crate) struct KeyCache {
    root: RootKey,
    keys: Mutex<HashMap<String, Arc<DataKey>>>,
}

impl KeyCache {
    pub(crate) fn new(root: RootKey) -> Self {
        Self {
            root,
            keys: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn root(&self) -> &RootKey {
        &self.root
    }

    /// The data key of `vault`, unwrapping it with the root key on first use.
    pub(crate) fn data_key(&self, vault: &VaultRecord) -> Result<Arc<DataKey>, Error> {
        if let Some(key) = self.lock().get(&vault.id) {
            return Ok(key.clone());
        }
        let key = Arc::new(
            self.root
                .unwrap_data_key(&vault.name.to_ascii_lowercase(), &vault.wrapped_key)
                .map_err(|e| {
                    tracing::error!(vault = %vault.name, error = %e, "vault data key does not unwrap");
                    Error::internal("The vault's key could not be opened with this node's root key.")
                })?,
        );
        let mut keys = self.lock();
        if keys.len() >= MAX_CACHED_KEYS {
            keys.clear();
        }
        keys.insert(vault.id.clone(), key.clone());
        Ok(key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<DataKey>>> {
        // A panic while holding this lock cannot leave the map inconsistent (every operation
        // on it is a single insert, get or clear), so a poisoned lock is safe to reuse.
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
