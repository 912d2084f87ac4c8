use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Map, Value};

use super::verifying::VerifyingKey;
use super::{Algorithm, Jwk, b64_encode, jwk_thumbprint};
use crate::{CryptoError, SecretBytes};

/// Length of an uncompressed P-256 point: 0x04, then x and y of 32 bytes each.
const P256_POINT_LEN: usize = 65;

/// Coffer's token-signing key: ECDSA P-256 with SHA-256 (JWS `ES256`), producing the fixed
/// 64-byte r‖s signatures JWS requires rather than DER.
///
/// P-256 rather than RSA because the keys are small to seal and store, signing is fast, and
/// every JOSE library verifies ES256. The private key lives inside aws-lc, which wipes it when
/// the key is freed; this type never copies it out except as the PKCS#8 document
/// [`SigningKey::generate`] returns for sealing.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    /// Uncompressed public point, kept for [`SigningKey::verifying_key`].
    point: Vec<u8>,
    x: String,
    y: String,
    kid: String,
}

fn key_error(reason: &str) -> CryptoError {
    CryptoError::Pki(format!("JWT signing key: {reason}"))
}

impl SigningKey {
    /// A new random key, and its PKCS#8 document for the caller to seal and store.
    pub fn generate() -> Result<(Self, SecretBytes), CryptoError> {
        // aws-lc draws the key from its own DRBG, seeded by the OS; a failure there is a
        // failure of the random number generator.
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| CryptoError::Random)?;
        // `Document` zeroizes its buffer on drop; the copy is owned by `SecretBytes`, which does
        // too.
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| key_error("could not be serialised"))?;
        let pkcs8 = SecretBytes::new(pkcs8.as_ref().to_vec());
        Ok((Self::from_pair(pair)?, pkcs8))
    }

    /// The key a PKCS#8 document from [`SigningKey::generate`] holds. Keys on other curves are
    /// refused.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, CryptoError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
            .map_err(|_| key_error("not a P-256 PKCS#8 private key"))?;
        Self::from_pair(pair)
    }

    fn from_pair(pair: EcdsaKeyPair) -> Result<Self, CryptoError> {
        let point = pair.public_key().as_ref().to_vec();
        if point.len() != P256_POINT_LEN || point.first() != Some(&0x04) {
            return Err(key_error("public key is not an uncompressed P-256 point"));
        }
        let x = b64_encode(&point[1..33]);
        let y = b64_encode(&point[33..]);
        let kid = jwk_thumbprint(&[("crv", "P-256"), ("kty", "EC"), ("x", &x), ("y", &y)]);
        Ok(Self {
            pair,
            point,
            x,
            y,
            kid,
        })
    }

    /// The key id: the RFC 7638 thumbprint of the public key, so it is derived from the key
    /// itself and stays the same wherever the key is loaded.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK for Coffer's key set.
    pub fn public_jwk(&self) -> Jwk {
        Jwk {
            kty: "EC".into(),
            kid: Some(self.kid.clone()),
            key_use: Some("sig".into()),
            alg: Some(Algorithm::Es256.name().into()),
            crv: Some("P-256".into()),
            x: Some(self.x.clone()),
            y: Some(self.y.clone()),
            ..Jwk::default()
        }
    }

    /// The public half, for verifying the tokens this key signs.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey::from_ec_point(Algorithm::Es256, self.point.clone())
    }

    /// A compact JWS over `claims`, with header `{"alg":"ES256","typ":"JWT","kid":…}`. The
    /// caller sets every claim (`iss`, `aud`, `exp`, …); this only signs.
    pub fn sign(&self, claims: &Map<String, Value>) -> Result<String, CryptoError> {
        // The kid is base64url, so it needs no JSON escaping.
        let header = format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{}"}}"#, self.kid);
        self.sign_encoded_header(header.as_bytes(), claims)
    }

    /// Like [`SigningKey::sign`], with further header members, such as the `x5t#S256`
    /// certificate thumbprint a client assertion carries. `alg`, `typ` and `kid` always come
    /// from this key: an `extra_header` cannot make the header name another algorithm or key
    /// than the one that signs.
    pub fn sign_with_header(
        &self,
        extra_header: &Map<String, Value>,
        claims: &Map<String, Value>,
    ) -> Result<String, CryptoError> {
        let mut header = extra_header.clone();
        header.insert("alg".into(), Value::String(Algorithm::Es256.name().into()));
        header.insert("typ".into(), Value::String("JWT".into()));
        header.insert("kid".into(), Value::String(self.kid.clone()));
        let header =
            serde_json::to_vec(&header).map_err(|_| key_error("header could not be serialised"))?;
        self.sign_encoded_header(&header, claims)
    }

    /// Signs `base64url(header).base64url(claims)` and appends the signature.
    fn sign_encoded_header(
        &self,
        header: &[u8],
        claims: &Map<String, Value>,
    ) -> Result<String, CryptoError> {
        let payload =
            serde_json::to_vec(claims).map_err(|_| key_error("claims could not be serialised"))?;
        let mut token = b64_encode(header);
        token.push('.');
        token.push_str(&b64_encode(&payload));
        let signature = self
            .pair
            .sign(&SystemRandom::new(), token.as_bytes())
            .map_err(|_| key_error("signing failed"))?;
        token.push('.');
        token.push_str(&b64_encode(signature.as_ref()));
        Ok(token)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The kid is a hash of the public key: safe to print, and enough to tell keys apart.
        f.debug_struct("SigningKey")
            .field("alg", &"ES256")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::encoding::AsBigEndian;
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    use super::*;

    #[test]
    fn debug_prints_no_key_bytes() {
        let (key, pkcs8) = SigningKey::generate().unwrap();
        let scalar = key.pair.private_key().as_be_bytes().unwrap();
        let scalar = scalar.as_ref();
        assert_eq!(scalar.len(), 32);
        let shown = format!("{key:?} {key:#?}");
        let hex: String = scalar.iter().map(|b| format!("{b:02x}")).collect();
        for encoded in [
            hex.clone(),
            hex.to_uppercase(),
            URL_SAFE_NO_PAD.encode(scalar),
            STANDARD.encode(scalar),
            STANDARD.encode(pkcs8.expose()),
            format!("{:?}", &scalar[..8]),
        ] {
            assert!(!shown.contains(&encoded), "{shown}");
        }
        assert!(shown.contains(key.kid()), "{shown}");
    }

    #[test]
    fn pkcs8_round_trip_keeps_the_key_and_kid_is_its_thumbprint() {
        let (key, pkcs8) = SigningKey::generate().unwrap();
        let loaded = SigningKey::from_pkcs8(pkcs8.expose()).unwrap();
        assert_eq!(loaded.kid(), key.kid());
        let jwk = key.public_jwk();
        assert_eq!(jwk.thumbprint().unwrap(), key.kid());
        assert_eq!(jwk.kid.as_deref(), Some(key.kid()));
        assert_eq!(jwk.alg.as_deref(), Some("ES256"));
        assert_eq!(jwk.key_use.as_deref(), Some("sig"));
        // Another key has another kid.
        assert_ne!(SigningKey::generate().unwrap().0.kid(), key.kid());
    }

    #[test]
    fn extra_header_members_are_signed_but_cannot_replace_alg_typ_or_kid() {
        use crate::jwt::{Jwt, certificate_thumbprints};
        let (key, _) = SigningKey::generate().unwrap();
        let (_, x5t_s256) = certificate_thumbprints(b"not really a certificate");
        let mut extra = Map::new();
        extra.insert("x5t#S256".into(), Value::String(x5t_s256.clone()));
        extra.insert("alg".into(), Value::String("none".into()));
        extra.insert("kid".into(), Value::String("someone-else".into()));
        extra.insert("typ".into(), Value::String("at+jwt".into()));
        let mut claims = Map::new();
        claims.insert("iss".into(), Value::String("app".into()));
        let token = key.sign_with_header(&extra, &claims).unwrap();
        let jwt = Jwt::parse(&token).unwrap();
        assert_eq!(jwt.header().alg, "ES256");
        assert_eq!(jwt.header().typ.as_deref(), Some("JWT"));
        assert_eq!(jwt.header().kid.as_deref(), Some(key.kid()));
        assert_eq!(jwt.header().x5t_s256.as_deref(), Some(x5t_s256.as_str()));
        assert_eq!(jwt.header().x5t, None);
        assert_eq!(jwt.unverified_issuer(), Some("app"));
        assert_eq!(jwt.verify(&key.verifying_key()), Ok(()));
        // Without extra members the header is the one `sign` writes.
        let plain = key.sign_with_header(&Map::new(), &claims).unwrap();
        let header = Jwt::parse(&plain).unwrap().header().clone();
        let signed = Jwt::parse(&key.sign(&claims).unwrap())
            .unwrap()
            .header()
            .clone();
        assert_eq!(header, signed);
    }

    #[test]
    fn keys_on_other_curves_and_garbage_are_refused() {
        let p384 = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        )
        .unwrap();
        let doc = p384.to_pkcs8v1().unwrap();
        assert!(SigningKey::from_pkcs8(doc.as_ref()).is_err());
        assert!(SigningKey::from_pkcs8(b"not a key").is_err());
    }
}
