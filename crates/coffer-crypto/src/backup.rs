//! Geography backup keys and the sealed backup format.
//!
//! Backups never leave their geography, and that is enforced by cryptography rather than by a
//! label a server is trusted to check: every backup blob is sealed with the backup key of the
//! geography it was made in, and only clusters of that geography hold the key (one cluster
//! generates it; the others receive it through [`GeographyKey::export`] and
//! [`GeographyKey::import`] under a passphrase, so it never travels in plaintext). A cluster
//! anywhere else cannot open the blob, whatever its header claims.
//!
//! # Geography keys
//!
//! A [`GeographyKey`] is a 256-bit AES-GCM key. Its id is the lowercase hex of the first 16
//! bytes of `SHA-256("coffer.geography-key.id.v1\0" || key)`: every cluster holding the key
//! names it alike, and the id reveals nothing usable about the key. At rest the key is sealed
//! by the root key for the purpose `geography-key/<geography>`. For transport it is exported
//! as one line of JSON:
//!
//! ```text
//! {"format":"coffer.geography-key.v1","geography":"us","id":"<32 hex>","kdf":"pbkdf2-sha256",
//!  "iterations":600000,"salt":"<b64url>","sealed":"<b64url of nonce || ciphertext || tag>"}
//! ```
//!
//! PBKDF2-HMAC-SHA256 over the passphrase (its exact UTF-8 bytes) and the 16-byte salt gives
//! the AES-256-GCM wrapping key; the additional data binds every other field (format, kdf,
//! geography, id, iteration count, salt), so none can be altered. The iteration count is
//! stored so that it can be raised later; import accepts 100,000 to 10,000,000.
//!
//! # Backup blobs
//!
//! ```text
//! blob   = "CFBK" || 0x01 || u32be(header length) || header JSON || frame*
//! frame  = u32be(length of what follows) || nonce (12) || ciphertext || tag (16)
//! aad(i) = "coffer.backup.v1\0" || header bytes ("CFBK" .. end of the JSON)
//!          || u64be(i) || (0x01 if frame i is the last, else 0x00)
//! ```
//!
//! The header (kind, geography, key id, creation time) is readable without the key, so a
//! server can say "this backup belongs to geography X" before it tries to decrypt, yet it is
//! authenticated: its exact bytes are in every frame's additional data. The header JSON also
//! carries a random `blob_id`, so no two blobs share header bytes even when they are made in
//! the same second for the same kind and key; a frame therefore opens only in its own blob.
//! The frame index makes reordering, dropping or duplicating frames fail to authenticate.
//!
//! The last-frame flag is not stored in clear: it exists only in the additional data, and the
//! reader tries `0` and then `1` (at most one can authenticate, as they are different
//! additional data; the cost is one failed decryption of the final frame). A reader that
//! reaches the end of its input before opening a frame marked last must report truncation
//! ([`FrameOpener::finish`]). A one-object backup is a blob of exactly one frame, marked last.
//!
//! Every length is checked before anything is allocated: headers are at most
//! [`MAX_HEADER_LEN`] bytes and frames at most [`MAX_FRAME_LEN`].
//!
//! Nonces are random. NIST SP 800-38D bounds a key at 2^32 random-nonce encryptions, so a
//! geography key must seal fewer frames than that over its life: writers pack many objects into
//! each frame of a streamed backup, and keys are rotated long before the bound.

use std::fmt;
use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::pbkdf2;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::seal::KEY_LEN;
use crate::{CryptoError, RootKey, SecretBytes, SecretString, fill_random};

const TAG_LEN: usize = 16;

const ID_DOMAIN: &[u8] = b"coffer.geography-key.id.v1\0";
/// Bytes of the SHA-256 that make up a key id (32 hex digits).
const ID_BYTES: usize = 16;
const ID_HEX_LEN: usize = 2 * ID_BYTES;
const MAX_GEOGRAPHY_LEN: usize = 64;
const MAX_KIND_LEN: usize = 32;

/// The `format` of an exported geography key.
pub const EXPORT_FORMAT: &str = "coffer.geography-key.v1";
/// The `kdf` of an exported geography key.
pub const EXPORT_KDF: &str = "pbkdf2-sha256";
/// PBKDF2 iterations used by [`GeographyKey::export`] (OWASP's 2023 advice for HMAC-SHA256).
pub const EXPORT_ITERATIONS: u32 = 600_000;
/// Iteration counts [`GeographyKey::import`] accepts: below is too weak, above is a way to make
/// the importing node spin.
const IMPORT_ITERATIONS: RangeInclusive<u32> = 100_000..=10_000_000;
/// The shortest passphrase, in characters, an export is made or opened with.
pub const MIN_PASSPHRASE_CHARS: usize = 16;
const SALT_LEN: usize = 16;
/// Far more than any export needs; bounds the JSON parsed from an untrusted paste.
const MAX_EXPORT_LEN: usize = 4096;

/// The first bytes of every backup blob.
pub const BACKUP_MAGIC: [u8; 4] = *b"CFBK";
const BACKUP_FORMAT_V1: u8 = 1;
/// Magic, format byte and header length.
const PREAMBLE_LEN: usize = 4 + 1 + 4;
/// The longest header JSON a blob may carry.
pub const MAX_HEADER_LEN: usize = 64 * 1024;
/// The longest a frame may be after its length prefix (nonce, ciphertext and tag).
pub const MAX_FRAME_LEN: usize = 64 * 1024 * 1024;
/// The largest payload one frame carries.
pub const MAX_FRAME_PAYLOAD: usize = MAX_FRAME_LEN - NONCE_LEN - TAG_LEN;
const FRAME_PREFIX_LEN: usize = 4;
const FRAME_AAD_DOMAIN: &[u8] = b"coffer.backup.v1\0";
const TRUNCATED_STREAM: &str = "the backup is truncated: it ends before its last frame";

fn backup_error(message: impl Into<String>) -> CryptoError {
    CryptoError::Backup(message.into())
}

/// A geography's backup key.
pub struct GeographyKey {
    geography: String,
    id: String,
    /// Needed to seal the key under the root key and to export it. On the heap, so that moving
    /// the struct leaves no copy behind; wiped on drop.
    bytes: Zeroizing<Vec<u8>>,
    /// Shared with the sealers and openers made from this key.
    aead: Arc<LessSafeKey>,
}

impl GeographyKey {
    /// Generates a new key for `geography` (lowercase letters, digits and hyphens).
    pub fn generate(geography: &str) -> Result<Self, CryptoError> {
        check_label(geography, "geography", MAX_GEOGRAPHY_LEN)?;
        let mut bytes = Zeroizing::new(vec![0u8; KEY_LEN]);
        fill_random(&mut bytes)?;
        Self::from_bytes(geography, bytes).map_err(|_| CryptoError::Seal)
    }

