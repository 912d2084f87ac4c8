//! EC keys on P-256, P-256K (secp256k1), P-384 and P-521: generation, JWK import, and ECDSA
//! over a caller's digest with JWS signatures (`r || s`, each the curve's length).
//!
//! Import is strict about lengths: `x` and `y` must be exactly the curve's coordinate length,
//! as RFC 7518 §6.2.1 requires. `d` may be shorter, by leading zero bytes only (some encoders
//! drop them; the value is the same), and is padded back before aws-lc sees it. aws-lc then
//! checks that `d` belongs to `(x, y)`; a `d` of another key is refused.

use aws_lc_rs::digest::Digest;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, ParsedPublicKey};
use coffer_types::{CurveName, JsonWebKey, KeyType};
use zeroize::Zeroizing;

use super::key_error;
use crate::CryptoError;

/// The SEC 1 tag of an uncompressed point.
const UNCOMPRESSED: u8 = 0x04;

/// Bytes in a coordinate, a private scalar, and each half of a signature.
pub(super) fn coordinate_len(curve: CurveName) -> usize {
    match curve {
        CurveName::P256 | CurveName::P256K => 32,
        CurveName::P384 => 48,
        CurveName::P521 => 66,
    }
}

fn signing_algorithm(curve: CurveName) -> &'static signature::EcdsaSigningAlgorithm {
    match curve {
        CurveName::P256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        CurveName::P256K => &signature::ECDSA_P256K1_SHA256_FIXED_SIGNING,
        CurveName::P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        CurveName::P521 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
    }
}

fn verification_algorithm(curve: CurveName) -> &'static signature::EcdsaVerificationAlgorithm {
    match curve {
        CurveName::P256 => &signature::ECDSA_P256_SHA256_FIXED,
        CurveName::P256K => &signature::ECDSA_P256K1_SHA256_FIXED,
        CurveName::P384 => &signature::ECDSA_P384_SHA384_FIXED,
        CurveName::P521 => &signature::ECDSA_P521_SHA512_FIXED,
    }
}

/// An EC private key at rest: PKCS#8 DER, wiped on drop, its curve and public point.
#[derive(Clone)]
pub(super) struct EcMaterial {
    curve: CurveName,
    pkcs8: Zeroizing<Vec<u8>>,
    /// The uncompressed SEC 1 point `0x04 || x || y`.
    point: Vec<u8>,
}

impl EcMaterial {
    pub(super) fn generate(curve: CurveName) -> Result<Self, CryptoError> {
        let pair =
            EcdsaKeyPair::generate(signing_algorithm(curve)).map_err(|_| CryptoError::Random)?;
        Self::from_pair(curve, &pair).map_err(|_| CryptoError::Random)
    }

    fn from_pair(curve: CurveName, pair: &EcdsaKeyPair) -> Result<Self, ()> {
        let pkcs8 = pair.to_pkcs8v1().map_err(|_| ())?;
        Ok(Self {
            curve,
            pkcs8: Zeroizing::new(pkcs8.as_ref().to_vec()),
            point: pair.public_key().as_ref().to_vec(),
        })
    }

