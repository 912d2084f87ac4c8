//! The vocabulary of cryptographic keys, in Azure Key Vault's names: key types, curves,
//! operations, algorithms, the JSON Web Key and the persisted key and rotation-policy records.
//!
//! Every name parses from the exact string Azure uses (`RSA-OAEP-256`, `wrapKey`, `P-256K`)
//! and an unknown one is a `BadParameter` naming the field. Private key parts are held here
//! only while a key is imported; `Debug` never prints them.

use serde::{Deserialize, Serialize};

use crate::error::{Error, quote_user_text};
use crate::records::b64;
use crate::tags::Tags;

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $field:literal, { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name Azure uses.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parses Azure's name exactly (names are case-sensitive, as in Azure).
            pub fn parse(text: &str) -> Result<Self, Error> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::Error::bad_parameter(format!(
                        "Invalid value for '{}': {}. Expected one of: {}.",
                        $field,
                        $crate::error::quote_user_text(other),
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use named_enum;

named_enum!(
    /// `kty`. The `-HSM` types are accepted on premium vaults; Coffer keeps their material
    /// in the node like the software types until an HSM backend exists.
    KeyType, "kty", {
        Ec = "EC",
        EcHsm = "EC-HSM",
        Rsa = "RSA",
        RsaHsm = "RSA-HSM",
        Oct = "oct",
        OctHsm = "oct-HSM",
    }
);

/// The family of a key type, which decides its material and algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFamily {
    Rsa,
    Ec,
    Oct,
}

impl KeyType {
    pub fn family(self) -> KeyFamily {
        match self {
            KeyType::Rsa | KeyType::RsaHsm => KeyFamily::Rsa,
            KeyType::Ec | KeyType::EcHsm => KeyFamily::Ec,
            KeyType::Oct | KeyType::OctHsm => KeyFamily::Oct,
        }
    }

    pub fn is_hsm(self) -> bool {
        matches!(self, KeyType::RsaHsm | KeyType::EcHsm | KeyType::OctHsm)
    }
}

named_enum!(
    /// `crv` of an EC key.
    CurveName, "crv", {
        P256 = "P-256",
        P256K = "P-256K",
        P384 = "P-384",
        P521 = "P-521",
    }
);

named_enum!(
    /// An entry of `key_ops`.
    KeyOperation, "key_ops", {
        Encrypt = "encrypt",
        Decrypt = "decrypt",
        Sign = "sign",
        Verify = "verify",
        WrapKey = "wrapKey",
        UnwrapKey = "unwrapKey",
        Import = "import",
        Export = "export",
    }
);

impl KeyOperation {
    /// Whether the operation is still allowed outside the key's `nbf`/`exp` window: only
    /// those that undo earlier work (decrypt, unwrapKey, verify).
    pub fn allowed_outside_validity(self) -> bool {
        matches!(
            self,
            KeyOperation::Decrypt | KeyOperation::UnwrapKey | KeyOperation::Verify
        )
    }
}

named_enum!(
    /// `alg` of encrypt, decrypt, wrapKey and unwrapKey.
    EncryptionAlgorithm, "alg", {
        Rsa15 = "RSA1_5",
        RsaOaep = "RSA-OAEP",
        RsaOaep256 = "RSA-OAEP-256",
        A128Gcm = "A128GCM",
        A192Gcm = "A192GCM",
        A256Gcm = "A256GCM",
        A128Kw = "A128KW",
        A192Kw = "A192KW",
        A256Kw = "A256KW",
    }
);

impl EncryptionAlgorithm {
    /// The key family the algorithm needs.
    pub fn family(self) -> KeyFamily {
        match self {
            Self::Rsa15 | Self::RsaOaep | Self::RsaOaep256 => KeyFamily::Rsa,
            _ => KeyFamily::Oct,
        }
    }

    /// For AES algorithms, the key length in bytes they need.
    pub fn aes_key_len(self) -> Option<usize> {
        match self {
            Self::A128Gcm | Self::A128Kw => Some(16),
            Self::A192Gcm | Self::A192Kw => Some(24),
            Self::A256Gcm | Self::A256Kw => Some(32),
            _ => None,
        }
    }

    pub fn is_gcm(self) -> bool {
        matches!(self, Self::A128Gcm | Self::A192Gcm | Self::A256Gcm)
    }

    pub fn is_key_wrap(self) -> bool {
        matches!(self, Self::A128Kw | Self::A192Kw | Self::A256Kw)
    }
}

named_enum!(
    /// `alg` of sign and verify. Signing is on a digest the caller computed.
    SignatureAlgorithm, "alg", {
        Rs256 = "RS256",
        Rs384 = "RS384",
        Rs512 = "RS512",
        Ps256 = "PS256",
        Ps384 = "PS384",
        Ps512 = "PS512",
        Es256 = "ES256",
        Es384 = "ES384",
        Es512 = "ES512",
        Es256K = "ES256K",
    }
);

impl SignatureAlgorithm {
    /// The length in bytes of the digest the algorithm signs.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Rs256 | Self::Ps256 | Self::Es256 | Self::Es256K => 32,
            Self::Rs384 | Self::Ps384 | Self::Es384 => 48,
            Self::Rs512 | Self::Ps512 | Self::Es512 => 64,
        }
    }

    /// The key family the algorithm needs.
    pub fn family(self) -> KeyFamily {
        match self {
            Self::Es256 | Self::Es384 | Self::Es512 | Self::Es256K => KeyFamily::Ec,
            _ => KeyFamily::Rsa,
        }
    }

    /// For ECDSA, the curve the algorithm is defined on.
    pub fn curve(self) -> Option<CurveName> {
        match self {
            Self::Es256 => Some(CurveName::P256),
            Self::Es384 => Some(CurveName::P384),
            Self::Es512 => Some(CurveName::P521),
            Self::Es256K => Some(CurveName::P256K),
            _ => None,
        }
    }
}

