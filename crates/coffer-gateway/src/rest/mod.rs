//! The Azure Key Vault data-plane REST API, so that the official Azure SDKs work unchanged.
//!
//! A vault is addressed by host, as in Azure: `https://{vault}.{dns-suffix}[:port]/secrets/…`.
//! Each request is parsed into a [`Route`] and runs through the same pipeline as a gRPC call
//! (guards, authentication, the one service-layer operation, audit); this module only
//! translates JSON to service inputs and results back to Azure's JSON. It is the fallback of
//! the listener's router: whatever no gRPC method, identity endpoint, `/metrics` or `/healthz`
//! claims comes here.

mod keys;
mod model;
mod route;
mod secrets;

use std::sync::Arc;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use coffer_crypto::SecretString;
use coffer_service::{Consistency, Listing, RequestContext, Service};
use coffer_types::error::quote_user_text;
use coffer_types::{Error, VaultName};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::client_addr::join_forwarded_for;
use crate::pipeline::{Audited, ClientAddr, Gateway, RequestMeta, Target};
pub(crate) use route::Route;

/// Largest request body read, but for restores: secret values are at most 25 KB and JWKs a few.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A restore carries a backup of up to 500 versions.
const MAX_RESTORE_BYTES: usize = 24 * 1024 * 1024;
/// Longest `x-ms-client-request-id` echoed and used (the SDKs send a 36-character UUID).
const MAX_CLIENT_REQUEST_ID: usize = 256;

/// The REST side of the listener.
pub(crate) struct RestApi {
    gateway: Arc<Gateway>,
    /// The DNS suffix without a port, lower-case: vault hosts are `{vault}.{suffix_host}`.
    suffix_host: String,
    /// The bearer challenge sent with every 401.
    challenge: String,
}

impl RestApi {
    pub(crate) fn new(gateway: Arc<Gateway>, dns_suffix: &str, challenge: String) -> Self {
        let suffix_host = split_port(dns_suffix).0.to_ascii_lowercase();
        Self {
            gateway,
            suffix_host,
            challenge,
        }
    }
}

/// The vault a request's authority names under `suffix_host`, and the origin its ids are
/// built from (the request's own scheme and authority, rebuilt from the checked parts).
fn vault_of(suffix_host: &str, authority: Option<&str>) -> Result<(String, String), Error> {
    let expected = || {
        Error::bad_parameter(format!(
            "The request's host must name a vault: {{vault-name}}.{suffix_host}."
        ))
    };
    let authority = authority.ok_or_else(expected)?;
    let (host, port) = split_port(authority);
    let host = host.to_ascii_lowercase();
    let vault = host
        .strip_suffix(suffix_host)
        .and_then(|rest| rest.strip_suffix('.'))
        .filter(|v| !v.is_empty() && !v.contains('.'))
        .ok_or_else(expected)?;
    let vault = VaultName::parse(vault)
        .map_err(|_| Error::invalid_name(&quote_user_text(vault)))?
        .to_string();
    let origin = match port {
        Some(port) => format!("https://{vault}.{suffix_host}:{port}"),
        None => format!("https://{vault}.{suffix_host}"),
    };
    Ok((vault, origin))
}

/// `host[:port]` split, the port kept only when it is a number.
fn split_port(authority: &str) -> (&str, Option<u16>) {
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
            match port.parse::<u16>() {
                Ok(port) => (host, Some(port)),
                Err(_) => (authority, None),
            }
        }
        _ => (authority, None),
    }
}

/// What a finished REST operation answers: its status and JSON body.
pub(crate) struct Reply {
    status: StatusCode,
    body: Option<Value>,
    audited_id: Option<String>,
}

impl Reply {
    pub(crate) fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body: Some(body),
            audited_id: None,
        }
    }

    /// 204: what Azure answers a purge with.
    pub(crate) fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            body: None,
            audited_id: None,
        }
    }

    /// Names the object the operation produced (a new version) in the audit record.
    pub(crate) fn audited(mut self, id: String) -> Self {
        self.audited_id = Some(id);
        self
    }
}

impl Audited for Reply {
    fn audited_id(&self) -> Option<String> {
        self.audited_id.clone()
    }

    fn http_status(&self) -> u16 {
        self.status.as_u16()
    }
}

/// The query parameters the data plane reads.
#[derive(Debug, Default)]
pub(crate) struct Query {
    api_version: Option<String>,
    max_results: Option<String>,
    skip_token: Option<String>,
}

impl Query {
    fn parse(query: Option<&str>) -> Self {
        let mut out = Query::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let slot = match key.to_ascii_lowercase().as_str() {
                "api-version" => &mut out.api_version,
                "maxresults" => &mut out.max_results,
                "$skiptoken" => &mut out.skip_token,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value.into_owned());
            }
        }
        out
    }
}

