//! Coffer as its own token issuer: the OAuth 2.0 client-credentials grant (client secret,
//! client certificate assertion, or an external OIDC token through workload identity
//! federation), managed-identity tokens for workloads on a node, and verification of every
//! bearer token a request carries.
//!
//! Tokens are ES256 JWTs signed with a key kept in the replicated state, sealed with the root
//! key, so any node issues and verifies them. A rotation leaves the previous key valid for one
//! token lifetime (the overlap window), so no issued token stops working early.
//!
//! Verification runs once per token: the result is cached by the token's SHA-256 until the
//! token expires, which keeps signature checks off the hot path. What the cache cannot know —
//! whether the principal still exists and which groups it is in — is read from the applied
//! state on every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use coffer_crypto::jwt::{
    Jwk, Jwks, Jwt, SigningKey, Validation, VerifyingKey, certificate_thumbprints,
};
use coffer_crypto::{SecretString, TokenHash};
use coffer_types::Error;
use coffer_types::identity::{PrincipalKind, PrincipalRecord, SigningKeyRecord};
use coffer_types::records::RECORD_FORMAT;
use serde_json::{Map, Value, json};

use crate::request::{Consistency, RequestContext};
use crate::{Caller, CallerKind, Service};

/// Verified tokens remembered at most; when full, expired entries go first, then all.
const MAX_CACHED_TOKENS: usize = 10_000;
/// The longest lifetime accepted for a client assertion (MSAL makes them valid for 10 minutes).
const MAX_ASSERTION_LIFETIME: i64 = 3_600;
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An external OIDC issuer whose tokens may be exchanged (workload identity federation).
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    pub issuer: String,
    /// The external token must carry one of these audiences.
    pub audiences: Vec<String>,
    /// The issuer's keys as configured (a JWKS file); replaced by
    /// [`Service::set_trusted_issuer_keys`] when the node fetches them from a URL.
    pub keys: Vec<Jwk>,
}

/// How this node issues and accepts tokens. Every node of a cluster needs the same issuer and
/// audiences, or tokens from one node are refused by another.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// Base of the issuer URL, such as `https://coffer.example.com:8443`; a token of tenant `t`
    /// carries `iss = {issuer_base}/{t}/v2.0`.
    pub issuer_base: String,
    /// The URLs (scheme and authority) under which clients reach this node's token endpoint;
    /// a client assertion's audience must be `{one of them}/{tenant}/oauth2/v2.0/token`. Fixed
    /// by configuration, never taken from a request.
    pub token_endpoint_bases: Vec<String>,
    /// Audiences tokens are issued for and accepted with; the first is the default.
    pub audiences: Vec<String>,
    pub token_lifetime_seconds: i64,
    /// Allowed clock skew when checking time claims.
    pub leeway_seconds: i64,
    pub trusted_issuers: Vec<TrustedIssuer>,
    /// The bootstrap token's hash; `None` disables it.
    pub bootstrap_token: Option<TokenHash>,
    /// The tenant that 401 challenges name when the request does not say which tenant it is
    /// for; `None` names Entra's `common`.
    pub default_tenant: Option<String>,
}

/// A freshly issued access token.
#[derive(Debug)]
pub struct IssuedToken {
    pub access_token: SecretString,
    pub expires_in: i64,
    pub expires_on: i64,
    pub audience: String,
    pub client_id: String,
}

/// A refusal by the token endpoint, in OAuth 2.0's vocabulary (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", description)
    }

    fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(401, "invalid_client", description)
    }

    fn from_error(e: Error) -> Self {
        if e.is_retryable() {
            Self::new(503, "temporarily_unavailable", e.message)
        } else {
            Self::new(500, "server_error", "The token could not be issued.")
        }
    }
}

/// A client-credentials token request, as the token endpoint received it.
#[derive(Debug, Default)]
pub struct TokenGrant {
    pub tenant: String,
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub client_assertion_type: Option<String>,
    pub client_assertion: Option<SecretString>,
    pub scope: Option<String>,
    /// The token endpoint's URLs for this tenant: a client assertion's audience must be one of
    /// them (see [`IdentityConfig::token_endpoint_bases`]).
    pub endpoint_urls: Vec<String>,
}