/// A JSON Web Key as Azure exchanges it (RFC 7517 with Azure's `key_ops` names). Byte fields
/// are big-endian integers or raw bytes, base64url without padding in JSON. A key returned by
/// any API holds public parts only; private parts (`d, dp, dq, qi, p, q, k`) are read only
/// from an import request.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonWebKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kty: Option<KeyType>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_ops: Vec<KeyOperation>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64url_opt")]
    pub n: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64url_opt")]
    pub e: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64url_opt")]
    pub d: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64url_opt")]
    pub dp: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64url_opt")]
    pub dq: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64url_opt")]
    pub qi: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64url_opt")]
    pub p: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64url_opt")]
    pub q: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64url_opt")]
    pub k: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<CurveName>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64url_opt")]
    pub x: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64url_opt")]
    pub y: Option<Vec<u8>>,
}

impl JsonWebKey {
    /// Whether any private part is present.
    pub fn has_private_parts(&self) -> bool {
        [
            &self.d, &self.dp, &self.dq, &self.qi, &self.p, &self.q, &self.k,
        ]
        .iter()
        .any(|part| part.is_some())
    }

    /// The key with every private part removed.
    pub fn public_only(&self) -> JsonWebKey {
        JsonWebKey {
            kid: self.kid.clone(),
            kty: self.kty,
            key_ops: self.key_ops.clone(),
            n: self.n.clone(),
            e: self.e.clone(),
            crv: self.crv,
            x: self.x.clone(),
            y: self.y.clone(),
            d: None,
            dp: None,
            dq: None,
            qi: None,
            p: None,
            q: None,
            k: None,
        }
    }

    /// Overwrites and removes every private part. The import path calls this as soon as the
    /// material has been taken over by the crypto layer's zeroizing types.
    pub fn wipe_private_parts(&mut self) {
        for part in [
            &mut self.d,
            &mut self.dp,
            &mut self.dq,
            &mut self.qi,
            &mut self.p,
            &mut self.q,
            &mut self.k,
        ] {
            if let Some(mut bytes) = part.take() {
                bytes.iter_mut().for_each(|b| *b = 0);
                std::hint::black_box(&bytes);
            }
        }
    }
}

impl Drop for JsonWebKey {
    // Private parts are wiped however the key goes: a clone, an early return, a panic.
    fn drop(&mut self) {
        self.wipe_private_parts();
    }
}

impl std::fmt::Debug for JsonWebKey {
    // Names the key and says which private parts it holds, never their bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonWebKey")
            .field("kid", &self.kid)
            .field("kty", &self.kty)
            .field("crv", &self.crv)
            .field("key_ops", &self.key_ops)
            .field("private", &self.has_private_parts())
            .finish_non_exhaustive()
    }
}

