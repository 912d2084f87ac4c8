//! How to reach a Coffer node: address, CA certificate and credential.

use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::ClientError;
use crate::login::SavedLogin;

/// Environment variable holding the node address, `https://host:port`.
pub const ENV_ADDR: &str = "COFFER_ADDR";
/// Environment variable holding a bearer access token. Credentials are read from the
/// environment (or the file `coffer login` writes), never from flags, so that they never show
/// up in a process listing or shell history.
pub const ENV_TOKEN: &str = "COFFER_TOKEN";
/// Environment variable holding the tenant of `COFFER_CLIENT_ID`.
pub const ENV_TENANT: &str = "COFFER_TENANT";
/// Environment variable holding a service principal's client id (application id).
pub const ENV_CLIENT_ID: &str = "COFFER_CLIENT_ID";
/// Environment variable holding that service principal's client secret, exchanged for an access
/// token when connecting.
pub const ENV_CLIENT_SECRET: &str = "COFFER_CLIENT_SECRET";
/// Environment variable holding the path of the PEM file with the CA that signed the node's
/// certificate.
pub const ENV_CA_CERT: &str = "COFFER_CA_CERT";
/// Environment variable holding the local IP address connections leave from, on a host with
/// several (a vault's firewall judges the client by it).
pub const ENV_SOURCE_ADDRESS: &str = "COFFER_SOURCE_ADDRESS";

/// A bearer access token, or another credential text (a client secret, a client assertion).
/// Zeroized on drop; `Debug` prints no part of it.
#[derive(Clone)]
pub struct Token(Zeroizing<String>);

impl Token {
    /// Wraps a token.
    pub fn new(token: String) -> Self {
        Self(Zeroizing::new(token))
    }

    /// The token text, for building the `authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Token {
    fn from(token: String) -> Self {
        Self::new(token)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// How the client proves who it is.
#[derive(Clone)]
#[non_exhaustive]
pub enum Credential {
    /// A bearer token sent as is: `COFFER_TOKEN`, a token saved by `coffer login`, or one the
    /// caller obtained.
    Bearer(Token),
    /// A service principal's client secret, exchanged for an access token at the token
    /// endpoint of the first node that answers when connecting (and again before that token
    /// expires).
    ClientSecret {
        tenant: String,
        client_id: String,
        secret: Token,
    },
}

impl From<Token> for Credential {
    fn from(token: Token) -> Self {
        Self::Bearer(token)
    }
}

impl fmt::Debug for Credential {
    // Hand-written so that a new variant can never leak a secret through a derive.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bearer(token) => f.debug_tuple("Bearer").field(token).finish(),
            Self::ClientSecret {
                tenant,
                client_id,
                secret,
            } => f
                .debug_struct("ClientSecret")
                .field("tenant", tenant)
                .field("client_id", client_id)
                .field("secret", secret)
                .finish(),
        }
    }
}

/// Everything [`crate::CofferClient::connect`] needs.
#[derive(Clone)]
pub struct ConnectOptions {
    /// `https://host:port`, or several separated by commas; the host is also the name checked
    /// against the server certificate.
    pub addr: String,
    /// PEM of the CA that signed the server certificate; the only trust anchor used.
    pub ca_cert_pem: Vec<u8>,
    /// How to authenticate every call.
    pub credential: Credential,
    /// The local address connections leave from; `None` lets the system choose.
    pub source_address: Option<std::net::IpAddr>,
}

impl ConnectOptions {
    /// Options for `addr`, trusting `ca_cert_pem`, authenticating with `credential` (a
    /// [`Token`] is a bearer token).
    pub fn new(
        addr: impl Into<String>,
        ca_cert_pem: impl Into<Vec<u8>>,
        credential: impl Into<Credential>,
    ) -> Self {
        Self {
            addr: addr.into(),
            ca_cert_pem: ca_cert_pem.into(),
            credential: credential.into(),
            source_address: None,
        }
    }

    /// Reads the address, the CA and a credential from the environment; see
    /// [`ConnectOptions::from_env_with`].
    pub fn from_env() -> Result<Self, ClientError> {
        Self::from_env_with(None, None)
    }

    /// Like [`ConnectOptions::from_env`], but an `addr` or `ca_cert_path` given here wins over
    /// `COFFER_ADDR` and `COFFER_CA_CERT` (the CLI's `--addr` and `--ca-cert`).
    ///
    /// The credential is the first of: `COFFER_TOKEN`; the client secret of `COFFER_TENANT`,
    /// `COFFER_CLIENT_ID` and `COFFER_CLIENT_SECRET`; the token `coffer login` saved, if it
    /// has not expired and was obtained from one of these nodes (its nodes are used when no
    /// address is given). Credentials come only from the environment and that file, never
    /// from flags, so that they stay out of process listings and shell history.
    pub fn from_env_with(
        addr: Option<String>,
        ca_cert_path: Option<PathBuf>,
    ) -> Result<Self, ClientError> {
        let saved = || match SavedLogin::default_path() {
            Ok(path) => SavedLogin::load(&path),
            // No HOME and no COFFER_CONFIG_DIR: there is nowhere a login could have been saved.
            Err(_) => Ok(None),
        };
        let (addr, credential) = resolve(&optional_env, addr, saved, now_unix())?;
        let ca_cert_path = match ca_cert_path {
            Some(path) => path,
            None => PathBuf::from(require_env(ENV_CA_CERT)?),
        };
        let ca_cert_pem = read_ca(&ca_cert_path)?;
        let source_address = match optional_env(ENV_SOURCE_ADDRESS)? {
            None => None,
            Some(text) => {
                Some(
                    text.trim()
                        .parse()
                        .map_err(|_| ClientError::InvalidConfiguration {
                            message: format!("{ENV_SOURCE_ADDRESS} is not an IP address"),
                        })?,
                )
            }
        };
        Ok(Self {
            addr,
            ca_cert_pem,
            credential,
            source_address,
        })
    }
}

