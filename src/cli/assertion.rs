//! Client assertions for `coffer login --cert --key`: a JWT signed with the private key of a
//! certificate registered for the service principal, as MSAL builds them for Entra
//! (RFC 7523 §2.2): header `x5t#S256` names the certificate; `iss` and `sub` are the client id,
//! `aud` the token endpoint, valid for ten minutes, with a random `jti`.
//!
//! Only ES256 keys (ECDSA P-256 in a PKCS#8 file) sign here; other key types are refused with a
//! message that says so. The key is checked against the certificate before anything is sent,
//! so a mismatched pair fails locally instead of as an opaque `invalid_client`.

use std::path::Path;

use coffer_client::Token;
use coffer_crypto::jwt::{
    Jwt, SigningKey, VerifyingKey, certificate_thumbprints, certificates_from_pem,
};
use serde_json::{Map, Value, json};

use super::CliError;

/// How long an assertion is valid. Entra accepts up to an hour; ten minutes is what MSAL uses
/// and leaves room for clock skew without making a leaked assertion useful for long.
const ASSERTION_LIFETIME_SECONDS: i64 = 600;

fn certificate_error(message: impl Into<String>) -> CliError {
    CliError::Local {
        code: "CertificateError",
        message: message.into(),
    }
}

/// A certificate registered for a service principal and the key that signs for it.
pub struct CertificateCredential {
    key: SigningKey,
    /// base64url SHA-256 of the certificate's DER.
    x5t_s256: String,
}

impl std::fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateCredential")
            .field("x5t_s256", &self.x5t_s256)
            .finish_non_exhaustive()
    }
}

impl CertificateCredential {
    /// Reads the certificate (PEM; the first one is the leaf) and its private key (PKCS#8
    /// PEM, a file only its owner can read).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, CliError> {
        let cert_pem = std::fs::read(cert_path).map_err(|err| CliError::file(cert_path, err))?;
        let key_pem =
            coffer_crypto::read_private_file(key_path).map_err(|err| CliError::Local {
                code: "FileError",
                message: err.to_string(),
            })?;
        Self::from_pem(&cert_pem, &key_pem).map_err(|err| match err {
            CliError::Local { code, message } => CliError::Local {
                code,
                message: format!(
                    "--cert {} --key {}: {message}",
                    cert_path.display(),
                    key_path.display()
                ),
            },
            other => other,
        })
    }

    fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, CliError> {
        let certificates =
            certificates_from_pem(cert_pem).map_err(|err| certificate_error(err.to_string()))?;
        let leaf = certificates
            .first()
            .ok_or_else(|| certificate_error("the certificate file holds no certificate"))?;
        let pkcs8 = coffer_client::pkcs8_private_key_from_pem(key_pem).map_err(|err| {
            certificate_error(match err {
                coffer_client::ClientError::InvalidConfiguration { message } => message,
                other => other.to_string(),
            })
        })?;
        let key = SigningKey::from_pkcs8(&pkcs8).map_err(|_| {
            certificate_error(
                "the key is not an ECDSA P-256 key; client assertions are signed with ES256 \
                 only, so register a certificate with a P-256 key",
            )
        })?;
        let cert_key = VerifyingKey::from_certificate_der(leaf)
            .map_err(|err| certificate_error(format!("the certificate is unusable: {err}")))?;
        // The certificate names the public key; a signature it verifies proves the pair.
        let probe = key
            .sign(&Map::new())
            .map_err(|err| certificate_error(err.to_string()))?;
        let matches = Jwt::parse(&probe).is_ok_and(|jwt| jwt.verify(&cert_key).is_ok());
        if !matches {
            return Err(certificate_error(
                "the key does not belong to the certificate",
            ));
        }
        let (_, x5t_s256) = certificate_thumbprints(leaf);
        Ok(Self { key, x5t_s256 })
    }

    /// An assertion for `client_id` at the token endpoint `audience`, issued at `now` (Unix
    /// seconds).
    pub fn assertion(&self, client_id: &str, audience: &str, now: i64) -> Result<Token, CliError> {
        let mut header = Map::new();
        header.insert("x5t#S256".into(), Value::String(self.x5t_s256.clone()));
        let claims = json!({
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + ASSERTION_LIFETIME_SECONDS,
            "jti": random_uuid()?,
        });
        let Value::Object(claims) = claims else {
            return Err(certificate_error("assertion claims are not an object"));
        };
        self.key
            .sign_with_header(&header, &claims)
            .map(Token::new)
            .map_err(|err| certificate_error(err.to_string()))
    }
}

