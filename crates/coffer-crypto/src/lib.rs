//! Coffer's cryptography: the key hierarchy (root key → per-vault data key → sealed value),
//! secret-bearing byte types, credential hashing, the development PKI, and the keys of the
//! Key Vault keys API (RSA, EC and AES material and their operations, in [`keys`]).
//!
//! Invariants: every secret-bearing type zeroizes on drop, is never `Copy`, and has a `Debug`
//! that prints no bytes. Sealed values are bound by AES-GCM's additional data to the vault,
//! object kind, name and version they were sealed for, so a ciphertext moved to another place
//! in the store does not unseal. All primitives come from aws-lc-rs (the provider rustls uses).
//! This crate does no network I/O; it touches the file system only to load and create key
//! files.

#![forbid(unsafe_code)]

pub mod backup;
mod client_secret;
mod error;
pub mod jwt;
mod keyfile;
pub mod keys;
pub mod pki;
mod random;
mod root;
mod seal;
mod secret;
mod token;

pub use client_secret::{ClientSecretHash, generate_client_secret};
pub use error::CryptoError;
pub use keyfile::{create_private_file, read_private_file};
pub use keys::{Encrypted, KeyMaterial, KeySpec, LoadedKey};
pub use random::{fill_random, new_version};
pub use root::RootKey;
pub use seal::{DataKey, SealContext};
pub use secret::{SecretBytes, SecretString};
pub use token::{TOKEN_PREFIX, TokenHash, generate_token};