    /// Fails only on a wrong length (callers check it) or an aws-lc failure.
    fn from_bytes(geography: &str, bytes: Zeroizing<Vec<u8>>) -> Result<Self, CryptoError> {
        if bytes.len() != KEY_LEN {
            return Err(CryptoError::Unseal);
        }
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| CryptoError::Unseal)?;
        Ok(Self {
            geography: geography.to_owned(),
            id: derive_id(&bytes),
            bytes,
            aead: Arc::new(LessSafeKey::new(unbound)),
        })
    }

    /// The key's id, derived from the key itself (32 lowercase hex digits).
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn geography(&self) -> &str {
        &self.geography
    }

    /// The key sealed by the root key: the form a cluster stores.
    pub fn seal_with_root(&self, root: &RootKey) -> Result<Vec<u8>, CryptoError> {
        root.seal_internal(&root_purpose(&self.geography), &self.bytes)
    }

    /// Opens what [`GeographyKey::seal_with_root`] sealed for the same geography.
    pub fn unseal_with_root(
        root: &RootKey,
        geography: &str,
        sealed: &[u8],
    ) -> Result<Self, CryptoError> {
        check_label(geography, "geography", MAX_GEOGRAPHY_LEN)?;
        let bytes = root.unseal_internal(&root_purpose(geography), sealed)?;
        Self::from_bytes(geography, Zeroizing::new(bytes.expose().to_vec()))
    }

    /// Wraps the key under `passphrase` for carrying to another cluster of the geography.
    pub fn export(&self, passphrase: &SecretString) -> Result<String, CryptoError> {
        self.export_with_iterations(passphrase, EXPORT_ITERATIONS)
    }

    fn export_with_iterations(
        &self,
        passphrase: &SecretString,
        iterations: u32,
    ) -> Result<String, CryptoError> {
        check_passphrase(passphrase)?;
        let mut salt = [0u8; SALT_LEN];
        fill_random(&mut salt)?;
        let wrapping = wrapping_key(passphrase, iterations, &salt)?;
        let aad = export_aad(&self.geography, &self.id, iterations, &salt);
        let mut sealed = Vec::new();
        seal_raw(&wrapping, &aad, &self.bytes, &mut sealed)?;
        let exported = ExportedKey {
            format: EXPORT_FORMAT.to_owned(),
            geography: self.geography.clone(),
            id: self.id.clone(),
            kdf: EXPORT_KDF.to_owned(),
            iterations,
            salt: URL_SAFE_NO_PAD.encode(salt),
            sealed: URL_SAFE_NO_PAD.encode(&sealed),
        };
        serde_json::to_string(&exported).map_err(|_| CryptoError::Seal)
    }

    /// Unwraps a key exported by [`GeographyKey::export`].
    pub fn import(wrapped: &str, passphrase: &SecretString) -> Result<Self, CryptoError> {
        Self::import_within(wrapped, passphrase, IMPORT_ITERATIONS)
    }

    fn import_within(
        wrapped: &str,
        passphrase: &SecretString,
        allowed_iterations: RangeInclusive<u32>,
    ) -> Result<Self, CryptoError> {
        check_passphrase(passphrase)?;
        if wrapped.len() > MAX_EXPORT_LEN {
            return Err(backup_error(
                "the text is too long to be an exported geography key",
            ));
        }
        // serde's messages can quote the input, so only the position is passed on.
        let doc: ExportedKey = serde_json::from_str(wrapped).map_err(|e| {
            backup_error(format!(
                "not an exported geography key: malformed at line {}, column {}",
                e.line(),
                e.column()
            ))
        })?;
        if doc.format != EXPORT_FORMAT {
            return Err(backup_error(format!(
                "unknown exported key format; this version reads {EXPORT_FORMAT}"
            )));
        }
        if doc.kdf != EXPORT_KDF {
            return Err(backup_error(format!(
                "unknown key derivation; this version reads {EXPORT_KDF}"
            )));
        }
        if !allowed_iterations.contains(&doc.iterations) {
            return Err(backup_error(format!(
                "{} PBKDF2 iterations is outside the accepted {} to {}",
                doc.iterations,
                allowed_iterations.start(),
                allowed_iterations.end()
            )));
        }
        check_label(&doc.geography, "geography", MAX_GEOGRAPHY_LEN)?;
        check_id(&doc.id, "key id")?;
        let salt = decode_b64(&doc.salt, "salt", SALT_LEN)?;
        let sealed = decode_b64(&doc.sealed, "sealed key", NONCE_LEN + KEY_LEN + TAG_LEN)?;
        let wrapping = wrapping_key(passphrase, doc.iterations, &salt)?;
        let aad = export_aad(&doc.geography, &doc.id, doc.iterations, &salt);
        let mut bytes = Zeroizing::new(Vec::new());
        if !open_raw(&wrapping, &aad, &sealed, &mut bytes) {
            return Err(backup_error(
                "the passphrase is wrong or the exported key was altered",
            ));
        }
        let key = Self::from_bytes(&doc.geography, bytes)?;
        if !bool::from(key.id.as_bytes().ct_eq(doc.id.as_bytes())) {
            return Err(backup_error(
                "the exported key's id does not match the key it carries",
            ));
        }
        Ok(key)
    }

    /// A header for a backup of `kind` ("secret", "vault", …) sealed with this key.
    pub fn header(&self, kind: &str, created: i64) -> BackupHeader {
        BackupHeader {
            kind: kind.to_owned(),
            geography: self.geography.clone(),
            key_id: self.id.clone(),
            created,
        }
    }

    /// A writer of frames after `header_bytes` (from [`encode_header`]). If the header does
    /// not parse or names another key, every [`FrameSealer::seal`] fails and says why.
    pub fn sealer(&self, header_bytes: Vec<u8>) -> FrameSealer {
        FrameSealer {
            stream: FrameStream::new(self, header_bytes),
        }
    }

    /// A reader of the frames that follow `header_bytes` (the bytes [`parse_header`]
    /// consumed). If the header does not parse or names another key, every
    /// [`FrameOpener::open`] fails and says why.
    pub fn opener(&self, header_bytes: Vec<u8>) -> FrameOpener {
        FrameOpener {
            stream: FrameStream::new(self, header_bytes),
            failed: false,
        }
    }

    /// Seals a one-object backup: the header and a single frame, marked last.
    pub fn seal_blob(&self, header: &BackupHeader, payload: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut blob = encode_header(header)?;
        let frame = self.sealer(blob.clone()).seal(payload, true)?;
        blob.extend_from_slice(&frame);
        Ok(blob)
    }
}

impl fmt::Debug for GeographyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeographyKey")
            .field("geography", &self.geography)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn root_purpose(geography: &str) -> String {
    format!("geography-key/{geography}")
}

