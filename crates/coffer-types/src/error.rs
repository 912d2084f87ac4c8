//! The one error type that reaches clients, and its stable codes.
//!
//! Every failure a caller can see is an [`Error`] carrying one [`ErrorCode`] from Azure Key
//! Vault's vocabulary (and, where Azure has one, an [`InnerCode`]). The gRPC and REST adapters
//! map codes to status codes here and nowhere else. Messages may name vaults and objects (as
//! Azure's do) but never carry a secret value, key material or token: user-supplied text goes
//! through [`quote_user_text`].

use serde::{Deserialize, Serialize};

/// Top-level error code, as in Azure Key Vault's `{"error": {"code": ...}}`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    BadParameter,
    Unauthorized,
    Forbidden,
    VaultNotFound,
    SecretNotFound,
    KeyNotFound,
    /// An identity, role or assignment that does not exist (Azure's management plane answers
    /// such lookups with a 404 as well).
    NotFound,
    Conflict,
    Throttled,
    /// The node cannot serve now (no leader, shutting down); the caller may retry.
    ServiceUnavailable,
    InternalError,
}

/// Azure's `innererror.code`, which refines a top-level code.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InnerCode {
    SecretDisabled,
    KeyDisabled,
    AccessDenied,
    ForbiddenByRbac,
    ObjectIsDeletedButRecoverable,
    /// A restore or backup refused because of the geography the blob or cluster belongs to.
    GeographyMismatch,
    /// A data-plane request refused by the vault's network rule set.
    ForbiddenByFirewall,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadParameter => "BadParameter",
            ErrorCode::Unauthorized => "Unauthorized",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::VaultNotFound => "VaultNotFound",
            ErrorCode::SecretNotFound => "SecretNotFound",
            ErrorCode::KeyNotFound => "KeyNotFound",
            ErrorCode::NotFound => "NotFound",
            ErrorCode::Conflict => "Conflict",
            ErrorCode::Throttled => "Throttled",
            ErrorCode::ServiceUnavailable => "ServiceUnavailable",
            ErrorCode::InternalError => "InternalError",
        }
    }

    /// The HTTP status Azure Key Vault answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadParameter => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::VaultNotFound
            | ErrorCode::SecretNotFound
            | ErrorCode::KeyNotFound
            | ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::Throttled => 429,
            ErrorCode::ServiceUnavailable => 503,
            ErrorCode::InternalError => 500,
        }
    }
}

impl InnerCode {
    pub fn as_str(self) -> &'static str {
        match self {
            InnerCode::SecretDisabled => "SecretDisabled",
            InnerCode::KeyDisabled => "KeyDisabled",
            InnerCode::AccessDenied => "AccessDenied",
            InnerCode::ForbiddenByRbac => "ForbiddenByRbac",
            InnerCode::ObjectIsDeletedButRecoverable => "ObjectIsDeletedButRecoverable",
            InnerCode::GeographyMismatch => "GeographyMismatch",
            InnerCode::ForbiddenByFirewall => "ForbiddenByFirewall",
        }
    }
}

