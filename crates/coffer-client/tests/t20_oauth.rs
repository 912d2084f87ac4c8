//! `request_token` against an in-process HTTPS token endpoint: the request on the wire (path,
//! `Host`, form fields), the answer read back, OAuth refusals, and the TLS trust rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Pki, pki};
use std::net::SocketAddr;
use std::sync::Arc;

use coffer_client::{ClientAuth, ClientError, Token, request_token, token_endpoint};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;

/// What the endpoint saw of one request.
#[derive(Debug)]
struct Seen {
    method: String,
    path: String,
    host: String,
    content_type: String,
    form: Vec<(String, String)>,
}

/// Serves every connection with `status` and `body`; reports each request on the channel.
async fn endpoint(
    pki: &Pki,
    status: u16,
    body: &'static str,
) -> (SocketAddr, mpsc::Receiver<Seen>) {
    let certs = vec![CertificateDer::from_pem_slice(pki.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |request: hyper::Request<Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let header = |name: hyper::header::HeaderName| {
                            request
                                .headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned()
                        };
                        let seen_head = (
                            request.method().to_string(),
                            request.uri().path().to_owned(),
                            header(hyper::header::HOST),
                            header(hyper::header::CONTENT_TYPE),
                        );
                        let bytes = request.into_body().collect().await.unwrap().to_bytes();
                        let form = form_urlencoded::parse(&bytes)
                            .map(|(k, v)| (k.into_owned(), v.into_owned()))
                            .collect();
                        let _ = tx
                            .send(Seen {
                                method: seen_head.0,
                                path: seen_head.1,
                                host: seen_head.2,
                                content_type: seen_head.3,
                                form,
                            })
                            .await;
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from_static(body.as_bytes())))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, rx)
}

fn field<'a>(seen: &'a Seen, key: &str) -> Option<&'a str> {
    seen.form
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

const TOKEN_ANSWER: &str = r#"{"token_type":"Bearer","expires_in":3600,"ext_expires_in":3600,"access_token":"eyJhbGciOiJFUzI1NiJ9.e30.sig"}"#;

#[tokio::test]
async fn a_client_secret_is_exchanged_for_a_token() {
    let pki = pki();
    let (addr, mut seen) = endpoint(&pki, 200, TOKEN_ANSWER).await;
    let authority = format!("https://127.0.0.1:{}", addr.port());
    let secret = ClientAuth::Secret(Token::new("p&ss=w0rd+/".to_owned()));
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let token = request_token(
        &authority,
        pki.ca_pem.as_bytes(),
        "contoso",
        "app-1",
        &secret,
        Some("https://vault.azure.net/.default"),
    )
    .await
    .unwrap();
    assert_eq!(token.token.expose(), "eyJhbGciOiJFUzI1NiJ9.e30.sig");
    assert!((before + 3600..=before + 3610).contains(&token.expires_on));

    let seen = seen.recv().await.unwrap();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/contoso/oauth2/v2.0/token");
    // The Host header is what the server builds the endpoint URL (an assertion's audience) from.
    assert_eq!(seen.host, format!("127.0.0.1:{}", addr.port()));
    assert_eq!(
        format!("https://{}{}", seen.host, seen.path),
        token_endpoint(&authority, "contoso").unwrap()
    );
    assert!(
        seen.content_type
            .starts_with("application/x-www-form-urlencoded")
    );
    assert_eq!(field(&seen, "grant_type"), Some("client_credentials"));
    assert_eq!(field(&seen, "client_id"), Some("app-1"));
    assert_eq!(field(&seen, "client_secret"), Some("p&ss=w0rd+/"));
    assert_eq!(
        field(&seen, "scope"),
        Some("https://vault.azure.net/.default")
    );
    assert_eq!(field(&seen, "client_assertion"), None);
}

#[tokio::test]
async fn an_assertion_is_sent_with_its_type_and_no_scope_by_default() {
    let pki = pki();
    let (addr, mut seen) = endpoint(&pki, 200, TOKEN_ANSWER).await;
    let assertion = ClientAuth::Assertion(Token::new("h.c.s".to_owned()));
    request_token(
        &format!("https://localhost:{}", addr.port()),
        pki.ca_pem.as_bytes(),
        "contoso",
        "app-1",
        &assertion,
        None,
    )
    .await
    .unwrap();
    let seen = seen.recv().await.unwrap();
    assert_eq!(seen.host, format!("localhost:{}", addr.port()));
    assert_eq!(
        field(&seen, "client_assertion_type"),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    assert_eq!(field(&seen, "client_assertion"), Some("h.c.s"));
    assert_eq!(field(&seen, "scope"), None);
    assert_eq!(field(&seen, "client_secret"), None);
}

#[tokio::test]
async fn a_refusal_is_an_oauth_error_without_the_secret() {
    let pki = pki();
    let (addr, _seen) = endpoint(
        &pki,
        401,
        r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided for application app-1."}"#,
    )
    .await;
    let err = request_token(
        &format!("https://127.0.0.1:{}", addr.port()),
        pki.ca_pem.as_bytes(),
        "contoso",
        "app-1",
        &ClientAuth::Secret(Token::new("wr0ng-secret".to_owned())),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::OAuth { .. }), "{err:?}");
    assert_eq!(err.code(), "invalid_client");
    assert_eq!(
        err.to_string(),
        "(invalid_client) AADSTS7000215: Invalid client secret provided for application app-1."
    );
    assert!(!format!("{err} {err:?}").contains("wr0ng"));
}

#[tokio::test]
async fn only_the_given_ca_is_trusted_and_a_dead_node_is_a_connection_error() {
    let pki = pki();
    let other = self::pki();
    let (addr, _seen) = endpoint(&pki, 200, TOKEN_ANSWER).await;
    let secret = ClientAuth::Secret(Token::new("s3cret".to_owned()));
    let err = request_token(
        &format!("https://127.0.0.1:{}", addr.port()),
        other.ca_pem.as_bytes(),
        "contoso",
        "app-1",
        &secret,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "ConnectionFailed", "{err}");
    assert!(!err.to_string().contains("s3cret"));

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let err = request_token(
        &format!("https://127.0.0.1:{port}"),
        pki.ca_pem.as_bytes(),
        "contoso",
        "app-1",
        &secret,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "ConnectionFailed", "{err}");
}