fn derive_id(key: &[u8]) -> String {
    let mut input = Zeroizing::new(Vec::with_capacity(ID_DOMAIN.len() + key.len()));
    input.extend_from_slice(ID_DOMAIN);
    input.extend_from_slice(key);
    let hash = digest(&SHA256, &input);
    // A SHA-256 is 32 bytes, so taking its first 16 cannot fail; the fallback is unreachable.
    hex(hash.as_ref().get(..ID_BYTES).unwrap_or_default())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Geographies and kinds: 1 to `max` lowercase letters, digits and hyphens. This keeps them
/// free of NUL (they are NUL-separated in additional data) and safe to quote in messages.
fn check_label(value: &str, what: &str, max: usize) -> Result<(), CryptoError> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(backup_error(format!(
            "the {what} must be 1 to {max} lowercase letters, digits or hyphens"
        )))
    }
}

fn check_id(value: &str, what: &str) -> Result<(), CryptoError> {
    let ok = value.len() == ID_HEX_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(backup_error(format!(
            "the {what} must be {ID_HEX_LEN} lowercase hexadecimal digits"
        )))
    }
}

fn check_passphrase(passphrase: &SecretString) -> Result<(), CryptoError> {
    if passphrase.expose().chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(backup_error(format!(
            "the passphrase must be at least {MIN_PASSPHRASE_CHARS} characters long"
        )));
    }
    Ok(())
}

fn decode_b64(text: &str, what: &str, len: usize) -> Result<Vec<u8>, CryptoError> {
    // The engine refuses padding and non-zero trailing bits, so each value has one spelling.
    match URL_SAFE_NO_PAD.decode(text) {
        Ok(bytes) if bytes.len() == len => Ok(bytes),
        _ => Err(backup_error(format!(
            "the {what} must be {len} bytes of unpadded base64url"
        ))),
    }
}

/// The serialized form of an exported key; field order is the output order.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportedKey {
    format: String,
    geography: String,
    id: String,
    kdf: String,
    iterations: u32,
    salt: String,
    sealed: String,
}

fn wrapping_key(
    passphrase: &SecretString,
    iterations: u32,
    salt: &[u8],
) -> Result<LessSafeKey, CryptoError> {
    let iterations = NonZeroU32::new(iterations)
        .ok_or_else(|| backup_error("the PBKDF2 iteration count must not be zero"))?;
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    // `derive` panics only if the output is longer than 2^32 - 1 hashes (it is one) or if
    // aws-lc's PKCS5_PBKDF2_HMAC fails, which with SHA-256 it does only for a zero iteration
    // count (refused above): its HMAC state lives on the stack and allocates nothing.
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        passphrase.expose().as_bytes(),
        &mut *out,
    );
    let unbound = UnboundKey::new(&AES_256_GCM, &*out).map_err(|_| CryptoError::Seal)?;
    Ok(LessSafeKey::new(unbound))
}

fn export_aad(geography: &str, id: &str, iterations: u32, salt: &[u8]) -> Vec<u8> {
    // Text fields are NUL-terminated (validated to hold no NUL), then the fixed-size ones.
    let mut aad = Vec::with_capacity(96);
    for part in [EXPORT_FORMAT, EXPORT_KDF, geography, id] {
        aad.extend_from_slice(part.as_bytes());
        aad.push(0);
    }
    aad.extend_from_slice(&iterations.to_be_bytes());
    aad.extend_from_slice(salt);
    aad
}

/// Appends `nonce || ciphertext || tag` to `out`. The plaintext is copied into `out` and
/// encrypted there, into capacity reserved up front, so no plaintext is left in freed memory.
fn seal_raw(
    key: &LessSafeKey,
    aad: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    out.reserve(NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    let start = out.len();
    out.extend_from_slice(plaintext);
    let body = out.get_mut(start..).unwrap_or_default();
    match key.seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), body)
    {
        Ok(tag) => {
            out.extend_from_slice(tag.as_ref());
            Ok(())
        }
        Err(_) => {
            zeroize::Zeroize::zeroize(body);
            Err(CryptoError::Seal)
        }
    }
}

/// Opens `nonce || ciphertext || tag` into `plaintext` (whatever it held is replaced); false
/// when it does not authenticate.
fn open_raw(
    key: &LessSafeKey,
    aad: &[u8],
    sealed: &[u8],
    plaintext: &mut Zeroizing<Vec<u8>>,
) -> bool {
    let Some((nonce, body)) = sealed.split_first_chunk::<NONCE_LEN>() else {
        return false;
    };
    if body.len() < TAG_LEN {
        return false;
    }
    plaintext.clear();
    plaintext.extend_from_slice(body);
    let len = match key.open_in_place(
        Nonce::assume_unique_for_key(*nonce),
        Aad::from(aad),
        plaintext.as_mut_slice(),
    ) {
        Ok(opened) => opened.len(),
        Err(_) => return false,
    };
    plaintext.truncate(len);
    true
}

/// What a backup holds and whose key sealed it; readable without the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupHeader {
    /// "secret" or "vault" (later "key"): 1 to 32 lowercase letters, digits or hyphens.
    pub kind: String,
    pub geography: String,
    /// The [`GeographyKey::id`] of the key the frames are sealed with.
    pub key_id: String,
    /// When the backup was made (Unix seconds).
    pub created: i64,
}

impl BackupHeader {
    fn validate(&self) -> Result<(), CryptoError> {
        check_label(&self.kind, "backup kind", MAX_KIND_LEN)?;
        check_label(&self.geography, "geography", MAX_GEOGRAPHY_LEN)?;
        check_id(&self.key_id, "key id")
    }
}

/// The header as written: [`BackupHeader`] plus a random id that makes every blob's header
/// bytes, and so every frame's additional data, unique.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireHeader {
    kind: String,
    geography: String,
    key_id: String,
    created: i64,
    blob_id: String,
}