/// One version of a key. The private material is sealed with the vault's data key, bound to
/// (vault, "key", name, version); the public parts are kept in the clear for reads.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub format: u16,
    pub name: String,
    pub version: String,
    pub kty: KeyType,
    pub key_ops: Vec<KeyOperation>,
    /// RSA: the modulus length in bits; oct: the key length in bits; EC: `None`.
    pub key_size: Option<u32>,
    /// Public parts only (`n, e` or `crv, x, y`; nothing for oct), without `kid`.
    pub public: JsonWebKey,
    /// The private material, sealed. Opaque here.
    #[serde(with = "b64")]
    pub sealed_private: Vec<u8>,
    pub enabled: bool,
    pub not_before: Option<i64>,
    pub expires: Option<i64>,
    pub created: i64,
    pub updated: i64,
    pub tags: Tags,
    /// Whether the version was imported rather than created in the vault.
    pub imported: bool,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("kty", &self.kty)
            .field("key_size", &self.key_size)
            .field("enabled", &self.enabled)
            .field("not_before", &self.not_before)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl KeyRecord {
    /// Whether `operation` may run on this version at `now`: the version is enabled, lists the
    /// operation in `key_ops`, and (except for decrypt, unwrapKey and verify) `now` lies inside
    /// its `nbf`/`exp` window.
    pub fn check_operation(&self, operation: KeyOperation, now: i64) -> Result<(), Error> {
        if !self.enabled {
            return Err(Error::key_disabled(operation.as_str()));
        }
        if !self.key_ops.contains(&operation) {
            return Err(Error::key_operation_not_permitted(operation.as_str()));
        }
        if !operation.allowed_outside_validity() {
            if self.not_before.is_some_and(|nbf| now < nbf) {
                return Err(Error::key_not_yet_valid(operation.as_str()));
            }
            if self.expires.is_some_and(|exp| now >= exp) {
                return Err(Error::key_expired(operation.as_str()));
            }
        }
        Ok(())
    }
}

named_enum!(
    /// What a lifetime action of a rotation policy does.
    RotationAction, "action.type", {
        Rotate = "Rotate",
        Notify = "Notify",
    }
);

/// An ISO 8601 duration of whole years, months, weeks and days (`P90D`, `P2Y`, `P1Y6M`), as
/// rotation policies use them. Months and years are calendar units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsoDuration {
    pub years: u32,
    pub months: u32,
    pub days: u32,
}

impl IsoDuration {
    pub fn parse(text: &str) -> Result<Self, Error> {
        let invalid = || {
            Error::bad_parameter(format!(
                "Invalid duration {}: expected an ISO 8601 duration of years, months, weeks \
                 and days such as P90D or P2Y.",
                quote_user_text(text)
            ))
        };
        let rest = text.strip_prefix('P').ok_or_else(invalid)?;
        if rest.is_empty() {
            return Err(invalid());
        }
        let mut out = IsoDuration {
            years: 0,
            months: 0,
            days: 0,
        };
        let mut number = String::new();
        let mut last_unit = 0;
        for c in rest.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let rank = match c {
                'Y' => 1,
                'M' => 2,
                'W' => 3,
                'D' => 4,
                _ => return Err(invalid()),
            };
            if number.is_empty() || number.len() > 5 || rank <= last_unit {
                return Err(invalid());
            }
            let n: u32 = number.parse().map_err(|_| invalid())?;
            number.clear();
            last_unit = rank;
            match c {
                'Y' => out.years = n,
                'M' => out.months = n,
                'W' => out.days = out.days.saturating_add(n.saturating_mul(7)),
                _ => out.days = out.days.saturating_add(n),
            }
        }
        if !number.is_empty() {
            return Err(invalid());
        }
        Ok(out)
    }

    /// `t` moved forward (or, with `backwards`, back) by this duration, in whole days of the
    /// UTC calendar; `None` outside the representable range.
    pub fn shift(&self, t: i64, backwards: bool) -> Option<i64> {
        let start = time::OffsetDateTime::from_unix_timestamp(t).ok()?;
        let months = i64::from(self.years) * 12 + i64::from(self.months);
        let months = if backwards { -months } else { months };
        let total = i64::from(start.year()) * 12 + i64::from(u8::from(start.month())) - 1 + months;
        let year = i32::try_from(total.div_euclid(12)).ok()?;
        let month = time::Month::try_from(u8::try_from(total.rem_euclid(12) + 1).ok()?).ok()?;
        let last_day = time::util::days_in_month(month, year);
        let date = time::Date::from_calendar_date(year, month, start.day().min(last_day)).ok()?;
        let moved = start.replace_date(date);
        let days = time::Duration::days(i64::from(self.days));
        let moved = if backwards {
            moved.checked_sub(days)?
        } else {
            moved.checked_add(days)?
        };
        Some(moved.unix_timestamp())
    }

    /// A lower bound of the duration in days (months as 28 days, years as 365).
    pub fn min_days(&self) -> u64 {
        u64::from(self.years) * 365 + u64::from(self.months) * 28 + u64::from(self.days)
    }

    /// An upper bound of the duration in days (months as 31 days, years as 366).
    pub fn max_days(&self) -> u64 {
        u64::from(self.years) * 366 + u64::from(self.months) * 31 + u64::from(self.days)
    }

    /// The canonical text, e.g. `P1Y6M10D`; `P0D` for zero.
    pub fn to_text(&self) -> String {
        let mut out = String::from("P");
        if self.years > 0 {
            out.push_str(&format!("{}Y", self.years));
        }
        if self.months > 0 {
            out.push_str(&format!("{}M", self.months));
        }
        if self.days > 0 || out.len() == 1 {
            out.push_str(&format!("{}D", self.days));
        }
        out
    }
}

