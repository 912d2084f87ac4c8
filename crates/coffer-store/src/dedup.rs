//! Applying a proposal at most once per request id.
//!
//! A client that loses the answer to a write (the leader crashed after committing it, or the
//! connection dropped) retries with the same request id. The state machine remembers, for the
//! last [`WINDOW`] log entries, which request ids it applied and what it answered, and answers a
//! repeat from that record instead of applying the command again.
//!
//! Two column families hold this, both part of the state machine (and so of snapshots), since
//! every replica must make the same decision:
//! - `requests`: `request id` → [`Remembered`]
//! - `request_order`: `log index (20 digits) \0 request id` → empty, to forget in log order.
//!
//! Forgetting is driven by the log index, not the clock, so every replica forgets the same ids
//! at the same entry.

use coffer_types::Error;
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::apply::{apply_command, load_secret};
use crate::command::{Applied, Proposal};
use crate::db::{self, CF_REQUEST_ORDER, CF_REQUESTS, CF_SM_META};

/// How many log entries a request id is remembered for. A retry arrives within seconds; at
/// thousands of writes per second this still covers several seconds of retries, and at the
/// usual rates far more.
pub(crate) const WINDOW: u64 = 50_000;

/// What a request was answered, kept small: a secret's answer is a reference to the stored
/// version, not a second copy of its sealed value.
#[derive(Serialize, Deserialize)]
enum Remembered {
    Answer(Applied),
    Secret {
        vault: String,
        name: String,
        version: String,
    },
    Key {
        vault: String,
        name: String,
        version: String,
    },
}

fn order_key(index: u64, request_id: &str) -> Vec<u8> {
    format!("{index:020}\0{request_id}").into_bytes()
}

/// Applies `proposal` (the entry at `index`) into `batch` unless its request id was already
/// applied, in which case the earlier answer is returned and `batch` gains only the forgetting.
pub(crate) fn apply_once(
    db: &DB,
    batch: &mut WriteBatch,
    index: u64,
    proposal: &Proposal,
) -> Result<Applied, StoreError> {
    forget_old(db, batch, index)?;
    let requests = db::cf(db, CF_REQUESTS)?;
    if let Some(bytes) = db
        .get_cf(requests, proposal.request_id.as_bytes())
        .map_err(StoreError::storage)?
    {
        tracing::debug!(request_id = %proposal.request_id, "repeated request answered from its first application");
        return recall(db, db::decode(&bytes)?);
    }
    let answer = apply_command(db, batch, &proposal.command)?;
    let remembered = match &answer {
        Applied::Secret(record) => match &proposal.command {
            crate::Command::PutSecret { vault, .. }
            | crate::Command::UpdateSecret { vault, .. } => Remembered::Secret {
                vault: vault.clone(),
                name: record.name.to_ascii_lowercase(),
                version: record.version.clone(),
            },
            _ => Remembered::Answer(Applied::Nothing),
        },
        Applied::Key(record) => match &proposal.command {
            crate::Command::PutKey { vault, .. } | crate::Command::UpdateKey { vault, .. } => {
                Remembered::Key {
                    vault: vault.clone(),
                    name: record.name.to_ascii_lowercase(),
                    version: record.version.clone(),
                }
            }
            _ => Remembered::Answer(Applied::Nothing),
        },
        other => Remembered::Answer(other.clone()),
    };
    batch.put_cf(
        requests,
        proposal.request_id.as_bytes(),
        db::encode(&remembered)?,
    );
    batch.put_cf(
        db::cf(db, CF_REQUEST_ORDER)?,
        order_key(index, &proposal.request_id),
        [],
    );
    Ok(answer)
}

fn recall(db: &DB, remembered: Remembered) -> Result<Applied, StoreError> {
    Ok(match remembered {
        Remembered::Answer(answer) => answer,
        Remembered::Secret {
            vault,
            name,
            version,
        } => match load_secret(db, &vault, &name, &version)? {
            Some(record) => Applied::Secret(record),
            // Deleted since: the write did happen, but what it wrote is gone.
            None => Applied::Failed(Error::secret_version_not_found(&name, &version)),
        },
        Remembered::Key {
            vault,
            name,
            version,
        } => match crate::keys::load_key(db, &vault, &name, &version)? {
            Some(record) => Applied::Key(Box::new(record)),
            None => Applied::Failed(Error::key_version_not_found(&name, &version)),
        },
    })
}

/// Where the last sweep of `request_order` stopped (a log index), kept in `sm_meta`.
pub(crate) const KEY_FORGOTTEN_BELOW: &[u8] = b"requests_forgotten_below";

