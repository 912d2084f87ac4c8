//! `coffer login` and `coffer logout`, shaped after `az login --service-principal`.
//!
//! `login` obtains an access token for a service principal, with a client secret read from a
//! file or with an assertion signed by a registered certificate's key, and saves it where
//! later commands find it (see `coffer_client::SavedLogin`). It prints who logged in and until
//! when, never the token. The secret is read from a file, not a flag, so that it never appears
//! in a process listing or shell history.

use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args};
use coffer_client::{
    ClientAuth, ClientError, ENV_ADDR, ENV_CA_CERT, SavedLogin, Token, request_token, split_addrs,
    token_endpoint,
};
use serde_json::{Value, json};

use super::assertion::CertificateCredential;
use super::output::{self, Table, cell};
use super::{CliError, GlobalArgs};

/// `coffer login`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("credential").required(true).args(["secret_file", "cert"])))]
pub struct LoginArgs {
    #[command(flatten)]
    global: GlobalArgs,
    /// Tenant of the service principal.
    #[arg(long)]
    tenant: String,
    /// Client id (application id) of the service principal.
    #[arg(long)]
    client_id: String,
    /// File holding the client secret (mode 0600; a trailing newline is ignored).
    #[arg(long, value_name = "PATH")]
    secret_file: Option<PathBuf>,
    /// PEM certificate registered for the service principal; the token is requested with an
    /// assertion signed by --key.
    #[arg(long, value_name = "PATH", requires = "key")]
    cert: Option<PathBuf>,
    /// The certificate's private key: ECDSA P-256, PKCS#8 PEM, mode 0600.
    #[arg(long, value_name = "PATH", requires = "cert")]
    key: Option<PathBuf>,
}

/// `coffer logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    #[command(flatten)]
    global: GlobalArgs,
}

/// The proof of identity, read before anything is sent.
enum Proof {
    Secret(Token),
    Certificate(CertificateCredential),
}

impl Proof {
    /// What to present at `authority`: an assertion names the endpoint it is for.
    fn auth(&self, authority: &str, tenant: &str, client_id: &str) -> Result<ClientAuth, CliError> {
        Ok(match self {
            Self::Secret(secret) => ClientAuth::Secret(secret.clone()),
            Self::Certificate(credential) => {
                let audience = token_endpoint(authority, tenant)?;
                ClientAuth::Assertion(credential.assertion(client_id, &audience, now_unix())?)
            }
        })
    }
}

pub async fn login(args: LoginArgs) -> Result<(), CliError> {
    let LoginArgs {
        global,
        tenant,
        client_id,
        secret_file,
        cert,
        key,
    } = args;
    // Every file is read and checked before the first connection.
    let addr = global
        .addr
        .clone()
        .or_else(|| non_empty_env(ENV_ADDR))
        .ok_or(ClientError::MissingEnv { var: ENV_ADDR })?;
    let addrs = split_addrs(&addr);
    if addrs.is_empty() {
        return Err(CliError::bad_parameter("--addr: no address given"));
    }
    let ca_path = global
        .ca_cert
        .clone()
        .or_else(|| non_empty_env(ENV_CA_CERT).map(PathBuf::from))
        .ok_or(ClientError::MissingEnv { var: ENV_CA_CERT })?;
    let ca_pem = std::fs::read(&ca_path).map_err(|source| ClientError::ReadCaCert {
        path: ca_path.clone(),
        source,
    })?;
    let proof = match (secret_file, cert, key) {
        (Some(path), _, _) => Proof::Secret(read_secret_file(&path)?),
        (None, Some(cert), Some(key)) => {
            Proof::Certificate(CertificateCredential::load(&cert, &key)?)
        }
        // clap's "credential" group and `requires` guarantee one of the two.
        _ => {
            return Err(CliError::bad_parameter(
                "--secret-file, or --cert with --key, is required",
            ));
        }
    };
    let path = SavedLogin::default_path()?;

    // Nodes are tried in order; only an unreachable node sends the request on to the next.
    let mut result = None;
    for node in &addrs {
        let auth = proof.auth(node, &tenant, &client_id)?;
        match request_token(node, &ca_pem, &tenant, &client_id, &auth, None).await {
            Err(err @ ClientError::Connect { .. }) => {
                result.get_or_insert(Err(err));
            }
            other => {
                result = Some(other);
                break;
            }
        }
    }
    let token = result.unwrap_or_else(|| Err(ClientError::MissingEnv { var: ENV_ADDR }))?;
    let object_id = object_id_of(token.token.expose());
    let login = SavedLogin {
        addr,
        tenant,
        client_id,
        access_token: token.token,
        expires_on: token.expires_on,
    };
    login.save(&path)?;
    // The environment's credentials come first; say so rather than let the login seem ignored.
    for var in [coffer_client::ENV_TOKEN, coffer_client::ENV_CLIENT_SECRET] {
        if non_empty_env(var).is_some() {
            eprintln!("note: {var} is set and is used instead of this login until it is unset");
        }
    }
    let json = login_json(&login, object_id.as_deref());
    output::print(&global, &json, || login_table(&json))
}

