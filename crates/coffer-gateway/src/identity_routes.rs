//! The identity provider's HTTP endpoints, shaped as Microsoft Entra's v2.0 endpoints so that
//! MSAL (inside the Azure SDKs' credentials) can use Coffer as its authority:
//!
//! - `GET  /{tenant}/v2.0/.well-known/openid-configuration` — discovery;
//! - `GET  /{tenant}/discovery/v2.0/keys` — the JWKS of the token signing keys;
//! - `POST /{tenant}/oauth2/v2.0/token` — the client-credentials grant.
//!
//! Token requests are audited like every other request (the caller is the client id asked
//! for, never the credential).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use coffer_crypto::SecretString;
use coffer_service::{IssuedToken, OAuthError, TokenGrant};
use coffer_types::error::quote_user_text;
use serde_json::json;

use crate::pipeline::{ClientAddr, Gateway, Outcome};

/// Token requests are small forms; anything larger is refused before parsing.
const MAX_FORM_BYTES: usize = 64 * 1024;

pub(crate) fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(discovery),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(keys))
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .with_state(gateway)
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn oauth_error_response(e: &OAuthError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    json_response(
        status,
        json!({
            "error": e.error,
            "error_description": e.description,
        }),
    )
}

fn unknown_tenant(tenant: &str) -> Response {
    oauth_error_response(&OAuthError {
        status: 400,
        error: "invalid_tenant",
        description: format!("AADSTS90002: Tenant {} not found.", quote_user_text(tenant)),
    })
}

/// `None` when the tenant exists; the response to send otherwise.
fn refuse_unknown_tenant(gateway: &Gateway, tenant: &str) -> Option<Response> {
    match gateway.service.tenant_exists(tenant) {
        Ok(true) => None,
        Ok(false) => Some(unknown_tenant(tenant)),
        Err(e) => Some(json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "temporarily_unavailable", "error_description": e.message}),
        )),
    }
}

async fn discovery(State(gateway): State<Arc<Gateway>>, Path(tenant): Path<String>) -> Response {
    if let Some(refused) = refuse_unknown_tenant(&gateway, &tenant) {
        return refused;
    }
    let service = &gateway.service;
    let base = &service.identity_config().issuer_base;
    json_response(
        StatusCode::OK,
        json!({
            "issuer": service.issuer(&tenant),
            // MSAL refuses a document without it, although client credentials never use it.
            "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
            "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
            "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "scopes_supported": ["openid"],
            "claims_supported": ["aud", "iss", "iat", "nbf", "exp", "sub", "oid", "tid", "appid"],
            "tenant_region_scope": serde_json::Value::Null,
        }),
    )
}

async fn keys(State(gateway): State<Arc<Gateway>>, Path(tenant): Path<String>) -> Response {
    if let Some(refused) = refuse_unknown_tenant(&gateway, &tenant) {
        return refused;
    }
    match gateway.service.jwks() {
        Ok(jwks) => match serde_json::to_value(&jwks) {
            Ok(body) => json_response(StatusCode::OK, body),
            Err(_) => json_response(StatusCode::INTERNAL_SERVER_ERROR, json!({})),
        },
        Err(e) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "temporarily_unavailable", "error_description": e.message}),
        ),
    }
}

/// A token endpoint response, as Entra shapes it.
pub(crate) fn token_body(token: &IssuedToken) -> serde_json::Value {
    json!({
        "token_type": "Bearer",
        "expires_in": token.expires_in,
        "ext_expires_in": token.expires_in,
        "access_token": token.access_token.expose(),
    })
}