/// The start of a blob: magic, format byte, header length and header JSON. Each call draws a
/// new blob id, so encode once and give the same bytes to the sealer and the output.
pub fn encode_header(header: &BackupHeader) -> Result<Vec<u8>, CryptoError> {
    header.validate()?;
    let mut blob_id = [0u8; ID_BYTES];
    fill_random(&mut blob_id)?;
    let wire = WireHeader {
        kind: header.kind.clone(),
        geography: header.geography.clone(),
        key_id: header.key_id.clone(),
        created: header.created,
        blob_id: hex(&blob_id),
    };
    let json = serde_json::to_vec(&wire).map_err(|_| backup_error("cannot encode the header"))?;
    let len = u32::try_from(json.len())
        .ok()
        .filter(|_| json.len() <= MAX_HEADER_LEN)
        .ok_or_else(|| backup_error("the backup header is too long"))?;
    let mut out = Vec::with_capacity(PREAMBLE_LEN + json.len());
    out.extend_from_slice(&BACKUP_MAGIC);
    out.push(BACKUP_FORMAT_V1);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// Reads the header at the start of `bytes` without any key. `Ok(None)` means more bytes are
/// needed; `Ok(Some((header, n)))` means the header is `bytes[..n]` and frames follow.
pub fn parse_header(bytes: &[u8]) -> Result<Option<(BackupHeader, usize)>, CryptoError> {
    // Refuse a wrong magic as soon as its first byte arrives, not after four.
    let seen = bytes.len().min(BACKUP_MAGIC.len());
    if bytes.get(..seen) != BACKUP_MAGIC.get(..seen) {
        return Err(backup_error("not a Coffer backup"));
    }
    let Some(&format) = bytes.get(BACKUP_MAGIC.len()) else {
        return Ok(None);
    };
    if format != BACKUP_FORMAT_V1 {
        return Err(backup_error(format!(
            "not a Coffer backup this version reads (format {format}, expected {BACKUP_FORMAT_V1})"
        )));
    }
    let Some(len) = bytes.get(5..PREAMBLE_LEN) else {
        return Ok(None);
    };
    let mut len_be = [0u8; 4];
    len_be.copy_from_slice(len);
    let len = u32::from_be_bytes(len_be);
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= MAX_HEADER_LEN)
        .ok_or_else(|| {
            backup_error(format!(
                "the backup header claims {len} bytes; at most {MAX_HEADER_LEN} are allowed"
            ))
        })?;
    let end = PREAMBLE_LEN + len; // At most 9 + 64 KiB: no overflow.
    let Some(json) = bytes.get(PREAMBLE_LEN..end) else {
        return Ok(None);
    };
    let wire: WireHeader = serde_json::from_slice(json).map_err(|e| {
        backup_error(format!(
            "the backup header is malformed at line {}, column {}",
            e.line(),
            e.column()
        ))
    })?;
    check_id(&wire.blob_id, "blob id")?;
    let header = BackupHeader {
        kind: wire.kind,
        geography: wire.geography,
        key_id: wire.key_id,
        created: wire.created,
    };
    header.validate()?;
    Ok(Some((header, end)))
}

/// What sealing and opening share: the key, the additional-data prefix and the position.
struct FrameStream {
    key: Arc<LessSafeKey>,
    /// `FRAME_AAD_DOMAIN || header bytes`, then the current frame's index and flag.
    aad: Vec<u8>,
    prefix_len: usize,
    index: u64,
    finished: bool,
    /// Why the header bytes cannot be used with this key, if they cannot.
    refused: Option<String>,
}

impl FrameStream {
    fn new(key: &GeographyKey, header_bytes: Vec<u8>) -> Self {
        let refused = match parse_header(&header_bytes) {
            Ok(Some((header, used))) if used == header_bytes.len() => {
                (header.key_id != key.id || header.geography != key.geography).then(|| {
                    format!(
                        "the backup belongs to geography {} (key {}), not to this key of \
                         geography {} (key {})",
                        header.geography, header.key_id, key.geography, key.id
                    )
                })
            }
            Ok(Some(_)) => Some("the header bytes are followed by other data".to_owned()),
            Ok(None) => Some("the backup header is incomplete".to_owned()),
            Err(CryptoError::Backup(why)) => Some(why),
            Err(e) => Some(e.to_string()),
        };
        let mut aad = Vec::with_capacity(FRAME_AAD_DOMAIN.len() + header_bytes.len() + 9);
        aad.extend_from_slice(FRAME_AAD_DOMAIN);
        aad.extend_from_slice(&header_bytes);
        Self {
            key: Arc::clone(&key.aead),
            prefix_len: aad.len(),
            aad,
            index: 0,
            finished: false,
            refused,
        }
    }

    fn check_usable(&self) -> Result<(), CryptoError> {
        match &self.refused {
            Some(why) => Err(backup_error(why.clone())),
            None => Ok(()),
        }
    }

    /// Sets `aad` to the additional data of the current frame.
    fn set_frame_aad(&mut self, last: bool) {
        self.aad.truncate(self.prefix_len);
        self.aad.extend_from_slice(&self.index.to_be_bytes());
        self.aad.push(u8::from(last));
    }

    fn next_index(&self) -> Result<u64, CryptoError> {
        self.index
            .checked_add(1)
            .ok_or_else(|| backup_error("the backup has too many frames"))
    }
}

/// Seals the frames of one blob, in order.
pub struct FrameSealer {
    stream: FrameStream,
}

impl FrameSealer {
    /// Seals `payload` as the next frame and returns it with its length prefix. After a frame
    /// with `last` set, nothing more can be sealed.
    pub fn seal(&mut self, payload: &[u8], last: bool) -> Result<Vec<u8>, CryptoError> {
        self.stream.check_usable()?;
        if self.stream.finished {
            return Err(backup_error("the backup already ended with its last frame"));
        }
        if payload.len() > MAX_FRAME_PAYLOAD {
            return Err(backup_error(format!(
                "a frame carries at most {MAX_FRAME_PAYLOAD} bytes"
            )));
        }
        let next = self.stream.next_index()?;
        let body_len = NONCE_LEN + payload.len() + TAG_LEN;
        // `body_len` is at most MAX_FRAME_LEN, which fits a u32.
        let prefix = u32::try_from(body_len).map_err(|_| CryptoError::Seal)?;
        let mut out = Vec::with_capacity(FRAME_PREFIX_LEN + body_len);
        out.extend_from_slice(&prefix.to_be_bytes());
        self.stream.set_frame_aad(last);
        seal_raw(&self.stream.key, &self.stream.aad, payload, &mut out)?;
        self.stream.index = next;
        self.stream.finished = last;
        Ok(out)
    }

    /// Whether the last frame has been sealed.
    pub fn finished(&self) -> bool {
        self.stream.finished
    }
}

impl fmt::Debug for FrameSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameSealer")
            .field("frames", &self.stream.index)
            .field("finished", &self.stream.finished)
            .finish_non_exhaustive()
    }
}

/// Opens the frames of one blob, in order. After any failure the opener refuses everything:
/// a damaged stream is not resumed.
pub struct FrameOpener {
    stream: FrameStream,
    failed: bool,
}

impl FrameOpener {
    /// The size of the next frame, length prefix included, if `buf` holds all of it; `None`
    /// if more bytes are needed. Fails on a length no frame can have, before anything is
    /// allocated for it.
    pub fn next_frame_len(buf: &[u8]) -> Result<Option<usize>, CryptoError> {
        let Some(prefix) = buf.first_chunk::<FRAME_PREFIX_LEN>() else {
            return Ok(None);
        };
        let total = FRAME_PREFIX_LEN + frame_body_len(*prefix)?; // At most 64 MiB + 4.
        Ok((buf.len() >= total).then_some(total))
    }

    /// Opens the next frame (length prefix included) and says whether it was the last.
    pub fn open(&mut self, frame: &[u8]) -> Result<(SecretBytes, bool), CryptoError> {
        self.stream.check_usable()?;
        if self.failed {
            return Err(backup_error(
                "an earlier frame of this backup failed to open; the stream cannot continue",
            ));
        }
        if self.stream.finished {
            return Err(backup_error("the backup holds data after its last frame"));
        }
        let opened = self.open_next(frame);
        self.failed = opened.is_err();
        opened
    }

