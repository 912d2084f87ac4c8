use aws_lc_rs::digest::{SHA256, digest};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::b64_encode;
use super::error::{JwtError, excerpt};

/// A public JSON Web Key (RFC 7517), as a principal registers it or Coffer publishes it.
///
/// Only public members are modelled. Unknown members are ignored on input, but whether any
/// private member (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, or a symmetric `k`) was present is
/// remembered, so that [`VerifyingKey::from_jwk`](super::VerifyingKey::from_jwk) can refuse the
/// key: a key set is published, so a private key in it is already compromised, and a principal
/// that uploads one has made a mistake worth reporting rather than silently fixing. The private
/// values themselves are skipped while parsing, never stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "JwkRepr")]
pub struct Jwk {
    pub kty: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The `use` member (`sig` or `enc`).
    #[serde(rename = "use", skip_serializing_if = "Option::is_none")]
    pub key_use: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x5t: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x5c: Option<Vec<String>>,
    /// Whether the parsed JSON carried a private member. Not public so that only parsing sets
    /// it; outside this crate a `Jwk` is therefore built by parsing JSON (or by
    /// [`SigningKey::public_jwk`](super::SigningKey::public_jwk)), not by a struct literal.
    #[serde(skip)]
    pub(crate) private_members: bool,
}

impl Jwk {
    /// Whether the JSON this key was parsed from carried private key members.
    pub fn has_private_members(&self) -> bool {
        self.private_members
    }

    /// The RFC 7638 thumbprint of this key (SHA-256, base64url), computed over the members the
    /// RFC requires for its key type. `kid`, `alg` and the rest do not take part, so the value
    /// identifies the key itself.
    pub fn thumbprint(&self) -> Result<String, JwtError> {
        match self.kty.as_str() {
            "EC" => Ok(jwk_thumbprint(&[
                member("crv", &self.crv)?,
                ("kty", "EC"),
                member("x", &self.x)?,
                member("y", &self.y)?,
            ])),
            "RSA" => Ok(jwk_thumbprint(&[
                member("e", &self.e)?,
                ("kty", "RSA"),
                member("n", &self.n)?,
            ])),
            other => Err(JwtError::InvalidKey(format!(
                "unsupported key type {:?}",
                excerpt(other)
            ))),
        }
    }
}

/// A required member of a JWK, paired with its name for [`jwk_thumbprint`].
fn member<'a>(
    name: &'static str,
    value: &'a Option<String>,
) -> Result<(&'static str, &'a str), JwtError> {
    value
        .as_deref()
        .map(|v| (name, v))
        .ok_or_else(|| JwtError::InvalidKey(format!("the JWK has no {name} member")))
}

/// What a JWK is parsed as: the public members, plus the private ones as [`IgnoredAny`] so their
/// presence is seen without their values being kept.
#[derive(Deserialize)]
struct JwkRepr {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    key_use: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x5t: Option<String>,
    x5c: Option<Vec<String>>,
    d: Option<IgnoredAny>,
    p: Option<IgnoredAny>,
    q: Option<IgnoredAny>,
    dp: Option<IgnoredAny>,
    dq: Option<IgnoredAny>,
    qi: Option<IgnoredAny>,
    oth: Option<IgnoredAny>,
    k: Option<IgnoredAny>,
}

impl From<JwkRepr> for Jwk {
    fn from(r: JwkRepr) -> Self {
        let private_members = [r.d, r.p, r.q, r.dp, r.dq, r.qi, r.oth, r.k]
            .iter()
            .any(Option::is_some);
        Self {
            kty: r.kty,
            kid: r.kid,
            key_use: r.key_use,
            alg: r.alg,
            crv: r.crv,
            x: r.x,
            y: r.y,
            n: r.n,
            e: r.e,
            x5t: r.x5t,
            x5c: r.x5c,
            private_members,
        }
    }
}

/// A JWK set (RFC 7517 §5), as served at a `jwks_uri`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// The key whose `kid` is `kid`, if there is one.
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
    }
}

/// The RFC 7638 JWK thumbprint over `required_members` (name, value): the members sorted by
/// name, written as JSON with no whitespace, hashed with SHA-256 and encoded base64url without
/// padding. The caller passes exactly the members RFC 7638 §3.2 requires for the key type; all
/// their values are strings for the key types Coffer uses.
pub fn jwk_thumbprint(required_members: &[(&str, &str)]) -> String {
    let mut members = required_members.to_vec();
    // Byte order of UTF-8 equals code-point order, which is what RFC 7638 §3.3 asks for (the
    // names in use are ASCII in any case).
    members.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut json = String::from("{");
    for (i, (name, value)) in members.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        push_json_string(&mut json, name);
        json.push(':');
        push_json_string(&mut json, value);
    }
    json.push('}');
    b64_encode(digest(&SHA256, json.as_bytes()).as_ref())
}

/// Appends `text` as a JSON string with the minimal escaping RFC 8259 requires, as RFC 7638
/// §3.3 asks. Written out rather than taken from serde_json so the canonical form cannot change
/// with that crate's choices.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1.
    const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    const RFC7638_THUMBPRINT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

    #[test]
    fn rfc7638_thumbprint_known_answer() {
        // Members deliberately out of order: the function must sort them.
        assert_eq!(
            jwk_thumbprint(&[("n", RFC7638_N), ("kty", "RSA"), ("e", "AQAB")]),
            RFC7638_THUMBPRINT
        );
        let jwk: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"
        }))
        .unwrap();
        assert_eq!(jwk.thumbprint().unwrap(), RFC7638_THUMBPRINT);
        assert!(!jwk.has_private_members());
    }

    #[test]
    fn canonical_json_escapes_minimally() {
        let mut out = String::new();
        push_json_string(&mut out, "a\"b\\c\u{1}é");
        assert_eq!(out, "\"a\\\"b\\\\c\\u0001é\"");
    }

    #[test]
    fn private_members_are_noticed_but_not_kept_and_unknown_members_ignored() {
        for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            let mut json = serde_json::json!({
                "kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "future": [1, 2]
            });
            json[member] = serde_json::json!("c2VjcmV0LWtleS1tYXRlcmlhbA");
            let jwk: Jwk = serde_json::from_value(json).unwrap();
            assert!(jwk.has_private_members(), "{member}");
            let out = serde_json::to_string(&jwk).unwrap();
            assert!(!out.contains("c2VjcmV0"), "{out}");
        }
    }

    #[test]
    fn absent_members_are_not_serialised_and_use_is_renamed() {
        let jwk = Jwk {
            kty: "EC".into(),
            key_use: Some("sig".into()),
            ..Jwk::default()
        };
        assert_eq!(
            serde_json::to_string(&jwk).unwrap(),
            r#"{"kty":"EC","use":"sig"}"#
        );
        let set: Jwks = serde_json::from_str(r#"{"keys":[{"kty":"EC","kid":"a"}]}"#).unwrap();
        assert_eq!(set.find("a").map(|k| k.kty.as_str()), Some("EC"));
        assert!(set.find("b").is_none());
    }
}
