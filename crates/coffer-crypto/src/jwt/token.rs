use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::JwtError;
use super::verifying::VerifyingKey;
use super::{Algorithm, b64_decode};

/// The longest token accepted, in bytes. Client assertions and access tokens are well under
/// 4 KiB even with a certificate chain in the header; the cap bounds the work a hostile
/// request can cause before any signature is checked.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The JOSE header members Coffer reads. Others are ignored, except `crit`, which makes
/// [`Jwt::parse`] refuse the token (RFC 7515 §4.1.11: a recipient that does not understand a
/// critical extension must reject the token, and this module understands none).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Header {
    pub alg: String,
    pub typ: Option<String>,
    pub kid: Option<String>,
    /// SHA-1 thumbprint of the signing certificate, base64url.
    pub x5t: Option<String>,
    /// SHA-256 thumbprint of the signing certificate, base64url.
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: Option<String>,
}

/// A parsed compact JWS whose signature and claims have not been checked yet.
///
/// Use the header (`kid`, `x5t`) and [`Jwt::unverified_issuer`] only to find the key to verify
/// with; trust the claims only after [`Jwt::verify`] and [`Jwt::validate`] have both passed.
/// JSON objects with a repeated member keep the last value, as RFC 7515 §4 allows.
pub struct Jwt {
    header: Header,
    claims: Map<String, Value>,
    /// `header.payload` exactly as received: the bytes the signature covers.
    signing_input: String,
    signature: Vec<u8>,
}

/// Decodes one base64url part into a JSON object.
fn json_object(part: &str, what: &'static str) -> Result<Map<String, Value>, JwtError> {
    let bytes = b64_decode(part).ok_or(JwtError::Malformed(what))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Malformed(what)),
    }
}

impl Jwt {
    /// Splits and decodes a compact JWS. Refused as [`JwtError::Malformed`]: more than
    /// [`MAX_TOKEN_LEN`] bytes, other than three dot-separated parts, anything but strict
    /// unpadded base64url, a header or claims set that is not a JSON object, a header without
    /// a string `alg`, and a header with `crit`.
    pub fn parse(token: &str) -> Result<Self, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::Malformed("the token is longer than 16 KiB"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed(
                "the token is not three dot-separated parts",
            ));
        };
        let header_map = json_object(header, "the header is not a base64url JSON object")?;
        if header_map.contains_key("crit") {
            return Err(JwtError::Malformed(
                "the header names critical extensions, and none are supported",
            ));
        }
        let parsed_header: Header = serde_json::from_value(Value::Object(header_map))
            .map_err(|_| JwtError::Malformed("the header's members have the wrong types"))?;
        let claims = json_object(payload, "the claims are not a base64url JSON object")?;
        let signature =
            b64_decode(signature).ok_or(JwtError::Malformed("the signature is not base64url"))?;
        // The signed bytes are the first two parts with their dot, which end where the
        // signature part begins.
        let signing_input = token[..header.len() + 1 + payload.len()].to_owned();
        Ok(Self {
            header: parsed_header,
            claims,
            signing_input,
            signature,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The claims, unverified until [`Jwt::verify`] and [`Jwt::validate`] pass.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// The `iss` claim, to choose which principal's keys to verify with. Not evidence of
    /// anything until the token verifies.
    pub fn unverified_issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    /// Checks the signature with `key`. The algorithm is the header's `alg`, and it must be one
    /// the key allows; `none`, `HS*` and unknown names are refused before any cryptography
    /// runs.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), JwtError> {
        let alg = Algorithm::from_name(&self.header.alg)?;
        if !key.allows(alg) {
            return Err(JwtError::KeyAlgorithmMismatch);
        }
        key.verify_signature(alg, self.signing_input.as_bytes(), &self.signature)
    }
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A signed token is a bearer credential until it expires: the header is printed, the
        // claims and signature are not.
        f.debug_struct("Jwt")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
