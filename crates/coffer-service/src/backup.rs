//! Backups: one object (`backup_secret`/`restore_secret`, `backup_key`/`restore_key`, Azure's
//! semantics) and a whole vault
//! (`backup_vault`/`restore_vault`, for disaster recovery), and the geography keys that seal
//! them.
//!
//! A backup holds values in plaintext only inside frames sealed with the active key of this
//! cluster's geography (coffer-crypto `backup`), so it opens only in a cluster holding that key:
//! geography-bound by cryptography. Its header, readable without the key, names the geography
//! and key, so a restore elsewhere is refused with a clear error before anything is written.
//! Restored values are sealed again with the target vault's data key before they are proposed.
//!
//! A vault backup streams: the producer reads one RocksDB snapshot object by object and sends
//! sealed frames of bounded size through a bounded channel. A vault restore first receives the
//! whole stream into a temporary file while checking every frame (nothing is written to the
//! state until the backup is known to be complete and intact), then replays the file in
//! batches. Neither side holds the whole vault in memory.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use coffer_crypto::SecretString;
use coffer_crypto::backup::{BackupHeader, FrameOpener, GeographyKey, encode_header, parse_header};
use coffer_crypto::keys::KeyMaterial;
use coffer_store::{
    Applied, Command, ExportedObject, LifecycleCommand, RestoredObject, VaultExportItem,
};
use coffer_types::authz::{DataOperation, Scope, mgmt};
use coffer_types::keys::{KeyOperation, KeyType};
use coffer_types::limits::MAX_SECRET_VALUE_BYTES;
use coffer_types::records::RECORD_FORMAT;
use coffer_types::{
    DeletedObjectRecord, Error, ErrorCode, GeographyKeyRecord, InnerCode, KeyRecord, ObjectKind,
    ObjectName, SecretRecord, Sku, Tags, VaultName, VaultRecord, Version,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use zeroize::{Zeroize, Zeroizing};

use crate::keys::key_context;
use crate::request::{Consistency, RequestContext};
use crate::secrets::secret_context;
use crate::{KeyBundle, SecretBundle, Service};

/// Azure's limit on the versions one object backup holds.
pub const MAX_BACKUP_VERSIONS: usize = 500;
/// Frames of a vault backup are cut at about this much plaintext.
const FRAME_TARGET_BYTES: usize = 1 << 20;
/// A restore proposes its objects in entries of at most about this many sealed bytes...
const RESTORE_BATCH_BYTES: usize = 2 << 20;
/// ...and at most this many objects.
const RESTORE_BATCH_OBJECTS: usize = 500;
/// Chunks of a streamed vault backup in flight between the producer and the connection.
const STREAM_DEPTH: usize = 4;
/// The largest vault backup a restore receives: far above any vault this design serves (100,000
/// secrets back up to about 37 MiB), and a bound on the disk a hostile upload can fill.
const MAX_RESTORE_BYTES: u64 = 16 << 30;

/// The chunks of a vault backup, in order; an `Err` ends the stream.
pub type BackupStream = mpsc::Receiver<Result<Vec<u8>, Error>>;

/// What one sealed frame holds.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Frame {
    Vault(VaultPayload),
    Objects(Vec<ObjectPayload>),
    End { objects: u64, versions: u64 },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VaultPayload {
    name: String,
    location: String,
    sku: Sku,
    retention_days: u32,
    purge_protection: bool,
    tags: Tags,
    /// The vault's firewall, so that a restored copy is no more reachable than the original.
    #[serde(default)]
    network: coffer_types::NetworkRuleSet,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectPayload {
    kind: ObjectKind,
    name: String,
    latest_version: String,
    deleted: Option<DeletedPayload>,
    versions: Vec<VersionPayload>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeletedPayload {
    deleted_date: i64,
    scheduled_purge_date: i64,
}

/// One version with its value (a secret's value, a key's private material) in plaintext:
/// exists only between unsealing from the store and sealing into a frame (or the reverse), and
/// is wiped when dropped.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionPayload {
    version: String,
    value: String,
    /// What a key version holds besides its material; absent for secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<KeyVersionPayload>,
    content_type: Option<String>,
    enabled: bool,
    not_before: Option<i64>,
    expires: Option<i64>,
    created: i64,
    updated: i64,
    tags: Tags,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyVersionPayload {
    kty: KeyType,
    key_ops: Vec<KeyOperation>,
    imported: bool,
}

impl Drop for VersionPayload {
    fn drop(&mut self) {
        self.value.zeroize();
    }
}

fn crypto_internal(e: impl std::fmt::Display) -> Error {
    Error::internal(e.to_string())
}

fn damaged() -> Error {
    Error::bad_parameter(
        "The backup is damaged or was altered, or was not made by a Coffer cluster of this \
         geography.",
    )
}

fn encode_frame(frame: &Frame) -> Result<Zeroizing<Vec<u8>>, Error> {
    serde_json::to_vec(frame)
        .map(Zeroizing::new)
        .map_err(crypto_internal)
}

fn decode_frame(bytes: &[u8]) -> Result<Frame, Error> {
    serde_json::from_slice(bytes).map_err(|_| damaged())
}

impl Service {
    // Geography keys.

    /// Makes sure this cluster's geography has a backup key: every node proposes a first key
    /// at start and the first proposal wins.
    pub async fn ensure_geography_key(&self) -> Result<(), Error> {
        self.store.read_barrier().await?;
        if self.store.active_geography_key(self.geography())?.is_some() {
            return Ok(());
        }
        let key = GeographyKey::generate(self.geography()).map_err(crypto_internal)?;
        let record = self.geography_key_record(&key, false)?;
        let command = Command::AddGeographyKey {
            record,
            activate: true,
            if_none: true,
        };
        let request_id = format!("geography-key-{}", crate::new_uuid()?);
        match self.store.write(request_id, command).await? {
            Applied::GeographyKey(record) => {
                tracing::info!(geography = %record.geography, id = %record.id, "geography backup key created");
                Ok(())
            }
            Applied::Failed(e) if e.code == ErrorCode::Conflict => Ok(()),
            Applied::Failed(e) => Err(e),
            other => Err(Error::internal(format!(
                "unexpected store answer {other:?}"
            ))),
        }
    }

    fn geography_key_record(
        &self,
        key: &GeographyKey,
        imported: bool,
    ) -> Result<GeographyKeyRecord, Error> {
        Ok(GeographyKeyRecord {
            format: RECORD_FORMAT,
            id: key.id().to_owned(),
            geography: key.geography().to_owned(),
            sealed_key: key
                .seal_with_root(self.data_keys.root())
                .map_err(crypto_internal)?,
            added: self.clock.now_unix(),
            imported,
        })
    }

    fn open_geography_key(&self, record: &GeographyKeyRecord) -> Result<GeographyKey, Error> {
        GeographyKey::unseal_with_root(self.data_keys.root(), &record.geography, &record.sealed_key)
            .map_err(|e| {
                tracing::error!(id = %record.id, error = %e, "geography key does not unseal");
                Error::internal("The geography backup key could not be opened with the root key.")
            })
    }

    /// The key new backups are sealed with.
    fn active_geography_key(&self) -> Result<GeographyKey, Error> {
        let record = self
            .store
            .active_geography_key(self.geography())?
            .ok_or_else(|| {
                Error::unavailable("This cluster has no geography backup key yet; retry shortly.")
            })?;
        self.open_geography_key(&record)
    }

    /// The key that opens a backup with `header`, refusing a backup of another geography or
    /// sealed with a key this cluster does not hold.
    fn key_for_backup(&self, header: &BackupHeader, kind: &str) -> Result<GeographyKey, Error> {
        if header.kind != kind {
            return Err(Error::bad_parameter(format!(
                "This is a backup of a {}, not of a {kind}.",
                coffer_types::error::quote_user_text(&header.kind)
            )));
        }
        if header.geography != self.geography() {
            return Err(Error::bad_parameter(format!(
                "This backup was made in geography {} and can be restored only in a cluster of \
                 that geography; this cluster is in geography {}.",
                coffer_types::error::quote_user_text(&header.geography),
                coffer_types::error::quote_user_text(self.geography())
            ))
            .with_inner(InnerCode::GeographyMismatch));
        }
        let record = self.store.geography_key(&header.key_id)?.ok_or_else(|| {
            Error::bad_parameter(format!(
                "This backup is sealed with geography key {}, which this cluster does not hold. \
                 Export it from the cluster that made the backup and import it here with \
                 'coffer operator geography-key import'.",
                coffer_types::error::quote_user_text(&header.key_id)
            ))
            .with_inner(InnerCode::GeographyMismatch)
        })?;
        self.open_geography_key(&record)
    }

    /// The geography keys this cluster holds, with the active one marked.
    pub async fn list_geography_keys(
        &self,
        ctx: &RequestContext,
    ) -> Result<Vec<(GeographyKeyRecord, bool)>, Error> {
        self.authorize(ctx, &Scope::cluster(), mgmt::GEOGRAPHY_KEY_READ)?;
        self.read_point(ctx.consistency).await?;
        let active = self
            .store
            .active_geography_key(self.geography())?
            .map(|r| r.id);
        Ok(self
            .store
            .geography_keys()?
            .into_iter()
            .map(|r| {
                let is_active = active.as_deref() == Some(r.id.as_str());
                (r, is_active)
            })
            .collect())
    }

    /// The active geography key wrapped under `passphrase`, for import into another cluster
    /// of the geography.
    pub async fn export_geography_key(
        &self,
        ctx: &RequestContext,
        passphrase: &SecretString,
    ) -> Result<(GeographyKeyRecord, String), Error> {
        self.authorize(ctx, &Scope::cluster(), mgmt::GEOGRAPHY_KEY_EXPORT)?;
        self.store.read_barrier().await?;
        let record = self
            .store
            .active_geography_key(self.geography())?
            .ok_or_else(|| Error::unavailable("This cluster has no geography backup key yet."))?;
        let key = self.open_geography_key(&record)?;
        let wrapped = key
            .export(passphrase)
            .map_err(|e| Error::bad_parameter(e.to_string()))?;
        Ok((record, wrapped))
    }

    /// Adds a wrapped key of this cluster's geography, so backups sealed with it open here.
    /// With `activate`, it also becomes the key this cluster's new backups are sealed with, so
    /// they open in the cluster it came from.
    pub async fn import_geography_key(
        &self,
        ctx: &RequestContext,
        wrapped: &str,
        passphrase: &SecretString,
        activate: bool,
    ) -> Result<(GeographyKeyRecord, bool), Error> {
        self.authorize(ctx, &Scope::cluster(), mgmt::GEOGRAPHY_KEY_IMPORT)?;
        let key = GeographyKey::import(wrapped, passphrase).map_err(|_| {
            Error::bad_parameter(
                "The wrapped geography key could not be opened: the passphrase is wrong or the \
                 key was altered.",
            )
        })?;
        if key.geography() != self.geography() {
            return Err(Error::bad_parameter(format!(
                "The key belongs to geography {}; this cluster is in geography {}.",
                coffer_types::error::quote_user_text(key.geography()),
                coffer_types::error::quote_user_text(self.geography())
            ))
            .with_inner(InnerCode::GeographyMismatch));
        }
        let command = Command::AddGeographyKey {
            record: self.geography_key_record(&key, true)?,
            activate,
            if_none: false,
        };
        match self
            .store
            .write(ctx.request_id().to_owned(), command)
            .await?
        {
            Applied::GeographyKey(record) => {
                let active = self
                    .store
                    .active_geography_key(self.geography())?
                    .is_some_and(|a| a.id == record.id);
                Ok((record, activate || active))
            }
            Applied::Failed(e) => Err(e),
            other => Err(Error::internal(format!(
                "unexpected store answer {other:?}"
            ))),
        }
    }

    // One object.

    /// Every version of a secret with its attributes and tags, sealed with the geography key.
    pub async fn backup_secret(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
    ) -> Result<Vec<u8>, Error> {
        self.backup_object(ctx, vault, name, DataOperation::SecretBackup)
            .await
    }

    /// Every version of a key (its material, attributes and tags), sealed with the geography
    /// key.
    pub async fn backup_key(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
    ) -> Result<Vec<u8>, Error> {
        self.backup_object(ctx, vault, name, DataOperation::KeyBackup)
            .await
    }

    async fn backup_object(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
        operation: DataOperation,
    ) -> Result<Vec<u8>, Error> {
        let kind = operation.object_kind();
        let vault_name = VaultName::parse(vault)?;
        let name = ObjectName::parse(name)?;
        let vault = self.vault_for(&vault_name, ctx.consistency).await?;
        self.authorize_data(ctx, &vault, operation, Some(&name.key()))?;
        // One snapshot: a concurrent write or delete cannot tear the copy.
        let object = match self.store.export_object(
            &vault_name.key(),
            kind,
            &name.key(),
            MAX_BACKUP_VERSIONS,
        )? {
            None if kind == ObjectKind::Key => return Err(Error::key_not_found(name.as_str())),
            None => return Err(Error::secret_not_found(name.as_str())),
            Some(Err(_)) => return Err(too_many_versions(kind, name.as_str())),
            Some(Ok(object)) => object,
        };
        let payload = self.object_payload(&vault, object)?;
        let key = self.active_geography_key()?;
        let header = key.header(kind.as_str(), self.clock.now_unix());
        let frame = encode_frame(&Frame::Objects(vec![payload]))?;
        key.seal_blob(&header, &frame).map_err(crypto_internal)
    }

    /// Unseals an object's versions into a backup payload.
    fn object_payload(
        &self,
        vault: &VaultRecord,
        object: ExportedObject,
    ) -> Result<ObjectPayload, Error> {
        let data_key = self.data_keys.data_key(vault)?;
        let vault_key = vault.name.to_ascii_lowercase();
        let name = exported_name(&object)
            .ok_or_else(|| Error::internal("An object's latest version is missing."))?;
        let name_key = name.to_ascii_lowercase();
        let unsealed = |context: coffer_crypto::SealContext<'_>, sealed: &[u8], version: &str| {
            data_key.unseal(&context, sealed).map_err(|e| {
                tracing::error!(vault = %vault.name, object = %name, version = %version, error = %e, "stored object does not unseal");
                Error::internal("A stored object could not be decrypted.")
            })
        };
        let mut versions = Vec::with_capacity(exported_len(&object));
        for record in object.versions {
            let context = secret_context(&vault_key, &name_key, &record.version);
            let plain = unsealed(context, &record.sealed_value, &record.version)?;
            versions.push(VersionPayload {
                version: record.version,
                value: B64.encode(plain.expose()),
                key: None,
                content_type: record.content_type,
                enabled: record.enabled,
                not_before: record.not_before,
                expires: record.expires,
                created: record.created,
                updated: record.updated,
                tags: record.tags,
            });
        }
        for record in object.key_versions {
            let context = key_context(&vault_key, &name_key, &record.version);
            let plain = unsealed(context, &record.sealed_private, &record.version)?;
            versions.push(VersionPayload {
                version: record.version,
                value: B64.encode(plain.expose()),
                key: Some(KeyVersionPayload {
                    kty: record.kty,
                    key_ops: record.key_ops,
                    imported: record.imported,
                }),
                content_type: None,
                enabled: record.enabled,
                not_before: record.not_before,
                expires: record.expires,
                created: record.created,
                updated: record.updated,
                tags: record.tags,
            });
        }
        Ok(ObjectPayload {
            kind: object.kind,
            name,
            latest_version: object.latest_version,
            deleted: object.deleted.map(|d| DeletedPayload {
                deleted_date: d.deleted_date,
                scheduled_purge_date: d.scheduled_purge_date,
            }),
            versions,
        })
    }

    /// Restores a secret backup into `vault`, keeping its name and version ids. Refused, with
    /// nothing written, if the name is in use (active or deleted), the backup belongs to
    /// another geography, or it was altered.
    pub async fn restore_secret(
        &self,
        ctx: &RequestContext,
        vault: &str,
        blob: &[u8],
    ) -> Result<SecretBundle, Error> {
        let (vault, mut restored) = self
            .restore_object(ctx, vault, blob, DataOperation::SecretRestore)
            .await?;
        let latest = restored
            .versions
            .drain(..)
            .find(|v| v.version == restored.latest_version)
            .ok_or_else(damaged)?;
        Ok(SecretBundle {
            vault,
            record: latest,
            value: None,
        })
    }

    /// Restores a key backup into `vault`, as [`Service::restore_secret`] does a secret's.
    pub async fn restore_key(
        &self,
        ctx: &RequestContext,
        vault: &str,
        blob: &[u8],
    ) -> Result<KeyBundle, Error> {
        let (vault, mut restored) = self
            .restore_object(ctx, vault, blob, DataOperation::KeyRestore)
            .await?;
        let latest = restored
            .key_versions
            .drain(..)
            .find(|v| v.version == restored.latest_version)
            .ok_or_else(damaged)?;
        Ok(KeyBundle {
            vault,
            record: latest,
        })
    }

    /// Restores a one-object backup of the kind `operation` names; returns what was written
    /// (this node may not have applied it yet).
    async fn restore_object(
        &self,
        ctx: &RequestContext,
        vault: &str,
        blob: &[u8],
        operation: DataOperation,
    ) -> Result<(VaultRecord, RestoredObject), Error> {
        let kind = operation.object_kind();
        let vault_name = VaultName::parse(vault)?;
        let vault = self
            .vault_for(&vault_name, Consistency::Linearizable)
            .await?;
        self.authorize_data(ctx, &vault, operation, None)?;
        let Some((header, _)) = parse_header(blob).map_err(|_| damaged())? else {
            return Err(damaged());
        };
        let key = self.key_for_backup(&header, kind.as_str())?;
        let (_, plain) = coffer_crypto::backup::open_blob(&key, blob).map_err(|_| damaged())?;
        let Frame::Objects(mut objects) = decode_frame(plain.expose())? else {
            return Err(damaged());
        };
        let (Some(object), true) = (objects.pop(), objects.is_empty()) else {
            return Err(damaged());
        };
        if object.deleted.is_some() || object.kind != kind {
            return Err(damaged());
        }
        check_object(&object)?;
        let restored = self.restored_object(&vault, &object)?;
        let command = LifecycleCommand::RestoreObjects {
            vault: vault_name.key(),
            vault_id: vault.id.clone(),
            objects: vec![restored.clone()],
        };
        match self
            .store
            .write(ctx.request_id().to_owned(), Command::Lifecycle(command))
            .await?
        {
            Applied::Restored { .. } => Ok((vault, restored)),
            Applied::Failed(e) => Err(e),
            other => Err(Error::internal(format!(
                "unexpected store answer {other:?}"
            ))),
        }
    }

    /// Seals a checked object's values for `vault`.
    fn restored_object(
        &self,
        vault: &VaultRecord,
        object: &ObjectPayload,
    ) -> Result<RestoredObject, Error> {
        let data_key = self.data_keys.data_key(vault)?;
        let vault_key = vault.name.to_ascii_lowercase();
        let name = ObjectName::parse(&object.name).map_err(|_| damaged())?;
        let name_key = name.key();
        let mut versions = Vec::new();
        let mut key_versions = Vec::new();
        for v in &object.versions {
            let value = decode_value(object.kind, &v.value)?;
            match (object.kind, &v.key) {
                (ObjectKind::Key, Some(key)) => {
                    crate::keys::vault_allows(vault, key.kty)?;
                    // Parsing checks the material, and gives the public parts and size.
                    let material = KeyMaterial::from_bytes(&value).map_err(|_| damaged())?;
                    if material.family() != key.kty.family() {
                        return Err(damaged());
                    }
                    let context = key_context(&vault_key, &name_key, &v.version);
                    let sealed_private =
                        data_key.seal(&context, &value).map_err(crypto_internal)?;
                    key_versions.push(KeyRecord {
                        format: RECORD_FORMAT,
                        name: name.as_str().to_owned(),
                        version: v.version.clone(),
                        kty: key.kty,
                        key_ops: key.key_ops.clone(),
                        key_size: material.key_size(),
                        public: material.public_jwk(),
                        sealed_private,
                        enabled: v.enabled,
                        not_before: v.not_before,
                        expires: v.expires,
                        created: v.created,
                        updated: v.updated,
                        tags: v.tags.clone(),
                        imported: key.imported,
                    });
                }
                (ObjectKind::Secret, None) => {
                    let context = secret_context(&vault_key, &name_key, &v.version);
                    let sealed_value = data_key.seal(&context, &value).map_err(crypto_internal)?;
                    versions.push(SecretRecord {
                        format: RECORD_FORMAT,
                        name: name.as_str().to_owned(),
                        version: v.version.clone(),
                        sealed_value,
                        content_type: v.content_type.clone(),
                        enabled: v.enabled,
                        not_before: v.not_before,
                        expires: v.expires,
                        created: v.created,
                        updated: v.updated,
                        tags: v.tags.clone(),
                    });
                }
                _ => return Err(damaged()),
            }
        }
        let deleted = object.deleted.as_ref().map(|d| DeletedObjectRecord {
            format: RECORD_FORMAT,
            kind: object.kind,
            name: name.as_str().to_owned(),
            latest_version: object.latest_version.clone(),
            deleted_date: d.deleted_date,
            // The target vault's retention decides, counted from the original deletion.
            scheduled_purge_date: vault.scheduled_purge_date(d.deleted_date),
        });
        Ok(RestoredObject {
            kind: object.kind,
            latest_version: object.latest_version.clone(),
            versions,
            key_versions,
            deleted,
        })
    }

    // A whole vault.

    /// Streams a consistent copy of the vault `name`: its properties and every object, active
    /// and deleted, with all versions (at most 500 per object, as for one object's backup).
    pub async fn backup_vault(
        &self,
        ctx: &RequestContext,
        name: &str,
    ) -> Result<BackupStream, Error> {
        let vault_name = VaultName::parse(name)?;
        let vault = self
            .authorized_vault(ctx, &vault_name, mgmt::VAULT_READ)
            .await?;
        // Copying the vault hands out every value in it: it takes the data-plane backup
        // permission, which no read-only role holds; keys, if the vault holds any, take the
        // keys' (checked as the copy meets its first key, so one created meanwhile counts).
        self.authorize_data(ctx, &vault, DataOperation::SecretBackup, None)?;
        let keys_allowed = self.authorize_data(ctx, &vault, DataOperation::KeyBackup, None);
        let key = self.active_geography_key()?;
        let (tx, rx) = mpsc::channel(STREAM_DEPTH);
        let service = self.clone();
        let vault_key = vault_name.key();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = service.produce_vault_backup(&vault_key, &key, keys_allowed, &tx) {
                // The receiver may be gone; then nobody is left to tell.
                let _ = tx.blocking_send(Err(e));
            }
        });
        Ok(rx)
    }

    fn produce_vault_backup(
        &self,
        vault_key: &str,
        key: &GeographyKey,
        keys_allowed: Result<(), Error>,
        tx: &mpsc::Sender<Result<Vec<u8>, Error>>,
    ) -> Result<(), Error> {
        let header =
            encode_header(&key.header("vault", self.clock.now_unix())).map_err(crypto_internal)?;
        let mut sealer = key.sealer(header.clone());
        let send = |bytes: Vec<u8>| -> Result<(), Error> {
            tx.blocking_send(Ok(bytes))
                .map_err(|_| Error::unavailable("The backup was abandoned by its receiver."))
        };
        send(header)?;
        let mut vault: Option<VaultRecord> = None;
        let mut batch: Vec<ObjectPayload> = Vec::new();
        let mut batch_bytes = 0usize;
        let (mut objects, mut versions) = (0u64, 0u64);
        let flush = |sealer: &mut coffer_crypto::backup::FrameSealer,
                     batch: &mut Vec<ObjectPayload>|
         -> Result<(), Error> {
            if batch.is_empty() {
                return Ok(());
            }
            let frame = encode_frame(&Frame::Objects(std::mem::take(batch)))?;
            send(sealer.seal(&frame, false).map_err(crypto_internal)?)
        };
        self.store
            .export_vault(vault_key, |item| -> Result<(), Error> {
                match item {
                    VaultExportItem::Vault(record) => {
                        let frame = encode_frame(&Frame::Vault(VaultPayload {
                            name: record.name.clone(),
                            location: record.location.clone(),
                            sku: record.sku,
                            retention_days: record.retention_days,
                            purge_protection: record.purge_protection,
                            tags: record.tags.clone(),
                            network: record.network.clone(),
                        }))?;
                        send(sealer.seal(&frame, false).map_err(crypto_internal)?)?;
                        vault = Some(*record);
                    }
                    VaultExportItem::Object(object) => {
                        let Some(vault) = vault.as_ref() else {
                            return Err(Error::internal("vault export began without its vault"));
                        };
                        if object.kind == ObjectKind::Key {
                            keys_allowed.clone()?;
                        }
                        if exported_len(&object) > MAX_BACKUP_VERSIONS {
                            let name = exported_name(&object).unwrap_or_default();
                            return Err(too_many_versions(object.kind, &name));
                        }
                        objects += 1;
                        versions += exported_len(&object) as u64;
                        let size: usize = object
                            .versions
                            .iter()
                            .map(|v| v.sealed_value.len() * 4 / 3 + 512)
                            .chain(
                                object
                                    .key_versions
                                    .iter()
                                    .map(|v| v.sealed_private.len() * 4 / 3 + 512),
                            )
                            .sum();
                        // One object per frame at most this large: 500 versions of 25 KB,
                        // base64, stay well under a frame's limit.
                        if batch_bytes + size > FRAME_TARGET_BYTES {
                            flush(&mut sealer, &mut batch)?;
                            batch_bytes = 0;
                        }
                        batch_bytes += size;
                        batch.push(self.object_payload(vault, object)?);
                    }
                }
                Ok(())
            })?;
        flush(&mut sealer, &mut batch)?;
        let end = encode_frame(&Frame::End { objects, versions })?;
        send(sealer.seal(&end, true).map_err(crypto_internal)?)
    }

    /// Restores a vault backup as the new vault `name` (in `location`, or the backed-up
    /// vault's). The backup is received whole and checked — every frame opened, every object
    /// validated, the counts compared — before anything is written; a backup of another
    /// geography, or altered, truncated or reordered, is refused.
    pub async fn restore_vault(
        &self,
        ctx: &RequestContext,
        name: &str,
        location: Option<String>,
        mut chunks: mpsc::Receiver<Result<Vec<u8>, Error>>,
    ) -> Result<VaultRecord, Error> {
        let target = VaultName::parse(name)?;
        self.authorize(ctx, &Scope::vault(&target.key())?, mgmt::VAULT_WRITE)?;
        let spool = Spool::create(&self.spool_dir)?;
        let mut file = spool.writer().await?;
        let mut pending: Vec<u8> = Vec::new();
        let mut checker: Option<FrameOpener> = None;
        let mut vault_payload: Option<VaultPayload> = None;
        let mut counted = (0u64, 0u64);
        // Secrets and keys are separate namespaces: one name may be both.
        let mut names = std::collections::HashSet::new();
        let mut holds_keys = false;
        let mut ended = false;
        let mut received = 0u64;
        while let Some(chunk) = chunks.recv().await {
            let chunk = chunk?;
            received = received.saturating_add(chunk.len() as u64);
            if received > MAX_RESTORE_BYTES {
                return Err(Error::bad_parameter(
                    "The backup is larger than a vault restore accepts (16 GiB).",
                ));
            }
            file.write_all(&chunk).await.map_err(spool_error)?;
            pending.extend_from_slice(&chunk);
            if checker.is_none() {
                match parse_header(&pending).map_err(|_| damaged())? {
                    None => continue,
                    Some((header, used)) => {
                        let key = self.key_for_backup(&header, "vault")?;
                        checker = Some(key.opener(pending[..used].to_vec()));
                        pending.drain(..used);
                    }
                }
            }
            let Some(opener) = checker.as_mut() else {
                continue;
            };
            while let Some(len) = FrameOpener::next_frame_len(&pending).map_err(|_| damaged())? {
                let (plain, last) = opener.open(&pending[..len]).map_err(|_| damaged())?;
                pending.drain(..len);
                match decode_frame(plain.expose())? {
                    Frame::Vault(v) if vault_payload.is_none() => vault_payload = Some(v),
                    Frame::Objects(objects) if vault_payload.is_some() && !ended => {
                        for object in &objects {
                            check_object(object)?;
                            if !names.insert((object.kind, object.name.to_ascii_lowercase())) {
                                return Err(damaged());
                            }
                            holds_keys |= object.kind == ObjectKind::Key;
                            counted.0 += 1;
                            counted.1 += object.versions.len() as u64;
                        }
                    }
                    Frame::End { objects, versions } if last && (objects, versions) == counted => {
                        ended = true
                    }
                    _ => return Err(damaged()),
                }
            }
        }
        if !ended || !pending.is_empty() {
            return Err(damaged());
        }
        let Some(payload) = vault_payload else {
            return Err(damaged());
        };
        file.flush().await.map_err(spool_error)?;
        file.into_inner().sync_all().await.map_err(spool_error)?;

        // The restored vault uses RBAC in the caller's tenant: the restore is refused now,
        // before the vault exists, if the caller could not restore into it.
        let location = location.unwrap_or(payload.location.clone());
        let prospective = VaultRecord {
            format: RECORD_FORMAT,
            id: String::new(),
            name: target.as_str().to_owned(),
            location: location.clone(),
            sku: payload.sku,
            retention_days: payload.retention_days,
            purge_protection: payload.purge_protection,
            tags: payload.tags.clone(),
            created: 0,
            updated: 0,
            wrapped_key: Vec::new(),
            enable_rbac_authorization: true,
            access_policies: Vec::new(),
            network: Default::default(),
            throttle: Default::default(),
            tenant_id: ctx.caller().tenant.clone(),
        };
        self.authorize_data(ctx, &prospective, DataOperation::SecretRestore, None)?;
        if holds_keys {
            self.authorize_data(ctx, &prospective, DataOperation::KeyRestore, None)?;
        }
        let created = self
            .create_vault(
                &ctx.step("vault"),
                crate::CreateVault {
                    name: target.as_str().to_owned(),
                    location,
                    sku: Some(payload.sku),
                    retention_days: payload.retention_days,
                    purge_protection: payload.purge_protection,
                    tags: payload
                        .tags
                        .iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                    enable_rbac_authorization: None,
                    network: Some(payload.network.clone()),
                },
            )
            .await?;
        if let Err(e) = self.replay_vault_backup(ctx, &created, &spool).await {
            tracing::error!(vault = %created.name, error = %e.message, "vault restore stopped part-way");
            return Err(Error::new(
                e.code,
                format!(
                    "The restore into vault {} stopped part-way and the vault is incomplete: \
                     delete and purge it, then restore again. Cause: {}",
                    coffer_types::error::quote_user_text(&created.name),
                    e.message
                ),
            ));
        }
        Ok(created)
    }

    /// Replays a checked vault backup from its spool file into `vault`, in batches.
    async fn replay_vault_backup(
        &self,
        ctx: &RequestContext,
        vault: &VaultRecord,
        spool: &Spool,
    ) -> Result<(), Error> {
        let mut reader = spool.reader().await?;
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut opener: Option<FrameOpener> = None;
        let mut batch: Vec<RestoredObject> = Vec::new();
        let mut batch_bytes = 0usize;
        let mut step = 0usize;
        let vault_key = vault.name.to_ascii_lowercase();
        loop {
            let n = reader.read(&mut buf).await.map_err(spool_error)?;
            if n == 0 {
                break;
            }
            pending.extend_from_slice(&buf[..n]);
            if opener.is_none() {
                let Some((header, used)) = parse_header(&pending).map_err(|_| damaged())? else {
                    continue;
                };
                let key = self.key_for_backup(&header, "vault")?;
                opener = Some(key.opener(pending[..used].to_vec()));
                pending.drain(..used);
            }
            let Some(open) = opener.as_mut() else {
                continue;
            };
            while let Some(len) = FrameOpener::next_frame_len(&pending).map_err(|_| damaged())? {
                let (plain, _) = open.open(&pending[..len]).map_err(|_| damaged())?;
                pending.drain(..len);
                let Frame::Objects(objects) = decode_frame(plain.expose())? else {
                    continue;
                };
                for object in objects {
                    let restored = self.restored_object(vault, &object)?;
                    batch_bytes += restored
                        .versions
                        .iter()
                        .map(|v| v.sealed_value.len() + 256)
                        .chain(
                            restored
                                .key_versions
                                .iter()
                                .map(|v| v.sealed_private.len() + 1024),
                        )
                        .sum::<usize>();
                    batch.push(restored);
                    if batch_bytes >= RESTORE_BATCH_BYTES || batch.len() >= RESTORE_BATCH_OBJECTS {
                        self.restore_batch(ctx, vault, &vault_key, &mut batch, step)
                            .await?;
                        step += 1;
                        batch_bytes = 0;
                    }
                }
            }
        }
        if !batch.is_empty() {
            self.restore_batch(ctx, vault, &vault_key, &mut batch, step)
                .await?;
        }
        Ok(())
    }

    async fn restore_batch(
        &self,
        ctx: &RequestContext,
        vault: &VaultRecord,
        vault_key: &str,
        batch: &mut Vec<RestoredObject>,
        step: usize,
    ) -> Result<(), Error> {
        let command = LifecycleCommand::RestoreObjects {
            vault: vault_key.to_owned(),
            vault_id: vault.id.clone(),
            objects: std::mem::take(batch),
        };
        match self
            .store
            .write(
                ctx.step(&format!("objects-{step}")).request_id().to_owned(),
                Command::Lifecycle(command),
            )
            .await?
        {
            Applied::Restored { .. } => Ok(()),
            Applied::Failed(e) => Err(e),
            other => Err(Error::internal(format!(
                "unexpected store answer {other:?}"
            ))),
        }
    }
}

