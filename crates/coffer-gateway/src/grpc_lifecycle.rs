//! The gRPC methods of the object and vault lifecycle (soft-delete, recovery, purge) and of
//! backups. The service traits' methods in `grpc` and `grpc_operator` delegate here.

use std::pin::Pin;

use coffer_proto::v1 as pb;
use coffer_service::{BackupStream, DeletedSecretBundle, Listing, SecretBundle};
use coffer_types::{DeletedVaultRecord, Error, GeographyKeyRecord};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::convert::{UriBase, secret_to_pb, status_from, vault_to_pb};
use crate::grpc::{GrpcApi, secret_target, vault_target};
use crate::pipeline::{Audited, Target};

pub(crate) type BackupChunkStream =
    Pin<Box<dyn Stream<Item = Result<pb::BackupChunk, Status>> + Send>>;

/// Chunks of a vault restore queued between the connection and the service.
const RESTORE_DEPTH: usize = 8;

fn deleted_secret_to_pb(bundle: DeletedSecretBundle, base: &UriBase) -> pb::DeletedSecret {
    let recovery_id = format!(
        "{}/deletedsecrets/{}",
        base.vault_uri(&bundle.vault.name),
        bundle.deleted.name
    );
    pb::DeletedSecret {
        recovery_id,
        deleted_date: bundle.deleted.deleted_date,
        scheduled_purge_date: bundle.deleted.scheduled_purge_date,
        secret: Some(secret_to_pb(
            SecretBundle {
                vault: bundle.vault,
                record: bundle.record,
                value: None,
            },
            base,
        )),
    }
}

fn deleted_vault_to_pb(deleted: &DeletedVaultRecord, base: &UriBase) -> pb::DeletedVault {
    pb::DeletedVault {
        vault: Some(vault_to_pb(&deleted.vault, base)),
        deleted_date: deleted.deleted_date,
        scheduled_purge_date: deleted.scheduled_purge_date,
    }
}

fn deleted_vault_page(
    page: Listing<DeletedVaultRecord>,
    base: &UriBase,
) -> pb::ListDeletedVaultsResponse {
    pb::ListDeletedVaultsResponse {
        vaults: page
            .items
            .iter()
            .map(|d| deleted_vault_to_pb(d, base))
            .collect(),
        next_page_token: page.next_page_token.unwrap_or_default(),
    }
}

pub(crate) fn geography_key_to_pb(record: &GeographyKeyRecord, active: bool) -> pb::GeographyKey {
    pb::GeographyKey {
        id: record.id.clone(),
        geography: record.geography.clone(),
        added: record.added,
        imported: record.imported,
        active,
    }
}

/// The running backup stream, handed from the audited call to the response.
struct Backup(BackupStream);
impl Audited for Backup {}

impl Audited for pb::DeletedSecret {
    fn audited_id(&self) -> Option<String> {
        self.secret
            .as_ref()
            .map(|s| format!("{}/deletedsecrets/{}", s.vault, s.name))
    }
}
impl Audited for pb::ListDeletedSecretsResponse {}
impl Audited for pb::PurgeDeletedSecretResponse {}
impl Audited for pb::BackupSecretResponse {}
impl Audited for pb::DeletedVault {}
impl Audited for pb::ListDeletedVaultsResponse {}
impl Audited for pb::PurgeDeletedVaultResponse {}
impl Audited for pb::GeographyKey {
    fn audited_id(&self) -> Option<String> {
        Some(format!("geography-keys/{}", self.id))
    }
}
impl Audited for pb::ListGeographyKeysResponse {}
impl Audited for pb::ExportGeographyKeyResponse {
    fn audited_id(&self) -> Option<String> {
        self.key
            .as_ref()
            .map(|k| format!("geography-keys/{}", k.id))
    }
}

fn cluster_target() -> Target {
    Target {
        vault: None,
        id: Some("geography-keys".into()),
    }
}

