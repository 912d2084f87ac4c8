//! The OAuth 2.0 client-credentials grant against a Coffer node's token endpoint,
//! `POST https://{node}/{tenant}/oauth2/v2.0/token`, shaped as Microsoft Entra's v2.0 endpoint.
//!
//! One HTTP/1.1 request over its own TLS connection, trusting only the operator's CA, like the
//! gRPC channel. The credential (client secret or signed client assertion) is sent in the form
//! body only; it appears in no error, and the token in no `Debug` output.

use std::fmt;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use zeroize::Zeroizing;

use crate::options::now_unix;
use crate::tls::{
    NodeUrl, https_bundle_client_config, https_client_config, invalid_addr, parse_node_url,
};
use crate::{ClientError, Token};

/// The `client_assertion_type` of a signed JWT assertion (RFC 7523).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long one token request may take, connection included. A CLI should fail rather than
/// hang on a node that accepts connections but never answers.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long TCP and TLS may take. Shorter than [`TOKEN_TIMEOUT`], so that a node that does not
/// answer at all is given up soon enough for the next one to be tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest answer read. A token response is about 1 KiB; the cap stops a broken or hostile
/// endpoint from filling memory.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The longest error description kept, so that a hostile endpoint cannot flood a terminal.
const MAX_DESCRIPTION_CHARS: usize = 1024;

/// How a service principal proves who it is at the token endpoint.
#[derive(Clone)]
pub enum ClientAuth {
    /// A client secret (`client_secret`).
    Secret(Token),
    /// A signed JWT (`client_assertion`): one made with a registered certificate's key, or a
    /// federated token from a trusted issuer.
    Assertion(Token),
}

impl ClientAuth {
    fn credential(&self) -> &str {
        match self {
            Self::Secret(token) | Self::Assertion(token) => token.expose(),
        }
    }
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Secret(_) => "ClientAuth::Secret(<redacted>)",
            Self::Assertion(_) => "ClientAuth::Assertion(<redacted>)",
        })
    }
}

/// An access token from the token endpoint.
#[derive(Clone)]
pub struct AccessToken {
    /// The bearer token.
    pub token: Token,
    /// When it stops being accepted, Unix seconds (this machine's clock at the request, plus
    /// the lifetime the endpoint announced).
    pub expires_on: i64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &self.token)
            .field("expires_on", &self.expires_on)
            .finish()
    }
}

/// The token endpoint of `tenant` at `authority` (`https://host:port`), exactly as
/// [`request_token`] sends it: the audience a client assertion for that request must carry.
pub fn token_endpoint(authority: &str, tenant: &str) -> Result<String, ClientError> {
    let url = parse_node_url(authority)?;
    check_tenant(tenant)?;
    Ok(format!("https://{}{}", url.authority, token_path(tenant)))
}

fn token_path(tenant: &str) -> String {
    format!("/{tenant}/oauth2/v2.0/token")
}

/// The tenant is a path segment: anything but URL-unreserved characters could change the path.
fn check_tenant(tenant: &str) -> Result<(), ClientError> {
    let ok = !tenant.is_empty()
        && tenant.len() <= 64
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if ok {
        Ok(())
    } else {
        Err(ClientError::InvalidConfiguration {
            message: format!(
                "invalid tenant {tenant:?}: use 1 to 64 letters, digits, '-', '.', '_' or '~'"
            ),
        })
    }
}

/// Asks the token endpoint of `authority` (`https://host:port`, no trailing slash) for an
/// access token of `client_id` in `tenant`. `scope` is `{audience}/.default`; `None` leaves the
/// audience to the server's default. Refusals come back as [`ClientError::OAuth`] with the
/// endpoint's `error` code and description.
pub async fn request_token(
    authority: &str,
    ca_cert_pem: &[u8],
    tenant: &str,
    client_id: &str,
    auth: &ClientAuth,
    scope: Option<&str>,
) -> Result<AccessToken, ClientError> {
    let url = parse_node_url(authority)?;
    check_tenant(tenant)?;
    if client_id.is_empty() {
        return Err(ClientError::InvalidConfiguration {
            message: "the client id is empty".to_owned(),
        });
    }
    if auth.credential().is_empty() {
        return Err(ClientError::InvalidConfiguration {
            message: "the client secret or assertion is empty".to_owned(),
        });
    }
    let config = https_client_config(ca_cert_pem)?;
    let form = form_body(client_id, auth, scope);
    let requested_at = now_unix();
    let (status, body) = tokio::time::timeout(
        TOKEN_TIMEOUT,
        post_form(&url, config, &token_path(tenant), form),
    )
    .await
    .map_err(|_| ClientError::Connect {
        addr: format!("https://{}", url.authority),
        message: format!(
            "the token endpoint did not answer within {} s",
            TOKEN_TIMEOUT.as_secs()
        ),
    })??;
    parse_token_response(status, &body, requested_at, auth.credential())
}

