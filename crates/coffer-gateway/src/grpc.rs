//! The gRPC API (proto/coffer/v1): each method unpacks its request, names its audit target and
//! calls the one service-layer operation that implements it.

use std::future::Future;
use std::sync::Arc;

use coffer_crypto::SecretString;
use coffer_proto::v1 as pb;
use coffer_proto::v1::secret_service_server::SecretService;
use coffer_proto::v1::vault_service_server::VaultService;
use coffer_service::{
    Consistency, CreateVault, NetworkRulesUpdate, RequestContext, SecretUpdate, SetSecret,
    ThrottleLimitInput, VaultUpdate,
};
use coffer_types::Error;
use coffer_types::error::quote_user_text;
use tonic::{Request, Response, Status};

use crate::client_addr::join_forwarded_for;
use crate::convert::{
    UriBase, secret_page_to_pb, secret_to_pb, sku_from_pb, status_from, tags_from_pb, vault_to_pb,
};
use crate::pipeline::{Audited, ClientAddr, Gateway, RequestMeta, Target};

#[derive(Clone)]
pub(crate) struct GrpcApi {
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) base: UriBase,
}

impl GrpcApi {
    pub(crate) fn new(gateway: Arc<Gateway>, base: UriBase) -> Self {
        Self { gateway, base }
    }

    /// The bearer challenge sent with every 401, as Azure Key Vault sends it: where to get a
    /// token (the issuer and tenant) and for which resource.
    pub(crate) fn challenge(&self) -> String {
        let identity = self.gateway.service.identity_config();
        format!(
            "Bearer authorization=\"{}/{}\", resource=\"https://{}\"",
            identity.issuer_base,
            identity.default_tenant.as_deref().unwrap_or("common"),
            self.base.suffix
        )
    }

    pub(crate) async fn run<T, R, F, Fut>(
        &self,
        operation: &'static str,
        request: Request<R>,
        target: impl FnOnce(&R) -> Target,
        f: F,
    ) -> Result<Response<T>, Status>
    where
        T: Audited + Send + 'static,
        R: Send + 'static,
        F: FnOnce(R, RequestContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let bearer = bearer_token(&request);
        let client = request.extensions().get::<ClientAddr>().copied();
        let forwarded_for = forwarded_for(&request);
        let client_request_id = metadata_text(&request, "x-ms-client-request-id");
        let consistency = match consistency(&request) {
            Ok(c) => c,
            Err(e) => return Err(status_from(&e, "")),
        };
        let body = request.into_inner();
        let target = target(&body);
        let meta = RequestMeta {
            bearer,
            client,
            forwarded_for,
            client_request_id,
            consistency,
        };
        let (request_id, result) = self
            .gateway
            .call(operation, meta, target, move |ctx| f(body, ctx))
            .await;
        match result {
            Ok(value) => {
                let mut response = Response::new(value);
                if let Ok(v) = request_id.parse() {
                    response.metadata_mut().insert("x-ms-request-id", v);
                }
                Ok(response)
            }
            Err(e) => {
                let mut status = status_from(&e, &request_id);
                if e.code == coffer_types::ErrorCode::Unauthorized
                    && let Ok(value) = self.challenge().parse()
                {
                    status.metadata_mut().insert("www-authenticate", value);
                }
                Err(status)
            }
        }
    }
}

/// Every `X-Forwarded-For` header of the request (see [`join_forwarded_for`]).
fn forwarded_for<R>(request: &Request<R>) -> Option<String> {
    join_forwarded_for(
        request
            .metadata()
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.as_bytes()),
    )
}