/// Checks `api-version`: every version the official SDKs send (7.0 to 7.6, 2016-10-01 and
/// the date forms) and newer ones of the same shapes, previews included. The answer is the
/// same superset for all of them.
fn check_api_version(version: Option<&str>) -> Result<(), Error> {
    let Some(version) = version else {
        return Err(Error::bad_parameter(
            "The 'api-version' query parameter is required.",
        ));
    };
    // A preview of a version ("7.6-preview.2", "2025-06-01-preview") has its shape.
    let stem = version
        .split_once("-preview")
        .map_or(version, |(stem, _)| stem);
    let number =
        |s: &str, len: usize| (1..=len).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    let known = match stem.split('.').collect::<Vec<_>>().as_slice() {
        [major, minor] => {
            number(major, 2) && number(minor, 2) && major.parse::<u32>().is_ok_and(|m| m >= 7)
        }
        _ => match stem.split('-').collect::<Vec<_>>().as_slice() {
            [year, month, day] => {
                year.len() == 4
                    && number(year, 4)
                    && month.len() == 2
                    && number(month, 2)
                    && day.len() == 2
                    && number(day, 2)
                    && stem >= "2016-10-01"
                    && ("01"..="12").contains(month)
                    && ("01"..="31").contains(day)
            }
            _ => false,
        },
    };
    if known {
        Ok(())
    } else {
        Err(Error::bad_parameter(format!(
            "The specified version ({}) is not recognized. Consider using the latest supported version (2026-04-01).",
            quote_user_text(version)
        )))
    }
}

/// One REST call as an operation sees it.
pub(crate) struct Call {
    pub svc: Service,
    pub ctx: RequestContext,
    pub vault: String,
    /// `https://{vault}.{suffix}[:port]`, for ids, kids and next links.
    pub origin: String,
    pub query: Query,
    pub body: Bytes,
}

impl Call {
    /// The body as `T`. Serde's own message is not passed on: it may quote the input.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::bad_parameter("The request body is missing."));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            let message = e.to_string();
            match e.classify() {
                serde_json::error::Category::Data if message.starts_with("missing field") => {
                    let field = message.split('`').nth(1).unwrap_or("?");
                    Error::bad_parameter(format!(
                        "The request body lacks the required property '{field}'."
                    ))
                }
                serde_json::error::Category::Data => Error::bad_parameter(format!(
                    "A property of the request body has a value of the wrong type or range (line {}, column {}).",
                    e.line(),
                    e.column()
                )),
                _ => Error::bad_parameter(format!(
                    "The request body is not valid JSON (line {}, column {}).",
                    e.line(),
                    e.column()
                )),
            }
        })
    }

    /// `maxresults`, 1 to 25 as in Azure (the service refuses more).
    pub(crate) fn max_results(&self) -> Result<Option<u32>, Error> {
        self.query
            .max_results
            .as_deref()
            .map(|text| {
                text.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    Error::bad_parameter("maxresults must be a number from 1 to 25.")
                })
            })
            .transpose()
    }

    pub(crate) fn skip_token(&self) -> Option<&str> {
        self.query.skip_token.as_deref().filter(|t| !t.is_empty())
    }

    /// A list response: the page's items and the link to the next page of `path`.
    pub(crate) fn page(&self, path: &str, page: Listing<Value>) -> Result<Reply, Error> {
        Ok(Reply::ok(json!({
            "value": page.items,
            "nextLink": self.next_link(path, page.next_page_token)?,
        })))
    }

    /// The absolute `nextLink` to the page after this one at `path`, or null on the last page.
    pub(crate) fn next_link(&self, path: &str, token: Option<String>) -> Result<Value, Error> {
        let Some(token) = token else {
            return Ok(Value::Null);
        };
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair(
            "api-version",
            self.query.api_version.as_deref().unwrap_or("7.6"),
        );
        query.append_pair("$skiptoken", &token);
        if let Some(max) = self.max_results()? {
            query.append_pair("maxresults", &max.to_string());
        }
        Ok(Value::String(format!(
            "{}{path}?{}",
            self.origin,
            query.finish()
        )))
    }
}