/// Tries the nodes of `addrs` in order, moving on only when a node cannot be reached: a
/// refusal from one node would be the same from every other.
pub(crate) async fn request_token_from_nodes(
    addrs: &[String],
    ca_cert_pem: &[u8],
    tenant: &str,
    client_id: &str,
    auth: &ClientAuth,
    scope: Option<&str>,
) -> Result<AccessToken, ClientError> {
    let mut first_error = None;
    for addr in addrs {
        match request_token(addr, ca_cert_pem, tenant, client_id, auth, scope).await {
            Err(err @ ClientError::Connect { .. }) => {
                first_error.get_or_insert(err);
            }
            other => return other,
        }
    }
    Err(
        first_error.unwrap_or_else(|| ClientError::InvalidConfiguration {
            message: "no address given".to_owned(),
        }),
    )
}

/// The `application/x-www-form-urlencoded` body. Held in a zeroizing buffer: it carries the
/// credential.
fn form_body(client_id: &str, auth: &ClientAuth, scope: Option<&str>) -> Zeroizing<String> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    form.append_pair("client_id", client_id);
    if let Some(scope) = scope {
        form.append_pair("scope", scope);
    }
    match auth {
        ClientAuth::Secret(secret) => {
            form.append_pair("client_secret", secret.expose());
        }
        ClientAuth::Assertion(assertion) => {
            form.append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE);
            form.append_pair("client_assertion", assertion.expose());
        }
    }
    Zeroizing::new(form.finish())
}

/// Sends one POST over a fresh TLS connection; returns the status and the (bounded) body.
async fn post_form(
    url: &NodeUrl,
    config: std::sync::Arc<rustls::ClientConfig>,
    path: &str,
    form: Zeroizing<String>,
) -> Result<(u16, Bytes), ClientError> {
    // hyper and rustls copy the body into buffers this crate cannot wipe; those copies live
    // only as long as this one request.
    let request = hyper::Request::post(path)
        .header(HOST, url.authority.as_str())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json")
        .body(Full::new(Bytes::copy_from_slice(form.as_bytes())))
        .map_err(|err| ClientError::InvalidConfiguration {
            message: format!("cannot build the token request: {err}"),
        })?;
    drop(form);
    exchange(url, config, request).await
}

/// Sends `request` over a fresh TLS connection to `url`; returns the status and the body,
/// read up to [`MAX_RESPONSE_BYTES`].
pub(crate) async fn exchange(
    url: &NodeUrl,
    config: std::sync::Arc<rustls::ClientConfig>,
    request: hyper::Request<Full<Bytes>>,
) -> Result<(u16, Bytes), ClientError> {
    let addr = format!("https://{}", url.authority);
    let failed = |err: &(dyn std::error::Error + 'static)| ClientError::connect(&addr, err);
    let name = ServerName::try_from(url.host.clone())
        .map_err(|err| invalid_addr(&addr, &err.to_string()))?;
    let connect = async {
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|err| failed(&err))?;
        let _ = tcp.set_nodelay(true);
        TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|err| failed(&err))
    };
    let tls = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| ClientError::Connect {
            addr: addr.clone(),
            message: format!("no TLS connection within {} s", CONNECT_TIMEOUT.as_secs()),
        })??;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|err| failed(&err))?;
    // The connection future does the I/O; it runs beside the request and is dropped with it.
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|err| failed(&err))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|err| ClientError::InvalidResponse {
                message: format!("reading the answer of {addr}: {err}"),
            })?
            .to_bytes();
        Ok((status, body))
    }
    .await;
    driver.abort();
    result
}