fn metadata_text<R>(request: &Request<R>, key: &str) -> Option<String> {
    request
        .metadata()
        .get(key)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The read consistency a request asks for: linearizable unless it carries
/// `x-coffer-max-staleness-ms`, in which case a local copy at most that many milliseconds
/// behind the leader will do.
fn consistency<R>(request: &Request<R>) -> Result<Consistency, Error> {
    match metadata_text(request, "x-coffer-max-staleness-ms") {
        None => Ok(Consistency::Linearizable),
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|ms| (1..=3_600_000).contains(ms))
            .map(|ms| Consistency::Stale {
                max: std::time::Duration::from_millis(ms),
            })
            .ok_or_else(|| {
                Error::bad_parameter(
                    "x-coffer-max-staleness-ms must be a number of milliseconds from 1 to 3600000.",
                )
            }),
    }
}

/// The bearer credential of a request, if it carries one.
fn bearer_token<R>(request: &Request<R>) -> Option<SecretString> {
    let value = request.metadata().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| SecretString::new(token.trim().to_owned()))
}

/// Audit targets come from untrusted input: quoted and bounded like any user text.
pub(crate) fn vault_target(vault: &str) -> Target {
    Target::vault(&quote_user_text(vault))
}

pub(crate) fn secret_target(vault: &str, name: &str, version: &str) -> Target {
    Target::object(
        &quote_user_text(vault),
        "secrets",
        &quote_user_text(name),
        &quote_user_text(version),
    )
}