/// When a lifetime action fires: a time after the version's creation, or before its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LifetimeTrigger {
    TimeAfterCreate(IsoDuration),
    TimeBeforeExpiry(IsoDuration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifetimeAction {
    pub trigger: LifetimeTrigger,
    pub action: RotationAction,
}

/// The smallest rotation interval Azure allows: 7 days after creation or before expiry.
pub const MIN_ROTATION_DAYS: u64 = 7;

/// A key's rotation policy. A key without one is shown with no actions: it is never rotated
/// automatically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotationPolicyRecord {
    pub format: u16,
    pub lifetime_actions: Vec<LifetimeAction>,
    /// `expiryTime`: the lifetime given to versions the policy or `rotate` creates.
    pub expiry_time: Option<IsoDuration>,
    pub created: i64,
    pub updated: i64,
}

impl KeyRotationPolicyRecord {
    /// Checks a policy as Azure does: at most one action of each type; triggers of at least
    /// 7 days; Notify timed before expiry only; an `expiryTime` of at least 28 days wherever an
    /// action is timed before expiry, leaving at least 7 days after creation; and a
    /// `timeAfterCreate` shorter than the `expiryTime`. Calendar units are compared at their
    /// extremes (a month 28 to 31 days), so no accepted policy can fall due at creation.
    pub fn validate(&self) -> Result<(), Error> {
        let mut seen = Vec::new();
        for action in &self.lifetime_actions {
            if seen.contains(&action.action) {
                return Err(Error::bad_parameter(format!(
                    "A rotation policy may hold one {} action only.",
                    action.action
                )));
            }
            seen.push(action.action);
            let (duration, before_expiry) = match action.trigger {
                LifetimeTrigger::TimeAfterCreate(d) => (d, false),
                LifetimeTrigger::TimeBeforeExpiry(d) => (d, true),
            };
            if action.action == RotationAction::Notify && !before_expiry {
                return Err(Error::bad_parameter(
                    "A Notify action is timed before expiry (timeBeforeExpiry) only.",
                ));
            }
            if duration.min_days() < MIN_ROTATION_DAYS {
                return Err(Error::bad_parameter(format!(
                    "The {} trigger {} is shorter than the minimum of {MIN_ROTATION_DAYS} days.",
                    action.action,
                    duration.to_text()
                )));
            }
            if before_expiry {
                let Some(expiry) = self.expiry_time else {
                    return Err(Error::bad_parameter(
                        "A trigger timed before expiry needs the policy's expiryTime.",
                    ));
                };
                if duration.max_days() + MIN_ROTATION_DAYS > expiry.min_days() {
                    return Err(Error::bad_parameter(format!(
                        "A trigger timed before expiry must leave at least {MIN_ROTATION_DAYS} \
                         days after creation within the policy's expiryTime."
                    )));
                }
            } else if let Some(expiry) = self.expiry_time
                && duration.max_days() >= expiry.min_days()
            {
                return Err(Error::bad_parameter(
                    "timeAfterCreate must be shorter than the policy's expiryTime.",
                ));
            }
        }
        if let Some(expiry) = self.expiry_time
            && expiry.min_days() < 28
        {
            return Err(Error::bad_parameter(
                "The policy's expiryTime must be at least 28 days.",
            ));
        }
        Ok(())
    }

