//! Key Vault REST paths, parsed by hand rather than by a router: the SDKs send shapes a
//! pattern router would refuse — an empty version segment (`/secrets/s1/?…`,
//! `/keys/k1//encrypt`), a doubled leading slash, camelCase action names.

use axum::http::Method;
use coffer_types::error::quote_user_text;
use coffer_types::keys::KeyOperation;
use coffer_types::{Error, ErrorCode};

/// One data-plane operation and the names its path carries. A version is `None` when the path
/// leaves it out or empty: the latest version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    SetSecret(String),
    GetSecret(String, Option<String>),
    UpdateSecret(String, Option<String>),
    DeleteSecret(String),
    ListSecrets,
    ListSecretVersions(String),
    BackupSecret(String),
    RestoreSecret,
    ListDeletedSecrets,
    GetDeletedSecret(String),
    PurgeDeletedSecret(String),
    RecoverDeletedSecret(String),
    CreateKey(String),
    ImportKey(String),
    RotateKey(String),
    GetKey(String, Option<String>),
    UpdateKey(String, Option<String>),
    DeleteKey(String),
    ListKeys,
    ListKeyVersions(String),
    BackupKey(String),
    RestoreKey,
    ListDeletedKeys,
    GetDeletedKey(String),
    PurgeDeletedKey(String),
    RecoverDeletedKey(String),
    GetRotationPolicy(String),
    SetRotationPolicy(String),
    /// encrypt, decrypt, wrapkey, unwrapkey, sign or verify.
    KeyOperation(String, Option<String>, KeyOperation),
    RandomBytes,
}

impl Route {
    /// The operation's name in audit records and metrics, as Azure's AuditEvent log names it.
    pub(crate) fn operation_name(&self) -> &'static str {
        match self {
            Route::SetSecret(_) => "SecretSet",
            Route::GetSecret(..) => "SecretGet",
            Route::UpdateSecret(..) => "SecretUpdate",
            Route::DeleteSecret(_) => "SecretDelete",
            Route::ListSecrets => "SecretList",
            Route::ListSecretVersions(_) => "SecretListVersions",
            Route::BackupSecret(_) => "SecretBackup",
            Route::RestoreSecret => "SecretRestore",
            Route::ListDeletedSecrets => "SecretListDeleted",
            Route::GetDeletedSecret(_) => "SecretGetDeleted",
            Route::PurgeDeletedSecret(_) => "SecretPurge",
            Route::RecoverDeletedSecret(_) => "SecretRecover",
            Route::CreateKey(_) => "KeyCreate",
            Route::ImportKey(_) => "KeyImport",
            Route::RotateKey(_) => "KeyRotate",
            Route::GetKey(..) => "KeyGet",
            Route::UpdateKey(..) => "KeyUpdate",
            Route::DeleteKey(_) => "KeyDelete",
            Route::ListKeys => "KeyList",
            Route::ListKeyVersions(_) => "KeyListVersions",
            Route::BackupKey(_) => "KeyBackup",
            Route::RestoreKey => "KeyRestore",
            Route::ListDeletedKeys => "KeyListDeleted",
            Route::GetDeletedKey(_) => "KeyGetDeleted",
            Route::PurgeDeletedKey(_) => "KeyPurge",
            Route::RecoverDeletedKey(_) => "KeyRecover",
            Route::GetRotationPolicy(_) => "KeyRotationPolicyGet",
            Route::SetRotationPolicy(_) => "KeyRotationPolicySet",
            Route::KeyOperation(_, _, op) => match op {
                KeyOperation::Encrypt => "KeyEncrypt",
                KeyOperation::Decrypt => "KeyDecrypt",
                KeyOperation::WrapKey => "KeyWrap",
                KeyOperation::UnwrapKey => "KeyUnwrap",
                KeyOperation::Sign => "KeySign",
                KeyOperation::Verify => "KeyVerify",
                _ => "KeyOperation",
            },
            Route::RandomBytes => "VaultGetRandomBytes",
        }
    }

    /// The object the path names, for the audit record: (collection, name, version).
    pub(crate) fn object(&self) -> Option<(&'static str, &str, &str)> {
        fn version(v: &Option<String>) -> &str {
            v.as_deref().unwrap_or("")
        }
        match self {
            Route::SetSecret(n)
            | Route::DeleteSecret(n)
            | Route::ListSecretVersions(n)
            | Route::BackupSecret(n)
            | Route::GetDeletedSecret(n)
            | Route::PurgeDeletedSecret(n)
            | Route::RecoverDeletedSecret(n) => Some(("secrets", n, "")),
            Route::GetSecret(n, v) | Route::UpdateSecret(n, v) => Some(("secrets", n, version(v))),
            Route::CreateKey(n)
            | Route::ImportKey(n)
            | Route::RotateKey(n)
            | Route::DeleteKey(n)
            | Route::ListKeyVersions(n)
            | Route::BackupKey(n)
            | Route::GetDeletedKey(n)
            | Route::PurgeDeletedKey(n)
            | Route::RecoverDeletedKey(n)
            | Route::GetRotationPolicy(n)
            | Route::SetRotationPolicy(n) => Some(("keys", n, "")),
            Route::GetKey(n, v) | Route::UpdateKey(n, v) | Route::KeyOperation(n, v, _) => {
                Some(("keys", n, version(v)))
            }
            Route::ListSecrets
            | Route::RestoreSecret
            | Route::ListDeletedSecrets
            | Route::ListKeys
            | Route::RestoreKey
            | Route::ListDeletedKeys
            | Route::RandomBytes => None,
        }
    }
}