struct CachedToken {
    object_id: String,
    tenant: String,
    /// The token's validity (its time claims widened by the leeway, and cut short by its
    /// signing key's retirement): outside it the token is verified again, and refused.
    valid_from: i64,
    valid_until: i64,
}

/// Token state of one node.
pub(crate) struct Tokens {
    pub(crate) config: IdentityConfig,
    signing: Mutex<HashMap<String, Arc<SigningKey>>>,
    verified: Mutex<HashMap<TokenHash, CachedToken>>,
    /// Trusted issuers' keys fetched since start, by issuer; they win over the configured ones.
    fetched_keys: Mutex<HashMap<String, Arc<Vec<Jwk>>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a single map operation, so a poisoned lock holds a usable map.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Tokens {
    pub(crate) fn new(config: IdentityConfig) -> Self {
        Self {
            config,
            signing: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
            fetched_keys: Mutex::new(HashMap::new()),
        }
    }
}

fn signing_purpose(kid: &str) -> String {
    format!("token-signing-key/{kid}")
}

fn unauthorized(message: &str) -> Error {
    Error::unauthorized(message)
}

/// The audience a `scope` parameter asks for: `{resource}/.default`, or the resource itself.
/// OpenID scopes that MSAL adds are ignored.
fn requested_audience(scope: &str) -> Option<String> {
    scope
        .split_whitespace()
        .find(|s| !matches!(*s, "openid" | "profile" | "offline_access" | "email"))
        .map(|s| s.strip_suffix("/.default").unwrap_or(s).to_owned())
}

/// Whether a thumbprint header names `ours` (base64url without padding). MSAL pads its
/// base64url thumbprints and some clients use the standard alphabet; both name the same bytes.
fn thumbprint_is(header: Option<&str>, ours: &str) -> bool {
    header.is_some_and(|h| coffer_crypto::jwt::base64url_unpadded(h) == ours)
}

fn string_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

impl Service {
    /// The issuer URL of `tenant`'s tokens.
    pub fn issuer(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0", self.tokens.config.issuer_base)
    }

    pub fn identity_config(&self) -> &IdentityConfig {
        &self.tokens.config
    }

    /// Whether `tenant` exists on this node's copy.
    pub fn tenant_exists(&self, tenant: &str) -> Result<bool, Error> {
        if coffer_types::identity::validate_tenant_id(tenant).is_err() {
            return Ok(false);
        }
        Ok(self.store.tenant(tenant)?.is_some())
    }

    /// The public keys tokens may be signed with now: the JWKS document.
    pub fn jwks(&self) -> Result<Jwks, Error> {
        let now = self.clock.now_unix();
        let mut keys = Vec::new();
        let records = self.store.signing_keys()?;
        for record in &records {
            if record.retire_at.is_none_or(|at| at > now) {
                // Published from the unsealed key, so only keys this cluster made appear.
                if let Ok(key) = self.unsealed_key(record, &records) {
                    keys.push(key.public_jwk());
                }
            }
        }
        Ok(Jwks { keys })
    }

    /// Replaces the keys of the trusted issuer `issuer` (fetched from its JWKS URL). Keys that
    /// cannot verify tokens are left out; an issuer not in the configuration is refused.
    pub fn set_trusted_issuer_keys(&self, issuer: &str, jwks: Jwks) -> Result<usize, Error> {
        if !self
            .tokens
            .config
            .trusted_issuers
            .iter()
            .any(|t| t.issuer == issuer)
        {
            return Err(Error::bad_parameter("The issuer is not a trusted issuer."));
        }
        let keys: Vec<Jwk> = jwks
            .keys
            .into_iter()
            .filter(|k| VerifyingKey::from_jwk(k).is_ok())
            .collect();
        let count = keys.len();
        lock(&self.tokens.fetched_keys).insert(issuer.to_owned(), Arc::new(keys));
        Ok(count)
    }

    /// Creates the first signing key unless one is active. Safe to call from every node at
    /// every start: the state machine keeps the first key proposed.
    pub async fn ensure_signing_key(&self) -> Result<(), Error> {
        self.read_point(Consistency::Linearizable).await?;
        if self
            .store
            .signing_keys()?
            .iter()
            .any(|k| k.retire_at.is_none())
        {
            return Ok(());
        }
        self.add_signing_key(&RequestContext::internal()?, false)
            .await
            .map(|_| ())
    }