fn parse_grant(
    tenant: &str,
    body: &[u8],
    endpoint_urls: Vec<String>,
) -> Result<TokenGrant, OAuthError> {
    let mut grant = TokenGrant {
        tenant: tenant.to_owned(),
        endpoint_urls,
        ..TokenGrant::default()
    };
    for (key, value) in form_urlencoded::parse(body) {
        let value = value.into_owned();
        let slot = match key.as_ref() {
            "grant_type" => &mut grant.grant_type,
            "client_id" => &mut grant.client_id,
            "scope" => &mut grant.scope,
            "client_assertion_type" => &mut grant.client_assertion_type,
            "client_secret" => {
                if grant
                    .client_secret
                    .replace(SecretString::new(value))
                    .is_some()
                {
                    return Err(duplicate("client_secret"));
                }
                continue;
            }
            "client_assertion" => {
                if grant
                    .client_assertion
                    .replace(SecretString::new(value))
                    .is_some()
                {
                    return Err(duplicate("client_assertion"));
                }
                continue;
            }
            // MSAL sends client_info, claims and others; unknown fields are ignored, as Entra
            // ignores them.
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(duplicate(&key));
        }
    }
    Ok(grant)
}

fn duplicate(field: &str) -> OAuthError {
    OAuthError {
        status: 400,
        error: "invalid_request",
        description: format!(
            "The request gives {} more than once.",
            quote_user_text(field)
        ),
    }
}

async fn token(
    State(gateway): State<Arc<Gateway>>,
    Path(tenant): Path<String>,
    client: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let request_id = gateway.next_request_id();
    let mut client_id = None;
    let result = async {
        // The tenant is checked by the service, after its read barrier.
        if body.len() > MAX_FORM_BYTES {
            return Err(OAuthError {
                status: 413,
                error: "invalid_request",
                description: "The token request is too large.".into(),
            });
        }
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(OAuthError {
                status: 400,
                error: "invalid_request",
                description: "The token request must be application/x-www-form-urlencoded.".into(),
            });
        }
        // The audiences a client assertion may carry come from configuration; the request's
        // Host header would let an assertion made for another endpoint be replayed here.
        let endpoint_urls = gateway
            .service
            .identity_config()
            .token_endpoint_bases
            .iter()
            .map(|base| format!("{base}/{tenant}/oauth2/v2.0/token"))
            .collect();
        let grant = parse_grant(&tenant, &body, endpoint_urls)?;
        client_id = grant.client_id.clone();
        gateway.service.issue_token(grant).await
    }
    .await;
    let (status, result_code, response) = match &result {
        Ok(token) => (200, "OK", json_response(StatusCode::OK, token_body(token))),
        Err(e) => (e.status, e.error, oauth_error_response(e)),
    };
    gateway.record(Outcome {
        operation_name: "TokenIssue",
        request_id: &request_id,
        caller: client_id
            .map(|c| format!("appid={}", quote_user_text(&c)))
            .unwrap_or_else(|| "anonymous".to_owned()),
        client: client.map(|c| c.0.addr.ip()),
        vault: None,
        id: Some(format!("tenants/{}", quote_user_text(&tenant))),
        result_code,
        inner_code: None,
        retry_after_ms: None,
        http_status: status,
        started,
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_ignore_unknown_fields_and_refuse_repeats() {
        let body = b"client_id=app1&grant_type=client_credentials&client_info=1&\
client_secret=s%26x&claims=%7B%7D&scope=https%3A%2F%2Fvault.coffer.localhost%3A8443%2F.default";
        let grant = parse_grant("t1", body, vec![]).unwrap();
        assert_eq!(grant.client_id.as_deref(), Some("app1"));
        assert_eq!(grant.client_secret.as_ref().unwrap().expose(), "s&x");
        assert_eq!(
            grant.scope.as_deref(),
            Some("https://vault.coffer.localhost:8443/.default")
        );
        let repeated = parse_grant("t1", b"client_id=a&client_id=b", vec![]).unwrap_err();
        assert_eq!(repeated.error, "invalid_request");
        let secrets = parse_grant("t1", b"client_secret=a&client_secret=b", vec![]).unwrap_err();
        assert!(!secrets.description.contains("a&"));
    }
}