fn not_found(path: &str) -> Error {
    Error::new(
        ErrorCode::NotFound,
        format!(
            "The requested path {} is not a Key Vault operation.",
            quote_user_text(path)
        ),
    )
}

fn method_not_allowed(method: &Method, path: &str) -> Error {
    Error::bad_parameter(format!(
        "The method {} is not allowed on {}.",
        quote_user_text(method.as_str()),
        quote_user_text(path)
    ))
}

fn version(segment: &str) -> Option<String> {
    (!segment.is_empty()).then(|| segment.to_owned())
}

fn key_operation(action: &str) -> Option<KeyOperation> {
    Some(match action {
        "encrypt" => KeyOperation::Encrypt,
        "decrypt" => KeyOperation::Decrypt,
        "wrapkey" => KeyOperation::WrapKey,
        "unwrapkey" => KeyOperation::UnwrapKey,
        "sign" => KeyOperation::Sign,
        "verify" => KeyOperation::Verify,
        _ => return None,
    })
}

/// The operation `method` on `path` names. Collection and action names match in any case;
/// object names and versions are passed on as sent, for the service to judge.
pub(crate) fn parse(method: &Method, path: &str) -> Result<Route, Error> {
    let mut segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segments.len() > 1 && segments.last() == Some(&"") {
        segments.pop();
    }
    if let Some(route) = route_of(method, &segments) {
        return Ok(route);
    }
    // Some other method serves this path: say the method is wrong rather than 404.
    const METHODS: [Method; 5] = [
        Method::GET,
        Method::PUT,
        Method::PATCH,
        Method::POST,
        Method::DELETE,
    ];
    if METHODS.iter().any(|m| route_of(m, &segments).is_some()) {
        return Err(method_not_allowed(method, path));
    }
    Err(not_found(path))
}