    /// Puts a new signing key in charge; the previous ones stay valid for one token lifetime.
    pub async fn rotate_signing_key(&self, ctx: &RequestContext) -> Result<String, Error> {
        self.authorize(
            ctx,
            &coffer_types::authz::Scope::cluster(),
            coffer_types::authz::mgmt::IDENTITY_WRITE,
        )?;
        self.add_signing_key(ctx, true).await
    }

    /// Rotates the signing key if the current one is older than `max_age_seconds` (read from the
    /// injected clock); returns the new key's id if it did. Meant for a periodic job on the
    /// leader.
    pub async fn rotate_signing_key_if_due(
        &self,
        max_age_seconds: i64,
    ) -> Result<Option<String>, Error> {
        self.read_point(Consistency::Linearizable).await?;
        let now = self.clock.now_unix();
        let newest = self
            .store
            .signing_keys()?
            .into_iter()
            .filter(|k| k.retire_at.is_none())
            .map(|k| k.created)
            .max();
        match newest {
            Some(created) if now - created < max_age_seconds => Ok(None),
            _ => self
                .add_signing_key(&RequestContext::internal()?, true)
                .await
                .map(Some),
        }
    }

    async fn add_signing_key(&self, ctx: &RequestContext, rotate: bool) -> Result<String, Error> {
        let (key, pkcs8) = SigningKey::generate().map_err(|e| Error::internal(e.to_string()))?;
        let kid = key.kid().to_owned();
        let sealed_key = self
            .data_keys
            .root()
            .seal_internal(&signing_purpose(&kid), pkcs8.expose())
            .map_err(|e| Error::internal(e.to_string()))?;
        let now = self.clock.now_unix();
        let config = &self.tokens.config;
        let record = SigningKeyRecord {
            format: RECORD_FORMAT,
            kid,
            sealed_key,
            created: now,
            retire_at: None,
        };
        let command =
            coffer_store::Command::Identity(coffer_store::IdentityCommand::AddSigningKey {
                record,
                retire_others_at: now + config.token_lifetime_seconds + config.leeway_seconds,
                now,
                rotate,
            });
        match self
            .store
            .write(ctx.request_id().to_owned(), command)
            .await?
        {
            coffer_store::Applied::SigningKey(kid) => Ok(kid),
            coffer_store::Applied::Failed(e) => Err(e),
            other => Err(Error::internal(format!(
                "unexpected store answer {other:?}"
            ))),
        }
    }

    /// The key new tokens are signed with: the newest key not being retired.
    fn current_signing_key(&self) -> Result<Arc<SigningKey>, Error> {
        let records = self.store.signing_keys()?;
        let record = records
            .iter()
            .filter(|k| k.retire_at.is_none())
            .max_by_key(|k| k.created)
            .ok_or_else(|| Error::unavailable("No token signing key exists yet."))?;
        self.unsealed_key(record, &records)
    }

    /// The private key of `record`, unsealed with the root key (and remembered). Tokens are
    /// signed and verified only with keys that unseal: a record whose public half was written
    /// by anything but this cluster's root-key holders is never trusted.
    fn unsealed_key(
        &self,
        record: &SigningKeyRecord,
        records: &[SigningKeyRecord],
    ) -> Result<Arc<SigningKey>, Error> {
        if let Some(key) = lock(&self.tokens.signing).get(&record.kid) {
            return Ok(key.clone());
        }
        let refused = |why: &str| {
            tracing::error!(kid = %record.kid, why, "token signing key refused");
            Error::internal("A token signing key could not be opened with this node's root key.")
        };
        let pkcs8 = self
            .data_keys
            .root()
            .unseal_internal(&signing_purpose(&record.kid), &record.sealed_key)
            .map_err(|_| refused("does not unseal"))?;
        let key = SigningKey::from_pkcs8(pkcs8.expose()).map_err(|_| refused("not a key"))?;
        if key.kid() != record.kid {
            return Err(refused("its id is not its key's thumbprint"));
        }
        let key = Arc::new(key);
        let mut cache = lock(&self.tokens.signing);
        cache.retain(|kid, _| records.iter().any(|r| &r.kid == kid));
        cache.insert(record.kid.clone(), key.clone());
        Ok(key)
    }

