//! The `authorization: Bearer …` header on every call, and, for a client that authenticates
//! with a client secret, getting a new token before the current one expires.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use tonic::Status;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;

use crate::oauth::{ClientAuth, request_token_from_nodes};
use crate::options::now_unix;
use crate::{AccessToken, ClientError, Token};

/// A token is replaced this long before it expires, so that no call goes out with a token that
/// expires on its way.
const REFRESH_BEFORE_EXPIRY_SECONDS: i64 = 300;

/// Adds `authorization: Bearer <token>` to every request. Clones share the header, so a
/// refreshed token reaches every stub at once.
#[derive(Clone)]
pub(crate) struct BearerAuth {
    header: Arc<RwLock<MetadataValue<Ascii>>>,
}

/// The header value for `token`. The error deliberately omits the token (and the parser's
/// message, which could quote it).
fn header_value(token: &str) -> Result<MetadataValue<Ascii>, ClientError> {
    let mut header: MetadataValue<Ascii> =
        format!("Bearer {token}")
            .parse()
            .map_err(|_| ClientError::InvalidConfiguration {
                message: "the access token contains characters not allowed in a header".to_owned(),
            })?;
    // Marks the value so that HTTP/2 HPACK never adds it to the dynamic table and http's Debug
    // prints "Sensitive" rather than the token.
    header.set_sensitive(true);
    Ok(header)
}

impl BearerAuth {
    pub(crate) fn new(token: &str) -> Result<Self, ClientError> {
        Ok(Self {
            header: Arc::new(RwLock::new(header_value(token)?)),
        })
    }

    fn replace(&self, token: &str) -> Result<(), ClientError> {
        let value = header_value(token)?;
        // A poisoned lock still holds a whole header value: writes replace it in one step.
        *self.header.write().unwrap_or_else(PoisonError::into_inner) = value;
        Ok(())
    }
}

impl fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerAuth(<redacted>)")
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let header = self
            .header
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        request.metadata_mut().insert("authorization", header);
        Ok(request)
    }
}

/// Where a client-secret client gets its tokens, and when the current one expires.
pub(crate) struct Refresher {
    auth: BearerAuth,
    addrs: Vec<String>,
    ca_cert_pem: Vec<u8>,
    tenant: String,
    client_id: String,
    secret: ClientAuth,
    expires_on: AtomicI64,
    /// When to ask for the next token: 5 minutes before expiry, or half-way through the
    /// lifetime of a token that lives less than 10 minutes (so a short lifetime does not turn
    /// into a token request before every call).
    refresh_at: AtomicI64,
    /// One refresh at a time: concurrent calls wait for it instead of each asking for a token.
    refreshing: tokio::sync::Mutex<()>,
}

