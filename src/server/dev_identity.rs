//! The identities of a dev server, created on first start and reused after a restart: tenant
//! `dev`, an administrator service principal (Owner and Key Vault Administrator on the whole
//! node) whose client secret dev.env exports, so that the Azure SDKs' `ClientSecretCredential`
//! can be pointed at the node, and a managed identity for workloads on the node (Key Vault
//! Secrets User), served through the node's managed-identity endpoint.

use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use coffer_crypto::{SecretString, create_private_file};
use coffer_service::{
    CreatePrincipal, CreateRoleAssignment, NewCredential, RequestContext, Service,
};
use coffer_types::identity::PrincipalKind;
use serde::{Deserialize, Serialize};

pub const DEV_TENANT: &str = "dev";

/// What dev.env exports about the dev identities; kept in `dev-identity.json` (mode 0600).
#[derive(Serialize, Deserialize)]
pub struct DevIdentity {
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    pub managed_identity_client_id: String,
}

impl std::fmt::Debug for DevIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIdentity")
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Waits until the node can write (it has a leader), at most `limit`.
async fn until_writable<T, F, Fut>(limit: Duration, mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, coffer_types::Error>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if e.is_retryable() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(anyhow::anyhow!("{e}")),
        }
    }
}

/// Makes sure a token signing key exists (every node at every start).
pub async fn ensure_signing_key(service: &Service) -> anyhow::Result<()> {
    until_writable(Duration::from_secs(60), || service.ensure_signing_key())
        .await
        .context("creating the token signing key")
}

/// Makes sure the cluster's geography has a backup key (every node at every start).
pub async fn ensure_geography_key(service: &Service) -> anyhow::Result<()> {
    until_writable(Duration::from_secs(60), || service.ensure_geography_key())
        .await
        .context("creating the geography backup key")
}

/// The dev identities: read from `path`, or created and written there on first start.
pub async fn dev_identity(service: &Service, path: &Path) -> anyhow::Result<DevIdentity> {
    if path.exists() {
        let text = fs::read_to_string(path)?;
        return serde_json::from_str(&text)
            .with_context(|| format!("{} is not a dev identity file", path.display()));
    }
    // One context per step: a retried step reuses its request id, so a write whose answer was
    // lost is not applied twice.
    let wait = Duration::from_secs(60);
    let ctx = RequestContext::internal()?;
    until_writable(wait, || async {
        match service.create_tenant(&ctx, DEV_TENANT, "Coffer dev").await {
            Err(e) if e.code == coffer_types::ErrorCode::Conflict => Ok(()),
            other => other.map(|_| ()),
        }
    })
    .await?;
    let ctx = RequestContext::internal()?;
    let admin = until_writable(wait, || async {
        service
            .create_principal(
                &ctx,
                CreatePrincipal {
                    tenant: DEV_TENANT.into(),
                    kind: PrincipalKind::ServicePrincipal,
                    display_name: "coffer-dev-admin".into(),
                    app_id: None,
                },
            )
            .await
    })
    .await?;
    let ctx = RequestContext::internal()?;
    let added = until_writable(wait, || async {
        service
            .add_credential(
                &ctx,
                &admin.object_id,
                NewCredential::Secret { expires: None },
            )
            .await
    })
    .await?;
    let secret: SecretString = added
        .secret
        .context("adding a client secret returned no secret")?;
    for role in ["Owner", "Key Vault Administrator"] {
        assign(service, &admin.object_id, role).await?;
    }
    let ctx = RequestContext::internal()?;
    let workload = until_writable(wait, || async {
        service
            .create_principal(
                &ctx,
                CreatePrincipal {
                    tenant: DEV_TENANT.into(),
                    kind: PrincipalKind::ManagedIdentity,
                    display_name: "coffer-dev-workload".into(),
                    app_id: None,
                },
            )
            .await
    })
    .await?;
    assign(service, &workload.object_id, "Key Vault Secrets User").await?;
    let identity = DevIdentity {
        tenant: DEV_TENANT.into(),
        client_id: admin.app_id.unwrap_or_default(),
        client_secret: secret.expose().to_owned(),
        managed_identity_client_id: workload.app_id.unwrap_or_default(),
    };
    create_private_file(path, serde_json::to_string_pretty(&identity)?.as_bytes())?;
    Ok(identity)
}

async fn assign(service: &Service, principal: &str, role: &str) -> anyhow::Result<()> {
    let ctx = RequestContext::internal()?;
    until_writable(Duration::from_secs(60), || async {
        service
            .create_role_assignment(
                &ctx,
                CreateRoleAssignment {
                    principal: principal.to_owned(),
                    role: role.to_owned(),
                    scope: "/".to_owned(),
                },
            )
            .await
    })
    .await
    .map(|_| ())
}
