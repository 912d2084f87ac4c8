//! Reads from the local state machine. They see what this node has applied; callers that need
//! linearizability call [`crate::Store::read_barrier`] first.

use coffer_types::{SecretRecord, VaultRecord};
use rocksdb::{DB, Direction, IteratorMode};

use crate::StoreError;
use crate::apply::{load_head, load_secret, load_vault};
use crate::db::{self, CF_HEADS, CF_SECRETS, CF_VAULTS};

/// One page of a listing. `next` is the position to resume after (the last key component
/// returned), present only when more items follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

pub(crate) fn vault(db: &DB, vault: &str) -> Result<Option<VaultRecord>, StoreError> {
    load_vault(db, vault)
}

pub(crate) fn secret(
    db: &DB,
    vault: &str,
    name: &str,
    version: Option<&str>,
) -> Result<Option<SecretRecord>, StoreError> {
    // Only an active secret has a head: a deleted one's versions are not read here.
    let Some(latest) = load_head(db, vault, name)? else {
        return Ok(None);
    };
    load_secret(db, vault, name, version.unwrap_or(&latest))
}

/// Scans keys under `prefix` in order, starting after `after` (a last key component), and
/// gives each key's last component and value to `visit` until `max` items were taken.
pub(crate) fn scan<T>(
    db: &DB,
    cf_name: &str,
    prefix: &[u8],
    after: Option<&str>,
    max: usize,
    mut visit: impl FnMut(&str, &[u8]) -> Result<Option<T>, StoreError>,
) -> Result<Page<T>, StoreError> {
    let cf = db::cf(db, cf_name)?;
    let mut start = prefix.to_vec();
    if let Some(after) = after {
        start.extend_from_slice(after.as_bytes());
        // The smallest key after `after` itself: a trailing NUL sorts before any character.
        start.push(0);
    }
    let mut items = Vec::new();
    let mut last = None;
    for item in db.iterator_cf(cf, IteratorMode::From(&start, Direction::Forward)) {
        let (key, value) = item.map_err(StoreError::storage)?;
        let Some(rest) = key.strip_prefix(prefix) else {
            break;
        };
        // Only direct children: the component after the prefix must not contain a separator.
        if rest.contains(&0) {
            continue;
        }
        let component = std::str::from_utf8(rest).map_err(StoreError::corrupt)?;
        if items.len() == max {
            return Ok(Page { items, next: last });
        }
        if let Some(found) = visit(component, &value)? {
            items.push(found);
            last = Some(component.to_owned());
        }
    }
    Ok(Page { items, next: None })
}

pub(crate) fn vaults(
    db: &DB,
    after: Option<&str>,
    max: usize,
) -> Result<Page<VaultRecord>, StoreError> {
    scan(db, CF_VAULTS, b"", after, max, |_, value| {
        Ok(Some(db::decode(value)?))
    })
}

pub(crate) fn secrets(
    db: &DB,
    vault: &str,
    after: Option<&str>,
    max: usize,
) -> Result<Page<SecretRecord>, StoreError> {
    let prefix = db::prefix(&[vault]);
    scan(db, CF_HEADS, &prefix, after, max, |name, value| {
        let version: String = db::decode(value)?;
        load_secret(db, vault, name, &version)
    })
}

pub(crate) fn secret_versions(
    db: &DB,
    vault: &str,
    name: &str,
    after: Option<&str>,
    max: usize,
) -> Result<Page<SecretRecord>, StoreError> {
    if load_head(db, vault, name)?.is_none() {
        return Ok(Page {
            items: Vec::new(),
            next: None,
        });
    }
    let prefix = db::prefix(&[vault, name]);
    scan(db, CF_SECRETS, &prefix, after, max, |_, value| {
        Ok(Some(db::decode(value)?))
    })
}
