//! Node addresses and TLS trust, shared by the gRPC channel and the HTTPS token request: both
//! trust only the CA the operator supplies and check the server certificate against the host of
//! the address dialled.

use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tonic::codegen::http::Uri;

use crate::ClientError;

/// One node's address, `https://host[:port]`, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeUrl {
    /// The host without IPv6 brackets: the TLS server name and what TCP dials.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `host[:port]` exactly as the address spells it: the HTTP `Host` header, and what the
    /// server builds the token endpoint's URL from.
    pub(crate) authority: String,
}

/// Parses `https://host[:port]`. Plain http is refused: it would send the bearer token (or the
/// client secret) in clear text.
pub(crate) fn parse_node_url(addr: &str) -> Result<NodeUrl, ClientError> {
    if addr.contains('@') {
        // `https://user:password@host` would put a credential where errors and logs print
        // addresses, so the address is not repeated here.
        return Err(ClientError::InvalidConfiguration {
            message: "invalid address: user information (user@host) is not allowed".to_owned(),
        });
    }
    let uri: Uri = addr
        .parse()
        .map_err(|err: tonic::codegen::http::uri::InvalidUri| {
            invalid_addr(addr, &err.to_string())
        })?;
    if uri.scheme_str() != Some("https") {
        return Err(invalid_addr(addr, "the scheme must be https"));
    }
    let host = uri
        .host()
        .filter(|host| !host.is_empty())
        .ok_or_else(|| invalid_addr(addr, "no host"))?;
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .ok_or_else(|| invalid_addr(addr, "no host"))?;
    Ok(NodeUrl {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port: uri.port_u16().unwrap_or(443),
        authority,
    })
}

/// The host of `https://host:port`, without IPv6 brackets, as the TLS server name.
pub(crate) fn tls_host(addr: &str) -> Result<String, ClientError> {
    parse_node_url(addr).map(|url| url.host)
}

/// The node addresses of a comma-separated list, trimmed, empty entries dropped.
pub fn split_addrs(addr: &str) -> Vec<String> {
    addr.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) fn invalid_addr(addr: &str, reason: &str) -> ClientError {
    ClientError::InvalidConfiguration {
        message: format!("invalid address {addr:?} (expected https://host:port): {reason}"),
    }
}

/// The certificates of the CA file. A file without any is refused up front: tonic would silently
/// skip it and every handshake would then fail with a less helpful "unknown issuer".
fn ca_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| ClientError::InvalidConfiguration {
            message: format!("the CA certificate file is not valid PEM: {err}"),
        })?;
    if certs.is_empty() {
        return Err(ClientError::InvalidConfiguration {
            message: "the CA certificate file contains no PEM certificate".to_owned(),
        });
    }
    Ok(certs)
}

pub(crate) fn check_ca_pem(pem: &[u8]) -> Result<(), ClientError> {
    ca_certificates(pem).map(|_| ())
}

/// A rustls client configuration trusting exactly the certificates of `ca_pem`, speaking only
/// HTTP/1.1 (the token endpoint is plain HTTPS; the server offers both h2 and http/1.1).
///
/// The provider is named rather than taken from the process default, so the outcome does not
/// depend on which rustls crypto features other crates in the build happen to enable.
pub(crate) fn https_client_config(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in ca_certificates(ca_pem)? {
        roots
            .add(cert)
            .map_err(|err| ClientError::InvalidConfiguration {
                message: format!("the CA certificate is unusable: {err}"),
            })?;
    }
    client_config_with_roots(roots)
}

/// Like [`https_client_config`] for a bundle of CAs (such as the system's
/// /etc/ssl/certs/ca-certificates.crt), where a certificate the verifier cannot use is skipped
/// rather than fatal; at least one must be usable.
pub(crate) fn https_bundle_client_config(
    bundle_pem: &[u8],
) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(ca_certificates(bundle_pem)?);
    if added == 0 {
        return Err(ClientError::InvalidConfiguration {
            message: "no usable CA certificate in the bundle".to_owned(),
        });
    }
    client_config_with_roots(roots)
}

fn client_config_with_roots(
    roots: rustls::RootCertStore,
) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| ClientError::InvalidConfiguration {
            message: format!("TLS configuration: {err}"),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn tls_host_from_address() {
        assert_eq!(tls_host("https://localhost:8443").unwrap(), "localhost");
        assert_eq!(tls_host("https://127.0.0.1:8443").unwrap(), "127.0.0.1");
        assert_eq!(tls_host("https://[::1]:8443").unwrap(), "::1");
        assert_eq!(tls_host("https://node1.example").unwrap(), "node1.example");
    }

    #[test]
    fn node_url_keeps_the_authority_as_written() {
        let url = parse_node_url("https://[::1]:8443").unwrap();
        assert_eq!(
            url,
            NodeUrl {
                host: "::1".into(),
                port: 8443,
                authority: "[::1]:8443".into()
            }
        );
        let url = parse_node_url("https://node1.example").unwrap();
        assert_eq!((url.port, url.authority.as_str()), (443, "node1.example"));
    }

    #[test]
    fn tls_host_rejects_plain_http_and_garbage() {
        for addr in [
            "http://127.0.0.1:8443",
            "127.0.0.1:8443",
            "https://",
            "not a uri",
            "https://user:pw@127.0.0.1:8443",
        ] {
            let err = parse_node_url(addr).unwrap_err();
            assert_eq!(err.code(), "InvalidConfiguration", "{addr}: {err}");
            assert!(!err.to_string().contains("pw"), "{err}");
        }
    }

    #[test]
    fn addresses_split_on_commas() {
        assert_eq!(
            split_addrs(" https://a:1, ,https://b:2 ,"),
            vec!["https://a:1".to_owned(), "https://b:2".to_owned()]
        );
        assert!(split_addrs(" , ").is_empty());
    }

    #[test]
    fn ca_pem_must_hold_a_certificate() {
        assert!(check_ca_pem(b"").is_err());
        assert!(check_ca_pem(b"hello").is_err());
        assert!(https_client_config(b"").is_err());
    }
}