fn route_of(method: &Method, segments: &[&str]) -> Option<Route> {
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let words: Vec<&str> = lower.iter().map(String::as_str).collect();
    let name = || segments.get(1).map(|s| (*s).to_owned()).unwrap_or_default();
    let third = segments.get(2).copied().unwrap_or_default();
    let action3 = words.get(2).and_then(|a| key_operation(a));
    let action4 = words.get(3).and_then(|a| key_operation(a));
    let route = match (words.as_slice(), method.clone()) {
        (["secrets"], Method::GET) => Route::ListSecrets,
        (["secrets", "restore"], Method::POST) => Route::RestoreSecret,
        (["secrets", _], Method::PUT) => Route::SetSecret(name()),
        (["secrets", _], Method::GET) => Route::GetSecret(name(), None),
        (["secrets", _], Method::PATCH) => Route::UpdateSecret(name(), None),
        (["secrets", _], Method::DELETE) => Route::DeleteSecret(name()),
        (["secrets", _, "versions"], Method::GET) => Route::ListSecretVersions(name()),
        (["secrets", _, "backup"], Method::POST) => Route::BackupSecret(name()),
        (["secrets", _, _], Method::GET) => Route::GetSecret(name(), version(third)),
        (["secrets", _, _], Method::PATCH) => Route::UpdateSecret(name(), version(third)),
        (["deletedsecrets"], Method::GET) => Route::ListDeletedSecrets,
        (["deletedsecrets", _], Method::GET) => Route::GetDeletedSecret(name()),
        (["deletedsecrets", _], Method::DELETE) => Route::PurgeDeletedSecret(name()),
        (["deletedsecrets", _, "recover"], Method::POST) => Route::RecoverDeletedSecret(name()),
        (["keys"], Method::GET) => Route::ListKeys,
        (["keys", "restore"], Method::POST) => Route::RestoreKey,
        (["keys", _], Method::PUT) => Route::ImportKey(name()),
        (["keys", _], Method::GET) => Route::GetKey(name(), None),
        (["keys", _], Method::PATCH) => Route::UpdateKey(name(), None),
        (["keys", _], Method::DELETE) => Route::DeleteKey(name()),
        (["keys", _, "create"], Method::POST) => Route::CreateKey(name()),
        (["keys", _, "rotate"], Method::POST) => Route::RotateKey(name()),
        (["keys", _, "backup"], Method::POST) => Route::BackupKey(name()),
        (["keys", _, "versions"], Method::GET) => Route::ListKeyVersions(name()),
        (["keys", _, "rotationpolicy"], Method::GET) => Route::GetRotationPolicy(name()),
        (["keys", _, "rotationpolicy"], Method::PUT) => Route::SetRotationPolicy(name()),
        (["keys", _, _], Method::POST) => Route::KeyOperation(name(), None, action3?),
        (["keys", _, _], Method::GET) => Route::GetKey(name(), version(third)),
        (["keys", _, _], Method::PATCH) => Route::UpdateKey(name(), version(third)),
        (["keys", _, _, _], Method::POST) => Route::KeyOperation(name(), version(third), action4?),
        (["deletedkeys"], Method::GET) => Route::ListDeletedKeys,
        (["deletedkeys", _], Method::GET) => Route::GetDeletedKey(name()),
        (["deletedkeys", _], Method::DELETE) => Route::PurgeDeletedKey(name()),
        (["deletedkeys", _, "recover"], Method::POST) => Route::RecoverDeletedKey(name()),
        (["rng"], Method::POST) => Route::RandomBytes,
        _ => return None,
    };
    Some(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(method: Method, path: &str) -> Route {
        parse(&method, path).unwrap_or_else(|e| panic!("{path}: {}", e.message))
    }

    #[test]
    fn the_sdks_url_shapes_name_the_right_operation() {
        assert_eq!(
            ok(Method::GET, "/secrets/s1/"),
            Route::GetSecret("s1".into(), None)
        );
        assert_eq!(
            ok(Method::GET, "//secrets/s1/0123456789abcdef0123456789abcdef"),
            Route::GetSecret("s1".into(), Some("0123456789abcdef0123456789abcdef".into()))
        );
        assert_eq!(
            ok(Method::POST, "/keys/k1//encrypt"),
            Route::KeyOperation("k1".into(), None, KeyOperation::Encrypt)
        );
        assert_eq!(
            ok(Method::POST, "/keys/k1/wrapKey"),
            Route::KeyOperation("k1".into(), None, KeyOperation::WrapKey)
        );
        assert_eq!(
            ok(Method::POST, "/keys/k1/v1/unwrapkey"),
            Route::KeyOperation("k1".into(), Some("v1".into()), KeyOperation::UnwrapKey)
        );
        assert_eq!(
            ok(Method::PUT, "/keys/k1/rotationPolicy"),
            Route::SetRotationPolicy("k1".into())
        );
        assert_eq!(ok(Method::GET, "/secrets"), Route::ListSecrets);
        assert_eq!(ok(Method::GET, "/secrets/"), Route::ListSecrets);
        assert_eq!(ok(Method::POST, "/secrets/restore"), Route::RestoreSecret);
        assert_eq!(
            ok(Method::GET, "/secrets/restore"),
            Route::GetSecret("restore".into(), None)
        );
        assert_eq!(
            ok(Method::DELETE, "/deletedsecrets/s1"),
            Route::PurgeDeletedSecret("s1".into())
        );
        assert_eq!(
            ok(Method::POST, "/deletedKeys/k1/recover"),
            Route::RecoverDeletedKey("k1".into())
        );
        assert_eq!(ok(Method::POST, "/rng"), Route::RandomBytes);
        assert_eq!(
            ok(Method::PATCH, "/keys/k1/"),
            Route::UpdateKey("k1".into(), None)
        );
        assert_eq!(
            ok(Method::GET, "/keys/k1/versions"),
            Route::ListKeyVersions("k1".into())
        );
        assert_eq!(
            ok(Method::GET, "/Secrets/MixedCase"),
            Route::GetSecret("MixedCase".into(), None)
        );
    }

    #[test]
    fn unknown_paths_and_methods_are_client_errors() {
        let e = parse(&Method::GET, "/certificates/c1").unwrap_err();
        assert_eq!(e.code, coffer_types::ErrorCode::NotFound);
        let e = parse(&Method::POST, "/keys/k1/v1/launch").unwrap_err();
        assert_eq!(e.code, coffer_types::ErrorCode::NotFound);
        let e = parse(&Method::DELETE, "/secrets").unwrap_err();
        assert_eq!(e.code, coffer_types::ErrorCode::BadParameter);
        assert!(e.message.contains("DELETE"), "{}", e.message);
        let e = parse(&Method::GET, "/").unwrap_err();
        assert_eq!(e.code, coffer_types::ErrorCode::NotFound);
        let e = parse(&Method::GET, "/secrets/a/b/c/d").unwrap_err();
        assert_eq!(e.code, coffer_types::ErrorCode::NotFound);
        assert!(parse(&Method::GET, "/secrets/\u{0}x").is_ok());
    }
}
