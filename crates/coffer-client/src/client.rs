//! [`CofferClient`]: one authenticated TLS channel and a method per RPC.

use std::fmt;
use std::time::Duration;

use coffer_proto::v1::secret_service_client::SecretServiceClient;
use coffer_proto::v1::vault_service_client::VaultServiceClient;
use coffer_proto::v1::{
    CreateVaultRequest, DeleteVaultRequest, GetSecretRequest, GetVaultRequest,
    ListSecretVersionsRequest, ListSecretsRequest, ListVaultsRequest, Secret, SetSecretRequest,
    UpdateSecretRequest, UpdateVaultRequest, Vault,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tonic::Status;
use tonic::codegen::http::Uri;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::{ClientError, ConnectOptions};

/// How long to wait for TCP + TLS before giving up on a node; a CLI should fail fast rather
/// than hang on an unreachable address.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Upper bound on pages followed by one list call. A server that keeps returning page tokens
/// beyond this is broken, and looping forever would hang the caller.
const MAX_PAGES: usize = 100_000;

type Transport = InterceptedService<Channel, BearerAuth>;

/// A connected client. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct CofferClient {
    vaults: VaultServiceClient<Transport>,
    secrets: SecretServiceClient<Transport>,
}

impl fmt::Debug for CofferClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CofferClient").finish_non_exhaustive()
    }
}

impl CofferClient {
    /// Connects over TLS, trusting only `options.ca_cert_pem`, and checks the server certificate
    /// against the host of `options.addr`.
    pub async fn connect(options: ConnectOptions) -> Result<Self, ClientError> {
        let ConnectOptions {
            addr,
            ca_cert_pem,
            token,
        } = options;
        let host = tls_host(&addr)?;
        check_ca_pem(&ca_cert_pem)?;
        let auth = BearerAuth::new(token.expose())?;

        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca_cert_pem))
            .domain_name(host);
        let endpoint = Endpoint::from_shared(addr.clone())
            .map_err(|err| invalid_addr(&addr, &err.to_string()))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tls_config(tls)
            .map_err(|err| ClientError::connect(&addr, &err))?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|err| ClientError::connect(&addr, &err))?;

        Ok(Self {
            vaults: VaultServiceClient::with_interceptor(channel.clone(), auth.clone()),
            secrets: SecretServiceClient::with_interceptor(channel, auth),
        })
    }

    /// Creates a vault.
    pub async fn create_vault(&self, request: CreateVaultRequest) -> Result<Vault, ClientError> {
        Ok(self
            .vaults
            .clone()
            .create_vault(request)
            .await?
            .into_inner())
    }

    /// Reads a vault by name.
    pub async fn get_vault(&self, name: &str) -> Result<Vault, ClientError> {
        let request = GetVaultRequest {
            name: name.to_owned(),
        };
        Ok(self.vaults.clone().get_vault(request).await?.into_inner())
    }

    /// Lists every vault the token may see, following all pages.
    pub async fn list_vaults(&self) -> Result<Vec<Vault>, ClientError> {
        let mut client = self.vaults.clone();
        let mut vaults = Vec::new();
        let mut pages = Pager::default();
        while let Some(page_token) = pages.next_request()? {
            let request = ListVaultsRequest {
                max_results: 0,
                page_token,
            };
            let page = client.list_vaults(request).await?.into_inner();
            vaults.extend(page.vaults);
            pages.record(page.next_page_token);
        }
        Ok(vaults)
    }

    /// Updates a vault's SKU, purge protection or tags.
    pub async fn update_vault(&self, request: UpdateVaultRequest) -> Result<Vault, ClientError> {
        Ok(self
            .vaults
            .clone()
            .update_vault(request)
            .await?
            .into_inner())
    }

    /// Deletes a vault.
    pub async fn delete_vault(&self, name: &str) -> Result<(), ClientError> {
        let request = DeleteVaultRequest {
            name: name.to_owned(),
        };
        self.vaults.clone().delete_vault(request).await?;
        Ok(())
    }

    /// Sets a secret, creating a new version.
    pub async fn set_secret(&self, request: SetSecretRequest) -> Result<Secret, ClientError> {
        Ok(self.secrets.clone().set_secret(request).await?.into_inner())
    }

    /// Reads a secret with its value; an empty `version` means the latest.
    pub async fn get_secret(&self, request: GetSecretRequest) -> Result<Secret, ClientError> {
        Ok(self.secrets.clone().get_secret(request).await?.into_inner())
    }

    /// Lists the secrets of a vault (latest version of each, without values), following all
    /// pages.
    pub async fn list_secrets(&self, vault: &str) -> Result<Vec<Secret>, ClientError> {
        let mut client = self.secrets.clone();
        let mut secrets = Vec::new();
        let mut pages = Pager::default();
        while let Some(page_token) = pages.next_request()? {
            let request = ListSecretsRequest {
                vault: vault.to_owned(),
                max_results: 0,
                page_token,
            };
            let page = client.list_secrets(request).await?.into_inner();
            secrets.extend(page.secrets);
            pages.record(page.next_page_token);
        }
        Ok(secrets)
    }

    /// Lists every version of one secret (without values), following all pages.
    pub async fn list_secret_versions(
        &self,
        vault: &str,
        name: &str,
    ) -> Result<Vec<Secret>, ClientError> {
        let mut client = self.secrets.clone();
        let mut secrets = Vec::new();
        let mut pages = Pager::default();
        while let Some(page_token) = pages.next_request()? {
            let request = ListSecretVersionsRequest {
                vault: vault.to_owned(),
                name: name.to_owned(),
                max_results: 0,
                page_token,
            };
            let page = client.list_secret_versions(request).await?.into_inner();
            secrets.extend(page.secrets);
            pages.record(page.next_page_token);
        }
        Ok(secrets)
    }

    /// Updates a secret version's attributes, content type or tags (never its value).
    pub async fn update_secret(&self, request: UpdateSecretRequest) -> Result<Secret, ClientError> {
        Ok(self
            .secrets
            .clone()
            .update_secret(request)
            .await?
            .into_inner())
    }
}

