//! [`KeyMaterial`]: a key's private material, as generated, imported and stored.

use std::fmt;

use coffer_types::{CurveName, JsonWebKey, KeyFamily};
use zeroize::Zeroizing;

use super::ec::EcMaterial;
use super::loaded::{Loaded, LoadedKey};
use super::oct::OctMaterial;
use super::rsa::RsaMaterial;
use super::{KeySpec, key_error};
use crate::{CryptoError, SecretBytes};

const FORMAT_V1: u8 = 1;
const TAG_RSA: u8 = 1;
const TAG_EC: u8 = 2;
const TAG_OCT: u8 = 3;

/// The stored id of a curve (see the module documentation).
fn curve_id(curve: CurveName) -> u8 {
    match curve {
        CurveName::P256 => 1,
        CurveName::P256K => 2,
        CurveName::P384 => 3,
        CurveName::P521 => 4,
    }
}

fn curve_from_id(id: u8) -> Option<CurveName> {
    CurveName::ALL.iter().copied().find(|c| curve_id(*c) == id)
}

/// A key's private material. Every byte of it is wiped on drop; `Debug` names the family, size
/// and curve only.
#[derive(Clone)]
pub struct KeyMaterial {
    inner: Material,
}

#[derive(Clone)]
enum Material {
    Rsa(RsaMaterial),
    Ec(EcMaterial),
    Oct(OctMaterial),
}

impl KeyMaterial {
    /// Generates a key. RSA keys take a few hundred milliseconds (4096 bits: seconds); callers
    /// on an async runtime should generate on a blocking thread.
    pub fn generate(spec: &KeySpec) -> Result<KeyMaterial, CryptoError> {
        let inner = match *spec {
            KeySpec::Rsa {
                bits,
                public_exponent,
            } => Material::Rsa(RsaMaterial::generate(bits, public_exponent)?),
            KeySpec::Ec { curve } => Material::Ec(EcMaterial::generate(curve)?),
            KeySpec::Oct { bits } => Material::Oct(OctMaterial::generate(bits)?),
        };
        Ok(KeyMaterial { inner })
    }

    /// Imports a private JWK: RSA needs `n, e, d, p, q, dp, dq, qi`; EC `crv, x, y, d`; oct `k`.
    /// The key is checked to be whole and consistent (see the RSA and EC modules). The caller
    /// wipes the JWK's private parts afterwards ([`JsonWebKey::wipe_private_parts`]); nothing
    /// here keeps a reference to them.
    pub fn import(jwk: &JsonWebKey) -> Result<KeyMaterial, CryptoError> {
        let Some(kty) = jwk.kty else {
            return Err(key_error("The key to import has no kty."));
        };
        let inner = match kty.family() {
            KeyFamily::Rsa => Material::Rsa(RsaMaterial::import(jwk)?),
            KeyFamily::Ec => Material::Ec(EcMaterial::import(jwk)?),
            KeyFamily::Oct => Material::Oct(OctMaterial::import(jwk)?),
        };
        Ok(KeyMaterial { inner })
    }

    /// The stored form: a format byte, a family byte (and for EC a curve byte), then PKCS#8
    /// DER (RSA, EC) or the raw key (oct).
    pub fn to_bytes(&self) -> SecretBytes {
        let (header, body): (&[u8], &[u8]) = match &self.inner {
            Material::Rsa(rsa) => (&[FORMAT_V1, TAG_RSA], rsa.pkcs8()),
            Material::Ec(ec) => (&[FORMAT_V1, TAG_EC, curve_id(ec.curve())], ec.pkcs8()),
            Material::Oct(oct) => (&[FORMAT_V1, TAG_OCT], oct.raw()),
        };
        let mut out = Zeroizing::new(Vec::with_capacity(header.len() + body.len()));
        out.extend_from_slice(header);
        out.extend_from_slice(body);
        SecretBytes::new(std::mem::take(&mut *out))
    }

    /// Reads what [`KeyMaterial::to_bytes`] wrote. Anything else is [`CryptoError::Unseal`]:
    /// these bytes come from the store, never from a caller.
    pub fn from_bytes(bytes: &[u8]) -> Result<KeyMaterial, CryptoError> {
        let inner = match bytes {
            [FORMAT_V1, TAG_RSA, der @ ..] => Material::Rsa(RsaMaterial::from_pkcs8(der)?),
            [FORMAT_V1, TAG_EC, id, der @ ..] => {
                let curve = curve_from_id(*id).ok_or(CryptoError::Unseal)?;
                Material::Ec(EcMaterial::from_pkcs8(curve, der)?)
            }
            [FORMAT_V1, TAG_OCT, raw @ ..] => Material::Oct(OctMaterial::from_raw(raw)?),
            _ => return Err(CryptoError::Unseal),
        };
        Ok(KeyMaterial { inner })
    }

    pub fn family(&self) -> KeyFamily {
        match self.inner {
            Material::Rsa(_) => KeyFamily::Rsa,
            Material::Ec(_) => KeyFamily::Ec,
            Material::Oct(_) => KeyFamily::Oct,
        }
    }

    /// RSA: the modulus length in bits; oct: the key length in bits; EC: `None`.
    pub fn key_size(&self) -> Option<u32> {
        match &self.inner {
            Material::Rsa(rsa) => Some(rsa.bits()),
            Material::Ec(_) => None,
            Material::Oct(oct) => Some(oct.bits()),
        }
    }

    pub fn curve(&self) -> Option<CurveName> {
        match &self.inner {
            Material::Ec(ec) => Some(ec.curve()),
            _ => None,
        }
    }

    /// The public parts as Azure returns them: RSA `kty, n, e`; EC `kty, crv, x, y` (each
    /// coordinate the curve's full length); oct `kty` alone. `kty` is the software type (the
    /// caller sets an `-HSM` type), `kid` is unset and `key_ops` empty.
    pub fn public_jwk(&self) -> JsonWebKey {
        match &self.inner {
            Material::Rsa(rsa) => rsa.public_jwk(),
            Material::Ec(ec) => ec.public_jwk(),
            Material::Oct(oct) => oct.public_jwk(),
        }
    }

    /// Parses the material once into aws-lc objects for repeated operations.
    pub fn load(&self) -> Result<LoadedKey, CryptoError> {
        let loaded = match &self.inner {
            Material::Rsa(rsa) => Loaded::Rsa(rsa.load()?),
            Material::Ec(ec) => Loaded::Ec(ec.load()?),
            Material::Oct(oct) => Loaded::Oct(oct.load()?),
        };
        Ok(LoadedKey::new(loaded))
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("family", &self.family())
            .field("key_size", &self.key_size())
            .field("curve", &self.curve())
            .finish_non_exhaustive()
    }
}
