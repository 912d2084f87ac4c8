//! The opt-in secret read cache ([`crate::CofferClient::with_secret_cache`]): the pattern a
//! vault's throttle limits push applications towards, read once and reuse for a while.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use coffer_proto::v1::Secret;
use zeroize::Zeroize;

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
    entries: Mutex<HashMap<CacheKey, Entry>>,
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
            ttl,
            max_entries: max_entries.max(1),
            entries: Mutex::default(),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached answer, while it is younger than the TTL.
    pub(crate) fn get(
        &self,
        vault: &str,
        name: &str,
        version: &str,
        now: Instant,
    ) -> Option<Secret> {
        let mut entries = self.entries();
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

    pub(crate) fn insert(
        &self,
        vault: &str,
        name: &str,
        version: &str,
        secret: &Secret,
        now: Instant,
    ) {
        let mut entries = self.entries();
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

    /// Forgets every cached version of one secret (after this client changed it).
    pub(crate) fn invalidate(&self, vault: &str, name: &str) {
        let (vault, name, _) = key(vault, name, "");
        self.entries()
            .retain(|(v, n, _), _| !(*v == vault && *n == name));
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
        cache.insert("KV", "a", "", &secret("1"), t0);
        assert_eq!(cache.get("kv", "A", "", t0).unwrap().value, "1");
        assert!(cache.get("kv", "a", "v2", t0).is_none());
        assert!(
            cache
                .get("kv", "a", "", t0 + Duration::from_secs(10))
                .is_none()
        );
        cache.insert("kv", "a", "", &secret("1"), t0);
        cache.insert("kv", "a", "v1", &secret("1"), t0 + Duration::from_secs(1));
        cache.insert("kv", "b", "", &secret("2"), t0 + Duration::from_secs(2));
        // Full: the entry nearest expiry made room.
        assert!(cache.get("kv", "a", "", t0).is_none());
        assert!(cache.get("kv", "b", "", t0).is_some());
        cache.invalidate("KV", "A");
        assert!(cache.get("kv", "a", "v1", t0).is_none());
        assert!(cache.get("kv", "b", "", t0).is_some());
    }
}