/// Serves one REST request: the router's fallback.
pub(crate) async fn serve(State(api): State<Arc<RestApi>>, request: Request) -> Response {
    if is_grpc(request.headers()) {
        return grpc_unimplemented();
    }
    let (parts, body) = request.into_parts();
    let route = route::parse(&method_of(&parts.method, &parts.headers), parts.uri.path());
    let operation = route
        .as_ref()
        .map(Route::operation_name)
        .unwrap_or("RestUnknown");
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| header_text(&parts.headers, header::HOST.as_str()));
    let vault = vault_of(&api.suffix_host, authority.as_deref());
    let limit = match route {
        Ok(Route::RestoreSecret | Route::RestoreKey) => MAX_RESTORE_BYTES,
        _ => MAX_BODY_BYTES,
    };
    let client_request_id = header_text(&parts.headers, "x-ms-client-request-id")
        .filter(|id| id.len() <= MAX_CLIENT_REQUEST_ID);
    let bearer = bearer_token(&parts.headers);
    let client = parts.extensions.get::<ClientAddr>().copied();
    let forwarded_for = join_forwarded_for(
        parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.as_bytes()),
    );
    let query = Query::parse(parts.uri.query());
    let target = match (&vault, &route) {
        (Ok((vault, _)), Ok(route)) => match route.object() {
            Some((collection, name, version)) => Target::object(
                vault,
                collection,
                &quote_user_text(name),
                &quote_user_text(version),
            ),
            None => Target::vault(vault),
        },
        _ => Target::default(),
    };
    let too_large = || {
        Error::bad_parameter(format!(
            "The request body is larger than {limit} bytes or was cut short."
        ))
    };
    // A body announced too large is refused unread.
    let body = if usize::try_from(body.size_hint().lower()).map_or(true, |n| n > limit) {
        Err(too_large())
    } else {
        axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| too_large())
    };
    let svc = api.gateway.service.clone();
    let meta = RequestMeta {
        bearer,
        client,
        forwarded_for,
        client_request_id: client_request_id.clone(),
        consistency: Consistency::Linearizable,
    };
    let (request_id, result) = api
        .gateway
        .call(operation, meta, target, |ctx| async move {
            let route = route?;
            let (vault, origin) = vault?;
            check_api_version(query.api_version.as_deref())?;
            let call = Call {
                svc,
                ctx,
                vault,
                origin,
                query,
                body: body?,
            };
            dispatch(call, route).await
        })
        .await;
    respond(&api, &request_id, client_request_id.as_deref(), result)
}

async fn dispatch(call: Call, route: Route) -> Result<Reply, Error> {
    match route {
        Route::SetSecret(_)
        | Route::GetSecret(..)
        | Route::UpdateSecret(..)
        | Route::DeleteSecret(_)
        | Route::ListSecrets
        | Route::ListSecretVersions(_)
        | Route::BackupSecret(_)
        | Route::RestoreSecret
        | Route::ListDeletedSecrets
        | Route::GetDeletedSecret(_)
        | Route::PurgeDeletedSecret(_)
        | Route::RecoverDeletedSecret(_) => secrets::serve(call, route).await,
        _ => keys::serve(call, route).await,
    }
}

fn respond(
    api: &RestApi,
    request_id: &str,
    client_request_id: Option<&str>,
    result: Result<Reply, Error>,
) -> Response {
    let (status, body, error) = match result {
        Ok(reply) => (reply.status, reply.body, None),
        Err(e) => (
            StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Some(error_body(&e)),
            Some(e),
        ),
    };
    let mut response = match body {
        Some(body) => (status, body.to_string()).into_response(),
        None => (status, Body::empty()).into_response(),
    };
    let headers = response.headers_mut();
    if status != StatusCode::NO_CONTENT {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "x-ms-keyvault-service-version",
        HeaderValue::from_static(concat!("coffer/", env!("CARGO_PKG_VERSION"))),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-ms-request-id", value);
    }
    if let Some(value) = client_request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        headers.insert("x-ms-client-request-id", value);
    }
    if status == StatusCode::UNAUTHORIZED
        && let Ok(value) = HeaderValue::from_str(&api.challenge)
    {
        headers.insert(header::WWW_AUTHENTICATE, value);
    }
    if let Some(e) = &error {
        // The code again as a header: azure_core reads it when it cannot read the body's (a
        // message with escapes such as Azure's "\r\n" defeats its borrowing parser).
        headers.insert("x-ms-error-code", HeaderValue::from_static(e.code.as_str()));
        add_retry_after(headers, e);
    }
    response
}

/// Azure's error envelope; a 429 also carries when to come back.
fn error_body(e: &Error) -> Value {
    let mut error = json!({"code": e.code.as_str(), "message": e.message});
    if let Some(inner) = e.inner {
        error["innererror"] = json!({"code": inner.as_str()});
    }
    json!({ "error": error })
}

/// Retry-After (whole seconds) and x-ms-retry-after-ms on a 429, after the body is built.
fn add_retry_after(headers: &mut HeaderMap, e: &Error) {
    if let Some(ms) = e.retry_after_ms {
        let seconds = ms.div_ceil(1_000).max(1);
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            headers.insert(header::RETRY_AFTER, value);
        }
        if let Ok(value) = HeaderValue::from_str(&ms.to_string()) {
            headers.insert("x-ms-retry-after-ms", value);
        }
    }
}