/// How many versions an exported object holds, whatever its kind.
fn exported_len(object: &ExportedObject) -> usize {
    object.versions.len() + object.key_versions.len()
}

/// The name of an exported object, as its latest version has it.
fn exported_name(object: &ExportedObject) -> Option<String> {
    let latest = &object.latest_version;
    object
        .versions
        .iter()
        .find(|v| &v.version == latest)
        .map(|v| v.name.clone())
        .or_else(|| {
            object
                .key_versions
                .iter()
                .find(|v| &v.version == latest)
                .map(|v| v.name.clone())
        })
}

fn too_many_versions(kind: ObjectKind, name: &str) -> Error {
    Error::bad_parameter(format!(
        "The {} {} has more than {MAX_BACKUP_VERSIONS} versions, more than a backup holds.",
        kind.as_str(),
        coffer_types::error::quote_user_text(name)
    ))
}

/// The largest key material a backup may hold (an RSA-4096 private key is about 2.4 KB).
const MAX_KEY_MATERIAL_BYTES: usize = 16 * 1024;

/// A backed-up value: base64 (so a value of control characters cannot blow up the frame the
/// way JSON escapes would). A secret's is at most the largest secret and UTF-8, as every
/// stored secret is; a key's is bounded material.
fn decode_value(kind: ObjectKind, text: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    let bytes = Zeroizing::new(B64.decode(text).map_err(|_| damaged())?);
    let ok = match kind {
        ObjectKind::Key => bytes.len() <= MAX_KEY_MATERIAL_BYTES,
        _ => bytes.len() <= MAX_SECRET_VALUE_BYTES && std::str::from_utf8(&bytes).is_ok(),
    };
    if !ok {
        return Err(damaged());
    }
    Ok(bytes)
}

