//! Geography backup keys in the state machine (`geography_keys` family).
//!
//! Keys: `key \0 id` → GeographyKeyRecord (sealed by the root key), and
//! `active \0 geography` → the id of the key new backups of that geography are sealed with.
//! A cluster may hold several keys of its geography: the one it created and any imported
//! from the cluster that created the geography's key first. Every key held still opens the
//! backups made with it.

use coffer_types::{Error, ErrorCode, GeographyKeyRecord};
use rocksdb::{DB, WriteBatch};

use crate::StoreError;
use crate::command::Applied;
use crate::db::{self, CF_GEOGRAPHY_KEYS};

type Outcome = Result<Result<Applied, Error>, StoreError>;

const KEY: &str = "key";
const ACTIVE: &str = "active";

pub(crate) fn add_key(
    db: &DB,
    batch: &mut WriteBatch,
    record: &GeographyKeyRecord,
    activate: bool,
    if_none: bool,
) -> Outcome {
    let cf = db::cf(db, CF_GEOGRAPHY_KEYS)?;
    let active_key = db::join_key(&[ACTIVE, &record.geography]);
    if if_none
        && db
            .get_cf(cf, &active_key)
            .map_err(StoreError::storage)?
            .is_some()
    {
        return Ok(Err(Error::new(
            ErrorCode::Conflict,
            format!(
                "Geography {} already has a backup key.",
                coffer_types::error::quote_user_text(&record.geography)
            ),
        )));
    }
    let key = db::join_key(&[KEY, &record.id]);
    if let Some(existing) = get::<GeographyKeyRecord>(db, &key)? {
        if existing.geography != record.geography {
            return Ok(Err(Error::bad_parameter(
                "This key is already held for another geography.",
            )));
        }
    } else {
        batch.put_cf(cf, &key, db::encode(record)?);
    }
    if activate {
        batch.put_cf(cf, &active_key, db::encode(&record.id)?);
    }
    Ok(Ok(Applied::GeographyKey(record.clone())))
}

fn get<T: serde::de::DeserializeOwned>(db: &DB, key: &[u8]) -> Result<Option<T>, StoreError> {
    db.get_cf(db::cf(db, CF_GEOGRAPHY_KEYS)?, key)
        .map_err(StoreError::storage)?
        .map(|bytes| db::decode(&bytes))
        .transpose()
}

/// The key `id`, if this cluster holds it.
pub(crate) fn key(db: &DB, id: &str) -> Result<Option<GeographyKeyRecord>, StoreError> {
    get(db, &db::join_key(&[KEY, id]))
}

/// The key new backups of `geography` are sealed with.
pub(crate) fn active_key(
    db: &DB,
    geography: &str,
) -> Result<Option<GeographyKeyRecord>, StoreError> {
    match get::<String>(db, &db::join_key(&[ACTIVE, geography]))? {
        Some(id) => key(db, &id),
        None => Ok(None),
    }
}

/// Every key held, by id.
pub(crate) fn keys(db: &DB) -> Result<Vec<GeographyKeyRecord>, StoreError> {
    let prefix = db::prefix(&[KEY]);
    let mut out = Vec::new();
    let cf = db::cf(db, CF_GEOGRAPHY_KEYS)?;
    for item in db.iterator_cf(
        cf,
        rocksdb::IteratorMode::From(&prefix, rocksdb::Direction::Forward),
    ) {
        let (k, value) = item.map_err(StoreError::storage)?;
        if !k.starts_with(&prefix) {
            break;
        }
        out.push(db::decode(&value)?);
    }
    Ok(out)
}