/// Page-token bookkeeping shared by the list methods.
#[derive(Default)]
struct Pager {
    /// Token for the next request; `None` once the last page has been read.
    next: Option<String>,
    started: bool,
    pages: usize,
}

impl Pager {
    /// The page token to send next, or `None` when done.
    fn next_request(&mut self) -> Result<Option<String>, ClientError> {
        if !self.started {
            self.started = true;
            return Ok(Some(String::new()));
        }
        self.pages += 1;
        if self.pages >= MAX_PAGES {
            return Err(ClientError::InvalidResponse {
                message: format!("server returned more than {MAX_PAGES} pages"),
            });
        }
        Ok(self.next.take())
    }

    fn record(&mut self, next_page_token: String) {
        // An empty token marks the last page.
        self.next = Some(next_page_token).filter(|token| !token.is_empty());
    }
}

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone)]
struct BearerAuth {
    header: MetadataValue<Ascii>,
}

impl BearerAuth {
    fn new(token: &str) -> Result<Self, ClientError> {
        // The error deliberately omits the token (and the parser's message, which could quote
        // it).
        let mut header: MetadataValue<Ascii> =
            format!("Bearer {token}")
                .parse()
                .map_err(|_| ClientError::InvalidConfiguration {
                    message: "the access token contains characters not allowed in a header"
                        .to_owned(),
                })?;
        // Marks the value so that HTTP/2 HPACK never adds it to the dynamic table and http's
        // Debug prints "Sensitive" rather than the token.
        header.set_sensitive(true);
        Ok(Self { header })
    }
}

impl fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerAuth(<redacted>)")
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.header.clone());
        Ok(request)
    }
}

