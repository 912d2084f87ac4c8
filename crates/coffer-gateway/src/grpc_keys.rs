//! The gRPC KeyService: keys, their rotation policies, the cryptographic operations and the
//! key lifecycle. Private key parts arrive only in ImportKey and leave in nothing.

use coffer_proto::v1 as pb;
use coffer_proto::v1::key_service_server::KeyService;
use coffer_service::{
    CreateKey, DeletedKeyBundle, ImportKey, KeyBundle, KeyOperationInput, KeyOperationOutcome,
    KeyUpdate, LifetimeActionInput, Listing, RotationPolicyBundle,
};
use coffer_types::keys::{CurveName, KeyOperation, KeyType, LifetimeTrigger};
use coffer_types::{Error, JsonWebKey};
use tonic::{Request, Response, Status};
use zeroize::Zeroizing;

use crate::convert::{UriBase, tags_from_pb};
use crate::grpc::GrpcApi;
use crate::pipeline::{Audited, Target};
use coffer_types::error::quote_user_text;

fn key_target(vault: &str, name: &str, version: &str) -> Target {
    Target::object(
        &quote_user_text(vault),
        "keys",
        &quote_user_text(name),
        &quote_user_text(version),
    )
}

fn kid(base: &UriBase, vault: &str, name: &str, version: &str) -> String {
    format!("{}/keys/{}/{}", base.vault_uri(vault), name, version)
}