    /// Signs an access token for `principal` with audience `audience`.
    fn sign_token(
        &self,
        principal: &PrincipalRecord,
        audience: &str,
    ) -> Result<IssuedToken, Error> {
        let key = self.current_signing_key()?;
        let now = self.clock.now_unix();
        let lifetime = self.tokens.config.token_lifetime_seconds;
        let app_id = principal.app_id.clone().unwrap_or_default();
        let jti = crate::new_uuid()?;
        let claims = json!({
            "aud": audience,
            "iss": self.issuer(&principal.tenant),
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "sub": principal.object_id,
            "oid": principal.object_id,
            "tid": principal.tenant,
            "appid": app_id,
            "azp": app_id,
            "idtyp": if principal.kind.is_application() { "app" } else { "user" },
            "ver": "2.0",
            "jti": jti,
        });
        let Value::Object(claims) = claims else {
            return Err(Error::internal("token claims are not an object"));
        };
        let token = key
            .sign(&claims)
            .map_err(|e| Error::internal(e.to_string()))?;
        Ok(IssuedToken {
            access_token: SecretString::new(token),
            expires_in: lifetime,
            expires_on: now + lifetime,
            audience: audience.to_owned(),
            client_id: app_id,
        })
    }

    /// The audience asked for by `scope`, if Coffer issues tokens for it.
    fn audience_for(&self, scope: Option<&str>) -> Result<String, OAuthError> {
        let audiences = &self.tokens.config.audiences;
        let requested = match scope.and_then(requested_audience) {
            Some(a) => a,
            None => {
                return audiences.first().cloned().ok_or_else(|| {
                    OAuthError::new(500, "server_error", "No audience configured.")
                });
            }
        };
        let wanted = requested.trim_end_matches('/');
        audiences
            .iter()
            .find(|a| a.trim_end_matches('/').eq_ignore_ascii_case(wanted))
            .cloned()
            .ok_or_else(|| {
                OAuthError::new(
                    400,
                    "invalid_scope",
                    format!(
                        "AADSTS500011: The resource principal named {} was not found in the \
                         tenant.",
                        coffer_types::error::quote_user_text(&requested)
                    ),
                )
            })
    }

    /// The client-credentials grant of the token endpoint.
    pub async fn issue_token(&self, grant: TokenGrant) -> Result<IssuedToken, OAuthError> {
        match grant.grant_type.as_deref() {
            Some("client_credentials") => {}
            Some(_) => {
                return Err(OAuthError::new(
                    400,
                    "unsupported_grant_type",
                    "AADSTS70003: Coffer supports the client_credentials grant only.",
                ));
            }
            None => return Err(OAuthError::invalid_request("grant_type is required.")),
        }
        let audience = self.audience_for(grant.scope.as_deref())?;
        self.read_point(Consistency::Linearizable)
            .await
            .map_err(OAuthError::from_error)?;
        if self
            .store
            .tenant(&grant.tenant)
            .map_err(|e| OAuthError::from_error(e.into()))?
            .is_none()
        {
            return Err(OAuthError::new(
                400,
                "invalid_request",
                format!(
                    "AADSTS90002: Tenant {} not found.",
                    coffer_types::error::quote_user_text(&grant.tenant)
                ),
            ));
        }
        let client_id = grant
            .client_id
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_request("client_id is required."))?;
        let principal = self
            .store
            .principal_by_app(client_id)
            .map_err(|e| OAuthError::from_error(e.into()))?
            .filter(|p| p.tenant == grant.tenant && p.kind == PrincipalKind::ServicePrincipal)
            .ok_or_else(|| {
                OAuthError::new(
                    400,
                    "unauthorized_client",
                    format!(
                        "AADSTS700016: Application with identifier {} was not found in the \
                         directory {}.",
                        coffer_types::error::quote_user_text(client_id),
                        grant.tenant
                    ),
                )
            })?;
        match (&grant.client_secret, &grant.client_assertion) {
            (Some(secret), None) => self.check_client_secret(&principal, secret)?,
            (None, Some(assertion)) => {
                if grant.client_assertion_type.as_deref() != Some(CLIENT_ASSERTION_TYPE) {
                    return Err(OAuthError::invalid_request(format!(
                        "client_assertion_type must be {CLIENT_ASSERTION_TYPE}."
                    )));
                }
                self.check_client_assertion(&principal, assertion.expose(), &grant.endpoint_urls)?
            }
            (Some(_), Some(_)) => {
                return Err(OAuthError::invalid_request(
                    "Give either client_secret or client_assertion, not both.",
                ));
            }
            (None, None) => {
                return Err(OAuthError::invalid_client(
                    "AADSTS7000216: client_assertion or client_secret is required.",
                ));
            }
        }
        self.sign_token(&principal, &audience)
            .map_err(OAuthError::from_error)
    }

