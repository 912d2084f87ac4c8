//! The official Python `azure-identity` credentials obtain tokens from a real dev node, and the
//! tokens work on the node's API:
//! - `ManagedIdentityCredential` and `DefaultAzureCredential` through the node's
//!   managed-identity endpoint (App Service protocol), as a workload on the node would;
//! - `ClientSecretCredential` and `CertificateCredential` (MSAL inside) with the node as
//!   their authority: discovery, then the token endpoint (a client secret; a client assertion
//!   signed with an RSA certificate's key).
//!
//! Needs the Python environment of `scripts/install-python-deps` (`.ci/run` creates it);
//! `COFFER_VENV` names it if it is not in /var/tmp/coffer-venv.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coffer_proto::v1 as pb;
use coffer_proto::v1::GetSecretRequest;
use coffer_proto::v1::SetSecretRequest;
use coffer_proto::v1::identity_service_client::IdentityServiceClient;
use coffer_proto::v1::secret_service_client::SecretServiceClient;
use common::{DevServer, with_bearer};

fn dev_env(server: &DevServer) -> Vec<(String, String)> {
    std::fs::read_to_string(server.data_dir.join("dev.env"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

fn env_value(env: &[(String, String)], key: &str) -> String {
    env.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("dev.env lacks {key}"))
}

/// Runs tests/python/get_token.py with `kind`, only the given variables set (besides PATH).
fn get_token(kind: &str, scope: &str, vars: &[(&str, String)]) -> (String, i64) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/get_token.py");
    let mut cmd = Command::new(common::python_interpreter());
    cmd.arg(script).args([kind, scope]).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run python");
    assert!(
        out.status.success(),
        "{kind} credential failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let token = lines.next().expect("token line").to_owned();
    let expires_on = lines.next().expect("expiry line").parse().expect("expiry");
    (token, expires_on)
}

fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn azure_identity_credentials_get_tokens_that_work() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(&dir.path().join("node"));
    let env = dev_env(&server);
    server.ok(&["vault", "create", "--name", "mi-kv", "--location", "eastus"]);
    server.ok(&[
        "secret", "set", "--vault", "mi-kv", "--name", "db", "--value", "s3cret",
    ]);
    let suffix = env_value(&env, "COFFER_DNS_SUFFIX");
    let scope = format!("https://{suffix}/.default");
    let mut secrets = SecretServiceClient::new(server.grpc_channel().await);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    // A workload on the node: the managed-identity endpoint, with the header dev.env exports.
    let mi_vars = [
        ("IDENTITY_ENDPOINT", env_value(&env, "IDENTITY_ENDPOINT")),
        ("IDENTITY_HEADER", env_value(&env, "IDENTITY_HEADER")),
    ];
    let (token, expires_on) = get_token("managed-identity", &scope, &mi_vars);
    assert!(expires_on > now + 3_000, "expires_on {expires_on}");
    let c = claims(&token);
    assert_eq!(c["aud"], format!("https://{suffix}"));
    assert_eq!(c["tid"], "dev");
    // The dev managed identity is a Key Vault Secrets User: it reads, and may not write.
    let got = secrets
        .get_secret(with_bearer(
            &token,
            GetSecretRequest {
                vault: "mi-kv".into(),
                name: "db".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("the managed identity reads the secret")
        .into_inner();
    assert_eq!(got.value, "s3cret");
    let refused = secrets
        .set_secret(with_bearer(
            &token,
            SetSecretRequest {
                vault: "mi-kv".into(),
                name: "db".into(),
                value: "changed".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("a Secrets User may not write");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);

    // DefaultAzureCredential finds the same endpoint by itself.
    let (token, _) = get_token("default", &scope, &mi_vars);
    assert_eq!(claims(&token)["appid"], c["appid"]);

    // A wrong identity header gets no token.
    let wrong = [
        mi_vars[0].clone(),
        ("IDENTITY_HEADER", "cft_not-the-header".to_owned()),
    ];
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/get_token.py");
    let out = Command::new(common::python_interpreter())
        .arg(script)
        .args(["managed-identity", &scope])
        .env_clear()
        .envs(wrong.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(!out.status.success(), "a wrong header got a token");

    // ClientSecretCredential with the node as authority (MSAL: discovery, then the token
    // endpoint), for the dev administrator.
    let authority = server.addr.clone();
    let secret_vars = [
        ("COFFER_TENANT", env_value(&env, "COFFER_TENANT")),
        ("COFFER_CLIENT_ID", env_value(&env, "COFFER_CLIENT_ID")),
        (
            "COFFER_CLIENT_SECRET",
            env_value(&env, "COFFER_CLIENT_SECRET"),
        ),
        ("COFFER_AUTHORITY", authority),
        (
            "COFFER_CA_CERT",
            server.ca_cert.to_string_lossy().into_owned(),
        ),
    ];
    let (token, _) = get_token("client-secret", &scope, &secret_vars);
    assert_eq!(claims(&token)["appid"], env_value(&env, "COFFER_CLIENT_ID"));
    secrets
        .set_secret(with_bearer(
            &token,
            SetSecretRequest {
                vault: "mi-kv".into(),
                name: "db".into(),
                value: "rotated".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("the dev administrator writes");

    // CertificateCredential: an application registered with an RSA certificate (made by
    // OpenSSL) signs its own client assertion; no secret exists.
    let pem = dir.path().join("app.pem");
    let key = dir.path().join("app.key");
    let cert = dir.path().join("app.crt");
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=cert-app"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let mut both = std::fs::read(&key).unwrap();
    both.extend(std::fs::read(&cert).unwrap());
    std::fs::write(&pem, both).unwrap();
    let admin_token = server.token.clone();
    let mut identity = IdentityServiceClient::new(server.grpc_channel().await);
    let app = identity
        .create_principal(with_bearer(
            &admin_token,
            pb::CreatePrincipalRequest {
                tenant: "dev".into(),
                kind: "ServicePrincipal".into(),
                display_name: "cert-app".into(),
                client_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    identity
        .add_credential(with_bearer(
            &admin_token,
            pb::AddCredentialRequest {
                principal: app.client_id.clone(),
                credential: Some(pb::add_credential_request::Credential::Certificate(
                    std::fs::read(&cert).unwrap(),
                )),
            },
        ))
        .await
        .unwrap();
    let cert_vars = [
        ("COFFER_TENANT", "dev".to_owned()),
        ("COFFER_CLIENT_ID", app.client_id.clone()),
        ("COFFER_CERT_PATH", pem.to_string_lossy().into_owned()),
        ("COFFER_AUTHORITY", server.addr.clone()),
        (
            "COFFER_CA_CERT",
            server.ca_cert.to_string_lossy().into_owned(),
        ),
    ];
    let (cert_token, _) = get_token("client-certificate", &scope, &cert_vars);
    assert_eq!(claims(&cert_token)["appid"], app.client_id.as_str());
    assert_eq!(claims(&cert_token)["oid"], app.object_id.as_str());

    // Every token request was audited, without the token or the secret.
    let audit = std::fs::read_to_string(server.data_dir.join("audit.log")).unwrap();
    assert!(audit.contains("\"ManagedIdentityToken\""), "{audit}");
    assert!(audit.contains("\"TokenIssue\""), "{audit}");
    assert!(!audit.contains(&token));
    assert!(!audit.contains(&env_value(&env, "COFFER_CLIENT_SECRET")));
}