/// Fetches a public document (an OIDC issuer's JWKS, say) from an `https://` URL, trusting the
/// CAs in `ca_pem` (one CA or a bundle). Anything but a 200 answer is an error.
pub async fn fetch_https(url: &str, ca_pem: &[u8]) -> Result<Vec<u8>, ClientError> {
    let uri: tonic::codegen::http::Uri =
        url.parse()
            .map_err(|err: tonic::codegen::http::uri::InvalidUri| {
                invalid_addr(url, &err.to_string())
            })?;
    let origin = format!(
        "https://{}",
        uri.authority()
            .map(|a| a.as_str())
            .ok_or_else(|| invalid_addr(url, "no host"))?
    );
    if uri.scheme_str() != Some("https") {
        return Err(invalid_addr(url, "only https:// URLs are fetched"));
    }
    let node = parse_node_url(&origin)?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let config = https_bundle_client_config(ca_pem)?;
    let request = hyper::Request::get(path)
        .header(HOST, node.authority.as_str())
        .header(ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(|err| ClientError::InvalidConfiguration {
            message: format!("cannot build the request: {err}"),
        })?;
    let (status, body) = tokio::time::timeout(TOKEN_TIMEOUT, exchange(&node, config, request))
        .await
        .map_err(|_| ClientError::Connect {
            addr: origin.clone(),
            message: format!("no answer within {} s", TOKEN_TIMEOUT.as_secs()),
        })??;
    if status != 200 {
        return Err(invalid_response(format!("{origin} answered {status}")));
    }
    Ok(body.to_vec())
}

fn invalid_response(message: impl Into<String>) -> ClientError {
    ClientError::InvalidResponse {
        message: message.into(),
    }
}

/// Reads the endpoint's answer: a token on success, the OAuth error otherwise. `credential` is
/// what was sent, blanked out of any description that (against every expectation) repeats it.
fn parse_token_response(
    status: u16,
    body: &[u8],
    requested_at: i64,
    credential: &str,
) -> Result<AccessToken, ClientError> {
    let json: Option<serde_json::Map<String, Value>> = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    };
    if !(200..300).contains(&status) {
        let error = json
            .as_ref()
            .and_then(|m| m.get("error"))
            .and_then(Value::as_str)
            .filter(|e| is_error_code(e));
        return Err(match (error, json.as_ref()) {
            (Some(error), Some(map)) => {
                let description = map
                    .get("error_description")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                ClientError::OAuth {
                    error: error.to_owned(),
                    description: clean_description(description, credential),
                }
            }
            _ => invalid_response(format!(
                "the token endpoint answered HTTP {status} without an OAuth error"
            )),
        });
    }
    let Some(map) = json else {
        return Err(invalid_response(
            "the token endpoint's answer is not a JSON object",
        ));
    };
    let token_type = map.get("token_type").and_then(Value::as_str);
    if !token_type.is_some_and(|t| t.eq_ignore_ascii_case("bearer")) {
        return Err(invalid_response(
            "the token endpoint did not issue a Bearer token",
        ));
    }
    let token = map
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid_response("the token endpoint's answer has no access_token"))?;
    // The token goes into an HTTP header; anything but visible ASCII would be refused there
    // with a less helpful message.
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid_response(
            "the access token contains characters not allowed in a header",
        ));
    }
    // Entra sends a number; some implementations send a string of digits.
    let expires_in = match map.get("expires_in") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .filter(|s| *s > 0)
    .ok_or_else(|| invalid_response("the token endpoint's answer has no valid expires_in"))?;
    Ok(AccessToken {
        token: Token::new(token.to_owned()),
        expires_on: requested_at.saturating_add(expires_in),
    })
}