    /// When the Rotate action of this policy is due for a version created at `created` and
    /// expiring at `expires`; `None` when the policy never rotates it.
    pub fn rotation_due(&self, created: i64, expires: Option<i64>) -> Option<i64> {
        self.lifetime_actions
            .iter()
            .filter(|a| a.action == RotationAction::Rotate)
            .find_map(|a| match a.trigger {
                LifetimeTrigger::TimeAfterCreate(d) => d.shift(created, false),
                LifetimeTrigger::TimeBeforeExpiry(d) => expires.and_then(|e| d.shift(e, true)),
            })
    }
}

mod b64url_opt {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => s.serialize_str(&URL_SAFE_NO_PAD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        // Padding is tolerated on input: some clients send it.
        URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map(Some)
            .map_err(|_| serde::de::Error::custom("a key field is not valid base64url"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_exactly() {
        for alg in SignatureAlgorithm::ALL {
            assert_eq!(SignatureAlgorithm::parse(alg.as_str()).unwrap(), *alg);
        }
        for alg in EncryptionAlgorithm::ALL {
            assert_eq!(EncryptionAlgorithm::parse(alg.as_str()).unwrap(), *alg);
        }
        assert_eq!(
            KeyOperation::parse("wrapKey").unwrap(),
            KeyOperation::WrapKey
        );
        let err = SignatureAlgorithm::parse("rs256").unwrap_err();
        assert_eq!(err.code, crate::ErrorCode::BadParameter);
        assert!(err.message.contains("RS256"), "{}", err.message);
        assert!(EncryptionAlgorithm::parse("A128CBC").is_err());
        assert_eq!(CurveName::parse("P-256K").unwrap(), CurveName::P256K);
    }

    #[test]
    fn digest_lengths_follow_the_hash() {
        assert_eq!(SignatureAlgorithm::Es512.digest_len(), 64);
        assert_eq!(SignatureAlgorithm::Ps384.digest_len(), 48);
        assert_eq!(SignatureAlgorithm::Es256K.curve(), Some(CurveName::P256K));
    }

    #[test]
    fn jwk_json_is_base64url_and_debug_hides_private_parts() {
        let mut jwk = JsonWebKey::default();
        jwk.kty = Some(KeyType::Oct);
        jwk.k = Some(vec![0xfb, 0xff, 0x01]);
        jwk.key_ops = vec![KeyOperation::WrapKey];
        let json = serde_json::to_string(&jwk).unwrap();
        assert_eq!(json, r#"{"kty":"oct","key_ops":["wrapKey"],"k":"-_8B"}"#);
        let back: JsonWebKey = serde_json::from_str(&json).unwrap();
        assert_eq!(back, jwk);
        let padded: JsonWebKey = serde_json::from_str(r#"{"k":"-_8B"}"#).unwrap();
        assert_eq!(padded.k, Some(vec![0xfb, 0xff, 0x01]));
        let debug = format!("{jwk:?}");
        assert!(!debug.contains("251") && !debug.contains("-_8B"), "{debug}");
        assert!(jwk.has_private_parts() && !jwk.public_only().has_private_parts());
        let mut wiped = jwk.clone();
        wiped.wipe_private_parts();
        assert!(!wiped.has_private_parts());
    }

    fn record(enabled: bool, nbf: Option<i64>, exp: Option<i64>) -> KeyRecord {
        KeyRecord {
            format: 1,
            name: "k".into(),
            version: "v".into(),
            kty: KeyType::Rsa,
            key_ops: vec![
                KeyOperation::Sign,
                KeyOperation::Verify,
                KeyOperation::Decrypt,
            ],
            key_size: Some(2048),
            public: JsonWebKey::default(),
            sealed_private: vec![1, 2, 3],
            enabled,
            not_before: nbf,
            expires: exp,
            created: 0,
            updated: 0,
            tags: Tags::default(),
            imported: false,
        }
    }

    #[test]
    fn operations_follow_azure_rules() {
        let ok = record(true, Some(100), Some(200));
        assert!(ok.check_operation(KeyOperation::Sign, 150).is_ok());
        assert!(ok.check_operation(KeyOperation::Sign, 99).is_err());
        assert!(ok.check_operation(KeyOperation::Sign, 200).is_err());
        assert!(ok.check_operation(KeyOperation::Verify, 250).is_ok());
        assert!(ok.check_operation(KeyOperation::Decrypt, 50).is_ok());
        let err = ok.check_operation(KeyOperation::Encrypt, 150).unwrap_err();
        assert!(err.message.contains("encrypt"), "{}", err.message);
        let off = record(false, None, None);
        let err = off.check_operation(KeyOperation::Verify, 150).unwrap_err();
        assert_eq!(err.code, crate::ErrorCode::Forbidden);
    }

    #[test]
    fn durations_parse_and_shift_on_the_calendar() {
        let d = IsoDuration::parse("P1Y2M10D").unwrap();
        assert_eq!((d.years, d.months, d.days), (1, 2, 10));
        assert_eq!(IsoDuration::parse("P2W").unwrap().days, 14);
        for bad in [
            "", "P", "90D", "P1D2Y", "PT1H", "P1.5D", "P-1D", "P1Y1Y", "P999999D",
        ] {
            assert!(IsoDuration::parse(bad).is_err(), "{bad}");
        }
        // 2024-01-31 + P1M = 2024-02-29 (clamped to the month's end).
        let jan31 = 1_706_659_200;
        let feb29 = 1_709_164_800;
        assert_eq!(
            IsoDuration::parse("P1M").unwrap().shift(jan31, false),
            Some(feb29)
        );
        let p90d = IsoDuration::parse("P90D").unwrap();
        assert_eq!(p90d.shift(0, false), Some(90 * 86_400));
        assert_eq!(p90d.shift(90 * 86_400, true), Some(0));
        assert_eq!(p90d.to_text(), "P90D");
    }

    #[test]
    fn rotation_policies_are_validated() {
        let p = |actions: Vec<LifetimeAction>, expiry: Option<&str>| KeyRotationPolicyRecord {
            format: 1,
            lifetime_actions: actions,
            expiry_time: expiry.map(|e| IsoDuration::parse(e).unwrap()),
            created: 0,
            updated: 0,
        };
        let rotate = |t| LifetimeAction {
            trigger: t,
            action: RotationAction::Rotate,
        };
        let after = |s| LifetimeTrigger::TimeAfterCreate(IsoDuration::parse(s).unwrap());
        let before = |s| LifetimeTrigger::TimeBeforeExpiry(IsoDuration::parse(s).unwrap());
        assert!(p(vec![rotate(after("P30D"))], None).validate().is_ok());
        assert!(p(vec![rotate(after("P6D"))], None).validate().is_err());
        assert!(p(vec![rotate(before("P30D"))], None).validate().is_err());
        assert!(
            p(vec![rotate(before("P30D"))], Some("P90D"))
                .validate()
                .is_ok()
        );
        assert!(
            p(vec![rotate(before("P90D"))], Some("P90D"))
                .validate()
                .is_err()
        );
        // Calendar units compare at their extremes: twelve months may be a year.
        assert!(
            p(vec![rotate(before("P12M"))], Some("P1Y"))
                .validate()
                .is_err()
        );
        assert!(
            p(vec![rotate(before("P1M"))], Some("P29D"))
                .validate()
                .is_err()
        );
        assert!(
            p(vec![rotate(before("P83D"))], Some("P90D"))
                .validate()
                .is_ok()
        );
        assert!(
            p(vec![rotate(after("P1Y"))], Some("P1Y"))
                .validate()
                .is_err()
        );
        let notify = |t| LifetimeAction {
            trigger: t,
            action: RotationAction::Notify,
        };
        assert!(
            p(vec![notify(after("P30D"))], Some("P90D"))
                .validate()
                .is_err()
        );
        assert!(
            p(vec![notify(before("P30D"))], Some("P90D"))
                .validate()
                .is_ok()
        );
        let twice = vec![rotate(after("P30D")), rotate(after("P40D"))];
        assert!(p(twice, None).validate().is_err());
        let policy = p(vec![rotate(after("P30D"))], None);
        assert_eq!(policy.rotation_due(0, None), Some(30 * 86_400));
        let policy = p(vec![rotate(before("P30D"))], Some("P90D"));
        assert_eq!(policy.rotation_due(0, None), None);
        assert_eq!(policy.rotation_due(0, Some(90 * 86_400)), Some(60 * 86_400));
    }
}