/// The method a request means: a POST may name PUT, PATCH or DELETE in `X-HTTP-METHOD` (or
/// `X-HTTP-Method-Override`), for clients that cannot send them, as Azure allows.
fn method_of(method: &Method, headers: &HeaderMap) -> Method {
    if *method != Method::POST {
        return method.clone();
    }
    let named = ["x-http-method", "x-http-method-override"]
        .iter()
        .find_map(|name| headers.get(*name)?.to_str().ok())
        .map(|text| text.trim().to_ascii_uppercase());
    match named.as_deref() {
        Some("PUT") => Method::PUT,
        Some("PATCH") => Method::PATCH,
        Some("DELETE") => Method::DELETE,
        _ => Method::POST,
    }
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// What tonic answers a gRPC call to an unknown method with.
fn grpc_unimplemented() -> Response {
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from_static("12"));
    response
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn bearer_token(headers: &HeaderMap) -> Option<SecretString> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| SecretString::new(token.trim().to_owned()))
}

/// The REST API as a router of its own, for the listener's fallback.
pub(crate) fn router(api: Arc<RestApi>) -> axum::Router {
    axum::Router::new().fallback(serve).with_state(api)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_may_name_the_method_it_means() {
        let mut headers = HeaderMap::new();
        assert_eq!(method_of(&Method::POST, &headers), Method::POST);
        headers.insert("x-http-method", HeaderValue::from_static("delete"));
        assert_eq!(method_of(&Method::POST, &headers), Method::DELETE);
        assert_eq!(method_of(&Method::GET, &headers), Method::GET);
        headers.insert("x-http-method", HeaderValue::from_static("CONNECT"));
        assert_eq!(method_of(&Method::POST, &headers), Method::POST);
        let mut headers = HeaderMap::new();
        headers.insert("x-http-method-override", HeaderValue::from_static("PATCH"));
        assert_eq!(method_of(&Method::POST, &headers), Method::PATCH);
    }

    #[test]
    fn every_api_version_the_sdks_send_is_accepted() {
        for version in [
            "7.0",
            "7.1",
            "7.2",
            "7.3",
            "7.4",
            "7.5",
            "7.6",
            "7.6-preview.2",
            "7.10",
            "2016-10-01",
            "2025-07-01",
            "2025-06-01-preview",
            "2026-04-01",
            "2027-01-01",
        ] {
            check_api_version(Some(version)).unwrap_or_else(|e| panic!("{version}: {}", e.message));
        }
        for version in [
            "",
            "6.0",
            "7",
            "7.x",
            "2015-01-01",
            "2026-13-01",
            "2026-4-01",
            "latest",
            "7.6.1",
        ] {
            let e = check_api_version(Some(version)).unwrap_err();
            assert_eq!(e.code, coffer_types::ErrorCode::BadParameter, "{version}");
        }
        assert!(check_api_version(None).is_err());
    }

    #[test]
    fn the_host_names_the_vault_and_the_origin() {
        let suffix = "vault.coffer.localhost";
        assert_eq!(
            vault_of(suffix, Some("KV1.Vault.Coffer.Localhost:8443")).unwrap(),
            (
                "kv1".to_owned(),
                "https://kv1.vault.coffer.localhost:8443".to_owned()
            )
        );
        assert_eq!(
            vault_of(suffix, Some("kv-2.vault.coffer.localhost"))
                .unwrap()
                .1,
            "https://kv-2.vault.coffer.localhost"
        );
        for host in [
            None,
            Some("localhost:8443"),
            Some("vault.coffer.localhost"),
            Some("a.b.vault.coffer.localhost"),
            Some("kv1.vault.coffer.localhost.evil:1"),
            Some("kv1xvault.coffer.localhost"),
            Some("k_1.vault.coffer.localhost"),
        ] {
            let e = vault_of(suffix, host).unwrap_err();
            assert_eq!(e.code, coffer_types::ErrorCode::BadParameter, "{host:?}");
        }
    }

    #[test]
    fn query_parameters_are_decoded_and_the_first_wins() {
        let q = Query::parse(Some(
            "api-version=7.6&%24skiptoken=abc%3D&maxresults=5&api-version=7.0&other=1",
        ));
        assert_eq!(q.api_version.as_deref(), Some("7.6"));
        assert_eq!(q.skip_token.as_deref(), Some("abc="));
        assert_eq!(q.max_results.as_deref(), Some("5"));
        let q = Query::parse(None);
        assert!(q.api_version.is_none());
    }
}
