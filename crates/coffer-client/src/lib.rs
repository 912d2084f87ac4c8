//! Rust client library for Coffer's public gRPC API (`coffer.v1`) and its OAuth 2.0 token
//! endpoint.
//!
//! [`CofferClient`] holds one TLS channel to a Coffer node, verified against a single CA that the
//! operator supplies (never the system roots: a Coffer deployment runs its own CA), and adds
//! `authorization: Bearer <token>` to every call. The token is given ([`Credential::Bearer`]),
//! or obtained with a service principal's client secret from the token endpoint
//! ([`Credential::ClientSecret`], [`request_token`]) and renewed before it expires. List
//! methods follow every page, so callers see complete results. Errors are [`ClientError`]; a
//! server-side error carries the Azure Key Vault error code the server put in the status
//! metadata, a token-endpoint refusal its OAuth error code.
//!
//! A vault backup is streamed both ways, never held in memory whole; a streaming call is
//! never resent half-way through (see [`CofferClient::backup_vault_to`] and
//! [`CofferClient::restore_vault_from`]).
//!
//! Access tokens, client credentials and passphrases live in zeroize-on-drop [`Token`]s and no
//! type in this crate prints one in `Debug` or `Display` output. What a key operation returns
//! in the clear (a decrypted or unwrapped value, random bytes) comes back zeroize-on-drop too
//! ([`Decrypted`]). This crate depends only on
//! `coffer-proto` among Coffer's crates (never on server internals), so the client can be
//! built and shipped on its own.
#![forbid(unsafe_code)]

mod auth;
mod cache;
mod client;
mod error;
mod geography;
mod identity;
mod keys;
mod lifecycle;
mod login;
mod oauth;
mod options;
mod pem;
mod tls;

pub use client::{CofferClient, DEFAULT_THROTTLE_RETRIES};
pub use coffer_proto::v1 as proto;
pub use error::ClientError;
pub use geography::ExportedGeographyKey;
pub use identity::AddedCredential;
pub use keys::Decrypted;
pub use login::{ENV_CONFIG_DIR, SavedLogin};
pub use oauth::{
    AccessToken, CLIENT_ASSERTION_TYPE, ClientAuth, fetch_https, request_token, token_endpoint,
};
pub use options::{
    ConnectOptions, Credential, ENV_ADDR, ENV_CA_CERT, ENV_CLIENT_ID, ENV_CLIENT_SECRET,
    ENV_SOURCE_ADDRESS, ENV_TENANT, ENV_TOKEN, Token,
};
pub use pem::pkcs8_private_key_from_pem;
pub use tls::split_addrs;