fn optional(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

fn bytes_or_none(bytes: &Option<Vec<u8>>) -> Vec<u8> {
    bytes.clone().unwrap_or_default()
}

/// A key version as the API returns it: public parts only; `with_key: false` for lists.
fn key_to_pb(bundle: &KeyBundle, base: &UriBase, with_key: bool) -> pb::Key {
    let KeyBundle { vault, record } = bundle;
    let kid = kid(base, &vault.name, &record.name, &record.version);
    let key = with_key.then(|| {
        let public = &record.public;
        pb::JsonWebKey {
            kid: kid.clone(),
            kty: record.kty.as_str().to_owned(),
            key_ops: record
                .key_ops
                .iter()
                .map(|op| op.as_str().to_owned())
                .collect(),
            n: bytes_or_none(&public.n),
            e: bytes_or_none(&public.e),
            crv: public
                .crv
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            x: bytes_or_none(&public.x),
            y: bytes_or_none(&public.y),
            // Private parts are never returned.
            ..Default::default()
        }
    });
    pb::Key {
        vault: vault.name.clone(),
        name: record.name.clone(),
        version: record.version.clone(),
        key,
        attributes: Some(pb::KeyAttributes {
            enabled: record.enabled,
            not_before: record.not_before,
            expires: record.expires,
            created: record.created,
            updated: record.updated,
            recovery_level: vault.recovery_level().to_owned(),
            recoverable_days: vault.recoverable_days(),
            exportable: false,
        }),
        tags: record
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        kid,
    }
}

fn key_page_to_pb(page: Listing<KeyBundle>, base: &UriBase) -> pb::ListKeysResponse {
    pb::ListKeysResponse {
        keys: page
            .items
            .iter()
            .map(|b| key_to_pb(b, base, false))
            .collect(),
        next_page_token: page.next_page_token.unwrap_or_default(),
    }
}

fn deleted_key_to_pb(bundle: DeletedKeyBundle, base: &UriBase) -> pb::DeletedKey {
    let recovery_id = format!(
        "{}/deletedkeys/{}",
        base.vault_uri(&bundle.vault.name),
        bundle.deleted.name
    );
    pb::DeletedKey {
        recovery_id,
        deleted_date: bundle.deleted.deleted_date,
        scheduled_purge_date: bundle.deleted.scheduled_purge_date,
        key: Some(key_to_pb(
            &KeyBundle {
                vault: bundle.vault,
                record: bundle.record,
            },
            base,
            true,
        )),
    }
}

fn policy_to_pb(bundle: RotationPolicyBundle, base: &UriBase) -> pb::KeyRotationPolicy {
    let policy = bundle.policy;
    pb::KeyRotationPolicy {
        id: format!(
            "{}/keys/{}/rotationpolicy",
            base.vault_uri(&bundle.vault.name),
            bundle.name
        ),
        lifetime_actions: policy
            .lifetime_actions
            .iter()
            .map(|a| {
                let (after, before) = match a.trigger {
                    LifetimeTrigger::TimeAfterCreate(d) => (d.to_text(), String::new()),
                    LifetimeTrigger::TimeBeforeExpiry(d) => (String::new(), d.to_text()),
                };
                pb::LifetimeAction {
                    action: a.action.as_str().to_owned(),
                    time_after_create: after,
                    time_before_expiry: before,
                }
            })
            .collect(),
        expiry_time: policy.expiry_time.map(|d| d.to_text()).unwrap_or_default(),
        created: policy.created,
        updated: policy.updated,
    }
}

/// The JWK of an import request. Its private parts move (not copy) into the returned key,
/// which wipes them when dropped: on an error below, too.
fn jwk_from_pb(mut key: pb::JsonWebKey) -> Result<JsonWebKey, Error> {
    let take = |bytes: &mut Vec<u8>| (!bytes.is_empty()).then(|| std::mem::take(bytes));
    let mut jwk = JsonWebKey::default();
    jwk.n = take(&mut key.n);
    jwk.e = take(&mut key.e);
    jwk.x = take(&mut key.x);
    jwk.y = take(&mut key.y);
    jwk.d = take(&mut key.d);
    jwk.dp = take(&mut key.dp);
    jwk.dq = take(&mut key.dq);
    jwk.qi = take(&mut key.qi);
    jwk.p = take(&mut key.p);
    jwk.q = take(&mut key.q);
    jwk.k = take(&mut key.k);
    jwk.kty = optional(&key.kty).map(KeyType::parse).transpose()?;
    jwk.key_ops = key
        .key_ops
        .iter()
        .map(|op| KeyOperation::parse(op))
        .collect::<Result<_, _>>()?;
    jwk.crv = optional(&key.crv).map(CurveName::parse).transpose()?;
    Ok(jwk)
}

fn outcome_to_pb(outcome: KeyOperationOutcome, base: &UriBase) -> pb::KeyOperationResult {
    pb::KeyOperationResult {
        kid: kid(base, &outcome.vault.name, &outcome.name, &outcome.version),
        value: outcome.value.to_vec(),
        iv: outcome.iv,
        tag: outcome.tag,
        aad: outcome.aad,
    }
}

fn operation_input(r: pb::KeyOperationRequest) -> KeyOperationInput {
    KeyOperationInput {
        vault: r.vault,
        name: r.name,
        version: optional(&r.version).map(str::to_owned),
        alg: r.alg,
        value: Zeroizing::new(r.value),
        iv: r.iv,
        aad: r.aad,
        tag: r.tag,
    }
}

impl GrpcApi {
    async fn key_operation(
        &self,
        audit_name: &'static str,
        operation: KeyOperation,
        request: Request<pb::KeyOperationRequest>,
    ) -> Result<Response<pb::KeyOperationResult>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            audit_name,
            request,
            |r| key_target(&r.vault, &r.name, &r.version),
            move |r, ctx| async move {
                let outcome = svc
                    .key_operation(&ctx, operation, operation_input(r))
                    .await?;
                Ok(outcome_to_pb(outcome, &base))
            },
        )
        .await
    }
}