    fn open_next(&mut self, frame: &[u8]) -> Result<(SecretBytes, bool), CryptoError> {
        let Some((prefix, body)) = frame.split_first_chunk::<FRAME_PREFIX_LEN>() else {
            return Err(backup_error("a frame is shorter than its length prefix"));
        };
        if frame_body_len(*prefix)? != body.len() {
            return Err(backup_error(
                "a frame's length prefix does not match its size",
            ));
        }
        let next = self.stream.next_index()?;
        let mut plaintext = Zeroizing::new(Vec::with_capacity(body.len()));
        // The flag lives only in the additional data. Most frames are not the last, so that is
        // tried first; the two additional data differ, so at most one authenticates.
        for last in [false, true] {
            self.stream.set_frame_aad(last);
            if open_raw(&self.stream.key, &self.stream.aad, body, &mut plaintext) {
                self.stream.index = next;
                self.stream.finished = last;
                return Ok((SecretBytes::new(std::mem::take(&mut *plaintext)), last));
            }
        }
        Err(CryptoError::Unseal)
    }

    /// Whether the frame marked last has been opened.
    pub fn finished(&self) -> bool {
        self.stream.finished
    }

    /// To call at the end of the input: fails unless the frame marked last was opened, so a
    /// truncated stream is never taken for a whole one.
    pub fn finish(&self) -> Result<(), CryptoError> {
        if self.stream.finished {
            Ok(())
        } else {
            Err(backup_error(TRUNCATED_STREAM))
        }
    }
}

impl fmt::Debug for FrameOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameOpener")
            .field("frames", &self.stream.index)
            .field("finished", &self.stream.finished)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

fn frame_body_len(prefix: [u8; FRAME_PREFIX_LEN]) -> Result<usize, CryptoError> {
    let len = u32::from_be_bytes(prefix);
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= MAX_FRAME_LEN)
        .ok_or_else(|| {
            backup_error(format!(
                "a frame claims {len} bytes; frames are at most {MAX_FRAME_LEN}"
            ))
        })?;
    if len < NONCE_LEN + TAG_LEN {
        return Err(backup_error("a frame is too short to hold sealed data"));
    }
    Ok(len)
}