#[tonic::async_trait]
impl VaultService for GrpcApi {
    async fn create_vault(
        &self,
        request: Request<pb::CreateVaultRequest>,
    ) -> Result<Response<pb::Vault>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "VaultPut",
            request,
            |r| vault_target(&r.name),
            |r, ctx| async move {
                let input = CreateVault {
                    sku: sku_from_pb(r.sku)?,
                    name: r.name,
                    location: r.location,
                    retention_days: r.retention_days,
                    purge_protection: r.purge_protection,
                    tags: tags_from_pb(r.tags),
                    enable_rbac_authorization: r.enable_rbac_authorization,
                    network: None,
                };
                Ok(vault_to_pb(&svc.create_vault(&ctx, input).await?, &base))
            },
        )
        .await
    }

    async fn get_vault(
        &self,
        request: Request<pb::GetVaultRequest>,
    ) -> Result<Response<pb::Vault>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "VaultGet",
            request,
            |r| vault_target(&r.name),
            |r, ctx| async move { Ok(vault_to_pb(&svc.get_vault(&ctx, &r.name).await?, &base)) },
        )
        .await
    }

    async fn list_vaults(
        &self,
        request: Request<pb::ListVaultsRequest>,
    ) -> Result<Response<pb::ListVaultsResponse>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "VaultList",
            request,
            |_| Target::default(),
            |r, ctx| async move {
                let page = svc
                    .list_vaults(&ctx, Some(r.max_results), Some(&r.page_token))
                    .await?;
                Ok(pb::ListVaultsResponse {
                    vaults: page.items.iter().map(|v| vault_to_pb(v, &base)).collect(),
                    next_page_token: page.next_page_token.unwrap_or_default(),
                })
            },
        )
        .await
    }

    async fn update_vault(
        &self,
        request: Request<pb::UpdateVaultRequest>,
    ) -> Result<Response<pb::Vault>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "VaultPatch",
            request,
            |r| vault_target(&r.name),
            |r, ctx| async move {
                let update = VaultUpdate {
                    sku: r.sku.map(sku_from_pb).transpose()?.flatten(),
                    purge_protection: r.purge_protection,
                    tags: r.tags.map(|t| tags_from_pb(t.tags)),
                    enable_rbac_authorization: r.enable_rbac_authorization,
                };
                Ok(vault_to_pb(
                    &svc.update_vault(&ctx, &r.name, update).await?,
                    &base,
                ))
            },
        )
        .await
    }

    async fn delete_vault(
        &self,
        request: Request<pb::DeleteVaultRequest>,
    ) -> Result<Response<pb::DeleteVaultResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "VaultDelete",
            request,
            |r| vault_target(&r.name),
            |r, ctx| async move {
                svc.delete_vault(&ctx, &r.name).await?;
                Ok(pb::DeleteVaultResponse {})
            },
        )
        .await
    }

    type BackupVaultStream = crate::grpc_lifecycle::BackupChunkStream;

    async fn list_deleted_vaults(
        &self,
        request: Request<pb::ListDeletedVaultsRequest>,
    ) -> Result<Response<pb::ListDeletedVaultsResponse>, Status> {
        self.list_deleted_vaults_impl(request).await
    }

    async fn get_deleted_vault(
        &self,
        request: Request<pb::GetDeletedVaultRequest>,
    ) -> Result<Response<pb::DeletedVault>, Status> {
        self.get_deleted_vault_impl(request).await
    }

    async fn recover_deleted_vault(
        &self,
        request: Request<pb::RecoverDeletedVaultRequest>,
    ) -> Result<Response<pb::Vault>, Status> {
        self.recover_deleted_vault_impl(request).await
    }

    async fn purge_deleted_vault(
        &self,
        request: Request<pb::PurgeDeletedVaultRequest>,
    ) -> Result<Response<pb::PurgeDeletedVaultResponse>, Status> {
        self.purge_deleted_vault_impl(request).await
    }

    async fn backup_vault(
        &self,
        request: Request<pb::BackupVaultRequest>,
    ) -> Result<Response<Self::BackupVaultStream>, Status> {
        self.backup_vault_impl(request).await
    }

    async fn restore_vault(
        &self,
        request: Request<tonic::Streaming<pb::RestoreVaultChunk>>,
    ) -> Result<Response<pb::Vault>, Status> {
        self.restore_vault_impl(request).await
    }

    async fn update_network_rules(
        &self,
        request: Request<pb::UpdateNetworkRulesRequest>,
    ) -> Result<Response<pb::Vault>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "VaultUpdateNetworkRules",
            request,
            |r| vault_target(&r.vault),
            |r, ctx| async move {
                let update = NetworkRulesUpdate {
                    vault: r.vault,
                    default_action: r.default_action,
                    bypass: r.bypass,
                    public_network_access: r.public_network_access,
                    add_ip_rules: r.add_ip_rules,
                    remove_ip_rules: r.remove_ip_rules,
                    add_virtual_network_rules: r.add_virtual_network_rules,
                    remove_virtual_network_rules: r.remove_virtual_network_rules,
                    ignore_missing_virtual_network: r.ignore_missing_virtual_network,
                };
                Ok(vault_to_pb(
                    &svc.update_network_rules(&ctx, update).await?,
                    &base,
                ))
            },
        )
        .await
    }

    async fn set_throttle_limits(
        &self,
        request: Request<pb::SetThrottleLimitsRequest>,
    ) -> Result<Response<pb::Vault>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "VaultSetThrottleLimits",
            request,
            |r| vault_target(&r.vault),
            |r, ctx| async move {
                let set = r
                    .limits
                    .into_iter()
                    .map(|l| ThrottleLimitInput {
                        class: l.class,
                        rate: l.rate,
                        burst: l.burst,
                    })
                    .collect();
                Ok(vault_to_pb(
                    &svc.set_throttle_limits(&ctx, &r.vault, set, r.reset)
                        .await?,
                    &base,
                ))
            },
        )
        .await
    }
}

