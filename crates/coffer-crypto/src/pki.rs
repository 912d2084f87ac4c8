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
}