    fn check_client_secret(
        &self,
        principal: &PrincipalRecord,
        secret: &SecretString,
    ) -> Result<(), OAuthError> {
        let now = self.clock.now_unix();
        let valid = principal.secrets.iter().any(|c| {
            c.expires.is_none_or(|exp| exp > now)
                && coffer_crypto::ClientSecretHash::from_bytes(&c.hash)
                    .is_some_and(|hash| hash.matches(secret.expose()))
        });
        if valid {
            Ok(())
        } else {
            Err(OAuthError::invalid_client(format!(
                "AADSTS7000215: Invalid client secret provided for application {}.",
                principal.app_id.as_deref().unwrap_or("")
            )))
        }
    }

    /// A JWT presented as `client_assertion`: signed by one of the principal's registered
    /// certificates, or an external token from a trusted issuer matching one of its federated
    /// credentials.
    fn check_client_assertion(
        &self,
        principal: &PrincipalRecord,
        assertion: &str,
        endpoint_urls: &[String],
    ) -> Result<(), OAuthError> {
        let refused = |why: &str| {
            OAuthError::invalid_client(format!(
                "AADSTS700027: Client assertion failed signature or claim validation: {why}"
            ))
        };
        let jwt = Jwt::parse(assertion).map_err(|e| refused(&e.to_string()))?;
        let now = self.clock.now_unix();
        let leeway = self.tokens.config.leeway_seconds;
        let issuer = string_claim(jwt.claims(), "iss")
            .unwrap_or_default()
            .to_owned();
        if let Some(trusted) = self
            .tokens
            .config
            .trusted_issuers
            .iter()
            .find(|t| t.issuer == issuer)
        {
            return self.check_federated(principal, &jwt, trusted, now);
        }
        let client_id = principal.app_id.as_deref().unwrap_or_default();
        let header = jwt.header();
        let certificate = principal
            .certificates
            .iter()
            .find(|c| {
                let (sha1, sha256) = certificate_thumbprints(&c.der);
                thumbprint_is(header.x5t_s256.as_deref(), &sha256)
                    || thumbprint_is(header.x5t.as_deref(), &sha1)
            })
            .ok_or_else(|| {
                OAuthError::invalid_client(
                    "AADSTS700027: The certificate with the assertion's thumbprint is not \
                     registered for the application.",
                )
            })?;
        let key = VerifyingKey::from_certificate_der(&certificate.der)
            .map_err(|e| refused(&e.to_string()))?;
        jwt.verify(&key).map_err(|e| refused(&e.to_string()))?;
        jwt.validate(&Validation {
            issuers: vec![client_id.to_owned()],
            audiences: endpoint_urls.to_vec(),
            now,
            leeway_seconds: leeway,
            require_exp: true,
        })
        .map_err(|e| refused(&e.to_string()))?;
        if string_claim(jwt.claims(), "sub") != Some(client_id) {
            return Err(refused("the subject must be the client id"));
        }
        // MSAL writes fractional seconds. A float beyond i64 saturates, and then reads as far
        // too long a lifetime, which is refused below.
        let exp = jwt
            .claims()
            .get("exp")
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
            .ok_or_else(|| refused("exp must be a number of seconds"))?;
        if exp.saturating_sub(now) > MAX_ASSERTION_LIFETIME {
            return Err(refused("the assertion is valid for too long"));
        }
        Ok(())
    }

