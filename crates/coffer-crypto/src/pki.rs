//! The development PKI: a throwaway CA and a server certificate signed by it, for
//! `coffer server --dev`. Production nodes load certificates from files instead.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::{CryptoError, SecretString};

/// PEM-encoded dev CA and server credentials.
pub struct DevPki {
    pub ca_cert_pem: String,
    pub ca_key_pem: SecretString,
    pub server_cert_pem: String,
    pub server_key_pem: SecretString,
}

impl std::fmt::Debug for DevPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevPki").finish_non_exhaustive()
    }
}

fn pki_err(e: rcgen::Error) -> CryptoError {
    CryptoError::Pki(e.to_string())
}

/// Generates a CA and a server certificate valid for `names` (DNS names or IP addresses).
pub fn generate_dev_pki(names: &[String]) -> Result<DevPki, CryptoError> {
    let ca_key = KeyPair::generate().map_err(pki_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Coffer development CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(pki_err)?;

    let server_key = KeyPair::generate().map_err(pki_err)?;
    let mut server_params = CertificateParams::new(names.to_vec()).map_err(pki_err)?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "coffer");
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let ca_key_pem = SecretString::new(ca_key.serialize_pem());
    let issuer = Issuer::new(ca_params, ca_key);
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .map_err(pki_err)?;

    Ok(DevPki {
        ca_cert_pem: ca_cert.pem(),
        ca_key_pem,
        server_cert_pem: server_cert.pem(),
        server_key_pem: SecretString::new(server_key.serialize_pem()),
    })
}

/// Distinguished name of a cluster CA made by Coffer. [`ClusterCa::load`] rebuilds the issuer
/// from it, since certificates name their issuer by this name.
const CLUSTER_CA_NAME: &str = "Coffer cluster CA";

/// The DNS name every node certificate carries for its node id. A node proves which id it is by
/// presenting a certificate valid for this name; peers check it before accepting Raft messages
/// that claim to come from that id.
pub fn node_identity_name(node_id: u64) -> String {
    format!("node-{node_id}.cluster.coffer")
}

/// The certificate authority of one cluster's node-to-node mutual TLS: every node's
/// certificate is signed by it, and nodes accept only peers it signed.
pub struct ClusterCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

fn cluster_ca_params() -> Result<CertificateParams, CryptoError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, CLUSTER_CA_NAME);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

impl ClusterCa {
    /// A new CA; returns it and its private key (PEM), which the caller stores 0600.
    pub fn generate() -> Result<(Self, SecretString), CryptoError> {
        let key = KeyPair::generate().map_err(pki_err)?;
        let params = cluster_ca_params()?;
        let cert = params.self_signed(&key).map_err(pki_err)?;
        let key_pem = SecretString::new(key.serialize_pem());
        Ok((
            Self {
                cert_pem: cert.pem(),
                issuer: Issuer::new(params, key),
            },
            key_pem,
        ))
    }

    /// A CA made by [`ClusterCa::generate`], from its certificate and key. Certificates it
    /// issues chain to `cert_pem` only if the key is that certificate's key; [`Self::issue_node`]
    /// checks that.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, CryptoError> {
        let key = KeyPair::from_pem(key_pem).map_err(pki_err)?;
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            issuer: Issuer::new(cluster_ca_params()?, key),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A certificate for node `node_id`, valid as TLS server and client for `names` (the hosts
    /// of its cluster address) and for [`node_identity_name`], and its private key.
    pub fn issue_node(
        &self,
        node_id: u64,
        names: &[String],
    ) -> Result<(String, SecretString), CryptoError> {
        let key = KeyPair::generate().map_err(pki_err)?;
        let mut all_names = names.to_vec();
        all_names.push(node_identity_name(node_id));
        let mut params = CertificateParams::new(all_names).map_err(pki_err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("coffer-node-{node_id}"));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).map_err(pki_err)?;
        verify_chain(&self.cert_pem, cert.der())?;
        Ok((cert.pem(), SecretString::new(key.serialize_pem())))
    }
}

/// Checks that `leaf` verifies against the CA certificate, so a CA key that does not belong to
/// the CA certificate is caught when a certificate is issued, not when nodes refuse each other.
fn verify_chain(
    ca_pem: &str,
    leaf: &rustls_pki_types::CertificateDer<'_>,
) -> Result<(), CryptoError> {
    use rustls_pki_types::pem::PemObject;
    let ca = rustls_pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes())
        .map_err(|e| CryptoError::Pki(format!("the CA certificate is not PEM: {e}")))?;
    let anchor = webpki::anchor_from_trusted_cert(&ca)
        .map_err(|e| CryptoError::Pki(format!("the CA certificate is unusable: {e}")))?;
    let cert =
        webpki::EndEntityCert::try_from(leaf).map_err(|e| CryptoError::Pki(e.to_string()))?;
    cert.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        rustls_pki_types::UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| {
        CryptoError::Pki(format!(
            "the CA key does not match the CA certificate ({e})"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_pem_and_hides_keys_in_debug() {
        let pki = generate_dev_pki(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        assert!(pki.ca_cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(
            pki.server_cert_pem
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert!(pki.server_key_pem.expose().contains("PRIVATE KEY"));
        assert!(!format!("{pki:?}").contains("PRIVATE"));
    }

    #[test]
    fn a_loaded_cluster_ca_issues_chaining_node_certificates_and_a_wrong_key_is_caught() {
        let (ca, key) = ClusterCa::generate().unwrap();
        let loaded = ClusterCa::load(ca.cert_pem(), key.expose()).unwrap();
        let (cert, node_key) = loaded.issue_node(2, &["127.0.0.1".into()]).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(node_key.expose().contains("PRIVATE KEY"));
        let (_, other_key) = ClusterCa::generate().unwrap();
        let wrong = ClusterCa::load(ca.cert_pem(), other_key.expose()).unwrap();
        let e = wrong.issue_node(3, &["127.0.0.1".into()]).unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
    }
}