/// A client-visible failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("({}) {message}", .code.as_str())]
pub struct Error {
    pub code: ErrorCode,
    pub inner: Option<InnerCode>,
    pub message: String,
    /// For `Throttled`: how long until the request would be admitted, in milliseconds (sent
    /// as `Retry-After` and `x-ms-retry-after-ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            inner: None,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    pub fn with_inner(mut self, inner: InnerCode) -> Self {
        self.inner = Some(inner);
        self
    }

    pub fn bad_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadParameter, message)
    }

    /// Azure: "The request URI contains an invalid name: Invalid_Secret_Name".
    pub fn invalid_name(name: &str) -> Self {
        Self::bad_parameter(format!(
            "The request URI contains an invalid name: {}",
            quote_user_text(name)
        ))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn vault_not_found(vault: &str) -> Self {
        Self::new(
            ErrorCode::VaultNotFound,
            format!(
                "A vault with name {} was not found.",
                quote_user_text(vault)
            ),
        )
    }

    pub fn deleted_vault_not_found(vault: &str) -> Self {
        Self::new(
            ErrorCode::VaultNotFound,
            format!(
                "A deleted vault with name {} was not found.",
                quote_user_text(vault)
            ),
        )
    }

    pub fn vault_exists(vault: &str) -> Self {
        Self::new(
            ErrorCode::Conflict,
            format!(
                "A vault with name {} already exists.",
                quote_user_text(vault)
            ),
        )
    }

    /// Azure's text for a missing secret (the name is echoed, never the value).
    pub fn secret_not_found(name: &str) -> Self {
        Self::new(
            ErrorCode::SecretNotFound,
            format!(
                "A secret with (name/id) {} was not found in this key vault. If you recently \
                 deleted this secret you may be able to recover it using the correct recovery \
                 command.",
                quote_user_text(name)
            ),
        )
    }

    pub fn secret_version_not_found(name: &str, version: &str) -> Self {
        Self::new(
            ErrorCode::SecretNotFound,
            format!(
                "A secret with (name/id) {}/{} was not found in this key vault.",
                quote_user_text(name),
                quote_user_text(version)
            ),
        )
    }

    pub fn secret_disabled(operation: &str) -> Self {
        Self::new(
            ErrorCode::Forbidden,
            format!("Operation {operation} is not allowed on a disabled secret."),
        )
        .with_inner(InnerCode::SecretDisabled)
    }

    /// Azure's text for a missing key (the name is echoed, never key material).
    pub fn key_not_found(name: &str) -> Self {
        Self::new(
            ErrorCode::KeyNotFound,
            format!(
                "A key with (name/id) {} was not found in this key vault. If you recently \
                 deleted this key you may be able to recover it using the correct recovery \
                 command.",
                quote_user_text(name)
            ),
        )
    }

    pub fn key_version_not_found(name: &str, version: &str) -> Self {
        Self::new(
            ErrorCode::KeyNotFound,
            format!(
                "A key with (name/id) {}/{} was not found in this key vault.",
                quote_user_text(name),
                quote_user_text(version)
            ),
        )
    }

    pub fn key_disabled(operation: &str) -> Self {
        Self::new(
            ErrorCode::Forbidden,
            format!("Operation {operation} is not allowed on a disabled key."),
        )
        .with_inner(InnerCode::KeyDisabled)
    }

    /// An operation the key's `key_ops` does not list.
    pub fn key_operation_not_permitted(operation: &str) -> Self {
        Self::new(
            ErrorCode::Forbidden,
            format!("Operation {operation} is not permitted on this key."),
        )
    }

    pub fn key_not_yet_valid(operation: &str) -> Self {
        Self::new(
            ErrorCode::Forbidden,
            format!("Operation {operation} is not allowed before the key's activation time (nbf)."),
        )
    }

    pub fn key_expired(operation: &str) -> Self {
        Self::new(
            ErrorCode::Forbidden,
            format!("Operation {operation} is not allowed on an expired key."),
        )
    }

    /// Azure's 409 for a name held by a deleted object: "Secret {n} is currently in a deleted
    /// but recoverable state, and its name cannot be reused; …".
    pub fn object_deleted_but_recoverable(kind: crate::ObjectKind, name: &str) -> Self {
        Self::new(
            ErrorCode::Conflict,
            format!(
                "{} {} is currently in a deleted but recoverable state, and its name cannot be \
                 reused; in this state, the {} can only be recovered or purged.",
                kind.display(),
                quote_user_text(name),
                kind.as_str()
            ),
        )
        .with_inner(InnerCode::ObjectIsDeletedButRecoverable)
    }

    /// A deleted object that does not exist (Azure answers `SecretNotFound` with its text).
    pub fn deleted_object_not_found(kind: crate::ObjectKind, name: &str) -> Self {
        let code = match kind {
            crate::ObjectKind::Secret => ErrorCode::SecretNotFound,
            crate::ObjectKind::Key => ErrorCode::KeyNotFound,
            _ => ErrorCode::NotFound,
        };
        Self::new(
            code,
            format!(
                "Deleted {} {} was not found in this key vault.",
                kind.as_str(),
                quote_user_text(name)
            ),
        )
    }

    /// Azure's 403 for a purge under purge protection.
    pub fn purge_protected() -> Self {
        Self::new(
            ErrorCode::Forbidden,
            "Operation \"purge\" is not allowed because purge protection is enabled for this \
             vault. Key Vault service will automatically purge it after the retention period has \
             passed.",
        )
    }

    /// Azure's 429 for a vault over its limit, with the wait until a token is free.
    pub fn throttled(retry_after: std::time::Duration) -> Self {
        let mut e = Self::new(
            ErrorCode::Throttled,
            "Request was not processed because too many requests were received. Reason: \
             VaultRequestTypeLimitReached",
        );
        e.retry_after_ms = Some(
            u64::try_from(retry_after.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
        );
        e
    }

    /// Azure's 403 for an address the vault's firewall does not admit.
    /// `vault` is the name of an existing vault (so valid); the caller id is quoted.
    pub fn forbidden_by_firewall(client: &str, caller: &str, vault: &str) -> Self {
        Self::new(
            ErrorCode::Forbidden,
            format!(
                "Client address is not authorized and caller is not a trusted service.\r\n\
                 Client address: {client}\r\nCaller: {}\r\nVault: {vault}",
                quote_user_text(caller),
            ),
        )
        .with_inner(InnerCode::ForbiddenByFirewall)
    }

    /// Azure's 403 for a request on a public listener to a vault whose public network access
    /// is disabled.
    pub fn public_network_access_disabled(client: &str, caller: &str, vault: &str) -> Self {
        Self::new(
            ErrorCode::Forbidden,
            format!(
                "Public network access is disabled and request is not from a trusted service \
                 nor via an approved private link.\r\nClient address: {client}\r\nCaller: \
                 {}\r\nVault: {vault}",
                quote_user_text(caller),
            ),
        )
        .with_inner(InnerCode::ForbiddenByFirewall)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ServiceUnavailable, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalError, message)
    }

    /// True when the same request may succeed if the caller tries again later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.code,
            ErrorCode::Throttled | ErrorCode::ServiceUnavailable
        )
    }
}