pub fn logout(args: LogoutArgs) -> Result<(), CliError> {
    let _ = args.global;
    // Like `az logout`, success prints nothing; logging out twice is not an error.
    SavedLogin::remove(&SavedLogin::default_path()?)?;
    Ok(())
}

fn non_empty_env(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Reads the client secret: a file only its owner may read, one line.
fn read_secret_file(path: &Path) -> Result<Token, CliError> {
    let bytes = coffer_crypto::read_private_file(path).map_err(|err| CliError::Local {
        code: "FileError",
        message: format!("--secret-file: {err}"),
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        CliError::bad_parameter(format!(
            "--secret-file {}: the file is not UTF-8 text",
            path.display()
        ))
    })?;
    // `echo secret > file` adds a newline that is not part of the secret.
    let secret = text.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        return Err(CliError::bad_parameter(format!(
            "--secret-file {}: the file is empty",
            path.display()
        )));
    }
    if secret.contains(['\r', '\n']) {
        return Err(CliError::bad_parameter(format!(
            "--secret-file {}: the file holds more than one line",
            path.display()
        )));
    }
    Ok(Token::new(secret.to_owned()))
}

/// The `oid` claim of the token, to show whom the login is for. Read without verifying the
/// signature: it is only displayed, never trusted.
fn object_id_of(token: &str) -> Option<String> {
    coffer_crypto::jwt::Jwt::parse(token)
        .ok()?
        .claims()
        .get("oid")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn login_json(login: &SavedLogin, object_id: Option<&str>) -> Value {
    json!({
        "addr": login.addr,
        "tenant": login.tenant,
        "clientId": login.client_id,
        "objectId": object_id,
        "expiresOn": output::time_json(login.expires_on),
    })
}

fn login_table(json: &Value) -> Table {
    Table {
        headers: vec!["ClientId", "ObjectId", "Tenant", "ExpiresOn"],
        rows: vec![vec![
            cell(&json["clientId"]),
            cell(&json["objectId"]),
            cell(&json["tenant"]),
            cell(&json["expiresOn"]),
        ]],
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn private_file(dir: &Path, contents: &str) -> PathBuf {
        let path = dir.join(format!("f{}", contents.len()));
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    #[test]
    fn secret_files_lose_their_trailing_newline_only() {
        let dir = tempfile::tempdir().unwrap();
        let secret = read_secret_file(&private_file(dir.path(), "a b~c\r\n")).unwrap();
        assert_eq!(secret.expose(), "a b~c");
        for bad in ["\n", "one\ntwo\n"] {
            let err = read_secret_file(&private_file(dir.path(), bad)).unwrap_err();
            assert!(err.to_string().starts_with("(BadParameter)"), "{err}");
        }
    }

    #[test]
    fn a_secret_file_others_can_read_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = private_file(dir.path(), "hunter2-login");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_secret_file(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn the_login_summary_names_the_principal_and_expiry_but_not_the_token() {
        let login = SavedLogin {
            addr: "https://127.0.0.1:8443".into(),
            tenant: "contoso".into(),
            client_id: "app-1".into(),
            access_token: Token::new("eyJ.secret-token.sig".into()),
            expires_on: 1_896_091_200,
        };
        let json = login_json(&login, Some("oid-1"));
        assert_eq!(
            json,
            json!({
                "addr": "https://127.0.0.1:8443", "tenant": "contoso", "clientId": "app-1",
                "objectId": "oid-1", "expiresOn": "2030-01-31T12:00:00Z"
            })
        );
        let table = output::format_table(&login_table(&json));
        assert!(table.contains("app-1") && table.contains("2030-01-31T12:00:00Z"));
        assert!(!format!("{json} {table}").contains("secret-token"));
    }

    #[test]
    fn object_id_is_read_from_the_token_claims() {
        let (key, _) = coffer_crypto::jwt::SigningKey::generate().unwrap();
        let mut claims = serde_json::Map::new();
        claims.insert("oid".into(), json!("3f1c"));
        let token = key.sign(&claims).unwrap();
        assert_eq!(object_id_of(&token).as_deref(), Some("3f1c"));
        assert_eq!(object_id_of("opaque-token"), None);
    }
}
