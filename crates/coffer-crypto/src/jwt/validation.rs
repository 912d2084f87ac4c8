use serde_json::{Map, Value};

use super::Jwt;
use super::error::{JwtError, excerpt};

/// What [`Jwt::validate`] accepts.
///
/// `issuers` and `audiences` are allow-lists, and an empty list allows nothing: a verifier
/// configured without them refuses every token rather than accepting tokens meant for anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    /// Accepted `iss` values, compared exactly.
    pub issuers: Vec<String>,
    /// Accepted audiences; the token's `aud` (a string or an array of strings) must contain
    /// one of them.
    pub audiences: Vec<String>,
    /// The current time, in seconds since the Unix epoch. Passed in, not read from the clock,
    /// so callers decide the clock and tests can fix it.
    pub now: i64,
    /// Allowed clock skew between the issuer and Coffer, in seconds. Negative values count as
    /// zero.
    pub leeway_seconds: i64,
    /// Whether a token without `exp` is refused. Leave it on: a token without expiry is a
    /// credential that can never be revoked by waiting.
    pub require_exp: bool,
}

impl Validation {
    /// Clock skew allowed by [`Validation::new`]: a minute, enough for NTP-synchronised hosts.
    pub const DEFAULT_LEEWAY_SECONDS: i64 = 60;

    /// Accepts tokens from `issuer` for `audience` at time `now`, requiring `exp`, with
    /// [`Validation::DEFAULT_LEEWAY_SECONDS`] of leeway.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, now: i64) -> Self {
        Self {
            issuers: vec![issuer.into()],
            audiences: vec![audience.into()],
            now,
            leeway_seconds: Self::DEFAULT_LEEWAY_SECONDS,
            require_exp: true,
        }
    }
}

/// A NumericDate claim (RFC 7519 §2): seconds since the epoch, possibly fractional. Fractions
/// are dropped and values beyond `i64` saturate, so a far-future `exp` stays far-future.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, JwtError> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let Value::Number(number) = value else {
        return Err(JwtError::InvalidClaim(name));
    };
    if let Some(n) = number.as_i64() {
        Ok(Some(n))
    } else if number.as_u64().is_some() {
        Ok(Some(i64::MAX))
    } else {
        match number.as_f64() {
            // `as` saturates at the i64 bounds.
            Some(f) if f.is_finite() => Ok(Some(f.floor() as i64)),
            _ => Err(JwtError::InvalidClaim(name)),
        }
    }
}