impl Refresher {
    /// Gets the first token. `auth` is only built from a token, so the first one is fetched
    /// here and the header made from it.
    pub(crate) async fn start(
        addrs: Vec<String>,
        ca_cert_pem: Vec<u8>,
        tenant: String,
        client_id: String,
        secret: Token,
    ) -> Result<Self, ClientError> {
        let secret = ClientAuth::Secret(secret);
        let token =
            request_token_from_nodes(&addrs, &ca_cert_pem, &tenant, &client_id, &secret, None)
                .await?;
        Ok(Self {
            auth: BearerAuth::new(token.token.expose())?,
            expires_on: AtomicI64::new(token.expires_on),
            refresh_at: AtomicI64::new(refresh_time(token.expires_on)),
            addrs,
            ca_cert_pem,
            tenant,
            client_id,
            secret,
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) fn auth(&self) -> BearerAuth {
        self.auth.clone()
    }

    fn due(&self) -> bool {
        now_unix() >= self.refresh_at.load(Ordering::Acquire)
    }

    /// Replaces the token if it is close to expiry.
    pub(crate) async fn ensure_fresh(&self) -> Result<(), ClientError> {
        if !self.due() {
            return Ok(());
        }
        let _guard = self.refreshing.lock().await;
        // Another call may have refreshed while this one waited.
        if !self.due() {
            return Ok(());
        }
        let fetched = request_token_from_nodes(
            &self.addrs,
            &self.ca_cert_pem,
            &self.tenant,
            &self.client_id,
            &self.secret,
            None,
        )
        .await;
        let AccessToken { token, expires_on } = match fetched {
            Ok(token) => token,
            // The refresh starts early: while the current token is still accepted, a failed
            // refresh (no node reachable for a moment) is not yet the caller's failure. The
            // next call tries again.
            Err(_) if now_unix() < self.expires_on.load(Ordering::Acquire) => return Ok(()),
            Err(err) => return Err(err),
        };
        self.auth.replace(token.expose())?;
        self.expires_on.store(expires_on, Ordering::Release);
        self.refresh_at
            .store(refresh_time(expires_on), Ordering::Release);
        Ok(())
    }
}

/// When a token that expires at `expires_on` should be replaced.
fn refresh_time(expires_on: i64) -> i64 {
    let lifetime = expires_on - now_unix();
    expires_on - REFRESH_BEFORE_EXPIRY_SECONDS.min(lifetime / 2)
}

impl fmt::Debug for Refresher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refresher")
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("expires_on", &self.expires_on.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn sent(auth: &BearerAuth) -> MetadataValue<Ascii> {
        let request = auth.clone().call(tonic::Request::new(())).unwrap();
        request.metadata().get("authorization").unwrap().clone()
    }

    #[test]
    fn bearer_header_and_debug() {
        let auth = BearerAuth::new("tok3n-value").unwrap();
        assert!(!format!("{auth:?}").contains("tok3n"));
        let value = sent(&auth);
        assert_eq!(value.to_str().unwrap(), "Bearer tok3n-value");
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("tok3n"));
    }

    #[test]
    fn a_replaced_token_reaches_every_clone() {
        let auth = BearerAuth::new("first").unwrap();
        let clone = auth.clone();
        auth.replace("second").unwrap();
        assert_eq!(sent(&clone).to_str().unwrap(), "Bearer second");
        assert!(sent(&clone).is_sensitive());
        // A bad token leaves the good one in place.
        assert!(auth.replace("bad\nvalue").is_err());
        assert_eq!(sent(&clone).to_str().unwrap(), "Bearer second");
    }

    /// A refresher whose token endpoint cannot be reached, holding a token that expires at
    /// `expires_on`.
    fn unreachable_refresher(expires_on: i64) -> Refresher {
        // A port just freed: nothing listens there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let ca = rcgen::CertifiedIssuer::self_signed(
            rcgen::CertificateParams::new(Vec::<String>::new()).unwrap(),
            rcgen::KeyPair::generate().unwrap(),
        )
        .unwrap();
        Refresher {
            auth: BearerAuth::new("current").unwrap(),
            addrs: vec![format!("https://127.0.0.1:{port}")],
            ca_cert_pem: ca.pem().into_bytes(),
            tenant: "contoso".into(),
            client_id: "app-1".into(),
            secret: ClientAuth::Secret(Token::new("s3cret".into())),
            expires_on: AtomicI64::new(expires_on),
            refresh_at: AtomicI64::new(refresh_time(expires_on)),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    #[test]
    fn short_lifetimes_refresh_half_way() {
        let now = now_unix();
        assert_eq!(refresh_time(now + 3_600), now + 3_600 - 300);
        let short = refresh_time(now + 120);
        assert!((now + 59..=now + 61).contains(&short), "{short}");
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_a_token_that_is_still_accepted() {
        // Fresh: nothing is asked.
        let fresh = unreachable_refresher(now_unix() + 3600);
        fresh.ensure_fresh().await.unwrap();
        // Due for renewal but still valid: the failure is absorbed, the token stays.
        let due = unreachable_refresher(now_unix() + 60);
        due.ensure_fresh().await.unwrap();
        assert_eq!(sent(&due.auth()).to_str().unwrap(), "Bearer current");
        // Expired: the caller sees why no token could be had, without the secret.
        let expired = unreachable_refresher(now_unix() - 1);
        let err = expired.ensure_fresh().await.unwrap_err();
        assert_eq!(err.code(), "ConnectionFailed", "{err}");
        assert!(!format!("{err} {expired:?}").contains("s3cret"));
    }

    #[test]
    fn bearer_rejects_header_breaking_tokens_without_echoing_them() {
        let err = BearerAuth::new("bad\ntok3n").unwrap_err();
        assert!(!err.to_string().contains("tok3n"));
    }
}
