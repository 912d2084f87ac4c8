//! Conversions between the service layer's records and the gRPC wire types, and from errors to
//! gRPC statuses. This is the one place a Coffer error code becomes a gRPC code.

use coffer_proto::v1 as pb;
use coffer_service::{Listing, SecretBundle};
use coffer_types::{Error, ErrorCode, Sku, VaultRecord};
use tonic::Status;
use tonic::metadata::MetadataValue;

use crate::pipeline::Audited;

/// Where vault URIs point: `https://{vault}.{suffix}`.
#[derive(Debug, Clone)]
pub(crate) struct UriBase {
    /// DNS suffix, with `:port` when the port is not 443.
    pub suffix: String,
}

impl UriBase {
    pub(crate) fn vault_uri(&self, vault: &str) -> String {
        format!("https://{}.{}", vault.to_ascii_lowercase(), self.suffix)
    }
}

pub(crate) fn sku_to_pb(sku: Sku) -> pb::Sku {
    match sku {
        Sku::Standard => pb::Sku::Standard,
        Sku::Premium => pb::Sku::Premium,
    }
}

pub(crate) fn sku_from_pb(value: i32) -> Result<Option<Sku>, Error> {
    match pb::Sku::try_from(value) {
        Ok(pb::Sku::Unspecified) => Ok(None),
        Ok(pb::Sku::Standard) => Ok(Some(Sku::Standard)),
        Ok(pb::Sku::Premium) => Ok(Some(Sku::Premium)),
        Err(_) => Err(Error::bad_parameter(format!("Unknown SKU {value}."))),
    }
}

pub(crate) fn vault_to_pb(record: &VaultRecord, base: &UriBase) -> pb::Vault {
    pb::Vault {
        name: record.name.clone(),
        location: record.location.clone(),
        sku: sku_to_pb(record.sku) as i32,
        retention_days: record.retention_days,
        purge_protection: record.purge_protection,
        tags: record
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        created: record.created,
        updated: record.updated,
        vault_uri: base.vault_uri(&record.name),
        enable_rbac_authorization: record.enable_rbac_authorization,
        network_acls: Some(pb::NetworkRuleSet {
            default_action: record.network.default_action.as_str().to_owned(),
            bypass: record.network.bypass.as_str().to_owned(),
            ip_rules: record
                .network
                .ip_rules
                .iter()
                .map(ToString::to_string)
                .collect(),
            virtual_network_rules: record.network.virtual_network_rules.clone(),
        }),
        public_network_access: record.network.public_network_access.as_str().to_owned(),
        throttle_limits: coffer_types::ThrottleClass::ALL
            .iter()
            .map(|class| {
                let limit = record.throttle.limit(*class);
                pb::ThrottleLimit {
                    class: class.as_str().to_owned(),
                    rate: limit.rate,
                    burst: limit.burst,
                    default: record.throttle.is_default(*class),
                }
            })
            .collect(),
    }
}

pub(crate) fn secret_to_pb(bundle: SecretBundle, base: &UriBase) -> pb::Secret {
    let SecretBundle {
        vault,
        record,
        value,
    } = bundle;
    let id = format!(
        "{}/secrets/{}/{}",
        base.vault_uri(&vault.name),
        record.name,
        record.version
    );
    pb::Secret {
        vault: vault.name.clone(),
        name: record.name.clone(),
        version: record.version.clone(),
        value: value.map(|v| v.into_inner()).unwrap_or_default(),
        content_type: record.content_type.clone().unwrap_or_default(),
        attributes: Some(pb::SecretAttributes {
            enabled: record.enabled,
            not_before: record.not_before,
            expires: record.expires,
            created: record.created,
            updated: record.updated,
            recovery_level: vault.recovery_level().to_owned(),
            recoverable_days: vault.retention_days,
        }),
        tags: record
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        id,
    }
}

/// A page of secrets (list results never carry values: the service returns none).
pub(crate) fn secret_page_to_pb(
    page: Listing<SecretBundle>,
    base: &UriBase,
) -> pb::ListSecretsResponse {
    pb::ListSecretsResponse {
        secrets: page
            .items
            .into_iter()
            .map(|b| secret_to_pb(b, base))
            .collect(),
        next_page_token: page.next_page_token.unwrap_or_default(),
    }
}

pub(crate) fn tags_from_pb(
    tags: std::collections::HashMap<String, String>,
) -> Vec<(String, String)> {
    tags.into_iter().collect()
}

/// The gRPC status for an error: the code mapped once here, the Azure code and inner code in
/// metadata, the message as the status message.
pub(crate) fn status_from(error: &Error, request_id: &str) -> Status {
    let code = match error.code {
        ErrorCode::BadParameter => tonic::Code::InvalidArgument,
        ErrorCode::Unauthorized => tonic::Code::Unauthenticated,
        ErrorCode::Forbidden => tonic::Code::PermissionDenied,
        ErrorCode::VaultNotFound
        | ErrorCode::SecretNotFound
        | ErrorCode::KeyNotFound
        | ErrorCode::NotFound => tonic::Code::NotFound,
        ErrorCode::Conflict => tonic::Code::AlreadyExists,
        ErrorCode::Throttled => tonic::Code::ResourceExhausted,
        ErrorCode::ServiceUnavailable => tonic::Code::Unavailable,
        _ => tonic::Code::Internal,
    };
    let mut status = Status::new(code, error.message.clone());
    let meta = status.metadata_mut();
    meta.insert(
        "x-coffer-error-code",
        MetadataValue::from_static(error.code.as_str()),
    );
    if let Some(inner) = error.inner {
        meta.insert(
            "x-coffer-inner-error-code",
            MetadataValue::from_static(inner.as_str()),
        );
    }
    if let Ok(value) = MetadataValue::try_from(request_id) {
        meta.insert("x-ms-request-id", value);
    }
    if let Some(ms) = error.retry_after_ms {
        // Retry-After counts whole seconds; the millisecond header is what SDKs prefer.
        let seconds = ms.div_ceil(1_000).max(1);
        if let Ok(value) = MetadataValue::try_from(seconds.to_string()) {
            meta.insert("retry-after", value);
        }
        if let Ok(value) = MetadataValue::try_from(ms.to_string()) {
            meta.insert("x-ms-retry-after-ms", value);
        }
    }
    status
}

impl Audited for pb::Vault {}
impl Audited for pb::ListVaultsResponse {}
impl Audited for pb::DeleteVaultResponse {}
impl Audited for pb::ListSecretsResponse {}
impl Audited for pb::Secret {
    fn audited_id(&self) -> Option<String> {
        Some(format!(
            "{}/secrets/{}/{}",
            self.vault, self.name, self.version
        ))
    }
}