/// The one way user-supplied text enters an error message or a log line: quoted, shortened, and
/// with control and non-ASCII characters escaped, so that a hostile name cannot forge lines in
/// a log or a terminal. Only for names and identifiers; values never reach a message at all.
pub fn quote_user_text(text: &str) -> String {
    const MAX_CHARS: usize = 130;
    let mut out = String::with_capacity(text.len().min(MAX_CHARS) + 2);
    for (i, c) in text.chars().enumerate() {
        if i == MAX_CHARS {
            out.push_str("...");
            break;
        }
        if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_code() {
        let e = Error::secret_not_found("db-pass");
        let shown = e.to_string();
        assert!(shown.starts_with("(SecretNotFound) A secret with (name/id) db-pass"));
        assert!(!shown.contains('\n'));
        assert_eq!(e.code.http_status(), 404);
    }

    #[test]
    fn hostile_names_are_escaped_and_bounded() {
        let quoted = quote_user_text("a\nb\u{1b}[31mé");
        assert!(!quoted.contains('\n'));
        assert!(!quoted.contains('\u{1b}'));
        assert!(quoted.contains("\\n"));
        let long = "x".repeat(1000);
        assert!(quote_user_text(&long).len() < 140);
    }

    #[test]
    fn disabled_secret_is_forbidden_with_inner_code() {
        let e = Error::secret_disabled("get");
        assert_eq!(e.code, ErrorCode::Forbidden);
        assert_eq!(e.inner, Some(InnerCode::SecretDisabled));
        assert_eq!(
            e.message,
            "Operation get is not allowed on a disabled secret."
        );
    }
}