#[tonic::async_trait]
impl SecretService for GrpcApi {
    async fn set_secret(
        &self,
        request: Request<pb::SetSecretRequest>,
    ) -> Result<Response<pb::Secret>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "SecretSet",
            request,
            |r| secret_target(&r.vault, &r.name, ""),
            |r, ctx| async move {
                let input = SetSecret {
                    vault: r.vault,
                    name: r.name,
                    value: SecretString::new(r.value),
                    content_type: Some(r.content_type).filter(|c| !c.is_empty()),
                    enabled: r.enabled,
                    not_before: r.not_before,
                    expires: r.expires,
                    tags: tags_from_pb(r.tags),
                };
                // As in Azure Key Vault, the response to a set carries the value that was set.
                Ok(secret_to_pb(svc.set_secret(&ctx, input).await?, &base))
            },
        )
        .await
    }

    async fn get_secret(
        &self,
        request: Request<pb::GetSecretRequest>,
    ) -> Result<Response<pb::Secret>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "SecretGet",
            request,
            |r| secret_target(&r.vault, &r.name, &r.version),
            |r, ctx| async move {
                Ok(secret_to_pb(
                    svc.get_secret(&ctx, &r.vault, &r.name, Some(&r.version))
                        .await?,
                    &base,
                ))
            },
        )
        .await
    }

    async fn list_secrets(
        &self,
        request: Request<pb::ListSecretsRequest>,
    ) -> Result<Response<pb::ListSecretsResponse>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "SecretList",
            request,
            |r| vault_target(&r.vault),
            |r, ctx| async move {
                let page = svc
                    .list_secrets(&ctx, &r.vault, Some(r.max_results), Some(&r.page_token))
                    .await?;
                Ok(secret_page_to_pb(page, &base))
            },
        )
        .await
    }

    async fn list_secret_versions(
        &self,
        request: Request<pb::ListSecretVersionsRequest>,
    ) -> Result<Response<pb::ListSecretsResponse>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "SecretListVersions",
            request,
            |r| secret_target(&r.vault, &r.name, ""),
            |r, ctx| async move {
                let page = svc
                    .list_secret_versions(
                        &ctx,
                        &r.vault,
                        &r.name,
                        Some(r.max_results),
                        Some(&r.page_token),
                    )
                    .await?;
                Ok(secret_page_to_pb(page, &base))
            },
        )
        .await
    }

    async fn update_secret(
        &self,
        request: Request<pb::UpdateSecretRequest>,
    ) -> Result<Response<pb::Secret>, Status> {
        let svc = self.gateway.service.clone();
        let base = self.base.clone();
        self.run(
            "SecretUpdate",
            request,
            |r| secret_target(&r.vault, &r.name, &r.version),
            |r, ctx| async move {
                let update = SecretUpdate {
                    enabled: r.enabled,
                    not_before: r.not_before,
                    expires: r.expires,
                    content_type: r.content_type,
                    tags: r.tags.map(|t| tags_from_pb(t.tags)),
                };
                Ok(secret_to_pb(
                    svc.update_secret(&ctx, &r.vault, &r.name, Some(&r.version), update)
                        .await?,
                    &base,
                ))
            },
        )
        .await
    }

    async fn delete_secret(
        &self,
        request: Request<pb::DeleteSecretRequest>,
    ) -> Result<Response<pb::DeletedSecret>, Status> {
        self.delete_secret_impl(request).await
    }

    async fn get_deleted_secret(
        &self,
        request: Request<pb::GetDeletedSecretRequest>,
    ) -> Result<Response<pb::DeletedSecret>, Status> {
        self.get_deleted_secret_impl(request).await
    }

    async fn list_deleted_secrets(
        &self,
        request: Request<pb::ListDeletedSecretsRequest>,
    ) -> Result<Response<pb::ListDeletedSecretsResponse>, Status> {
        self.list_deleted_secrets_impl(request).await
    }

    async fn recover_deleted_secret(
        &self,
        request: Request<pb::RecoverDeletedSecretRequest>,
    ) -> Result<Response<pb::Secret>, Status> {
        self.recover_deleted_secret_impl(request).await
    }

    async fn purge_deleted_secret(
        &self,
        request: Request<pb::PurgeDeletedSecretRequest>,
    ) -> Result<Response<pb::PurgeDeletedSecretResponse>, Status> {
        self.purge_deleted_secret_impl(request).await
    }

    async fn backup_secret(
        &self,
        request: Request<pb::BackupSecretRequest>,
    ) -> Result<Response<pb::BackupSecretResponse>, Status> {
        self.backup_secret_impl(request).await
    }

    async fn restore_secret(
        &self,
        request: Request<pb::RestoreSecretRequest>,
    ) -> Result<Response<pb::Secret>, Status> {
        self.restore_secret_impl(request).await
    }
}