/// A random (version 4) UUID, the form Entra expects in `jti`.
fn random_uuid() -> Result<String, CliError> {
    let mut bytes = [0u8; 16];
    coffer_crypto::fill_random(&mut bytes).map_err(|err| certificate_error(err.to_string()))?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use coffer_crypto::jwt::Validation;
    use coffer_crypto::pki::ClusterCa;

    /// A P-384 key: a valid PKCS#8 EC key, but not one ES256 signs with (test fixture only).
    const P384_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDDaWCrl+m58MuDZFKp+
JCreqx2NU1uIcaofZqRAv2VCFy76QHlR/z6kj89OKTV8VeuhZANiAAR8nXVGNYFU
+e90J0BoJbGVHJ0CTjWGkPO6c+1Y7Fq5HIY4qwPsHjt2mj8tb0k5fEAiQh5an/4D
lu7JDDjIanOeWiTZctb5LcgLlYwITvH5l7t9vDVzQEpnipzbGLqKXrc=
-----END PRIVATE KEY-----
";
    /// An Ed25519 key (test fixture only).
    const ED25519_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIB4xFBh+KY1NfKIeb2yE7SW9a+GqLkRl+eOFx223LwP4
-----END PRIVATE KEY-----
";

    /// A P-256 certificate and its PKCS#8 key.
    fn pair() -> (String, String) {
        let (ca, _) = ClusterCa::generate().unwrap();
        let (cert, key) = ca.issue_node(1, &["localhost".into()]).unwrap();
        (cert, key.expose().to_owned())
    }

    #[test]
    fn assertions_carry_the_thumbprint_and_verify_against_the_certificate() {
        let (cert, key) = pair();
        let credential = CertificateCredential::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        let audience = "https://127.0.0.1:8443/contoso/oauth2/v2.0/token";
        let now = 1_900_000_000;
        let token = credential.assertion("app-1", audience, now).unwrap();
        let jwt = Jwt::parse(token.expose()).unwrap();

        let der = &certificates_from_pem(cert.as_bytes()).unwrap()[0];
        let (_, x5t_s256) = certificate_thumbprints(der);
        assert_eq!(jwt.header().alg, "ES256");
        assert_eq!(jwt.header().x5t_s256.as_deref(), Some(x5t_s256.as_str()));
        // What the server does: verify with the registered certificate, then check the claims.
        jwt.verify(&VerifyingKey::from_certificate_der(der).unwrap())
            .unwrap();
        jwt.validate(&Validation {
            issuers: vec!["app-1".into()],
            audiences: vec![audience.into()],
            now: now + 5,
            leeway_seconds: 60,
            require_exp: true,
        })
        .unwrap();
        let claims = jwt.claims();
        assert_eq!(claims["sub"], "app-1");
        assert_eq!(claims["exp"], now + ASSERTION_LIFETIME_SECONDS);
        assert_eq!(claims["nbf"], now);
        let jti = claims["jti"].as_str().unwrap();
        assert_eq!(jti.len(), 36);
        assert_eq!(&jti[14..15], "4");
        // Every assertion is unique.
        let again = credential.assertion("app-1", audience, now).unwrap();
        assert_ne!(
            Jwt::parse(again.expose()).unwrap().claims()["jti"],
            claims["jti"]
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (cert, _) = pair();
        let (_, other_key) = pair();
        let err = CertificateCredential::from_pem(cert.as_bytes(), other_key.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not belong to the certificate"), "{err}");
    }

    #[test]
    fn keys_that_are_not_p256_are_refused_clearly() {
        let (cert, _) = pair();
        for key in [P384_KEY, ED25519_KEY] {
            let err = CertificateCredential::from_pem(cert.as_bytes(), key.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("(CertificateError) "), "{err}");
            assert!(err.contains("P-256") && err.contains("ES256"), "{err}");
            assert!(!err.contains("MIG2"), "{err}");
        }
        let err = CertificateCredential::from_pem(
            cert.as_bytes(),
            b"-----BEGIN RSA PRIVATE KEY-----\nMAA=\n-----END RSA PRIVATE KEY-----\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("PKCS#1"), "{err}");
        let err = CertificateCredential::from_pem(b"no cert", P384_KEY.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("(CertificateError) "), "{err}");
    }

    #[test]
    fn debug_shows_no_key() {
        let (cert, key) = pair();
        let credential = CertificateCredential::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        let shown = format!("{credential:?}");
        assert!(shown.contains("x5t_s256"), "{shown}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
    }
}