/// Everything a restore needs to hold of an object from a backup, checked before anything is
/// written: a kind this cluster stores, a valid name, 1 to 500 versions with valid, distinct
/// ids, the latest among them, values and tags within limits.
fn check_object(object: &ObjectPayload) -> Result<(), Error> {
    if !matches!(object.kind, ObjectKind::Secret | ObjectKind::Key) {
        return Err(Error::bad_parameter(
            "The backup holds objects of a kind this cluster cannot restore.",
        ));
    }
    ObjectName::parse(&object.name).map_err(|_| damaged())?;
    if object.versions.len() > MAX_BACKUP_VERSIONS {
        return Err(too_many_versions(object.kind, &object.name));
    }
    if object.versions.is_empty()
        || !object
            .versions
            .iter()
            .any(|v| v.version == object.latest_version)
    {
        return Err(damaged());
    }
    let mut ids = std::collections::HashSet::new();
    for v in &object.versions {
        Version::parse(&v.version).map_err(|_| damaged())?;
        if !ids.insert(v.version.as_str()) {
            return Err(damaged());
        }
        let value = decode_value(object.kind, &v.value)?;
        match &v.key {
            // The material must parse and be of its type's family, so a restore that got
            // this far cannot fail on it half-way.
            Some(key) if object.kind == ObjectKind::Key => {
                let material = KeyMaterial::from_bytes(&value).map_err(|_| damaged())?;
                if material.family() != key.kty.family() {
                    return Err(damaged());
                }
            }
            None if object.kind != ObjectKind::Key => {}
            _ => return Err(damaged()),
        }
        Tags::new(
            v.tags
                .iter()
                .map(|(k, val)| (k.to_owned(), val.to_owned()))
                .collect::<Vec<_>>(),
        )
        .map_err(|_| damaged())?;
        if v.content_type
            .as_ref()
            .is_some_and(|c| c.chars().count() > coffer_types::limits::MAX_CONTENT_TYPE_CHARS)
        {
            return Err(damaged());
        }
    }
    Ok(())
}

fn spool_error(e: std::io::Error) -> Error {
    tracing::error!(error = %e, "vault restore spool file failed");
    Error::internal("Receiving the backup failed on the server.")
}

/// A temporary file holding a received vault backup (ciphertext only: frames stay sealed),
/// removed when dropped.
struct Spool {
    path: PathBuf,
}

impl Spool {
    fn create(dir: &std::path::Path) -> Result<Self, Error> {
        let path = dir.join(format!("coffer-restore-{}", crate::new_uuid()?));
        Ok(Self { path })
    }

    async fn writer(&self) -> Result<tokio::io::BufWriter<tokio::fs::File>, Error> {
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.path)
            .await
            .map_err(spool_error)?;
        Ok(tokio::io::BufWriter::new(file))
    }

    async fn reader(&self) -> Result<tokio::fs::File, Error> {
        tokio::fs::File::open(&self.path).await.map_err(spool_error)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