    fn check_federated(
        &self,
        principal: &PrincipalRecord,
        jwt: &Jwt,
        trusted: &TrustedIssuer,
        now: i64,
    ) -> Result<(), OAuthError> {
        let refused = |why: &str| {
            OAuthError::invalid_client(format!(
                "AADSTS700211: The federated token could not be validated: {why}"
            ))
        };
        let kid = jwt.header().kid.as_deref();
        let fetched = lock(&self.tokens.fetched_keys)
            .get(&trusted.issuer)
            .cloned();
        let keys = fetched.as_deref().unwrap_or(&trusted.keys);
        let candidates: Vec<&Jwk> = keys
            .iter()
            .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
            .collect();
        let verified = candidates
            .iter()
            .any(|jwk| VerifyingKey::from_jwk(jwk).is_ok_and(|key| jwt.verify(&key).is_ok()));
        if !verified {
            return Err(refused("no key of the issuer verifies its signature"));
        }
        jwt.validate(&Validation {
            issuers: vec![trusted.issuer.clone()],
            audiences: trusted.audiences.clone(),
            now,
            leeway_seconds: self.tokens.config.leeway_seconds,
            require_exp: true,
        })
        .map_err(|e| refused(&e.to_string()))?;
        let subject = string_claim(jwt.claims(), "sub").unwrap_or_default();
        let audiences: Vec<&str> = match jwt.claims().get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let matched = principal.federated.iter().any(|f| {
            f.issuer == trusted.issuer
                && f.subject == subject
                && f.audiences.iter().any(|a| audiences.contains(&a.as_str()))
        });
        if matched {
            Ok(())
        } else {
            Err(OAuthError::invalid_client(format!(
                "AADSTS70021: No matching federated identity record found for presented \
                 assertion. Assertion issuer: '{}'. Assertion subject: '{}'.",
                trusted.issuer,
                coffer_types::error::quote_user_text(subject)
            )))
        }
    }

    /// A token for a managed identity, for a workload on this node. The caller (the node's
    /// managed-identity endpoint) has already checked that the workload may ask.
    pub async fn issue_managed_identity_token(
        &self,
        client_id: &str,
        resource: Option<&str>,
    ) -> Result<IssuedToken, OAuthError> {
        let audience = self.audience_for(resource)?;
        self.read_point(Consistency::Linearizable)
            .await
            .map_err(OAuthError::from_error)?;
        let principal = self
            .store
            .principal_by_app(client_id)
            .map_err(|e| OAuthError::from_error(e.into()))?
            .filter(|p| p.kind == PrincipalKind::ManagedIdentity)
            .ok_or_else(|| {
                OAuthError::new(
                    400,
                    "invalid_request",
                    "Identity not found: the managed identity has not been assigned to this node.",
                )
            })?;
        self.sign_token(&principal, &audience)
            .map_err(OAuthError::from_error)
    }

    /// Verifies a bearer token and finds its caller.
    pub fn verify_token(&self, token: &str) -> Result<Caller, Error> {
        let hash = TokenHash::of(token);
        let now = self.clock.now_unix();
        let cached = lock(&self.tokens.verified)
            .get(&hash)
            .filter(|c| c.valid_from <= now && now < c.valid_until)
            .map(|c| (c.object_id.clone(), c.tenant.clone()));
        let (object_id, tenant) = match cached {
            Some(found) => found,
            None => {
                let (object_id, tenant, valid_from, valid_until) =
                    self.verify_uncached(token, now)?;
                let mut cache = lock(&self.tokens.verified);
                if cache.len() >= MAX_CACHED_TOKENS {
                    cache.retain(|_, c| c.valid_until > now);
                    if cache.len() >= MAX_CACHED_TOKENS {
                        cache.clear();
                    }
                }
                cache.insert(
                    hash,
                    CachedToken {
                        object_id: object_id.clone(),
                        tenant: tenant.clone(),
                        valid_from,
                        valid_until,
                    },
                );
                (object_id, tenant)
            }
        };
        let principal = self
            .principal_cached(&object_id)?
            .filter(|p| p.tenant == tenant)
            .ok_or_else(|| {
                unauthorized("The principal this token was issued to no longer exists.")
            })?;
        Ok(Caller {
            id: principal.object_id.clone(),
            kind: CallerKind::Principal(principal.kind),
            issuer: Some(self.issuer(&tenant)),
            tenant: Some(tenant),
            app_id: principal.app_id.clone(),
            groups: principal.member_of.clone(),
        })
    }

