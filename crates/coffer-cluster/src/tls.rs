//! Mutual TLS material of a node: the cluster CA and this node's certificate and key.

use std::path::Path;

use rustls_pki_types::{CertificateDer, ServerName};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

#[derive(Debug, thiserror::Error)]
pub enum ClusterTlsError {
    #[error("reading {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{0} holds no PEM certificate")]
    NotPem(String),
}

/// The cluster CA certificate and this node's identity, as PEM.
#[derive(Clone)]
pub struct ClusterTls {
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTls").finish_non_exhaustive()
    }
}

impl ClusterTls {
    /// `key_pem` should come from a file checked for safe permissions by the caller.
    pub fn from_pem(ca_pem: Vec<u8>, cert_pem: Vec<u8>, key_pem: Vec<u8>) -> Self {
        Self {
            ca_pem,
            cert_pem,
            key_pem,
        }
    }

    pub fn read_ca(path: &Path) -> Result<Vec<u8>, ClusterTlsError> {
        let pem = std::fs::read(path).map_err(|error| ClusterTlsError::Read {
            path: path.display().to_string(),
            error,
        })?;
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(ClusterTlsError::NotPem(path.display().to_string()));
        }
        Ok(pem)
    }

    /// Server side: present our certificate and require one from the cluster CA.
    pub(crate) fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
    }

    /// Client side: trust only the cluster CA, and present our certificate. `server_name` is the
    /// host the peer's certificate must name (its advertised cluster host).
    pub(crate) fn client(&self, server_name: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .domain_name(server_name)
    }
}

/// Whether `leaf` (a peer certificate that already chained to the cluster CA during the
/// handshake) is node `node_id`'s: valid for [`coffer_crypto::pki::node_identity_name`].
pub(crate) fn certifies_node(leaf: &CertificateDer<'_>, node_id: u64) -> bool {
    let Ok(cert) = webpki::EndEntityCert::try_from(leaf) else {
        return false;
    };
    let Ok(name) = ServerName::try_from(coffer_crypto::pki::node_identity_name(node_id)) else {
        return false;
    };
    cert.verify_is_valid_for_subject_name(&name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;

    #[test]
    fn a_node_certificate_names_its_own_id_only() {
        let (ca, _) = coffer_crypto::pki::ClusterCa::generate().unwrap();
        let (pem, _) = ca.issue_node(2, &["127.0.0.1".into()]).unwrap();
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert!(certifies_node(&der, 2));
        assert!(!certifies_node(&der, 3));
        assert!(!certifies_node(&der, 22));
        assert!(!certifies_node(&CertificateDer::from(vec![1, 2, 3]), 2));
    }
}
