//! The TLS listener: accepts connections, completes the handshake, and serves gRPC (HTTP/2)
//! and the HTTP endpoints (HTTP/1.1 or 2) on them until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use coffer_proto::v1::key_service_server::KeyServiceServer;
use coffer_proto::v1::secret_service_server::SecretServiceServer;
use coffer_proto::v1::vault_service_server::VaultServiceServer;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::client_addr::read_proxy_header;
use crate::convert::UriBase;
use crate::grpc::GrpcApi;
use crate::pipeline::{ClientAddr, Gateway};
use crate::rest::{self, RestApi};
use crate::{http_routes, identity_routes};
use coffer_proto::v1::authorization_service_server::AuthorizationServiceServer;
use coffer_proto::v1::identity_service_server::IdentityServiceServer;
use coffer_proto::v1::operator_service_server::OperatorServiceServer;

/// A slow or silent client may hold a connection in the handshake no longer than this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("accepting connections failed: {0}")]
    Accept(std::io::Error),
}

/// Largest secret-service message accepted or sent (see `serve`).
const MAX_SECRET_MESSAGE_BYTES: usize = 24 * 1024 * 1024;

/// Serves `gateway` on `listener` until `shutdown` completes. `dns_suffix` (with `:port` if
/// not 443) is what vault URIs are built from. A `private` listener is Coffer's private
/// endpoint: vaults whose public network access is disabled admit its requests, and their
/// firewall rules do not apply to it.
pub async fn serve(
    listener: TcpListener,
    private: bool,
    tls: Arc<rustls::ServerConfig>,
    gateway: Arc<Gateway>,
    dns_suffix: String,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let api = GrpcApi::new(
        gateway.clone(),
        UriBase {
            suffix: dns_suffix.clone(),
        },
    );
    let rest = RestApi::new(gateway.clone(), &dns_suffix, api.challenge());
    let grpc = tonic::service::Routes::new(VaultServiceServer::new(api.clone()))
        // A secret backup holds up to 500 versions of up to 25 KB each: a restore request
        // carries up to ~13 MB, over tonic's 4 MiB default.
        .add_service(
            SecretServiceServer::new(api.clone())
                .max_decoding_message_size(MAX_SECRET_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_SECRET_MESSAGE_BYTES),
        )
        // A key backup holds up to 500 versions of a few KB each.
        .add_service(
            KeyServiceServer::new(api.clone())
                .max_decoding_message_size(8 * 1024 * 1024)
                .max_encoding_message_size(8 * 1024 * 1024),
        )
        .add_service(IdentityServiceServer::new(api.clone()))
        .add_service(AuthorizationServiceServer::new(api.clone()))
        .add_service(
            OperatorServiceServer::new(api)
                .max_decoding_message_size(8 * 1024 * 1024)
                .max_encoding_message_size(8 * 1024 * 1024),
        )
        .prepare()
        .into_axum_router();
    let router = grpc
        .merge(http_routes::router(gateway.clone()))
        .merge(identity_routes::router(gateway.clone()))
        // Whatever no route above claims is a Key Vault REST request.
        .fallback_service(rest::router(Arc::new(rest)));
    let acceptor = TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) if is_transient(&e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => return Err(ServeError::Accept(e)),
            },
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let gateway = gateway.clone();
        tokio::spawn(async move {
            serve_connection(tcp, peer, private, acceptor, router, gateway).await;
        });
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    !matches!(
        e.kind(),
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::PermissionDenied
    )
}

async fn serve_connection(
    mut tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    private: bool,
    acceptor: TlsAcceptor,
    router: axum::Router,
    gateway: Arc<Gateway>,
) {
    let _ = tcp.set_nodelay(true);
    // Only a trusted proxy may say, in a PROXY protocol v2 header, whom it connects for. From
    // anyone else such a header is not read, and the TLS handshake then refuses it.
    let mut client = peer;
    if gateway.trusted_proxies().contains(peer.ip()) {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_proxy_header(&mut tcp)).await {
            Ok(Ok(Some(source))) => client = source,
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                gateway.metrics.tls_handshake_failed();
                tracing::debug!(peer = %peer, error = %e, "malformed PROXY protocol header");
                return;
            }
            Err(_) => {
                gateway.metrics.tls_handshake_failed();
                tracing::debug!(peer = %peer, "PROXY protocol header timed out");
                return;
            }
        }
    }
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            // Plain TCP, an old TLS version, an untrusted client: refused, counted, logged
            // without anything the peer sent.
            gateway.metrics.tls_handshake_failed();
            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            gateway.metrics.tls_handshake_failed();
            tracing::debug!(peer = %peer, "TLS handshake timed out");
            return;
        }
    };
    let service = router.map_request(
        move |mut request: axum::extract::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ClientAddr {
                addr: client,
                private,
            });
            request.map(axum::body::Body::new)
        },
    );
    let result = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
        .await;
    if let Err(e) = result {
        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
    }
}