    /// A principal as this node has applied it, cached until the node applies an identity
    /// change.
    fn principal_cached(&self, object_id: &str) -> Result<Option<Arc<PrincipalRecord>>, Error> {
        let epoch = self.store.identity_epoch();
        if let Some(found) = self.identity_cache.principal(epoch, object_id) {
            return Ok(found);
        }
        let found = self.store.principal(object_id)?.map(Arc::new);
        self.identity_cache
            .put_principal(epoch, object_id, found.clone());
        Ok(found)
    }

    /// Checks signature and claims; returns the object id, tenant and the time range in which
    /// the result may be reused.
    fn verify_uncached(&self, token: &str, now: i64) -> Result<(String, String, i64, i64), Error> {
        let invalid = || unauthorized("The access token is invalid.");
        let jwt = Jwt::parse(token).map_err(|_| invalid())?;
        let kid = jwt.header().kid.as_deref().ok_or_else(invalid)?;
        let records = self.store.signing_keys()?;
        let record = records
            .iter()
            .find(|k| k.kid == kid && k.retire_at.is_none_or(|at| at > now))
            .ok_or_else(|| unauthorized("The access token is signed by an unknown key."))?;
        let key = self.unsealed_key(record, &records)?.verifying_key();
        jwt.verify(&key).map_err(|_| invalid())?;
        let tenant = string_claim(jwt.claims(), "tid")
            .filter(|t| coffer_types::identity::validate_tenant_id(t).is_ok())
            .ok_or_else(invalid)?
            .to_owned();
        let leeway = self.tokens.config.leeway_seconds;
        jwt.validate(&Validation {
            issuers: vec![self.issuer(&tenant)],
            audiences: self.tokens.config.audiences.clone(),
            now,
            leeway_seconds: leeway,
            require_exp: true,
        })
        .map_err(|e| unauthorized(&format!("The access token is not accepted: {e}.")))?;
        let object_id = string_claim(jwt.claims(), "oid")
            .ok_or_else(invalid)?
            .to_owned();
        let exp = jwt
            .claims()
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or_else(invalid)?;
        let valid_until = record
            .retire_at
            .map_or(exp + leeway, |at| at.min(exp + leeway));
        let claim = |name| jwt.claims().get(name).and_then(Value::as_i64);
        let valid_from = claim("nbf")
            .into_iter()
            .chain(claim("iat"))
            .max()
            .map_or(i64::MIN, |t| t - leeway);
        Ok((object_id, tenant, valid_from, valid_until))
    }
}

impl crate::Authenticator for Service {
    fn authenticate(&self, bearer: Option<&str>) -> Result<Caller, Error> {
        let Some(token) = bearer else {
            return Err(Error::unauthorized(
                "Request is missing a Bearer or PoP token.",
            ));
        };
        if token.starts_with(coffer_crypto::TOKEN_PREFIX) {
            return match &self.tokens.config.bootstrap_token {
                Some(hash) if hash.matches(token) => Ok(Caller::bootstrap()),
                _ => Err(Error::unauthorized("The bearer token is not valid.")),
            };
        }
        self.verify_token(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_match_in_any_base64_spelling() {
        // SHA-1 of some certificate, three spellings of the same 20 bytes.
        let ours = "q-_vAA__3E2ZyL0RVuNA2y3DPes";
        assert!(thumbprint_is(Some(ours), ours));
        assert!(thumbprint_is(Some("q-_vAA__3E2ZyL0RVuNA2y3DPes="), ours));
        assert!(thumbprint_is(Some("q+/vAA//3E2ZyL0RVuNA2y3DPes="), ours));
        assert!(!thumbprint_is(Some("r-_vAA__3E2ZyL0RVuNA2y3DPes"), ours));
        assert!(!thumbprint_is(None, ours));
    }

    #[test]
    fn scopes_name_audiences() {
        assert_eq!(
            requested_audience("https://vault.coffer.localhost:8443/.default").as_deref(),
            Some("https://vault.coffer.localhost:8443")
        );
        assert_eq!(
            requested_audience("openid offline_access https://vault.azure.net/.default").as_deref(),
            Some("https://vault.azure.net")
        );
        assert_eq!(requested_audience("openid profile"), None);
    }
}
