//! Drives the official Rust Azure Key Vault crates (`azure_security_keyvault_secrets`,
//! `azure_security_keyvault_keys`, `azure_identity`) against a Coffer node, unchanged but for
//! where connections go: TLS verification stays on (trusting only Coffer's CA) and so does the
//! SDK's challenge-resource verification.
//!
//! Usage: `rust-sdk-check secrets|keys|errors|throttled|read`
//!
//! Settings, from the environment:
//! - `COFFER_VAULT_URL`: `https://{vault}.{dns-suffix}`, the vault's own URL;
//! - `COFFER_CONNECT`: the node's address; every host name is resolved to it, since
//!   `*.vault.coffer.localhost` need not resolve on the machine;
//! - `COFFER_CA_CERT`: the CA to trust (PEM);
//! - `COFFER_AUTHORITY`: `https://{node}`, the token authority, with `COFFER_TENANT`,
//!   `COFFER_CLIENT_ID` and `COFFER_CLIENT_SECRET` for `ClientSecretCredential`; or
//!   `COFFER_CREDENTIAL=managed-identity` with `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`;
//! - for `throttled` and `read`: `COFFER_SECRET_NAME`, `COFFER_CALLS`, `COFFER_EXPECTED`.
//!
//! Every step prints `ok <step>`; the first wrong answer prints `FAIL <step>: …` and exits 1.

mod keys;
mod secrets;

use std::net::SocketAddr;
use std::sync::Arc;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::error::ErrorKind;
use azure_core::http::{ClientOptions, Transport};
use azure_identity::{
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};

pub(crate) type Result<T> = std::result::Result<T, String>;

pub(crate) fn env(key: &str) -> Result<String> {
    std::env::var(key).map_err(|_| format!("{key} is not set"))
}

/// Prints `ok <step>` when `holds`, fails the run otherwise.
pub(crate) fn check(step: &str, holds: bool, detail: impl std::fmt::Debug) -> Result<()> {
    if holds {
        println!("ok {step}");
        Ok(())
    } else {
        Err(format!("{step}: {detail:?}"))
    }
}

/// Names a failed SDK call by its step, with the HTTP status and Azure error code.
pub(crate) fn at(step: &str) -> impl Fn(azure_core::Error) -> String + '_ {
    move |e| format!("{step}: {}", describe(&e))
}

pub(crate) fn describe(e: &azure_core::Error) -> String {
    match e.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => format!(
            "HTTP {status} {}: {e}",
            error_code.as_deref().unwrap_or("-")
        ),
        other => format!("{other:?}: {e}"),
    }
}

/// Expects `result` to be an HTTP error with `status` and Azure error `code`.
pub(crate) fn expect_error<T>(
    step: &str,
    result: azure_core::Result<T>,
    status: u16,
    code: &str,
) -> Result<()> {
    match result {
        Ok(_) => Err(format!("{step}: succeeded, expected {status} {code}")),
        Err(e) => match e.kind() {
            ErrorKind::HttpResponse {
                status: got,
                error_code,
                ..
            } => check(
                step,
                u16::from(*got) == status && error_code.as_deref() == Some(code),
                describe(&e),
            ),
            _ => Err(format!("{step}: {}", describe(&e))),
        },
    }
}

/// The transport every client and the credential use: reqwest trusting only Coffer's CA and
/// sending every host name to the node.
fn transport(vault_url: &str) -> Result<Transport> {
    let ca = std::fs::read(env("COFFER_CA_CERT")?).map_err(|e| format!("reading the CA: {e}"))?;
    let ca = reqwest::Certificate::from_pem(&ca).map_err(|e| format!("the CA: {e}"))?;
    let connect: SocketAddr = env("COFFER_CONNECT")?
        .parse()
        .map_err(|e| format!("COFFER_CONNECT: {e}"))?;
    let host = url_host(vault_url)?;
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .resolve(&host, connect)
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    Ok(Transport::new(Arc::new(client)))
}

fn url_host(url: &str) -> Result<String> {
    url.strip_prefix("https://")
        .and_then(|rest| rest.split([':', '/']).next())
        .filter(|host| !host.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("{url} is not an https URL"))
}

fn credential(transport: &Transport) -> Result<Arc<dyn TokenCredential>> {
    let client_options = || ClientOptions {
        transport: Some(transport.clone()),
        ..Default::default()
    };
    if std::env::var("COFFER_CREDENTIAL").as_deref() == Ok("managed-identity") {
        let credential = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
            client_options: client_options(),
            ..Default::default()
        }))
        .map_err(|e| describe(&e))?;
        return Ok(credential);
    }
    let mut cloud = CustomConfiguration::default();
    cloud.authority_host = env("COFFER_AUTHORITY")?;
    let options = ClientSecretCredentialOptions {
        client_options: ClientOptions {
            cloud: Some(Arc::new(CloudConfiguration::from(cloud))),
            ..client_options()
        },
    };
    let credential = ClientSecretCredential::new(
        &env("COFFER_TENANT")?,
        env("COFFER_CLIENT_ID")?,
        Secret::new(env("COFFER_CLIENT_SECRET")?),
        Some(options),
    )
    .map_err(|e| describe(&e))?;
    Ok(credential)
}

async fn run(scenario: &str) -> Result<()> {
    let vault_url = env("COFFER_VAULT_URL")?;
    let transport = transport(&vault_url)?;
    let credential = credential(&transport)?;
    let client_options = ClientOptions {
        transport: Some(transport.clone()),
        ..Default::default()
    };
    let secret_client = SecretClient::new(
        &vault_url,
        credential.clone(),
        Some(SecretClientOptions {
            client_options: client_options.clone(),
            ..Default::default()
        }),
    )
    .map_err(|e| describe(&e))?;
    let key_client = KeyClient::new(
        &vault_url,
        credential,
        Some(KeyClientOptions {
            client_options,
            ..Default::default()
        }),
    )
    .map_err(|e| describe(&e))?;
    match scenario {
        "secrets" => secrets::all(&secret_client, &vault_url).await,
        "keys" => keys::all(&key_client).await,
        "errors" => secrets::errors(&secret_client, &key_client).await,
        "throttled" => secrets::throttled(&secret_client).await,
        "read" => secrets::read(&secret_client).await,
        other => Err(format!("unknown scenario {other}")),
    }
}

#[tokio::main]
async fn main() {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    if let Err(message) = run(&scenario).await {
        eprintln!("FAIL {message}");
        std::process::exit(1);
    }
}
