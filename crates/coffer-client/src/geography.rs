//! [`CofferClient`] methods for the geography backup keys (`OperatorService`): the keys that
//! seal secret and vault backups, so that a backup restores in any cluster of the same
//! geography once the key has been exported from one and imported into the other.
//!
//! The passphrase that wraps an exported key is a [`Token`]: zeroized on drop and never
//! printed. It is copied into the request only inside the call, and no request is ever
//! formatted with `Debug` here (the generated request types would print it).

use std::fmt;

use coffer_proto::v1::{
    ExportGeographyKeyRequest, GeographyKey, ImportGeographyKeyRequest, ListGeographyKeysRequest,
};

use crate::client::with_meta;
use crate::{ClientError, CofferClient, Token};

/// What [`CofferClient::export_geography_key`] returns. `Debug` prints the key's identity,
/// never the wrapped key: it is protected only by the passphrase, so it stays out of logs.
#[derive(Clone)]
pub struct ExportedGeographyKey {
    /// The exported key's identity.
    pub key: GeographyKey,
    /// The key wrapped under the passphrase: a one-line JSON text for
    /// [`CofferClient::import_geography_key`].
    pub wrapped: Token,
}

impl fmt::Debug for ExportedGeographyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportedGeographyKey")
            .field("key", &self.key)
            .field("wrapped", &self.wrapped)
            .finish()
    }
}

impl CofferClient {
    /// The geography backup keys this cluster holds.
    pub async fn list_geography_keys(&self) -> Result<Vec<GeographyKey>, ClientError> {
        let response = self
            .call(|mut n, m| async move {
                n.operator
                    .list_geography_keys(with_meta(ListGeographyKeysRequest {}, m))
                    .await
            })
            .await?;
        Ok(response.keys)
    }

    /// The active key of this cluster's geography, wrapped under `passphrase`.
    pub async fn export_geography_key(
        &self,
        passphrase: &Token,
    ) -> Result<ExportedGeographyKey, ClientError> {
        let response = self
            .call(|mut n, m| {
                let r = ExportGeographyKeyRequest {
                    passphrase: passphrase.expose().to_owned(),
                };
                async move { n.operator.export_geography_key(with_meta(r, m)).await }
            })
            .await?;
        let key = response.key.ok_or_else(|| ClientError::InvalidResponse {
            message: "the exported geography key has no identity".to_owned(),
        })?;
        Ok(ExportedGeographyKey {
            key,
            wrapped: Token::new(response.wrapped),
        })
    }

    /// Adds a key exported from a cluster of the same geography; with `activate`, this
    /// cluster's new backups are sealed with it too.
    pub async fn import_geography_key(
        &self,
        wrapped: &Token,
        passphrase: &Token,
        activate: bool,
    ) -> Result<GeographyKey, ClientError> {
        self.call(|mut n, m| {
            let r = ImportGeographyKeyRequest {
                wrapped: wrapped.expose().to_owned(),
                passphrase: passphrase.expose().to_owned(),
                activate,
            };
            async move { n.operator.import_geography_key(with_meta(r, m)).await }
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_an_exported_key_hides_the_wrapped_key() {
        let exported = ExportedGeographyKey {
            key: GeographyKey {
                id: "gk-1".to_owned(),
                geography: "europe".to_owned(),
                ..Default::default()
            },
            wrapped: Token::new("{\"wrapped\":\"c2VjcmV0LWtleQ\"}".to_owned()),
        };
        let text = format!("{exported:?}");
        assert!(!text.contains("c2VjcmV0LWtleQ"), "{text}");
        assert!(text.contains("gk-1"), "{text}");
    }
}