#[tonic::async_trait]
impl KeyService for GrpcApi {
    async fn create_key(
        &self,
        request: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "KeyCreate",
            request,
            |r| key_target(&r.vault, &r.name, ""),
            |r, ctx| async move {
                let input = CreateKey {
                    vault: r.vault,
                    name: r.name,
                    kty: r.kty,
                    key_size: Some(r.key_size).filter(|s| *s != 0),
                    public_exponent: Some(r.public_exponent).filter(|e| *e != 0),
                    crv: optional(&r.crv).map(str::to_owned),
                    key_ops: r.key_ops,
                    enabled: r.enabled,
                    not_before: r.not_before,
                    expires: r.expires,
                    tags: tags_from_pb(r.tags),
                };
                Ok(key_to_pb(&svc.create_key(&ctx, input).await?, &base, true))
            },
        )
        .await
    }

    async fn import_key(
        &self,
        request: Request<pb::ImportKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "KeyImport",
            request,
            |r| key_target(&r.vault, &r.name, ""),
            |r, ctx| async move {
                let Some(key) = r.key else {
                    return Err(Error::bad_parameter("The request holds no key to import."));
                };
                let input = ImportKey {
                    vault: r.vault,
                    name: r.name,
                    key: jwk_from_pb(key)?,
                    hsm: r.hsm,
                    enabled: r.enabled,
                    not_before: r.not_before,
                    expires: r.expires,
                    tags: tags_from_pb(r.tags),
                };
                Ok(key_to_pb(&svc.import_key(&ctx, input).await?, &base, true))
            },
        )
        .await
    }

    async fn get_key(
        &self,
        request: Request<pb::GetKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "KeyGet",
            request,
            |r| key_target(&r.vault, &r.name, &r.version),
            |r, ctx| async move {
                let bundle = svc
                    .get_key(&ctx, &r.vault, &r.name, optional(&r.version))
                    .await?;
                Ok(key_to_pb(&bundle, &base, true))
            },
        )
        .await
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "KeyList",
            request,
            |r| Target::vault(&quote_user_text(&r.vault)),
            |r, ctx| async move {
                let page = svc
                    .list_keys(&ctx, &r.vault, Some(r.max_results), optional(&r.page_token))
                    .await?;
                Ok(key_page_to_pb(page, &base))
            },
        )
        .await
    }

    async fn list_key_versions(
        &self,
        request: Request<pb::ListKeyVersionsRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "KeyListVersions",
            request,
            |r| key_target(&r.vault, &r.name, ""),
            |r, ctx| async move {
                let page = svc
                    .list_key_versions(
                        &ctx,
                        &r.vault,
                        &r.name,
                        Some(r.max_results),
                        optional(&r.page_token),
                    )
                    .await?;
                Ok(key_page_to_pb(page, &base))
            },
        )
        .await
    }

    async fn update_key(
        &self,
        request: Request<pb::UpdateKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "KeyUpdate",
            request,
            |r| key_target(&r.vault, &r.name, &r.version),
            |r, ctx| async move {
                let update = KeyUpdate {
                    enabled: r.enabled,
                    not_before: r.not_before,
                    expires: r.expires,
                    key_ops: r.key_ops.map(|ops| ops.key_ops),
                    tags: r.tags.map(|t| tags_from_pb(t.tags)),
                };
                let bundle = svc
                    .update_key(&ctx, &r.vault, &r.name, optional(&r.version), update)
                    .await?;
                Ok(key_to_pb(&bundle, &base, true))
            },
        )
        .await
    }

    async fn rotate_key(
        &self,
        request: Request<pb::RotateKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "KeyRotate",
            request,
            |r| key_target(&r.vault, &r.name, ""),
            |r, ctx| async move {
                let bundle = svc.rotate_key(&ctx, &r.vault, &r.name).await?;
                Ok(key_to_pb(&bundle, &base, true))
            },
        )
        .await
    }

    async fn get_key_rotation_policy(
        &self,
        request: Request<pb::GetKeyRotationPolicyRequest>,
    ) -> Result<Response<pb::KeyRotationPolicy>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "KeyRotationPolicyGet",
            request,
            |r| key_target(&r.vault, &r.name, ""),
            |r, ctx| async move {
                let bundle = svc.get_key_rotation_policy(&ctx, &r.vault, &r.name).await?;
                Ok(policy_to_pb(bundle, &base))
            },
        )
        .await
    }

    async fn update_key_rotation_policy(
        &self,
        request: Request<pb::UpdateKeyRotationPolicyRequest>,
    ) -> Result<Response<pb::KeyRotationPolicy>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "KeyRotationPolicySet",
            request,
            |r| key_target(&r.vault, &r.name, ""),
            |r, ctx| async move {
                let actions: Vec<LifetimeActionInput> = r
                    .lifetime_actions
                    .into_iter()
                    .map(|a| LifetimeActionInput {
                        action: a.action,
                        time_after_create: optional(&a.time_after_create).map(str::to_owned),
                        time_before_expiry: optional(&a.time_before_expiry).map(str::to_owned),
                    })
                    .collect();
                let bundle = svc
                    .update_key_rotation_policy(
                        &ctx,
                        &r.vault,
                        &r.name,
                        &actions,
                        optional(&r.expiry_time),
                    )
                    .await?;
                Ok(policy_to_pb(bundle, &base))
            },
        )
        .await
    }

    async fn encrypt(
        &self,
        request: Request<pb::KeyOperationRequest>,
    ) -> Result<Response<pb::KeyOperationResult>, Status> {
        self.key_operation("KeyEncrypt", KeyOperation::Encrypt, request)
            .await
    }

    async fn decrypt(
        &self,
        request: Request<pb::KeyOperationRequest>,
    ) -> Result<Response<pb::KeyOperationResult>, Status> {
        self.key_operation("KeyDecrypt", KeyOperation::Decrypt, request)
            .await
    }

    async fn wrap_key(
        &self,
        request: Request<pb::KeyOperationRequest>,
    ) -> Result<Response<pb::KeyOperationResult>, Status> {
        self.key_operation("KeyWrap", KeyOperation::WrapKey, request)
            .await
    }

    async fn unwrap_key(
        &self,
        request: Request<pb::KeyOperationRequest>,
    ) -> Result<Response<pb::KeyOperationResult>, Status> {
        self.key_operation("KeyUnwrap", KeyOperation::UnwrapKey, request)
            .await
    }

    async fn sign(
        &self,
        request: Request<pb::SignRequest>,
    ) -> Result<Response<pb::KeyOperationResult>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "KeySign",
            request,
            |r| key_target(&r.vault, &r.name, &r.version),
            |r, ctx| async move {
                let outcome = svc
                    .sign(
                        &ctx,
                        &r.vault,
                        &r.name,
                        optional(&r.version),
                        &r.alg,
                        &r.digest,
                    )
                    .await?;
                Ok(outcome_to_pb(outcome, &base))
            },
        )
        .await
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResult>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "KeyVerify",
            request,
            |r| key_target(&r.vault, &r.name, &r.version),
            |r, ctx| async move {
                let value = svc
                    .verify(
                        &ctx,
                        &r.vault,
                        &r.name,
                        optional(&r.version),
                        &r.alg,
                        &r.digest,
                        &r.signature,
                    )
                    .await?;
                Ok(pb::VerifyResult { value })
            },
        )
        .await
    }

    async fn delete_key(
        &self,
        request: Request<pb::DeleteKeyRequest>,
    ) -> Result<Response<pb::DeletedKey>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "KeyDelete",
            request,
            |r| key_target(&r.vault, &r.name, ""),
            |r, ctx| async move {
                let bundle = svc.delete_key(&ctx, &r.vault, &r.name).await?;
                Ok(deleted_key_to_pb(bundle, &base))
            },
        )
        .await
    }

    async fn get_deleted_key(
        &self,
        request: Request<pb::GetDeletedKeyRequest>,
    ) -> Result<Response<pb::DeletedKey>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "KeyGetDeleted",
            request,
            |r| key_target(&r.vault, &r.name, ""),
            |r, ctx| async move {
                let bundle = svc.get_deleted_key(&ctx, &r.vault, &r.name).await?;
                Ok(deleted_key_to_pb(bundle, &base))
            },
        )
        .await
    }

    async fn list_deleted_keys(
        &self,
        request: Request<pb::ListDeletedKeysRequest>,
    ) -> Result<Response<pb::ListDeletedKeysResponse>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "KeyListDeleted",
            request,
            |r| Target::vault(&quote_user_text(&r.vault)),
            |r, ctx| async move {
                let page = svc
                    .list_deleted_keys(&ctx, &r.vault, Some(r.max_results), optional(&r.page_token))
                    .await?;
                Ok(pb::ListDeletedKeysResponse {
                    keys: page
                        .items
                        .into_iter()
                        .map(|b| deleted_key_to_pb(b, &base))
                        .collect(),
                    next_page_token: page.next_page_token.unwrap_or_default(),
                })
            },
        )
        .await
    }

    async fn recover_deleted_key(
        &self,
        request: Request<pb::RecoverDeletedKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "KeyRecover",
            request,
            |r| key_target(&r.vault, &r.name, ""),
            |r, ctx| async move {
                let bundle = svc.recover_deleted_key(&ctx, &r.vault, &r.name).await?;
                Ok(key_to_pb(&bundle, &base, true))
            },
        )
        .await
    }

    async fn purge_deleted_key(
        &self,
        request: Request<pb::PurgeDeletedKeyRequest>,
    ) -> Result<Response<pb::PurgeDeletedKeyResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "KeyPurge",
            request,
            |r| key_target(&r.vault, &r.name, ""),
            |r, ctx| async move {
                svc.purge_deleted_key(&ctx, &r.vault, &r.name).await?;
                Ok(pb::PurgeDeletedKeyResponse {})
            },
        )
        .await
    }

    async fn backup_key(
        &self,
        request: Request<pb::BackupKeyRequest>,
    ) -> Result<Response<pb::BackupKeyResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "KeyBackup",
            request,
            |r| key_target(&r.vault, &r.name, ""),
            |r, ctx| async move {
                let value = svc.backup_key(&ctx, &r.vault, &r.name).await?;
                Ok(pb::BackupKeyResponse { value })
            },
        )
        .await
    }

    async fn restore_key(
        &self,
        request: Request<pb::RestoreKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "KeyRestore",
            request,
            |r| Target::vault(&quote_user_text(&r.vault)),
            |r, ctx| async move {
                let bundle = svc.restore_key(&ctx, &r.vault, &r.value).await?;
                Ok(key_to_pb(&bundle, &base, true))
            },
        )
        .await
    }

    async fn get_random_bytes(
        &self,
        request: Request<pb::GetRandomBytesRequest>,
    ) -> Result<Response<pb::GetRandomBytesResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "VaultGetRandomBytes",
            request,
            |r| Target::vault(&quote_user_text(&r.vault)),
            |r, ctx| async move {
                let value = svc.random_bytes(&ctx, &r.vault, r.count).await?;
                Ok(pb::GetRandomBytesResponse {
                    value: value.to_vec(),
                })
            },
        )
        .await
    }
}

