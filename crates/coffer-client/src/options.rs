//! How to reach a Coffer node: address, CA certificate and access token.

use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::ClientError;

/// Environment variable holding the node address, `https://host:port`.
pub const ENV_ADDR: &str = "COFFER_ADDR";
/// Environment variable holding the access token. The token is read only from the environment so
/// that it never shows up in a process listing or shell history.
pub const ENV_TOKEN: &str = "COFFER_TOKEN";
/// Environment variable holding the path of the PEM file with the CA that signed the node's
/// certificate.
pub const ENV_CA_CERT: &str = "COFFER_CA_CERT";

/// A bearer access token. Zeroized on drop; `Debug` prints no part of it.
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

/// Everything [`crate::CofferClient::connect`] needs.
#[derive(Clone)]
pub struct ConnectOptions {
    /// `https://host:port`; the host is also the name checked against the server certificate.
    pub addr: String,
    /// PEM of the CA that signed the server certificate; the only trust anchor used.
    pub ca_cert_pem: Vec<u8>,
    /// Bearer token sent with every call.
    pub token: Token,
}

impl ConnectOptions {
    /// Reads `COFFER_ADDR`, `COFFER_TOKEN` and `COFFER_CA_CERT` (a path to the CA PEM).
    pub fn from_env() -> Result<Self, ClientError> {
        Self::from_env_with(None, None)
    }

    /// Like [`ConnectOptions::from_env`], but an `addr` or `ca_cert_path` given here wins over
    /// the environment (the CLI's `--addr` and `--ca-cert`). The token always comes from
    /// `COFFER_TOKEN`.
    pub fn from_env_with(
        addr: Option<String>,
        ca_cert_path: Option<PathBuf>,
    ) -> Result<Self, ClientError> {
        let addr = match addr {
            Some(addr) => addr,
            None => require_env(ENV_ADDR)?,
        };
        let token = Token::new(require_env(ENV_TOKEN)?);
        let ca_cert_path = match ca_cert_path {
            Some(path) => path,
            None => PathBuf::from(require_env(ENV_CA_CERT)?),
        };
        let ca_cert_pem = read_ca(&ca_cert_path)?;
        Ok(Self {
            addr,
            ca_cert_pem,
            token,
        })
    }
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
            .field("token", &self.token)
            .finish()
    }
}

/// An unset or empty variable is treated the same: both are a configuration mistake.
fn require_env(var: &'static str) -> Result<String, ClientError> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Ok(value),
        Ok(_) | Err(std::env::VarError::NotPresent) => Err(ClientError::MissingEnv { var }),
        Err(std::env::VarError::NotUnicode(_)) => Err(ClientError::InvalidConfiguration {
            message: format!("{var} is not valid UTF-8"),
        }),
    }
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
        let options = ConnectOptions {
            addr: "https://127.0.0.1:8443".to_owned(),
            ca_cert_pem: b"-----BEGIN CERTIFICATE-----".to_vec(),
            token: Token::new(TOKEN.to_owned()),
        };
        for rendered in [format!("{options:?}"), format!("{options:#?}")] {
            assert!(!rendered.contains(TOKEN), "token leaked: {rendered}");
            assert!(!rendered.contains("s3cr3t"), "token leaked: {rendered}");
            assert!(rendered.contains("https://127.0.0.1:8443"));
            assert!(rendered.contains("<redacted>"));
        }
        assert!(!format!("{:?}", options.token).contains(TOKEN));
    }

    #[test]
    fn read_ca_reports_the_path() {
        let err = read_ca(Path::new("/nonexistent/coffer-ca.pem")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/nonexistent/coffer-ca.pem"), "{text}");
        assert_eq!(err.code(), "InvalidConfiguration");
    }
}
