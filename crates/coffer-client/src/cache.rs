//! The opt-in secret read cache ([`crate::CofferClient::with_secret_cache`]): the pattern a
//! vault's throttle limits push applications towards, read once and reuse for a while.
//!
//! A read that was in flight while this client changed the secret must not put the old value
//! back: every invalidation bumps a generation, and an answer is cached only if no
//! invalidation happened since its read started.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use coffer_proto::v1::Secret;
use zeroize::Zeroize;

/// Longest time an answer is kept, whatever the caller asks.
const MAX_TTL: Duration = Duration::from_secs(86_400);

/// (vault, name, version or empty for the latest), vault and name folded to lowercase as
/// Azure compares them.
type CacheKey = (String, String, String);

/// A cached answer; its value is wiped when it is dropped.
struct Entry {
    secret: Secret,
    expires: Instant,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.secret.value.zeroize();
    }
}

pub(crate) struct SecretCache {
    ttl: Duration,
    max_entries: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<CacheKey, Entry>,
    /// Bumped by every invalidation.
    generation: u64,
}

fn key(vault: &str, name: &str, version: &str) -> CacheKey {
    (
        vault.to_ascii_lowercase(),
        name.to_ascii_lowercase(),
        version.to_owned(),
    )
}

impl SecretCache {
    pub(crate) fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            // Bounded so that `now + ttl` cannot overflow.
            ttl: ttl.min(MAX_TTL),
            max_entries: max_entries.max(1),
            inner: Mutex::default(),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the map consistent (every operation on it is
        // a single call), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Taken before a read is sent; given back to [`SecretCache::insert`] with its answer.
    pub(crate) fn generation(&self) -> u64 {
        self.inner().generation
    }

    /// The cached answer, while it is younger than the TTL.
    pub(crate) fn get(
        &self,
        vault: &str,
        name: &str,
        version: &str,
        now: Instant,
    ) -> Option<Secret> {
        let mut inner = self.inner();
        let entries = &mut inner.entries;
        let k = key(vault, name, version);
        match entries.get(&k) {
            Some(entry) if entry.expires > now => Some(entry.secret.clone()),
            Some(_) => {
                entries.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Caches an answer whose read started at `generation`, unless this client changed a secret
    /// since (the answer may predate the change).
    pub(crate) fn insert(
        &self,
        vault: &str,
        name: &str,
        version: &str,
        secret: &Secret,
        now: Instant,
        generation: u64,
    ) {
        let mut inner = self.inner();
        if inner.generation != generation {
            return;
        }
        let entries = &mut inner.entries;
        if entries.len() >= self.max_entries {
            entries.retain(|_, e| e.expires > now);
        }
        if entries.len() >= self.max_entries {
            // Still full of live entries: drop the one closest to expiry.
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(
            key(vault, name, version),
            Entry {
                secret: secret.clone(),
                expires: now + self.ttl,
            },
        );
    }

    /// Forgets every cached version of one secret (after this client changed it), or of every
    /// secret of a vault when `name` is `None`.
    pub(crate) fn invalidate(&self, vault: &str, name: Option<&str>) {
        let (vault, name, _) = key(vault, name.unwrap_or_default(), "");
        let whole_vault = name.is_empty();
        let mut inner = self.inner();
        inner.generation += 1;
        inner
            .entries
            .retain(|(v, n, _), _| !(*v == vault && (whole_vault || *n == name)));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn secret(value: &str) -> Secret {
        Secret {
            value: value.into(),
            ..Secret::default()
        }
    }

    #[test]
    fn entries_expire_are_bounded_and_invalidated_by_name() {
        let cache = SecretCache::new(Duration::from_secs(10), 2);
        let t0 = Instant::now();
        let g = cache.generation();
        cache.insert("KV", "a", "", &secret("1"), t0, g);
        assert_eq!(cache.get("kv", "A", "", t0).unwrap().value, "1");
        assert!(cache.get("kv", "a", "v2", t0).is_none());
        assert!(
            cache
                .get("kv", "a", "", t0 + Duration::from_secs(10))
                .is_none()
        );
        cache.insert("kv", "a", "", &secret("1"), t0, g);
        cache.insert(
            "kv",
            "a",
            "v1",
            &secret("1"),
            t0 + Duration::from_secs(1),
            g,
        );
        cache.insert("kv", "b", "", &secret("2"), t0 + Duration::from_secs(2), g);
        // Full: the entry nearest expiry made room.
        assert!(cache.get("kv", "a", "", t0).is_none());
        assert!(cache.get("kv", "b", "", t0).is_some());
        cache.invalidate("KV", Some("A"));
        assert!(cache.get("kv", "a", "v1", t0).is_none());
        assert!(cache.get("kv", "b", "", t0).is_some());
        cache.invalidate("kv", None);
        assert!(cache.get("kv", "b", "", t0).is_none());
    }

    #[test]
    fn a_read_that_overlapped_a_change_is_not_cached() {
        let cache = SecretCache::new(Duration::from_secs(10), 8);
        let t0 = Instant::now();
        let started = cache.generation();
        // This client changes the secret while the read is in flight.
        cache.invalidate("kv", Some("a"));
        cache.insert("kv", "a", "", &secret("old"), t0, started);
        assert!(cache.get("kv", "a", "", t0).is_none());
        let started = cache.generation();
        cache.insert("kv", "a", "", &secret("new"), t0, started);
        assert_eq!(cache.get("kv", "a", "", t0).unwrap().value, "new");
    }
}