impl GrpcApi {
    pub(crate) async fn delete_secret_impl(
        &self,
        request: Request<pb::DeleteSecretRequest>,
    ) -> Result<Response<pb::DeletedSecret>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "SecretDelete",
            request,
            |r| secret_target(&r.vault, &r.name, ""),
            |r, ctx| async move {
                let deleted = svc.delete_secret(&ctx, &r.vault, &r.name).await?;
                Ok(deleted_secret_to_pb(deleted, &base))
            },
        )
        .await
    }

    pub(crate) async fn get_deleted_secret_impl(
        &self,
        request: Request<pb::GetDeletedSecretRequest>,
    ) -> Result<Response<pb::DeletedSecret>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "SecretGetDeleted",
            request,
            |r| secret_target(&r.vault, &r.name, ""),
            |r, ctx| async move {
                let deleted = svc.get_deleted_secret(&ctx, &r.vault, &r.name).await?;
                Ok(deleted_secret_to_pb(deleted, &base))
            },
        )
        .await
    }

    pub(crate) async fn list_deleted_secrets_impl(
        &self,
        request: Request<pb::ListDeletedSecretsRequest>,
    ) -> Result<Response<pb::ListDeletedSecretsResponse>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "SecretListDeleted",
            request,
            |r| vault_target(&r.vault),
            |r, ctx| async move {
                let page = svc
                    .list_deleted_secrets(&ctx, &r.vault, Some(r.max_results), Some(&r.page_token))
                    .await?;
                Ok(pb::ListDeletedSecretsResponse {
                    secrets: page
                        .items
                        .into_iter()
                        .map(|b| deleted_secret_to_pb(b, &base))
                        .collect(),
                    next_page_token: page.next_page_token.unwrap_or_default(),
                })
            },
        )
        .await
    }

    pub(crate) async fn recover_deleted_secret_impl(
        &self,
        request: Request<pb::RecoverDeletedSecretRequest>,
    ) -> Result<Response<pb::Secret>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "SecretRecover",
            request,
            |r| secret_target(&r.vault, &r.name, ""),
            |r, ctx| async move {
                let recovered = svc.recover_deleted_secret(&ctx, &r.vault, &r.name).await?;
                Ok(secret_to_pb(recovered, &base))
            },
        )
        .await
    }

    pub(crate) async fn purge_deleted_secret_impl(
        &self,
        request: Request<pb::PurgeDeletedSecretRequest>,
    ) -> Result<Response<pb::PurgeDeletedSecretResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "SecretPurge",
            request,
            |r| secret_target(&r.vault, &r.name, ""),
            |r, ctx| async move {
                svc.purge_deleted_secret(&ctx, &r.vault, &r.name).await?;
                Ok(pb::PurgeDeletedSecretResponse {})
            },
        )
        .await
    }

    pub(crate) async fn backup_secret_impl(
        &self,
        request: Request<pb::BackupSecretRequest>,
    ) -> Result<Response<pb::BackupSecretResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "SecretBackup",
            request,
            |r| secret_target(&r.vault, &r.name, ""),
            |r, ctx| async move {
                let value = svc.backup_secret(&ctx, &r.vault, &r.name).await?;
                Ok(pb::BackupSecretResponse { value })
            },
        )
        .await
    }

    pub(crate) async fn restore_secret_impl(
        &self,
        request: Request<pb::RestoreSecretRequest>,
    ) -> Result<Response<pb::Secret>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "SecretRestore",
            request,
            |r| vault_target(&r.vault),
            |r, ctx| async move {
                let restored = svc.restore_secret(&ctx, &r.vault, &r.value).await?;
                Ok(secret_to_pb(restored, &base))
            },
        )
        .await
    }

    pub(crate) async fn list_deleted_vaults_impl(
        &self,
        request: Request<pb::ListDeletedVaultsRequest>,
    ) -> Result<Response<pb::ListDeletedVaultsResponse>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "VaultListDeleted",
            request,
            |_| Target {
                vault: None,
                id: None,
            },
            |r, ctx| async move {
                let page = svc
                    .list_deleted_vaults(&ctx, Some(r.max_results), Some(&r.page_token))
                    .await?;
                Ok(deleted_vault_page(page, &base))
            },
        )
        .await
    }

    pub(crate) async fn get_deleted_vault_impl(
        &self,
        request: Request<pb::GetDeletedVaultRequest>,
    ) -> Result<Response<pb::DeletedVault>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "VaultGetDeleted",
            request,
            |r| vault_target(&r.name),
            |r, ctx| async move {
                let deleted = svc.get_deleted_vault(&ctx, &r.name).await?;
                Ok(deleted_vault_to_pb(&deleted, &base))
            },
        )
        .await
    }

    pub(crate) async fn recover_deleted_vault_impl(
        &self,
        request: Request<pb::RecoverDeletedVaultRequest>,
    ) -> Result<Response<pb::Vault>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "VaultRecover",
            request,
            |r| vault_target(&r.name),
            |r, ctx| async move {
                let vault = svc.recover_deleted_vault(&ctx, &r.name).await?;
                Ok(vault_to_pb(&vault, &base))
            },
        )
        .await
    }

    pub(crate) async fn purge_deleted_vault_impl(
        &self,
        request: Request<pb::PurgeDeletedVaultRequest>,
    ) -> Result<Response<pb::PurgeDeletedVaultResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "VaultPurge",
            request,
            |r| vault_target(&r.name),
            |r, ctx| async move {
                svc.purge_deleted_vault(&ctx, &r.name).await?;
                Ok(pb::PurgeDeletedVaultResponse {})
            },
        )
        .await
    }

    pub(crate) async fn backup_vault_impl(
        &self,
        request: Request<pb::BackupVaultRequest>,
    ) -> Result<Response<BackupChunkStream>, Status> {
        let svc = self.gateway.service.clone();
        let started = self
            .run(
                "VaultBackup",
                request,
                |r| vault_target(&r.name),
                |r, ctx| async move { Ok(Backup(svc.backup_vault(&ctx, &r.name).await?)) },
            )
            .await?;
        let (metadata, Backup(receiver), extensions) = started.into_parts();
        let stream = tokio_stream::wrappers::ReceiverStream::new(receiver).map(|chunk| {
            chunk
                .map(|data| pb::BackupChunk { data })
                .map_err(|e| status_from(&e, ""))
        });
        let stream: BackupChunkStream = Box::pin(stream);
        Ok(Response::from_parts(metadata, stream, extensions))
    }

    pub(crate) async fn restore_vault_impl(
        &self,
        request: Request<Streaming<pb::RestoreVaultChunk>>,
    ) -> Result<Response<pb::Vault>, Status> {
        let (metadata, extensions, mut stream) = request.into_parts();
        let first = match stream.next().await {
            Some(first) => first?,
            None => {
                return Err(status_from(
                    &Error::bad_parameter("The restore stream is empty."),
                    "",
                ));
            }
        };
        let (tx, rx) = tokio::sync::mpsc::channel(RESTORE_DEPTH);
        let pb::RestoreVaultChunk {
            name,
            location,
            data,
        } = first;
        // Forwards the rest of the stream to the service; stops when the service stops
        // listening (a refusal) or the client finishes.
        tokio::spawn(async move {
            if !data.is_empty() && tx.send(Ok(data)).await.is_err() {
                return;
            }
            while let Some(chunk) = stream.next().await {
                let item = chunk.map(|c| c.data).map_err(|status| {
                    Error::bad_parameter(format!(
                        "The restore stream failed: {}",
                        coffer_types::error::quote_user_text(status.message())
                    ))
                });
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        let request = Request::from_parts(metadata, extensions, (name, location, rx));
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "VaultRestore",
            request,
            |r| vault_target(&r.0),
            |(name, location, rx), ctx| async move {
                let location = Some(location).filter(|l| !l.is_empty());
                let vault = svc.restore_vault(&ctx, &name, location, rx).await?;
                Ok(vault_to_pb(&vault, &base))
            },
        )
        .await
    }

    pub(crate) async fn list_geography_keys_impl(
        &self,
        request: Request<pb::ListGeographyKeysRequest>,
    ) -> Result<Response<pb::ListGeographyKeysResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "GeographyKeyList",
            request,
            |_| cluster_target(),
            |_, ctx| async move {
                let keys = svc.list_geography_keys(&ctx).await?;
                Ok(pb::ListGeographyKeysResponse {
                    keys: keys
                        .iter()
                        .map(|(r, active)| geography_key_to_pb(r, *active))
                        .collect(),
                })
            },
        )
        .await
    }

    pub(crate) async fn export_geography_key_impl(
        &self,
        request: Request<pb::ExportGeographyKeyRequest>,
    ) -> Result<Response<pb::ExportGeographyKeyResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "GeographyKeyExport",
            request,
            |_| cluster_target(),
            |r, ctx| async move {
                let passphrase = coffer_crypto::SecretString::new(r.passphrase);
                let (record, wrapped) = svc.export_geography_key(&ctx, &passphrase).await?;
                Ok(pb::ExportGeographyKeyResponse {
                    key: Some(geography_key_to_pb(&record, true)),
                    wrapped,
                })
            },
        )
        .await
    }

    pub(crate) async fn import_geography_key_impl(
        &self,
        request: Request<pb::ImportGeographyKeyRequest>,
    ) -> Result<Response<pb::GeographyKey>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "GeographyKeyImport",
            request,
            |_| cluster_target(),
            |r, ctx| async move {
                let passphrase = coffer_crypto::SecretString::new(r.passphrase);
                let (record, active) = svc
                    .import_geography_key(&ctx, &r.wrapped, &passphrase, r.activate)
                    .await?;
                Ok(geography_key_to_pb(&record, active))
            },
        )
        .await
    }
}