type EnvLookup = dyn Fn(&'static str) -> Result<Option<String>, ClientError>;

/// Chooses the address and credential, in the order [`ConnectOptions::from_env_with`]
/// documents. `env` and `saved` are parameters so that tests need not change the process
/// environment.
fn resolve(
    env: &EnvLookup,
    addr: Option<String>,
    saved: impl FnOnce() -> Result<Option<SavedLogin>, ClientError>,
    now: i64,
) -> Result<(String, Credential), ClientError> {
    let addr = match addr {
        Some(addr) => Some(addr),
        None => env(ENV_ADDR)?,
    };
    let need_addr = |addr: Option<String>| addr.ok_or(ClientError::MissingEnv { var: ENV_ADDR });
    if let Some(token) = env(ENV_TOKEN)? {
        return Ok((need_addr(addr)?, Credential::Bearer(Token::new(token))));
    }
    if let Some(secret) = env(ENV_CLIENT_SECRET)? {
        // A secret without its tenant or client id is a configuration mistake, not a reason
        // to fall back to some other credential.
        let tenant = env(ENV_TENANT)?.ok_or(ClientError::MissingEnv { var: ENV_TENANT })?;
        let client_id =
            env(ENV_CLIENT_ID)?.ok_or(ClientError::MissingEnv { var: ENV_CLIENT_ID })?;
        let credential = Credential::ClientSecret {
            tenant,
            client_id,
            secret: Token::new(secret),
        };
        return Ok((need_addr(addr)?, credential));
    }
    let Some(login) = saved()? else {
        return Err(ClientError::MissingEnv { var: ENV_TOKEN });
    };
    if !login.is_fresh(now) {
        return Err(ClientError::NoUsableLogin {
            reason: "the token saved by `coffer login` has expired; run `coffer login` again"
                .to_owned(),
        });
    }
    let addr = addr.unwrap_or_else(|| login.addr.clone());
    if !login.serves(&addr) {
        return Err(ClientError::NoUsableLogin {
            reason: format!(
                "the token saved by `coffer login` was issued by {}, not {addr}",
                login.addr
            ),
        });
    }
    Ok((addr, Credential::Bearer(login.access_token)))
}

pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl fmt::Debug for ConnectOptions {
    // Hand-written so that adding a field can never leak the token through a derive.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("addr", &self.addr)
            .field(
                "ca_cert_pem",
                &format_args!("<{} bytes>", self.ca_cert_pem.len()),
            )
            .field("credential", &self.credential)
            .field("source_address", &self.source_address)
            .finish()
    }
}

/// A variable's value; unset and empty are the same (an empty credential is no credential).
fn optional_env(var: &'static str) -> Result<Option<String>, ClientError> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Ok(Some(value)),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ClientError::InvalidConfiguration {
            message: format!("{var} is not valid UTF-8"),
        }),
    }
}

/// An unset or empty variable is treated the same: both are a configuration mistake.
fn require_env(var: &'static str) -> Result<String, ClientError> {
    optional_env(var)?.ok_or(ClientError::MissingEnv { var })
}