/// Opens a one-object backup made by [`GeographyKey::seal_blob`]: exactly one frame, marked
/// last, and nothing after it.
pub fn open_blob(
    key: &GeographyKey,
    blob: &[u8],
) -> Result<(BackupHeader, SecretBytes), CryptoError> {
    let truncated = || backup_error("the backup is truncated");
    let (header, header_len) = parse_header(blob)?.ok_or_else(truncated)?;
    let (header_bytes, rest) = blob.split_at_checked(header_len).ok_or_else(truncated)?;
    let mut opener = key.opener(header_bytes.to_vec());
    opener.stream.check_usable()?;
    let frame_len = FrameOpener::next_frame_len(rest)?.ok_or_else(truncated)?;
    let (frame, trailing) = rest.split_at_checked(frame_len).ok_or_else(truncated)?;
    let (payload, last) = opener.open(frame)?;
    match (last, trailing.is_empty()) {
        (true, true) => Ok((header, payload)),
        (true, false) => Err(backup_error("the backup holds data after its last frame")),
        (false, true) => Err(backup_error(TRUNCATED_STREAM)),
        (false, false) => Err(backup_error(
            "the backup holds more than one frame; it must be read as a stream",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASS: &str = "correct horse battery staple";
    /// Cheap enough to run thousands of times; `import_within` accepts it in tests only.
    const TEST_ITERATIONS: u32 = 1_000;
    const TEST_RANGE: RangeInclusive<u32> = TEST_ITERATIONS..=10_000_000;

    fn pass() -> SecretString {
        SecretString::new(PASS.into())
    }

    fn key_from(geography: &str, bytes: &[u8]) -> GeographyKey {
        GeographyKey::from_bytes(geography, Zeroizing::new(bytes.to_vec())).unwrap()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Seals `payloads` as one stream; the last is marked last.
    fn write_stream(
        key: &GeographyKey,
        header: &BackupHeader,
        payloads: &[&[u8]],
    ) -> (Vec<u8>, Vec<Vec<u8>>) {
        let header_bytes = encode_header(header).unwrap();
        let mut sealer = key.sealer(header_bytes.clone());
        let frames = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| sealer.seal(p, i + 1 == payloads.len()).unwrap())
            .collect();
        assert!(sealer.finished());
        (header_bytes, frames)
    }

    /// Reads a whole stream as a server would: header first, then frame by frame, then a
    /// truncation check at the end of the input.
    fn read_stream(
        key: &GeographyKey,
        input: &[u8],
    ) -> Result<(BackupHeader, Vec<Vec<u8>>), CryptoError> {
        let (header, used) = parse_header(input)?.ok_or(CryptoError::Unseal)?;
        let mut opener = key.opener(input[..used].to_vec());
        let mut rest = &input[used..];
        let mut payloads = Vec::new();
        while let Some(n) = FrameOpener::next_frame_len(rest)? {
            let (payload, _) = opener.open(&rest[..n])?;
            payloads.push(payload.expose().to_vec());
            rest = &rest[n..];
        }
        if !rest.is_empty() && opener.finished() {
            return Err(backup_error("trailing bytes"));
        }
        opener.finish()?;
        Ok((header, payloads))
    }

    fn join(header_bytes: &[u8], frames: &[&Vec<u8>]) -> Vec<u8> {
        let mut out = header_bytes.to_vec();
        for f in frames {
            out.extend_from_slice(f);
        }
        out
    }

    fn message(e: CryptoError) -> String {
        e.to_string()
    }

    #[test]
    fn id_is_derived_from_the_key() {
        // Known answer from Python's hashlib:
        // sha256(b"coffer.geography-key.id.v1\0" + bytes([7] * 32)).hexdigest()[:32]
        assert_eq!(
            key_from("us", &[7u8; 32]).id(),
            "94775bc6c074d6e6cf7f3fb007c7f78d"
        );
        let a = GeographyKey::generate("us").unwrap();
        let b = GeographyKey::generate("us").unwrap();
        assert!(check_id(a.id(), "id").is_ok());
        assert_ne!(a.id(), b.id());
        assert_eq!(a.geography(), "us");
        assert!(GeographyKey::generate("").is_err());
        assert!(GeographyKey::generate("US").is_err());
        assert!(GeographyKey::generate("us\0").is_err());
    }

    #[test]
    fn root_sealing_round_trips_and_is_bound_to_the_geography() {
        let dir = tempfile::tempdir().unwrap();
        let root = RootKey::generate(&dir.path().join("root.key")).unwrap();
        let key = GeographyKey::generate("europe").unwrap();
        let sealed = key.seal_with_root(&root).unwrap();
        assert!(!sealed.windows(KEY_LEN).any(|w| w == key.bytes.as_slice()));
        let back = GeographyKey::unseal_with_root(&root, "europe", &sealed).unwrap();
        assert_eq!(back.id(), key.id());
        assert_eq!(back.geography(), "europe");
        assert!(GeographyKey::unseal_with_root(&root, "us", &sealed).is_err());
        let blob = key.seal_blob(&key.header("secret", 1), b"v").unwrap();
        assert_eq!(open_blob(&back, &blob).unwrap().1.expose(), b"v");
    }

    #[test]
    fn export_with_the_real_iteration_count_imports() {
        let key = GeographyKey::generate("us").unwrap();
        let text = key.export(&pass()).unwrap();
        assert!(!text.contains('\n'));
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["format"], "coffer.geography-key.v1");
        assert_eq!(doc["kdf"], "pbkdf2-sha256");
        assert_eq!(doc["geography"], "us");
        assert_eq!(doc["id"], key.id());
        assert_eq!(doc["iterations"], 600_000);
        assert!(!text.contains(&hex(&key.bytes)));
        assert!(!text.contains(&URL_SAFE_NO_PAD.encode(&*key.bytes)));
        let back = GeographyKey::import(&text, &pass()).unwrap();
        assert_eq!(back.id(), key.id());
        assert_eq!(back.geography(), "us");
        assert_eq!(*back.bytes, *key.bytes);
    }

    #[test]
    fn wrong_or_short_passphrases_are_refused() {
        let key = GeographyKey::generate("us").unwrap();
        let text = key
            .export_with_iterations(&pass(), TEST_ITERATIONS)
            .unwrap();
        let wrong = SecretString::new("correct horse battery stapler".into());
        let e = message(GeographyKey::import_within(&text, &wrong, TEST_RANGE).unwrap_err());
        assert!(e.contains("passphrase is wrong"), "{e}");

        let short = SecretString::new("fifteen chars!!".into());
        let e = message(key.export(&short).unwrap_err());
        assert!(e.contains("at least 16 characters"), "{e}");
        // Characters, not bytes: 15 two-byte characters are still too short.
        let accented = SecretString::new("é".repeat(15));
        assert!(key.export(&accented).is_err());
        let sixteen = SecretString::new("é".repeat(16));
        assert!(
            key.export_with_iterations(&sixteen, TEST_ITERATIONS)
                .is_ok()
        );
        assert!(GeographyKey::import_within(&text, &short, TEST_RANGE).is_err());
    }

    #[test]
    fn every_bit_flip_of_an_export_is_refused() {
        let key = GeographyKey::generate("europe").unwrap();
        let text = key
            .export_with_iterations(&pass(), TEST_ITERATIONS)
            .unwrap();
        assert!(GeographyKey::import_within(&text, &pass(), TEST_RANGE).is_ok());
        // The production range refuses test-strength exports.
        let e = message(GeographyKey::import(&text, &pass()).unwrap_err());
        assert!(e.contains("iterations"), "{e}");
        let mut tried = 0;
        for i in 0..text.len() {
            for bit in 0..8 {
                let mut bad = text.clone().into_bytes();
                bad[i] ^= 1 << bit;
                // Bytes that are not UTF-8 cannot even reach `import`.
                if let Ok(bad) = String::from_utf8(bad) {
                    tried += 1;
                    assert!(
                        GeographyKey::import_within(&bad, &pass(), TEST_RANGE).is_err(),
                        "flip of bit {bit} at {i} accepted: {bad}"
                    );
                }
            }
        }
        assert!(tried > text.len() * 6);
    }

    #[test]
    fn altered_or_unknown_fields_are_refused() {
        let key = GeographyKey::generate("europe").unwrap();
        let text = key
            .export_with_iterations(&pass(), TEST_ITERATIONS)
            .unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let import = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut d = doc.clone();
            edit(&mut d);
            GeographyKey::import_within(&d.to_string(), &pass(), TEST_RANGE)
                .map(|_| ())
                .map_err(message)
        };
        assert_eq!(import(&|_| ()), Ok(()));
        let other = GeographyKey::generate("europe").unwrap();
        type Edit<'a> = &'a dyn Fn(&mut serde_json::Value);
        let cases: [(&str, Edit<'_>, &str); 10] = [
            (
                "geography",
                &|d| d["geography"] = "us".into(),
                "passphrase is wrong",
            ),
            (
                "id",
                &|d| d["id"] = other.id().into(),
                "passphrase is wrong",
            ),
            (
                "iterations",
                &|d| d["iterations"] = 1_001.into(),
                "passphrase is wrong",
            ),
            ("too few", &|d| d["iterations"] = 999.into(), "iterations"),
            (
                "too many",
                &|d| d["iterations"] = 10_000_001.into(),
                "iterations",
            ),
            (
                "salt",
                &|d| d["salt"] = URL_SAFE_NO_PAD.encode([0u8; 16]).into(),
                "passphrase is wrong",
            ),
            (
                "short salt",
                &|d| d["salt"] = URL_SAFE_NO_PAD.encode([0u8; 15]).into(),
                "salt",
            ),
            (
                "format",
                &|d| d["format"] = "coffer.geography-key.v2".into(),
                "unknown exported key format",
            ),
            (
                "kdf",
                &|d| d["kdf"] = "scrypt".into(),
                "unknown key derivation",
            ),
            ("extra field", &|d| d["note"] = "x".into(), "malformed"),
        ];
        for (what, edit, expected) in cases {
            let e = import(edit).unwrap_err();
            assert!(e.contains(expected), "{what}: {e}");
        }
        assert!(GeographyKey::import_within("", &pass(), TEST_RANGE).is_err());
        assert!(GeographyKey::import_within(&"x".repeat(100_000), &pass(), TEST_RANGE).is_err());
    }

    #[test]
    fn an_export_whose_id_lies_is_refused() {
        // Sealed correctly but naming another key's id: only the derived-id check catches it.
        let key = GeographyKey::generate("us").unwrap();
        let lie = GeographyKey::generate("us").unwrap();
        let salt = [3u8; SALT_LEN];
        let wrapping = wrapping_key(&pass(), TEST_ITERATIONS, &salt).unwrap();
        let mut sealed = Vec::new();
        let aad = export_aad("us", lie.id(), TEST_ITERATIONS, &salt);
        seal_raw(&wrapping, &aad, &key.bytes, &mut sealed).unwrap();
        let text = serde_json::to_string(&ExportedKey {
            format: EXPORT_FORMAT.into(),
            geography: "us".into(),
            id: lie.id().into(),
            kdf: EXPORT_KDF.into(),
            iterations: TEST_ITERATIONS,
            salt: URL_SAFE_NO_PAD.encode(salt),
            sealed: URL_SAFE_NO_PAD.encode(&sealed),
        })
        .unwrap();
        let e = message(GeographyKey::import_within(&text, &pass(), TEST_RANGE).unwrap_err());
        assert!(e.contains("does not match"), "{e}");
    }

    /// Made by Python's hashlib.pbkdf2_hmac and `cryptography`'s AESGCM from the format the
    /// module documentation gives; the key is bytes 0..32.
    #[test]
    fn an_export_made_by_an_independent_implementation_imports() {
        let text = r#"{"format":"coffer.geography-key.v1","geography":"europe","id":"b4d0115c954ef9396786eb846da3352c","kdf":"pbkdf2-sha256","iterations":1000,"salt":"EBESExQVFhcYGRobHB0eHw","sealed":"ICEiIyQlJicoKSorrkxMO4U6BGNS47XILcj-ZU4THNAyWpAx5NW1CKHZIcKOBy8vKHvoWUTlM2erxeG0"}"#;
        let key = GeographyKey::import_within(text, &pass(), TEST_RANGE).unwrap();
        assert_eq!(
            key.bytes.as_slice(),
            (0u8..32).collect::<Vec<_>>().as_slice()
        );
        assert_eq!(key.id(), "b4d0115c954ef9396786eb846da3352c");
        assert_eq!(key.geography(), "europe");
    }

    /// Made by Python's `cryptography` AESGCM from the documented format, key bytes 0..32.
    #[test]
    fn blobs_made_by_an_independent_implementation_open() {
        let key = key_from("europe", &(0u8..32).collect::<Vec<_>>());
        let blob = unhex(
            "4346424b01000000947b226b696e64223a22736563726574222c2267656f677261706879223a226575726f7065222c226b65795f6964223a226234643031313563393534656639333936373836656238343664613333353263222c2263726561746564223a313730303030303030312c22626c6f625f6964223a226666656564646363626261613939383837373636353534343333323231313030227d0000002650505050505050505050505010a62c1a1ae2a7e3325ed4e1feb2cc9c09108ea73519b51f1e9c",
        );
        let (header, payload) = open_blob(&key, &blob).unwrap();
        assert_eq!(
            header,
            BackupHeader {
                kind: "secret".into(),
                geography: "europe".into(),
                key_id: key.id().into(),
                created: 1_700_000_001,
            }
        );
        assert_eq!(payload.expose(), b"one object");

        let stream = unhex(
            "4346424b01000000937b226b696e64223a227661756c74222c2267656f677261706879223a226575726f7065222c226b65795f6964223a226234643031313563393534656639333936373836656238343664613333353263222c2263726561746564223a313730303030303030302c22626c6f625f6964223a223030313132323333343435353636373738383939616162626363646465656666227d00000027404040404040404040404040563f346c0697453a59c4ab2ec9af6bcab222106d33cb46a3e473a300000028414141414141414141414141f41e3398b2b5c8cf8d995730318aeece51627a1f12c0111bae29e189",
        );
        let (header, payloads) = read_stream(&key, &stream).unwrap();
        assert_eq!(header.kind, "vault");
        assert_eq!(
            payloads,
            [b"first frame".to_vec(), b"second frame".to_vec()]
        );
        let e = message(open_blob(&key, &stream).unwrap_err());
        assert!(e.contains("more than one frame"), "{e}");
    }

    #[test]
    fn blob_round_trip() {
        let key = GeographyKey::generate("us").unwrap();
        let header = key.header("secret", 1_700_000_000);
        let blob = key.seal_blob(&header, b"S3cret value!").unwrap();
        assert!(!blob.windows(13).any(|w| w == b"S3cret value!"));
        let (back, payload) = open_blob(&key, &blob).unwrap();
        assert_eq!(back, header);
        assert_eq!(payload.expose(), b"S3cret value!");
        let empty = key.seal_blob(&header, b"").unwrap();
        assert!(open_blob(&key, &empty).unwrap().1.is_empty());
        // Equal headers still give different header bytes.
        assert_ne!(
            encode_header(&header).unwrap(),
            encode_header(&header).unwrap()
        );
    }

    #[test]
    fn every_bit_flip_and_every_truncation_of_a_blob_is_refused() {
        let key = GeographyKey::generate("us").unwrap();
        let blob = key.seal_blob(&key.header("secret", 1), b"value").unwrap();
        for i in 0..blob.len() {
            for bit in 0..8 {
                let mut bad = blob.clone();
                bad[i] ^= 1 << bit;
                assert!(open_blob(&key, &bad).is_err(), "flip of bit {bit} at {i}");
            }
        }
        for n in 0..blob.len() {
            assert!(open_blob(&key, &blob[..n]).is_err(), "truncated to {n}");
        }
        let mut longer = blob.clone();
        longer.push(0);
        let e = message(open_blob(&key, &longer).unwrap_err());
        assert!(e.contains("after its last frame"), "{e}");
    }

    #[test]
    fn streams_round_trip_and_refuse_rearranged_frames() {
        let key = GeographyKey::generate("us").unwrap();
        let header = key.header("vault", 1_700_000_000);
        let payloads: [&[u8]; 4] = [b"zero", b"one", b"two", b"three"];
        let (hb, f) = write_stream(&key, &header, &payloads);
        let whole = join(&hb, &[&f[0], &f[1], &f[2], &f[3]]);
        let (back, read) = read_stream(&key, &whole).unwrap();
        assert_eq!(back, header);
        assert_eq!(read, payloads.map(<[u8]>::to_vec));

        let refused = |frames: &[&Vec<u8>]| read_stream(&key, &join(&hb, frames)).is_err();
        assert!(refused(&[&f[0], &f[2], &f[1], &f[3]]), "reordered");
        assert!(refused(&[&f[0], &f[2], &f[3]]), "dropped");
        assert!(refused(&[&f[0], &f[1], &f[1], &f[2], &f[3]]), "duplicated");
        assert!(
            refused(&[&f[0], &f[1], &f[2], &f[3], &f[3]]),
            "last repeated"
        );
        assert!(refused(&[&f[3]]), "only the last");
        let e = message(read_stream(&key, &join(&hb, &[&f[0], &f[1], &f[2]])).unwrap_err());
        assert!(e.contains("truncated"), "cut before the last frame: {e}");
        for n in 0..whole.len() {
            assert!(read_stream(&key, &whole[..n]).is_err(), "cut at {n}");
        }

        // Another blob with an identical header and identical payloads: its frames still do
        // not open here, thanks to the blob id.
        let (hb2, g) = write_stream(&key, &header, &payloads);
        assert!(refused(&[&f[0], &g[1], &f[2], &f[3]]), "spliced");
        assert!(read_stream(&key, &join(&hb2, &[&f[0], &f[1], &f[2], &f[3]])).is_err());
        assert!(read_stream(&key, &join(&hb2, &[&g[0], &g[1], &g[2], &g[3]])).is_ok());

        // Sealer and opener refuse to go past the last frame, and a failed opener stays failed.
        let mut sealer = key.sealer(hb.clone());
        sealer.seal(b"only", true).unwrap();
        assert!(sealer.seal(b"more", false).is_err());
        let mut opener = key.opener(hb.clone());
        assert!(opener.open(&f[1]).is_err());
        assert!(opener.open(&f[0]).is_err(), "no resuming after a failure");
        assert!(!opener.finished());
        assert!(opener.finish().is_err());
    }

    #[test]
    fn other_keys_cannot_open() {
        let key = GeographyKey::generate("us").unwrap();
        let blob = key.seal_blob(&key.header("secret", 1), b"value").unwrap();
        let same_geography = GeographyKey::generate("us").unwrap();
        let e = message(open_blob(&same_geography, &blob).unwrap_err());
        assert!(
            e.contains(key.id()) && e.contains(same_geography.id()),
            "{e}"
        );
        let europe = GeographyKey::generate("europe").unwrap();
        let e = message(open_blob(&europe, &blob).unwrap_err());
        assert!(e.contains("geography us"), "{e}");

        // A header relabelled to name the other key does not help: the frames are sealed with
        // the original key, and the header is authenticated.
        let header_bytes = encode_header(&europe.header("secret", 1)).unwrap();
        let mut forged = FrameSealer {
            stream: FrameStream::new(&europe, header_bytes.clone()),
        };
        forged.stream.key = Arc::clone(&key.aead);
        let mut blob = header_bytes;
        blob.extend_from_slice(&forged.seal(b"value", true).unwrap());
        assert!(matches!(
            open_blob(&europe, &blob),
            Err(CryptoError::Unseal)
        ));

        // A sealer refuses header bytes that name another key.
        let mut sealer = key.sealer(encode_header(&europe.header("secret", 1)).unwrap());
        assert!(sealer.seal(b"value", true).is_err());
        let mut sealer = key.sealer(b"CFBK".to_vec());
        assert!(sealer.seal(b"value", true).is_err());
    }

    #[test]
    fn headers_parse_without_the_key() {
        let key = GeographyKey::generate("us").unwrap();
        let header = key.header("secret", 42);
        let blob = key.seal_blob(&header, b"value").unwrap();
        let header_len = encode_header(&header).unwrap().len();
        for n in 0..header_len {
            assert!(
                parse_header(&blob[..n]).unwrap().is_none(),
                "partial at {n}"
            );
        }
        assert_eq!(
            parse_header(&blob[..header_len]).unwrap(),
            Some((header.clone(), header_len))
        );
        assert_eq!(parse_header(&blob).unwrap(), Some((header, header_len)));

        let refused = |bytes: &[u8]| message(parse_header(bytes).unwrap_err());
        assert!(refused(b"X").contains("not a Coffer backup"));
        assert!(refused(b"CFBX").contains("not a Coffer backup"));
        assert!(refused(b"CFBK\x02").contains("not a Coffer backup"));
        let huge = [&b"CFBK\x01"[..], &(64u32 * 1024 + 1).to_be_bytes()].concat();
        assert!(refused(&huge).contains("at most 65536"));
        let with_json = |json: &str| {
            let mut out = b"CFBK\x01".to_vec();
            out.extend_from_slice(&u32::try_from(json.len()).unwrap().to_be_bytes());
            out.extend_from_slice(json.as_bytes());
            out
        };
        let id = key.id();
        let good = format!(
            r#"{{"kind":"secret","geography":"us","key_id":"{id}","created":1,"blob_id":"{id}"}}"#
        );
        assert!(parse_header(&with_json(&good)).unwrap().is_some());
        for bad in [
            format!(r#"{{"kind":"secret","geography":"us","key_id":"{id}","created":1}}"#),
            format!(
                r#"{{"kind":"secret","geography":"us","key_id":"{id}","created":1,"blob_id":"{id}","x":1}}"#
            ),
            format!(
                r#"{{"kind":"secret","geography":"US","key_id":"{id}","created":1,"blob_id":"{id}"}}"#
            ),
            format!(
                r#"{{"kind":"","geography":"us","key_id":"{id}","created":1,"blob_id":"{id}"}}"#
            ),
            format!(
                r#"{{"kind":"secret","geography":"us","key_id":"{}","created":1,"blob_id":"{id}"}}"#,
                id.to_uppercase()
            ),
            "not json".to_owned(),
        ] {
            assert!(parse_header(&with_json(&bad)).is_err(), "{bad}");
        }
        assert!(
            encode_header(&BackupHeader {
                kind: "Secret".into(),
                ..key.header("x", 1)
            })
            .is_err()
        );
    }

    #[test]
    fn frame_lengths_are_checked_before_allocating() {
        assert_eq!(FrameOpener::next_frame_len(&[]).unwrap(), None);
        assert_eq!(FrameOpener::next_frame_len(&[0, 0, 0]).unwrap(), None);
        assert_eq!(FrameOpener::next_frame_len(&[0, 0, 0, 28]).unwrap(), None);
        assert_eq!(
            FrameOpener::next_frame_len(&[0, 0, 0, 28, 0]).unwrap(),
            None
        );
        assert_eq!(
            FrameOpener::next_frame_len(&[0u8, 0, 0, 28].repeat(9)).unwrap(),
            Some(32)
        );
        assert!(FrameOpener::next_frame_len(&[0, 0, 0, 27]).is_err());
        assert!(FrameOpener::next_frame_len(&[0xff; 4]).is_err());
        let over = u32::try_from(MAX_FRAME_LEN + 1).unwrap().to_be_bytes();
        assert!(FrameOpener::next_frame_len(&over).is_err());

        let key = GeographyKey::generate("us").unwrap();
        let mut sealer = key.sealer(encode_header(&key.header("vault", 1)).unwrap());
        let e = message(
            sealer
                .seal(&vec![0u8; MAX_FRAME_PAYLOAD + 1], true)
                .unwrap_err(),
        );
        assert!(e.contains("at most"), "{e}");
        let frame = sealer.seal(b"", false).unwrap();
        assert_eq!(
            FrameOpener::next_frame_len(&frame).unwrap(),
            Some(frame.len())
        );
    }

    #[test]
    fn debug_prints_no_key_bytes() {
        let key = GeographyKey::generate("us").unwrap();
        let shown = format!(
            "{key:?} {:?} {:?}",
            key.sealer(Vec::new()),
            key.opener(Vec::new())
        );
        assert!(
            shown.contains(key.id()) && shown.contains("\"us\""),
            "{shown}"
        );
        let key_hex = hex(&key.bytes);
        for window in key_hex.as_bytes().chunks(8) {
            assert!(
                !shown.contains(std::str::from_utf8(window).unwrap()),
                "{shown}"
            );
        }
        assert!(!shown.contains(&format!("{:?}", key.bytes.as_slice())));
        assert!(!shown.contains(&URL_SAFE_NO_PAD.encode(&*key.bytes)[..8]));
    }
}