/// OAuth error codes are short snake_case words (RFC 6749 §5.2: `%x20-21 / %x23-5B / %x5D-7E`,
/// in practice `[a-z_]`); anything else is not trusted to print.
fn is_error_code(code: &str) -> bool {
    (1..=64).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// One line, bounded, and never the credential.
fn clean_description(description: &str, credential: &str) -> String {
    let mut text: String = description
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_DESCRIPTION_CHARS)
        .collect();
    if !credential.is_empty() && text.contains(credential) {
        text = text.replace(credential, "<redacted>");
    }
    let text = text.trim();
    if text.is_empty() {
        "the token endpoint gave no description".to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t&value=+/%";

    fn secret() -> ClientAuth {
        ClientAuth::Secret(Token::new(SECRET.to_owned()))
    }

    fn fields(body: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(body.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn secret_form_is_percent_encoded() {
        let body = form_body("app 1", &secret(), Some("https://vault.azure.net/.default"));
        assert!(
            !body.contains(SECRET),
            "the secret must be encoded: {}",
            *body
        );
        assert_eq!(
            fields(&body),
            vec![
                ("grant_type".into(), "client_credentials".into()),
                ("client_id".into(), "app 1".into()),
                ("scope".into(), "https://vault.azure.net/.default".into()),
                ("client_secret".into(), SECRET.into()),
            ]
        );
    }

    #[test]
    fn assertion_form_names_its_type_and_scope_is_optional() {
        let auth = ClientAuth::Assertion(Token::new("a.b.c".to_owned()));
        assert_eq!(
            fields(&form_body("app", &auth, None)),
            vec![
                ("grant_type".into(), "client_credentials".into()),
                ("client_id".into(), "app".into()),
                ("client_assertion_type".into(), CLIENT_ASSERTION_TYPE.into()),
                ("client_assertion".into(), "a.b.c".into()),
            ]
        );
    }

    #[test]
    fn token_endpoint_is_built_from_the_authority() {
        assert_eq!(
            token_endpoint("https://127.0.0.1:8443", "contoso").unwrap(),
            "https://127.0.0.1:8443/contoso/oauth2/v2.0/token"
        );
        assert_eq!(
            token_endpoint("https://[::1]:8443", "t").unwrap(),
            "https://[::1]:8443/t/oauth2/v2.0/token"
        );
        for tenant in ["", "a/b", "a?b", "a b", "..%2f"] {
            assert_eq!(
                token_endpoint("https://h:1", tenant).unwrap_err().code(),
                "InvalidConfiguration",
                "{tenant:?}"
            );
        }
        assert!(token_endpoint("http://h:1", "t").is_err());
    }

    #[test]
    fn a_token_answer_is_read() {
        let body = br#"{"token_type":"Bearer","expires_in":3600,"ext_expires_in":3600,"access_token":"eyJ.x.y"}"#;
        let token = parse_token_response(200, body, 1_000, SECRET).unwrap();
        assert_eq!(token.token.expose(), "eyJ.x.y");
        assert_eq!(token.expires_on, 4_600);
        let shown = format!("{token:?}");
        assert!(!shown.contains("eyJ"), "{shown}");
        assert!(shown.contains("4600"), "{shown}");
        // expires_in as a string, token_type in lower case.
        let body = br#"{"token_type":"bearer","expires_in":"60","access_token":"t"}"#;
        assert_eq!(
            parse_token_response(200, body, 0, SECRET)
                .unwrap()
                .expires_on,
            60
        );
    }

    #[test]
    fn malformed_token_answers_are_invalid_responses() {
        for body in [
            &b"not json"[..],
            br#"[]"#,
            br#"{"token_type":"Bearer","expires_in":3600}"#,
            br#"{"token_type":"Bearer","expires_in":3600,"access_token":""}"#,
            br#"{"token_type":"mac","expires_in":3600,"access_token":"t"}"#,
            br#"{"token_type":"Bearer","access_token":"t"}"#,
            br#"{"token_type":"Bearer","expires_in":-5,"access_token":"t"}"#,
            br#"{"token_type":"Bearer","expires_in":5,"access_token":"a\nb"}"#,
        ] {
            let err = parse_token_response(200, body, 0, SECRET).unwrap_err();
            assert_eq!(
                err.code(),
                "InvalidResponse",
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn oauth_errors_carry_code_and_description_but_never_the_secret() {
        let body = format!(
            r#"{{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret {SECRET}\nfor app1."}}"#
        );
        let err = parse_token_response(401, body.as_bytes(), 0, SECRET).unwrap_err();
        assert_eq!(err.code(), "invalid_client");
        let text = err.to_string();
        assert!(
            text.starts_with("(invalid_client) AADSTS7000215: "),
            "{text}"
        );
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains('\n'), "{text}");
        assert!(!format!("{err:?}").contains(SECRET));
    }

    #[test]
    fn non_oauth_failures_are_invalid_responses() {
        for (status, body) in [
            (404, &b""[..]),
            (500, b"<html>oops</html>"),
            (400, br#"{"error":"has spaces and \u0007"}"#),
        ] {
            let err = parse_token_response(status, body, 0, SECRET).unwrap_err();
            assert_eq!(err.code(), "InvalidResponse", "{status}");
            assert!(err.to_string().contains(&status.to_string()), "{err}");
        }
    }

    #[test]
    fn debug_never_prints_the_credential() {
        for auth in [
            secret(),
            ClientAuth::Assertion(Token::new(SECRET.to_owned())),
        ] {
            let shown = format!("{auth:?} {auth:#?}");
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
    }

    #[tokio::test]
    async fn unreachable_endpoints_are_connection_errors_and_empty_inputs_are_refused() {
        let ca = "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n";
        let err = request_token(
            "https://127.0.0.1:1",
            ca.as_bytes(),
            "t",
            "app",
            &secret(),
            None,
        )
        .await
        .unwrap_err();
        // The CA is not a usable certificate: refused before anything is sent.
        assert_eq!(err.code(), "InvalidConfiguration", "{err}");
        let err = request_token("https://127.0.0.1:1", b"", "t", "", &secret(), None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "InvalidConfiguration", "{err}");
        let empty = ClientAuth::Secret(Token::new(String::new()));
        let err = request_token("https://127.0.0.1:1", b"", "t", "app", &empty, None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "InvalidConfiguration", "{err}");
    }
}