fn read_ca(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::ReadCaCert {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const TOKEN: &str = "cft_s3cr3t-t0ken-value";

    #[test]
    fn debug_never_prints_the_token() {
        let options = ConnectOptions::new(
            "https://127.0.0.1:8443",
            b"-----BEGIN CERTIFICATE-----".to_vec(),
            Token::new(TOKEN.to_owned()),
        );
        let secret = ConnectOptions {
            credential: Credential::ClientSecret {
                tenant: "contoso".into(),
                client_id: "app-1".into(),
                secret: Token::new(TOKEN.to_owned()),
            },
            ..options.clone()
        };
        for rendered in [
            format!("{options:?}"),
            format!("{options:#?}"),
            format!("{secret:?}"),
            format!("{secret:#?}"),
        ] {
            assert!(!rendered.contains(TOKEN), "token leaked: {rendered}");
            assert!(!rendered.contains("s3cr3t"), "token leaked: {rendered}");
            assert!(rendered.contains("https://127.0.0.1:8443"));
            assert!(rendered.contains("<redacted>"));
        }
        assert!(format!("{secret:?}").contains("app-1"));
        assert!(!format!("{:?}", options.credential).contains(TOKEN));
    }

    fn env_of(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&'static str) -> Result<Option<String>, ClientError> {
        move |var| {
            Ok(pairs
                .iter()
                .find(|(k, v)| *k == var && !v.is_empty())
                .map(|(_, v)| (*v).to_owned()))
        }
    }

    fn saved(expires_on: i64) -> Option<SavedLogin> {
        Some(SavedLogin {
            addr: "https://n1:8443,https://n2:8443".into(),
            tenant: "contoso".into(),
            client_id: "app-1".into(),
            access_token: Token::new("saved-token".into()),
            expires_on,
        })
    }

    const NOW: i64 = 1_000_000;

    fn bearer(credential: &Credential) -> &str {
        match credential {
            Credential::Bearer(token) => token.expose(),
            other => panic!("not a bearer token: {other:?}"),
        }
    }

    #[test]
    fn coffer_token_comes_first() {
        let env = env_of(&[
            (ENV_ADDR, "https://n1:8443"),
            (ENV_TOKEN, "env-token"),
            (ENV_TENANT, "t"),
            (ENV_CLIENT_ID, "c"),
            (ENV_CLIENT_SECRET, "s"),
        ]);
        let (addr, credential) = resolve(&env, None, || panic!("not read"), NOW).unwrap();
        assert_eq!(addr, "https://n1:8443");
        assert_eq!(bearer(&credential), "env-token");
        // A flag's address wins over COFFER_ADDR.
        let (addr, _) = resolve(&env, Some("https://n9:1".into()), || Ok(None), NOW).unwrap();
        assert_eq!(addr, "https://n9:1");
    }

    #[test]
    fn client_secret_comes_second() {
        let env = env_of(&[
            (ENV_ADDR, "https://n1:8443"),
            (ENV_TOKEN, ""),
            (ENV_TENANT, "contoso"),
            (ENV_CLIENT_ID, "app-1"),
            (ENV_CLIENT_SECRET, "sec"),
        ]);
        let (_, credential) = resolve(&env, None, || panic!("not read"), NOW).unwrap();
        match credential {
            Credential::ClientSecret {
                tenant,
                client_id,
                secret,
            } => {
                assert_eq!((tenant.as_str(), client_id.as_str()), ("contoso", "app-1"));
                assert_eq!(secret.expose(), "sec");
            }
            other => panic!("{other:?}"),
        }
        // A secret without its tenant names what is missing.
        let env = env_of(&[
            (ENV_ADDR, "https://n1:8443"),
            (ENV_CLIENT_ID, "app-1"),
            (ENV_CLIENT_SECRET, "sec"),
        ]);
        let err = resolve(&env, None, || Ok(None), NOW).unwrap_err();
        assert!(err.to_string().contains(ENV_TENANT), "{err}");
    }

    #[test]
    fn a_saved_login_comes_last_and_only_while_fresh_and_for_its_nodes() {
        let env = env_of(&[(ENV_TENANT, "contoso"), (ENV_CLIENT_ID, "app-1")]);
        // No address anywhere: the login's nodes are used.
        let (addr, credential) = resolve(&env, None, || Ok(saved(NOW + 3600)), NOW).unwrap();
        assert_eq!(addr, "https://n1:8443,https://n2:8443");
        assert_eq!(bearer(&credential), "saved-token");
        let (addr, _) = resolve(
            &env,
            Some("https://n2:8443".into()),
            || Ok(saved(NOW + 3600)),
            NOW,
        )
        .unwrap();
        assert_eq!(addr, "https://n2:8443");
        // Expired (or about to).
        let err = resolve(&env, None, || Ok(saved(NOW + 30)), NOW).unwrap_err();
        assert_eq!(err.code(), "MissingConfiguration");
        assert!(err.to_string().contains("expired"), "{err}");
        assert!(err.to_string().contains(ENV_TOKEN), "{err}");
        // Never sent to other nodes.
        let err = resolve(
            &env,
            Some("https://elsewhere:8443".into()),
            || Ok(saved(NOW + 3600)),
            NOW,
        )
        .unwrap_err();
        assert_eq!(err.code(), "MissingConfiguration");
        assert!(!err.to_string().contains("saved-token"), "{err}");
        // Nothing at all: COFFER_TOKEN is named, as before logins existed.
        let err = resolve(&env, Some("https://n1:8443".into()), || Ok(None), NOW).unwrap_err();
        assert_eq!(
            err.to_string(),
            "(MissingConfiguration) environment variable COFFER_TOKEN is not set"
        );
    }

    #[test]
    fn a_token_without_an_address_names_coffer_addr() {
        let env = env_of(&[(ENV_TOKEN, "t")]);
        let err = resolve(&env, None, || Ok(None), NOW).unwrap_err();
        assert!(err.to_string().contains(ENV_ADDR), "{err}");
    }

    #[test]
    fn read_ca_reports_the_path() {
        let err = read_ca(Path::new("/nonexistent/coffer-ca.pem")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/nonexistent/coffer-ca.pem"), "{text}");
        assert_eq!(err.code(), "InvalidConfiguration");
    }
}
