//! The few client calls cluster tests and benchmarks make over and over, in one place.

use coffer_client::proto::{CreateVaultRequest, GetSecretRequest, SetSecretRequest};
use coffer_client::{ClientError, CofferClient};

/// Creates vault `name` in eastus with default settings.
pub async fn create_vault(client: &CofferClient, name: &str) -> Result<(), ClientError> {
    client
        .create_vault(CreateVaultRequest {
            name: name.into(),
            location: "eastus".into(),
            ..Default::default()
        })
        .await
        .map(|_| ())
}

/// Sets a new version of secret `name`.
pub async fn set_secret(
    client: &CofferClient,
    vault: &str,
    name: &str,
    value: &str,
) -> Result<(), ClientError> {
    client
        .set_secret(SetSecretRequest {
            vault: vault.into(),
            name: name.into(),
            value: value.into(),
            ..Default::default()
        })
        .await
        .map(|_| ())
}

/// The latest value of secret `name`; `None` if there is no such secret.
pub async fn secret_value(
    client: &CofferClient,
    vault: &str,
    name: &str,
) -> Result<Option<String>, ClientError> {
    match client
        .get_secret(GetSecretRequest {
            vault: vault.into(),
            name: name.into(),
            version: String::new(),
        })
        .await
    {
        Ok(secret) => Ok(Some(secret.value)),
        Err(e) if e.code() == "SecretNotFound" => Ok(None),
        Err(e) => Err(e),
    }
}