    /// Imports a private JWK (`crv, x, y, d`).
    pub(super) fn import(jwk: &JsonWebKey) -> Result<Self, CryptoError> {
        let missing: Vec<&str> = [
            ("crv", jwk.crv.is_none()),
            ("x", jwk.x.is_none()),
            ("y", jwk.y.is_none()),
            ("d", jwk.d.is_none()),
        ]
        .iter()
        .filter(|(_, absent)| *absent)
        .map(|(name, _)| *name)
        .collect();
        let (Some(curve), Some(d), true) = (jwk.crv, &jwk.d, missing.is_empty()) else {
            return Err(key_error(format!(
                "An EC key import needs crv, x, y and d; the key lacks {}.",
                missing.join(", ")
            )));
        };
        let point = public_point(jwk, curve)?;
        EcPublicKey::new(curve, &point).map_err(|_| off_curve(curve))?;
        let len = coordinate_len(curve);
        if d.len() > len || d.is_empty() {
            return Err(key_error(format!(
                "The private key d is {} bytes; a {curve} key's d is {len} bytes.",
                d.len()
            )));
        }
        let mut scalar = Zeroizing::new(vec![0u8; len - d.len()]);
        scalar.extend_from_slice(d);
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            signing_algorithm(curve),
            &scalar,
            &point,
        )
        .map_err(|_| {
            key_error(format!(
                "The EC key is invalid: d is not the private key of the point (x, y) on {curve}."
            ))
        })?;
        Self::from_pair(curve, &pair).map_err(|_| CryptoError::Seal)
    }

    /// Reads stored PKCS#8; any failure means the stored material is damaged.
    pub(super) fn from_pkcs8(curve: CurveName, der: &[u8]) -> Result<Self, CryptoError> {
        let pair = EcdsaKeyPair::from_pkcs8(signing_algorithm(curve), der)
            .map_err(|_| CryptoError::Unseal)?;
        Ok(Self {
            curve,
            pkcs8: Zeroizing::new(der.to_vec()),
            point: pair.public_key().as_ref().to_vec(),
        })
    }

    pub(super) fn curve(&self) -> CurveName {
        self.curve
    }

    pub(super) fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    pub(super) fn public_jwk(&self) -> JsonWebKey {
        let len = coordinate_len(self.curve);
        let coordinates = self.point.get(1..).unwrap_or_default();
        let (x, y) = coordinates.split_at(len.min(coordinates.len()));
        {
            let mut jwk = JsonWebKey::default();
            jwk.kty = Some(KeyType::Ec);
            jwk.crv = Some(self.curve);
            jwk.x = Some(x.to_vec());
            jwk.y = Some(y.to_vec());
            jwk
        }
    }

    pub(super) fn load(&self) -> Result<EcPrivateKey, CryptoError> {
        let pair = EcdsaKeyPair::from_pkcs8(signing_algorithm(self.curve), &self.pkcs8)
            .map_err(|_| CryptoError::Unseal)?;
        let public = EcPublicKey::new(self.curve, &self.point).map_err(|_| CryptoError::Unseal)?;
        Ok(EcPrivateKey { pair, public })
    }
}