impl Audited for pb::Key {
    fn audited_id(&self) -> Option<String> {
        Some(format!(
            "{}/keys/{}/{}",
            self.vault, self.name, self.version
        ))
    }
}
impl Audited for pb::ListKeysResponse {}
impl Audited for pb::KeyOperationResult {}
impl Audited for pb::VerifyResult {}
impl Audited for pb::DeletedKey {}
impl Audited for pb::ListDeletedKeysResponse {}
impl Audited for pb::PurgeDeletedKeyResponse {}
impl Audited for pb::BackupKeyResponse {}
impl Audited for pb::KeyRotationPolicy {}
impl Audited for pb::GetRandomBytesResponse {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imported_jwk_moves_private_parts_and_refuses_unknown_names() {
        let key = pb::JsonWebKey {
            kty: "oct".into(),
            k: vec![7; 32],
            key_ops: vec!["wrapKey".into()],
            ..Default::default()
        };
        let jwk = jwk_from_pb(key).unwrap();
        assert_eq!(jwk.kty, Some(KeyType::Oct));
        assert_eq!(jwk.k.as_deref(), Some(&[7u8; 32][..]));
        assert_eq!(jwk.key_ops, vec![KeyOperation::WrapKey]);
        let bad = pb::JsonWebKey {
            kty: "DSA".into(),
            ..Default::default()
        };
        let err = jwk_from_pb(bad).unwrap_err();
        assert_eq!(err.code, coffer_types::ErrorCode::BadParameter);
        let bad_op = pb::JsonWebKey {
            kty: "RSA".into(),
            key_ops: vec!["launch".into()],
            ..Default::default()
        };
        assert!(jwk_from_pb(bad_op).is_err());
    }
}