/// Drops remembered ids whose entries are more than [`WINDOW`] entries behind `index`.
///
/// The sweep starts where the previous one stopped rather than at the first key: the keys
/// before it were deleted, and until RocksDB compacts them away, an iterator from the start
/// would step over every one of those deletions on each applied entry.
fn forget_old(db: &DB, batch: &mut WriteBatch, index: u64) -> Result<(), StoreError> {
    let Some(horizon) = index.checked_sub(WINDOW) else {
        return Ok(());
    };
    let meta = db::cf(db, CF_SM_META)?;
    let start: u64 = db
        .get_cf(meta, KEY_FORGOTTEN_BELOW)
        .map_err(StoreError::storage)?
        .map(|bytes| db::decode(&bytes))
        .transpose()?
        .unwrap_or(0);
    let order = db::cf(db, CF_REQUEST_ORDER)?;
    let requests = db::cf(db, CF_REQUESTS)?;
    let bound = order_key(horizon, "");
    let from = order_key(start, "");
    // Each entry remembers at most one id, so each call forgets at most a few; the loop is
    // bounded all the same so that one entry never does unbounded work.
    let mut reached = horizon;
    for (n, item) in db
        .iterator_cf(order, IteratorMode::From(&from, Direction::Forward))
        .enumerate()
    {
        let (key, _) = item.map_err(StoreError::storage)?;
        if *key >= *bound {
            break;
        }
        let (entry, id) = split_order_key(&key)?;
        if n == 16 {
            // Stopped early: the next entry resumes here.
            reached = entry;
            break;
        }
        batch.delete_cf(requests, id);
        batch.delete_cf(order, &key);
    }
    batch.put_cf(meta, KEY_FORGOTTEN_BELOW, db::encode(&reached)?);
    Ok(())
}

/// The log index and request id of a `request_order` key.
fn split_order_key(key: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    let bad = || StoreError::Corrupt("malformed request order key".into());
    let nul = key.iter().position(|b| *b == 0).ok_or_else(bad)?;
    let entry = std::str::from_utf8(&key[..nul])
        .ok()
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(bad)?;
    Ok((entry, &key[nul + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;
    use crate::state_machine::tests::records;

    fn put(request_id: &str, version: &str) -> Proposal {
        let (vault, mut secret) = records();
        secret.version = version.repeat(32);
        Proposal {
            request_id: request_id.into(),
            command: Command::PutSecret {
                vault: "kv".into(),
                vault_id: vault.id,
                record: secret,
            },
        }
    }

    fn apply(db: &DB, index: u64, proposal: &Proposal) -> Applied {
        let mut batch = WriteBatch::default();
        let answer = apply_once(db, &mut batch, index, proposal).unwrap();
        db.write(batch).unwrap();
        answer
    }

    #[test]
    fn a_repeated_request_id_is_answered_once_and_forgotten_after_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(dir.path()).unwrap();
        let (vault, _) = records();
        let create = Proposal {
            request_id: "c".into(),
            command: Command::CreateVault {
                record: Box::new(vault),
            },
        };
        assert!(matches!(apply(&db, 1, &create), Applied::Vault(_)));

        let first = apply(&db, 2, &put("p", "a"));
        // The retry carries a different version (the gateway reseals on each attempt), yet the
        // first answer comes back and no second version appears.
        let again = apply(&db, 3, &put("p", "b"));
        match (&first, &again) {
            (Applied::Secret(a), Applied::Secret(b)) => assert_eq!(a.version, b.version),
            other => panic!("unexpected answers {other:?}"),
        }
        assert!(
            load_secret(&db, "kv", "a", &"b".repeat(32))
                .unwrap()
                .is_none()
        );
        // Re-creating the vault under the same id answers the first success, not Conflict.
        assert!(matches!(apply(&db, 4, &create), Applied::Vault(_)));

        // Far past the window, the id is forgotten and a proposal under it applies anew.
        let later = apply(&db, 2 + WINDOW + 1, &put("x", "c"));
        assert!(matches!(later, Applied::Secret(_)));
        let requests = db::cf(&db, CF_REQUESTS).unwrap();
        assert!(db.get_cf(requests, b"p").unwrap().is_none());
        assert!(db.get_cf(requests, b"c").unwrap().is_none());
        assert!(
            matches!(apply(&db, 2 + WINDOW + 2, &put("p", "d")), Applied::Secret(r) if r.version == "d".repeat(32))
        );
    }
}
