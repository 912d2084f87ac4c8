//! [`ClientError`]: everything a client call can fail with, each with one stable code.

use std::error::Error as _;
use std::path::PathBuf;

use tonic::{Code, Status};

/// Metadata key in which the server puts the Azure Key Vault error code.
pub(crate) const ERROR_CODE_KEY: &str = "x-coffer-error-code";
/// Metadata key for the Azure inner error code, when there is one.
pub(crate) const INNER_ERROR_CODE_KEY: &str = "x-coffer-inner-error-code";

/// Why a client call failed.
///
/// `Display` is always one line, `(Code) message`, the shape `az` prints; [`ClientError::code`]
/// gives the code alone. No variant carries the access token or a secret value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A required environment variable is unset or empty.
    #[error("(MissingConfiguration) environment variable {var} is not set")]
    MissingEnv {
        /// The variable's name.
        var: &'static str,
    },
    /// The environment holds no credential, and the token `coffer login` saved cannot be used
    /// (it has expired, or it was obtained from other nodes).
    #[error("(MissingConfiguration) environment variable COFFER_TOKEN is not set, and {reason}")]
    NoUsableLogin {
        /// Why the saved token is not used; never the token.
        reason: String,
    },
    /// The CA certificate file could not be read.
    #[error("(InvalidConfiguration) cannot read CA certificate {}: {source}", path.display())]
    ReadCaCert {
        /// The file that could not be read.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The address, CA certificate or token is unusable.
    #[error("(InvalidConfiguration) {message}")]
    InvalidConfiguration {
        /// What is wrong; never contains the token.
        message: String,
    },
    /// No connection could be made to the node (refused, TLS handshake failure, timeout, ...).
    #[error("(ConnectionFailed) cannot connect to {addr}: {message}")]
    Connect {
        /// The address dialled.
        addr: String,
        /// The cause chain, joined with `: `.
        message: String,
    },
    /// The server answered something a correct server never sends.
    #[error("(InvalidResponse) {message}")]
    InvalidResponse {
        /// What was wrong with the answer.
        message: String,
    },
    /// The token endpoint refused to issue a token (RFC 6749 §5.2).
    #[error("({error}) {description}")]
    OAuth {
        /// The OAuth error code, e.g. `invalid_client`, `unauthorized_client`, `invalid_scope`.
        error: String,
        /// The endpoint's explanation (`AADSTS…: …`, as Entra words it). It never holds the
        /// client secret or assertion: the client does not put them in, and the server names
        /// only the client id.
        description: String,
    },
    /// The local side of a streamed call failed: reading the backup being restored, or
    /// writing the backup being received.
    #[error("(FileError) {context}: {source}")]
    Io {
        /// What was being done, e.g. `writing the backup`.
        context: &'static str,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The server rejected the call.
    #[error("({code}) {message}{}", retry_note(message, *retry_after))]
    Service {
        /// Azure Key Vault error code, e.g. `SecretNotFound`, `Forbidden`, `BadParameter`.
        code: String,
        /// Azure inner error code, e.g. `ObjectIsDeletedButRecoverable`, when there is one.
        inner_code: Option<String>,
        /// Human-readable message.
        message: String,
        /// For `Throttled`: how long the server said to wait before trying again.
        retry_after: Option<std::time::Duration>,
    },
}

impl ClientError {
    /// The stable error code, as shown between the parentheses of `Display`.
    pub fn code(&self) -> &str {
        match self {
            Self::MissingEnv { .. } | Self::NoUsableLogin { .. } => "MissingConfiguration",
            Self::ReadCaCert { .. } | Self::InvalidConfiguration { .. } => "InvalidConfiguration",
            Self::Connect { .. } => "ConnectionFailed",
            Self::InvalidResponse { .. } => "InvalidResponse",
            Self::Io { .. } => "FileError",
            Self::OAuth { error, .. } => error,
            Self::Service { code, .. } => code,
        }
    }

    /// For a throttled call: how long the server said to wait before trying again (when the
    /// client's own retries were used up or turned off).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Service { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn io(context: &'static str, source: std::io::Error) -> Self {
        Self::Io { context, source }
    }

    /// Builds a [`ClientError::Connect`] from a transport error, keeping its whole cause chain:
    /// tonic's own message is only "transport error", the useful part is in the sources.
    pub(crate) fn connect(addr: &str, err: &(dyn std::error::Error + 'static)) -> Self {
        Self::Connect {
            addr: addr.to_owned(),
            message: error_chain(err),
        }
    }
}

impl From<Status> for ClientError {
    fn from(status: Status) -> Self {
        let code = metadata_str(&status, ERROR_CODE_KEY)
            .unwrap_or_else(|| fallback_code(status.code()).to_owned());
        let inner_code = metadata_str(&status, INNER_ERROR_CODE_KEY);
        let mut message = status.message().trim();
        // The server may also prefix the message with the code ("SecretNotFound: ..."); strip
        // it so that Display does not say the code twice.
        if let Some(rest) = message.strip_prefix(code.as_str())
            && let Some(rest) = rest.strip_prefix(':')
        {
            message = rest.trim_start();
        }
        let mut message = if message.is_empty() {
            status.code().description().to_owned()
        } else {
            message.to_owned()
        };
        // Transport failures during a call arrive as a Status whose message is generic and
        // whose source holds the cause (e.g. "tcp connect error: Connection refused").
        if let Some(source) = status.source() {
            let chain = error_chain(source);
            if !message.contains(&chain) {
                message = format!("{message}: {chain}");
            }
        }
        // Display must stay on one line, whatever the server sent; a CRLF (the firewall's
        // message uses them, as Azure's does) is one break.
        let message = message.replace("\r\n", " ").replace(['\r', '\n'], " ");
        Self::Service {
            code,
            inner_code,
            message,
            retry_after: retry_after_of(&status),
        }
    }
}

/// What `Display` adds to a throttled call's message: the wait the server asked for, as its own
/// sentence (Azure's throttling message ends without a full stop).
fn retry_note(message: &str, retry_after: Option<std::time::Duration>) -> String {
    let Some(wait) = retry_after else {
        return String::new();
    };
    let stop = if message.ends_with(['.', '!', '?']) {
        ""
    } else {
        "."
    };
    format!("{stop} Retry after {} ms.", wait.as_millis())
}

/// The wait a throttled answer asks for: `x-ms-retry-after-ms`, else `Retry-After` in whole
/// seconds (capped at an hour, so a hostile value cannot park the caller).
pub(crate) fn retry_after_of(status: &Status) -> Option<std::time::Duration> {
    const MAX: std::time::Duration = std::time::Duration::from_secs(3_600);
    let millis = metadata_str(status, "x-ms-retry-after-ms")
        .and_then(|v| v.parse::<u64>().ok())
        .map(std::time::Duration::from_millis);
    let seconds = || {
        metadata_str(status, "retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .map(std::time::Duration::from_secs)
    };
    millis.or_else(seconds).map(|d| d.min(MAX))
}

/// A metadata value as text, ignoring values that are empty or not ASCII.
fn metadata_str(status: &Status, key: &str) -> Option<String> {
    status
        .metadata()
        .get(key)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

/// The code shown when the server (or a proxy, or tonic itself) sent no `x-coffer-error-code`,
/// named after the Azure code for the same condition where there is one.
fn fallback_code(code: Code) -> &'static str {
    match code {
        Code::Unauthenticated => "Unauthorized",
        Code::PermissionDenied => "Forbidden",
        Code::NotFound => "NotFound",
        Code::AlreadyExists | Code::Aborted | Code::FailedPrecondition => "Conflict",
        Code::InvalidArgument | Code::OutOfRange => "BadParameter",
        Code::ResourceExhausted => "Throttled",
        Code::Unavailable => "ServiceUnavailable",
        Code::DeadlineExceeded => "RequestTimeout",
        Code::Unimplemented => "NotImplemented",
        Code::Cancelled => "Cancelled",
        Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => "InternalError",
    }
}

/// `err: source: source ...` on one line, dropping sources that repeat their parent's text.
/// tonic's "transport error" wrapper says nothing the sources do not, so it is left out.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(current) = next {
        let text = current.to_string();
        let noise = text == "transport error" && current.source().is_some();
        if !noise && parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
        next = current.source();
    }
    parts.join(": ").replace(['\r', '\n'], " ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataMap;

    fn status_with(code: Code, message: &str, meta: &[(&'static str, &str)]) -> Status {
        let mut map = MetadataMap::new();
        for (key, value) in meta {
            map.insert(*key, value.parse().unwrap());
        }
        Status::with_metadata(code, message, map)
    }

    #[test]
    fn service_error_from_status_metadata() {
        let status = status_with(
            Code::NotFound,
            "A secret with (name/id) x was not found in this key vault.",
            &[(ERROR_CODE_KEY, "SecretNotFound")],
        );
        let err = ClientError::from(status);
        assert_eq!(
            err.to_string(),
            "(SecretNotFound) A secret with (name/id) x was not found in this key vault."
        );
        assert_eq!(err.code(), "SecretNotFound");
        match err {
            ClientError::Service { inner_code, .. } => assert_eq!(inner_code, None),
            other => panic!("unexpected variant {other:?}"),
        }
    }

    #[test]
    fn inner_code_is_kept() {
        let status = status_with(
            Code::AlreadyExists,
            "Secret x is currently in a deleted but recoverable state.",
            &[
                (ERROR_CODE_KEY, "Conflict"),
                (INNER_ERROR_CODE_KEY, "ObjectIsDeletedButRecoverable"),
            ],
        );
        match ClientError::from(status) {
            ClientError::Service {
                code,
                inner_code,
                message,
                ..
            } => {
                assert_eq!(code, "Conflict");
                assert_eq!(inner_code.as_deref(), Some("ObjectIsDeletedButRecoverable"));
                assert_eq!(
                    message,
                    "Secret x is currently in a deleted but recoverable state."
                );
            }
            other => panic!("unexpected variant {other:?}"),
        }
    }

    #[test]
    fn code_prefix_in_message_is_not_repeated() {
        let status = status_with(
            Code::InvalidArgument,
            "BadParameter: tag key is empty",
            &[(ERROR_CODE_KEY, "BadParameter")],
        );
        assert_eq!(
            ClientError::from(status).to_string(),
            "(BadParameter) tag key is empty"
        );
    }

    #[test]
    fn falls_back_to_grpc_code_without_metadata() {
        let err = ClientError::from(Status::unauthenticated("missing bearer token"));
        assert_eq!(err.to_string(), "(Unauthorized) missing bearer token");
        let err = ClientError::from(Status::permission_denied(""));
        assert_eq!(err.code(), "Forbidden");
        // An empty message falls back to the gRPC description rather than printing nothing.
        assert!(err.to_string().starts_with("(Forbidden) "));
        assert!(err.to_string().len() > "(Forbidden) ".len());
    }

    #[test]
    fn a_throttled_call_shows_azures_message_and_the_wait() {
        let status = status_with(
            Code::ResourceExhausted,
            "Request was not processed because too many requests were received. \
             Reason: VaultRequestTypeLimitReached",
            &[
                (ERROR_CODE_KEY, "Throttled"),
                ("retry-after", "2"),
                ("x-ms-retry-after-ms", "1500"),
            ],
        );
        let err = ClientError::from(status);
        assert_eq!(err.code(), "Throttled");
        // The precise wait wins over the whole seconds.
        assert_eq!(
            err.retry_after(),
            Some(std::time::Duration::from_millis(1500))
        );
        assert_eq!(
            err.to_string(),
            "(Throttled) Request was not processed because too many requests were received. \
             Reason: VaultRequestTypeLimitReached. Retry after 1500 ms."
        );
        // Retry-After alone, in seconds; a hostile value is capped at an hour.
        let err = ClientError::from(status_with(
            Code::ResourceExhausted,
            "Slow down.",
            &[("retry-after", "99999999")],
        ));
        assert_eq!(
            err.retry_after(),
            Some(std::time::Duration::from_secs(3600))
        );
        assert_eq!(
            err.to_string(),
            "(Throttled) Slow down. Retry after 3600000 ms."
        );
        // Garbage is no wait at all.
        let err = ClientError::from(status_with(
            Code::ResourceExhausted,
            "busy",
            &[("retry-after", "soon"), ("x-ms-retry-after-ms", "-5")],
        ));
        assert_eq!(err.retry_after(), None);
        assert_eq!(err.to_string(), "(Throttled) busy");
        assert_eq!(
            ClientError::from(Status::not_found("x")).retry_after(),
            None
        );
    }

    #[test]
    fn display_is_one_line() {
        let err = ClientError::from(Status::internal("line one\nline two"));
        assert_eq!(err.to_string(), "(InternalError) line one line two");
        let err = ClientError::from(Status::permission_denied(
            "Client address is not authorized.\r\nClient address: 192.0.2.1\rVault: kv",
        ));
        assert_eq!(
            err.to_string(),
            "(Forbidden) Client address is not authorized. Client address: 192.0.2.1 Vault: kv"
        );
    }

    #[test]
    fn local_errors_have_codes() {
        let err = ClientError::MissingEnv {
            var: "COFFER_TOKEN",
        };
        assert_eq!(
            err.to_string(),
            "(MissingConfiguration) environment variable COFFER_TOKEN is not set"
        );
        assert_eq!(err.code(), "MissingConfiguration");
    }
}
