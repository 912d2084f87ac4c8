//! The node's managed-identity endpoint: the App Service protocol (api-version 2019-08-01) that
//! `ManagedIdentityCredential` and `DefaultAzureCredential` of the Azure SDKs speak when
//! `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set.
//!
//! Workloads on the node get tokens for the managed identities assigned to the node, without
//! holding any credential of their own. The endpoint is plain HTTP, as App Service's is, so it
//! must only listen on loopback: the server refuses any other address. A request must carry
//! the node's identity header (`X-IDENTITY-HEADER`), a random value readable only by the
//! workloads it is meant for, which stops a forged request from a browser or an SSRF that
//! cannot set headers.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use coffer_crypto::{SecretString, TokenHash};
use coffer_types::error::quote_user_text;
use serde_json::json;
use tokio::net::TcpListener;

use crate::pipeline::{Gateway, Outcome};

/// The protocol version served (the one the Azure SDKs send to App Service endpoints).
pub const MANAGED_IDENTITY_API_VERSION: &str = "2019-08-01";

/// What the endpoint may hand out.
pub struct ManagedIdentitySettings {
    /// The identity header's hash; compared in constant time.
    pub header: TokenHash,
    /// Client ids of the managed identities assigned to this node; the first is the default.
    pub client_ids: Vec<String>,
}

struct EndpointState {
    gateway: Arc<Gateway>,
    settings: ManagedIdentitySettings,
}

#[derive(Debug, Default)]
struct TokenQuery {
    resource: Option<String>,
    api_version: Option<String>,
    client_id: Option<String>,
    principal_id: Option<String>,
    mi_res_id: Option<String>,
}

impl TokenQuery {
    fn parse(query: &str) -> Self {
        let mut out = Self::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match key.as_ref() {
                "resource" => &mut out.resource,
                "api-version" => &mut out.api_version,
                "client_id" => &mut out.client_id,
                "principal_id" | "object_id" => &mut out.principal_id,
                "mi_res_id" => &mut out.mi_res_id,
                _ => continue,
            };
            *slot = Some(value.into_owned());
        }
        out
    }
}

/// Serves the endpoint on `listener` (which must be a loopback address) until `shutdown`.
pub async fn serve_managed_identity(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    settings: ManagedIdentitySettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the managed-identity endpoint must listen on a loopback address",
        ));
    }
    let state = Arc::new(EndpointState { gateway, settings });
    let app = Router::new()
        .route("/msi/token", get(token))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"statusCode": status.as_u16(), "message": message}).to_string(),
    )
        .into_response()
}

async fn token(
    State(state): State<Arc<EndpointState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = TokenQuery::parse(query.as_deref().unwrap_or(""));
    let started = Instant::now();
    let gateway = &state.gateway;
    let request_id = gateway.next_request_id();
    let mut client_id = None;
    let (response, result_code) = 'answer: {
        let header_ok = headers
            .get("x-identity-header")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| state.settings.header.matches(v));
        if !header_ok {
            break 'answer (
                error(
                    StatusCode::UNAUTHORIZED,
                    "The X-IDENTITY-HEADER is missing or wrong.",
                ),
                "Unauthorized",
            );
        }
        if query.api_version.as_deref() != Some(MANAGED_IDENTITY_API_VERSION) {
            break 'answer (
                error(
                    StatusCode::BAD_REQUEST,
                    "The api-version must be 2019-08-01.",
                ),
                "BadParameter",
            );
        }
        if query.principal_id.is_some() || query.mi_res_id.is_some() {
            break 'answer (
                error(
                    StatusCode::BAD_REQUEST,
                    "Select a managed identity by client_id.",
                ),
                "BadParameter",
            );
        }
        let Some(resource) = query.resource.as_deref() else {
            break 'answer (
                error(
                    StatusCode::BAD_REQUEST,
                    "The resource parameter is required.",
                ),
                "BadParameter",
            );
        };
        let assigned = &state.settings.client_ids;
        let chosen = match query.client_id.as_deref() {
            Some(id) => assigned.iter().find(|a| a.as_str() == id),
            None => assigned.first(),
        };
        let Some(chosen) = chosen else {
            break 'answer (
                error(
                    StatusCode::BAD_REQUEST,
                    "Identity not found: the managed identity has not been assigned to this node.",
                ),
                "BadParameter",
            );
        };
        client_id = Some(chosen.clone());
        match gateway
            .service
            .issue_managed_identity_token(chosen, Some(resource))
            .await
        {
            Ok(token) => (
                (
                    StatusCode::OK,
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::CACHE_CONTROL, "no-store"),
                    ],
                    json!({
                        "access_token": token.access_token.expose(),
                        // Strings, as App Service sends them and the Rust SDK requires.
                        "expires_on": token.expires_on.to_string(),
                        "resource": resource,
                        "token_type": "Bearer",
                        "client_id": token.client_id,
                    })
                    .to_string(),
                )
                    .into_response(),
                "OK",
            ),
            Err(e) => (
                error(
                    StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
                    &e.description,
                ),
                e.error,
            ),
        }
    };
    let http_status = response.status().as_u16();
    gateway.record(Outcome {
        operation_name: "ManagedIdentityToken",
        request_id: &request_id,
        caller: client_id
            .map(|c| format!("appid={}", quote_user_text(&c)))
            .unwrap_or_else(|| "anonymous".to_owned()),
        client: None,
        vault: None,
        id: Some("managed-identity".to_owned()),
        result_code,
        inner_code: None,
        retry_after_ms: None,
        http_status,
        started,
    });
    response
}

/// A new identity header value for a node (shown to the workloads through their environment).
pub fn generate_identity_header() -> Result<SecretString, coffer_crypto::CryptoError> {
    coffer_crypto::generate_token()
}