impl Jwt {
    /// Checks the registered claims; call it after [`Jwt::verify`], since unsigned claims
    /// prove nothing. In order: `exp` (required if [`Validation::require_exp`]; the token is
    /// valid while `now < exp + leeway`), `nbf` if present (`nbf <= now + leeway`), `iat` if
    /// present (not after `now + leeway`), `iss` (required, one of the issuers) and `aud`
    /// (required, containing one of the audiences).
    pub fn validate(&self, v: &Validation) -> Result<(), JwtError> {
        let claims = self.claims();
        let leeway = v.leeway_seconds.max(0);
        let latest_start = v.now.saturating_add(leeway);
        match numeric_date(claims, "exp")? {
            Some(exp) if v.now >= exp.saturating_add(leeway) => return Err(JwtError::Expired),
            Some(_) => {}
            None if v.require_exp => return Err(JwtError::MissingClaim("exp")),
            None => {}
        }
        if numeric_date(claims, "nbf")?.is_some_and(|nbf| nbf > latest_start) {
            return Err(JwtError::NotYetValid);
        }
        if numeric_date(claims, "iat")?.is_some_and(|iat| iat > latest_start) {
            return Err(JwtError::IssuedInFuture);
        }

        let issuer = match claims.get("iss") {
            None => return Err(JwtError::MissingClaim("iss")),
            Some(Value::String(issuer)) => issuer,
            Some(_) => return Err(JwtError::InvalidClaim("iss")),
        };
        if !v.issuers.iter().any(|accepted| accepted == issuer) {
            return Err(JwtError::WrongIssuer(excerpt(issuer)));
        }

        let audiences: Vec<&str> = match claims.get("aud") {
            None => return Err(JwtError::MissingClaim("aud")),
            Some(Value::String(aud)) => vec![aud.as_str()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().ok_or(JwtError::InvalidClaim("aud")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(JwtError::InvalidClaim("aud")),
        };
        if !audiences
            .iter()
            .any(|aud| v.audiences.iter().any(|accepted| accepted == aud))
        {
            return Err(JwtError::WrongAudience);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::jwt::test_support::es256_token;

    const NOW: i64 = 1_700_000_000;
    const ISS: &str = "https://login.example/tenant";
    const AUD: &str = "https://vault.example";

    fn validation() -> Validation {
        Validation::new(ISS, AUD, NOW)
    }

    /// Validates a token carrying `claims`; the signature is not the point here.
    fn check(claims: Value) -> Result<(), JwtError> {
        Jwt::parse(&es256_token(claims))
            .unwrap()
            .validate(&validation())
    }

    fn good() -> Value {
        json!({ "iss": ISS, "aud": AUD, "exp": NOW + 300, "nbf": NOW - 5, "iat": NOW - 5 })
    }

    fn with(member: &str, value: Value) -> Value {
        let mut claims = good();
        claims[member] = value;
        claims
    }

    fn without(member: &str) -> Value {
        let mut claims = good();
        claims.as_object_mut().unwrap().remove(member);
        claims
    }

    #[test]
    fn accepts_good_claims() {
        assert_eq!(check(good()), Ok(()));
        assert_eq!(check(without("nbf")), Ok(()));
        assert_eq!(check(without("iat")), Ok(()));
        assert_eq!(check(with("exp", json!(1e300))), Ok(()));
        assert_eq!(check(with("exp", json!(u64::MAX))), Ok(()));
    }

    #[test]
    fn expiry_honours_leeway_exactly() {
        let leeway = Validation::DEFAULT_LEEWAY_SECONDS;
        assert_eq!(check(with("exp", json!(NOW - leeway + 1))), Ok(()));
        assert_eq!(
            check(with("exp", json!(NOW - leeway))),
            Err(JwtError::Expired)
        );
        assert_eq!(
            check(with("exp", json!(NOW - 3600))),
            Err(JwtError::Expired)
        );
        let strict = Validation {
            leeway_seconds: 0,
            ..validation()
        };
        let token = Jwt::parse(&es256_token(with("exp", json!(NOW)))).unwrap();
        assert_eq!(token.validate(&strict), Err(JwtError::Expired));
    }

    #[test]
    fn exp_is_required_and_must_be_numeric() {
        assert_eq!(check(without("exp")), Err(JwtError::MissingClaim("exp")));
        assert_eq!(
            check(with("exp", json!("4102444800"))),
            Err(JwtError::InvalidClaim("exp"))
        );
        let lenient = Validation {
            require_exp: false,
            ..validation()
        };
        let token = Jwt::parse(&es256_token(without("exp"))).unwrap();
        assert_eq!(token.validate(&lenient), Ok(()));
    }

    #[test]
    fn not_yet_valid_and_issued_in_future_are_refused() {
        let leeway = Validation::DEFAULT_LEEWAY_SECONDS;
        assert_eq!(check(with("nbf", json!(NOW + leeway))), Ok(()));
        assert_eq!(
            check(with("nbf", json!(NOW + leeway + 1))),
            Err(JwtError::NotYetValid)
        );
        assert_eq!(
            check(with("iat", json!(NOW + leeway + 1))),
            Err(JwtError::IssuedInFuture)
        );
        assert_eq!(
            check(with("nbf", json!(null))),
            Err(JwtError::InvalidClaim("nbf"))
        );
    }

    #[test]
    fn wrong_or_missing_issuer_is_refused() {
        assert_eq!(
            check(with("iss", json!("https://evil.example"))),
            Err(JwtError::WrongIssuer("https://evil.example".into()))
        );
        // Exact comparison: no case folding, no trailing-slash tolerance.
        assert!(matches!(
            check(with("iss", json!(format!("{ISS}/")))),
            Err(JwtError::WrongIssuer(_))
        ));
        assert_eq!(check(without("iss")), Err(JwtError::MissingClaim("iss")));
        assert_eq!(
            check(with("iss", json!(["a"]))),
            Err(JwtError::InvalidClaim("iss"))
        );
    }

    #[test]
    fn audience_may_be_a_string_or_an_array() {
        assert_eq!(
            check(with("aud", json!("https://other.example"))),
            Err(JwtError::WrongAudience)
        );
        assert_eq!(check(with("aud", json!(["x", AUD]))), Ok(()));
        assert_eq!(
            check(with("aud", json!(["x", "y"]))),
            Err(JwtError::WrongAudience)
        );
        assert_eq!(check(with("aud", json!([]))), Err(JwtError::WrongAudience));
        assert_eq!(
            check(with("aud", json!([AUD, 7]))),
            Err(JwtError::InvalidClaim("aud"))
        );
        assert_eq!(check(without("aud")), Err(JwtError::MissingClaim("aud")));
    }

    #[test]
    fn empty_allow_lists_accept_nothing() {
        let token = Jwt::parse(&es256_token(good())).unwrap();
        let no_issuers = Validation {
            issuers: vec![],
            ..validation()
        };
        assert!(matches!(
            token.validate(&no_issuers),
            Err(JwtError::WrongIssuer(_))
        ));
        let no_audiences = Validation {
            audiences: vec![],
            ..validation()
        };
        assert_eq!(token.validate(&no_audiences), Err(JwtError::WrongAudience));
    }
}