/// The host of `https://host:port`, without IPv6 brackets, as the TLS server name.
fn tls_host(addr: &str) -> Result<String, ClientError> {
    let uri: Uri = addr
        .parse()
        .map_err(|err: tonic::codegen::http::uri::InvalidUri| {
            invalid_addr(addr, &err.to_string())
        })?;
    // Plain http would send the bearer token in clear text.
    if uri.scheme_str() != Some("https") {
        return Err(invalid_addr(addr, "the scheme must be https"));
    }
    let host = uri
        .host()
        .filter(|host| !host.is_empty())
        .ok_or_else(|| invalid_addr(addr, "no host"))?;
    Ok(host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned())
}

fn invalid_addr(addr: &str, reason: &str) -> ClientError {
    ClientError::InvalidConfiguration {
        message: format!("invalid address {addr:?} (expected https://host:port): {reason}"),
    }
}

/// Rejects a CA file without any certificate up front: tonic would silently skip it and every
/// handshake would then fail with a less helpful "unknown issuer".
fn check_ca_pem(pem: &[u8]) -> Result<(), ClientError> {
    let mut count = 0usize;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|err| ClientError::InvalidConfiguration {
            message: format!("the CA certificate file is not valid PEM: {err}"),
        })?;
        count += 1;
    }
    if count == 0 {
        return Err(ClientError::InvalidConfiguration {
            message: "the CA certificate file contains no PEM certificate".to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::Token;

    #[test]
    fn tls_host_from_address() {
        assert_eq!(tls_host("https://localhost:8443").unwrap(), "localhost");
        assert_eq!(tls_host("https://127.0.0.1:8443").unwrap(), "127.0.0.1");
        assert_eq!(tls_host("https://[::1]:8443").unwrap(), "::1");
        assert_eq!(tls_host("https://node1.example").unwrap(), "node1.example");
    }

    #[test]
    fn tls_host_rejects_plain_http_and_garbage() {
        for addr in [
            "http://127.0.0.1:8443",
            "127.0.0.1:8443",
            "https://",
            "not a uri",
        ] {
            let err = tls_host(addr).unwrap_err();
            assert_eq!(err.code(), "InvalidConfiguration", "{addr}: {err}");
        }
    }

    #[test]
    fn ca_pem_must_hold_a_certificate() {
        assert!(check_ca_pem(b"").is_err());
        assert!(check_ca_pem(b"hello").is_err());
    }

    #[test]
    fn bearer_header_and_debug() {
        let mut auth = BearerAuth::new("tok3n-value").unwrap();
        assert!(!format!("{auth:?}").contains("tok3n"));
        let request = auth.call(tonic::Request::new(())).unwrap();
        let value = request.metadata().get("authorization").unwrap();
        assert_eq!(value.to_str().unwrap(), "Bearer tok3n-value");
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("tok3n"));
    }

    #[test]
    fn bearer_rejects_header_breaking_tokens_without_echoing_them() {
        let err = BearerAuth::new("bad\ntok3n").unwrap_err();
        assert!(!err.to_string().contains("tok3n"));
    }

    #[test]
    fn pager_follows_tokens_until_empty() {
        let mut pager = Pager::default();
        assert_eq!(pager.next_request().unwrap(), Some(String::new()));
        pager.record("p2".to_owned());
        assert_eq!(pager.next_request().unwrap(), Some("p2".to_owned()));
        pager.record(String::new());
        assert_eq!(pager.next_request().unwrap(), None);
    }

    #[tokio::test]
    async fn connect_refused_is_a_connection_error() {
        // Port 1 on loopback is essentially never listening.
        let ca = "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n";
        let options = ConnectOptions {
            addr: "https://127.0.0.1:1".to_owned(),
            ca_cert_pem: ca.as_bytes().to_vec(),
            token: Token::new("t".to_owned()),
        };
        let err = CofferClient::connect(options).await.unwrap_err();
        assert_eq!(err.code(), "ConnectionFailed", "{err}");
        assert!(!err.to_string().contains('\n'));
    }
}