/// `0x04 || x || y` from a JWK, with both coordinates exactly the curve's length.
fn public_point(jwk: &JsonWebKey, curve: CurveName) -> Result<Vec<u8>, CryptoError> {
    let len = coordinate_len(curve);
    let (Some(x), Some(y)) = (&jwk.x, &jwk.y) else {
        return Err(key_error("An EC key needs crv, x and y."));
    };
    for (name, value) in [("x", x), ("y", y)] {
        if value.len() != len {
            return Err(key_error(format!(
                "The coordinate {name} is {} bytes; a {curve} key's coordinates are {len} bytes.",
                value.len()
            )));
        }
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(UNCOMPRESSED);
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    Ok(point)
}

fn off_curve(curve: CurveName) -> CryptoError {
    key_error(format!("The point (x, y) is not on the curve {curve}."))
}

/// A loaded EC private key.
pub(super) struct EcPrivateKey {
    pair: EcdsaKeyPair,
    public: EcPublicKey,
}

impl EcPrivateKey {
    pub(super) fn public(&self) -> &EcPublicKey {
        &self.public
    }

    /// Signs `digest`, whose algorithm the caller matched to the curve.
    pub(super) fn sign(&self, digest: &Digest) -> Result<Vec<u8>, CryptoError> {
        let sig = self
            .pair
            .sign_digest(digest)
            .map_err(|_| CryptoError::Seal)?;
        Ok(sig.as_ref().to_vec())
    }
}

/// The public half of an EC key, parsed (the point is checked to be on the curve).
pub(super) struct EcPublicKey {
    curve: CurveName,
    parsed: ParsedPublicKey,
}

impl EcPublicKey {
    fn new(curve: CurveName, point: &[u8]) -> Result<Self, ()> {
        let parsed = ParsedPublicKey::new(verification_algorithm(curve), point).map_err(|_| ())?;
        Ok(Self { curve, parsed })
    }

    pub(super) fn from_jwk(jwk: &JsonWebKey) -> Result<Self, CryptoError> {
        let Some(curve) = jwk.crv else {
            return Err(key_error("An EC key needs crv, x and y."));
        };
        let point = public_point(jwk, curve)?;
        Self::new(curve, &point).map_err(|_| off_curve(curve))
    }

    pub(super) fn curve(&self) -> CurveName {
        self.curve
    }

    /// Whether `sig` (`r || s`) is a valid signature of `digest`, whose algorithm the caller
    /// matched to the curve.
    pub(super) fn verify(&self, digest: &Digest, sig: &[u8]) -> bool {
        self.parsed.verify_digest_sig(digest, sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The private scalar of a material, from its PKCS#8 (test-only DER walk: the
    /// ECPrivateKey's OCTET STRING follows its version).
    pub(crate) fn private_scalar(material: &EcMaterial) -> Vec<u8> {
        let der = material.pkcs8();
        let len = coordinate_len(material.curve());
        // The scalar is the only OCTET STRING of the curve's exact length preceded by the
        // ECPrivateKey version `02 01 01`.
        let marker = [0x02, 0x01, 0x01, 0x04, len as u8];
        let at = der.windows(marker.len()).position(|w| w == marker).unwrap();
        der[at + marker.len()..at + marker.len() + len].to_vec()
    }

    fn private_jwk(material: &EcMaterial) -> JsonWebKey {
        let mut built = material.public_jwk();
        built.d = Some(private_scalar(material));
        built
    }

    #[test]
    fn import_round_trips_and_checks_d() {
        for curve in CurveName::ALL {
            let a = EcMaterial::generate(*curve).unwrap();
            let b = EcMaterial::generate(*curve).unwrap();
            let jwk = private_jwk(&a);
            assert_eq!(jwk.x.as_ref().unwrap().len(), coordinate_len(*curve));
            let imported = EcMaterial::import(&jwk).unwrap();
            assert_eq!(imported.point, a.point, "{curve}");

            let mut foreign = jwk.clone();
            foreign.d = private_jwk(&b).d.clone();
            let err = EcMaterial::import(&foreign).err().unwrap().to_string();
            assert!(err.contains("not the private key"), "{curve}: {err}");

            let mut short_x = jwk.clone();
            short_x.x.as_mut().unwrap().remove(0);
            assert!(EcMaterial::import(&short_x).is_err(), "{curve}");
            let mut long_d = jwk.clone();
            long_d.d.as_mut().unwrap().insert(0, 0);
            assert!(EcMaterial::import(&long_d).is_err(), "{curve}");
            let mut other_curve = jwk.clone();
            other_curve.crv = Some(if *curve == CurveName::P256 {
                CurveName::P256K
            } else {
                CurveName::P256
            });
            assert!(EcMaterial::import(&other_curve).is_err(), "{curve}");
            let mut zero = jwk.clone();
            zero.d = Some(vec![0u8; coordinate_len(*curve)]);
            assert!(EcMaterial::import(&zero).is_err(), "{curve}");
        }
    }

    #[test]
    fn d_shorter_by_leading_zeros_is_accepted() {
        // Generate until d starts with a zero byte (1 in 256 keys): the stripped d must
        // import to the same key, padded back.
        for _ in 0..4096 {
            let key = EcMaterial::generate(CurveName::P256).unwrap();
            let d = private_scalar(&key);
            if d[0] != 0 {
                continue;
            }
            let jwk = {
                let mut built = key.public_jwk();
                built.d = Some(d[1..].to_vec());
                built
            };
            let imported = EcMaterial::import(&jwk).unwrap();
            assert_eq!(imported.point, key.point);
            assert_eq!(private_scalar(&imported), d);
            return;
        }
        panic!("no key with a leading zero byte in 4096 tries");
    }

    #[test]
    fn a_point_off_the_curve_is_refused() {
        let key = EcMaterial::generate(CurveName::P384).unwrap();
        let mut jwk = key.public_jwk();
        let y = jwk.y.as_mut().unwrap();
        let last = y.len() - 1;
        y[last] ^= 1;
        let err = EcPublicKey::from_jwk(&jwk).err().unwrap().to_string();
        assert!(err.contains("not on the curve P-384"), "{err}");
    }
}
