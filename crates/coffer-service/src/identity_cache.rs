//! Principals and their grants, remembered between requests.
//!
//! Reading a principal and scanning its role assignments costs RocksDB iterators on every
//! request, more than the rest of a secret read. Both change only when the node applies an
//! identity change, which bumps the store's identity epoch; everything here is tagged with the
//! epoch observed before it was read and thrown away when the epoch moves on. So a revocation
//! takes effect on a node as soon as the node has applied it, as without the cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use coffer_types::identity::PrincipalRecord;

use crate::authz::Grants;

/// Entries of each kind remembered at most; when full, the cache starts over.
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
struct Entries {
    epoch: u64,
    principals: HashMap<String, Option<Arc<PrincipalRecord>>>,
    grants: HashMap<String, Arc<Grants>>,
}

#[derive(Default)]
pub(crate) struct IdentityCache {
    entries: Mutex<Entries>,
}

impl IdentityCache {
    /// The entries for `epoch`, emptied if they belong to another one.
    fn at(&self, epoch: u64) -> MutexGuard<'_, Entries> {
        // Every critical section is a few map operations; a poisoned lock holds usable maps.
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.epoch != epoch {
            entries.principals.clear();
            entries.grants.clear();
            entries.epoch = epoch;
        }
        entries
    }

    /// The cached principal (`Some(None)`: known not to exist).
    pub(crate) fn principal(&self, epoch: u64, id: &str) -> Option<Option<Arc<PrincipalRecord>>> {
        self.at(epoch).principals.get(id).cloned()
    }

    pub(crate) fn put_principal(
        &self,
        epoch: u64,
        id: &str,
        principal: Option<Arc<PrincipalRecord>>,
    ) {
        let mut entries = self.at(epoch);
        if entries.principals.len() >= MAX_ENTRIES {
            entries.principals.clear();
        }
        entries.principals.insert(id.to_owned(), principal);
    }

    pub(crate) fn grants(&self, epoch: u64, key: &str) -> Option<Arc<Grants>> {
        self.at(epoch).grants.get(key).cloned()
    }

    pub(crate) fn put_grants(&self, epoch: u64, key: &str, grants: Arc<Grants>) {
        let mut entries = self.at(epoch);
        if entries.grants.len() >= MAX_ENTRIES {
            entries.grants.clear();
        }
        entries.grants.insert(key.to_owned(), grants);
    }
}
