//! Coffer's public gRPC API, generated at build time from `proto/coffer/v1/vault.proto`.
//!
//! These are wire types only: the server converts them to and from its own domain types at the
//! gateway, and persisted records never use them, so the wire format can evolve separately from
//! the storage format. Both the client stubs (used by `coffer-client`) and the server traits
//! (implemented by `coffer-gateway`) are generated. This crate depends on nothing of Coffer's.
//!
//! Invariant: messages that carry a secret value ([`v1::Secret`], [`v1::SetSecretRequest`]) have
//! a hand-written `Debug` that prints the value's length, never its bytes, so that logging a
//! request or response cannot leak a secret.
#![forbid(unsafe_code)]

use std::fmt;

/// Version 1 of the API (`package coffer.v1`).
pub mod v1 {
    // Generated code is not ours to restyle; these lints fire on prost/tonic output.
    #![allow(
        clippy::all,
        clippy::pedantic,
        clippy::unwrap_used,
        clippy::expect_used,
        missing_docs,
        rustdoc::all
    )]
    tonic::include_proto!("coffer.v1");
}

/// Node-to-node RPCs (`package coffer.cluster.v1`): served only on the mutual-TLS cluster
/// listener, never to clients.
pub mod cluster {
    pub mod v1 {
        #![allow(
            clippy::all,
            clippy::pedantic,
            clippy::unwrap_used,
            clippy::expect_used,
            missing_docs,
            rustdoc::all
        )]
        tonic::include_proto!("coffer.cluster.v1");
    }
}

/// Stands in for a secret value in `Debug` output.
struct Redacted(usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0)
    }
}

impl fmt::Debug for v1::Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("vault", &self.vault)
            .field("name", &self.name)
            .field("version", &self.version)
            .field("value", &Redacted(self.value.len()))
            .field("content_type", &self.content_type)
            .field("attributes", &self.attributes)
            .field("tags", &self.tags)
            .field("id", &self.id)
            .finish()
    }
}

impl fmt::Debug for v1::SetSecretRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetSecretRequest")
            .field("vault", &self.vault)
            .field("name", &self.name)
            .field("value", &Redacted(self.value.len()))
            .field("content_type", &self.content_type)
            .field("enabled", &self.enabled)
            .field("not_before", &self.not_before)
            .field("expires", &self.expires)
            .field("tags", &self.tags)
            .finish()
    }
}

// A geography key travels wrapped under a passphrase; neither the passphrase nor the wrapped
// key belongs in a log.
impl fmt::Debug for v1::ExportGeographyKeyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportGeographyKeyRequest")
            .field("passphrase", &Redacted(self.passphrase.len()))
            .finish()
    }
}

impl fmt::Debug for v1::ExportGeographyKeyResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportGeographyKeyResponse")
            .field("key", &self.key)
            .field("wrapped", &Redacted(self.wrapped.len()))
            .finish()
    }
}

impl fmt::Debug for v1::ImportGeographyKeyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportGeographyKeyRequest")
            .field("wrapped", &Redacted(self.wrapped.len()))
            .field("passphrase", &Redacted(self.passphrase.len()))
            .field("activate", &self.activate)
            .finish()
    }
}

impl fmt::Debug for v1::AddCredentialResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddCredentialResponse")
            .field("principal", &self.principal)
            .field("credential_id", &self.credential_id)
            .field("secret", &Redacted(self.secret.len()))
            .finish()
    }
}

impl fmt::Debug for v1::JsonWebKey {
    // Names the key; private parts appear only as whether they are present.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let private = [
            &self.d, &self.dp, &self.dq, &self.qi, &self.p, &self.q, &self.k,
        ]
        .iter()
        .any(|part| !part.is_empty());
        f.debug_struct("JsonWebKey")
            .field("kid", &self.kid)
            .field("kty", &self.kty)
            .field("crv", &self.crv)
            .field("key_ops", &self.key_ops)
            .field("private", &private)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for v1::KeyOperationRequest {
    // The value may be plaintext or a key to wrap.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyOperationRequest")
            .field("vault", &self.vault)
            .field("name", &self.name)
            .field("version", &self.version)
            .field("alg", &self.alg)
            .field("value", &Redacted(self.value.len()))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for v1::KeyOperationResult {
    // The value may be a decrypted plaintext or an unwrapped key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyOperationResult")
            .field("kid", &self.kid)
            .field("value", &Redacted(self.value.len()))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for v1::GetRandomBytesResponse {
    // Random bytes are often used as key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetRandomBytesResponse")
            .field("value", &Redacted(self.value.len()))
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::v1;

    const VALUE: &str = "hunter2-very-secret";

    #[test]
    fn key_messages_debug_redacts_material_and_payloads() {
        let bytes = VALUE.as_bytes().to_vec();
        let import = v1::ImportKeyRequest {
            name: "signing".to_owned(),
            key: Some(v1::JsonWebKey {
                kty: "oct".to_owned(),
                k: bytes.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let op = v1::KeyOperationRequest {
            alg: "A256GCM".to_owned(),
            value: bytes.clone(),
            ..Default::default()
        };
        let result = v1::KeyOperationResult {
            value: bytes.clone(),
            ..Default::default()
        };
        let random = v1::GetRandomBytesResponse { value: bytes };
        let numbers = format!("{:?}", VALUE.as_bytes());
        let numbers = &numbers[1..numbers.len() - 1];
        for text in [
            format!("{import:?}"),
            format!("{op:?}"),
            format!("{result:?}"),
            format!("{random:?}"),
        ] {
            assert!(!text.contains(VALUE) && !text.contains(numbers), "{text}");
        }
        assert!(format!("{import:?}").contains("private: true"));
    }

    #[test]
    fn secret_debug_redacts_value() {
        let secret = v1::Secret {
            name: "db-password".to_owned(),
            value: VALUE.to_owned(),
            ..Default::default()
        };
        let text = format!("{secret:?}");
        assert!(!text.contains(VALUE), "{text}");
        assert!(text.contains("db-password"));
        assert!(text.contains("<redacted 19 bytes>"));
    }

    #[test]
    fn new_client_secret_debug_redacts_it() {
        let response = v1::AddCredentialResponse {
            credential_id: "c1".to_owned(),
            secret: VALUE.to_owned(),
            ..Default::default()
        };
        let text = format!("{response:?}");
        assert!(!text.contains(VALUE), "{text}");
        assert!(text.contains("c1"));
    }

    #[test]
    fn set_secret_request_debug_redacts_value() {
        let request = v1::SetSecretRequest {
            name: "db-password".to_owned(),
            value: VALUE.to_owned(),
            ..Default::default()
        };
        let text = format!("{request:#?}");
        assert!(!text.contains(VALUE), "{text}");
        assert!(text.contains("db-password"));
    }

    #[test]
    fn geography_key_transfer_debug_redacts_passphrase_and_wrapped_key() {
        let export = v1::ExportGeographyKeyRequest {
            passphrase: VALUE.to_owned(),
        };
        let exported = v1::ExportGeographyKeyResponse {
            key: None,
            wrapped: VALUE.to_owned(),
        };
        let import = v1::ImportGeographyKeyRequest {
            wrapped: VALUE.to_owned(),
            passphrase: VALUE.to_owned(),
            activate: true,
        };
        for text in [
            format!("{export:?}"),
            format!("{exported:?}"),
            format!("{import:?}"),
        ] {
            assert!(!text.contains(VALUE), "{text}");
            assert!(text.contains("redacted"), "{text}");
        }
    }
}
