//! Reading `coffer key` input: base64 values, JWK files, rotation-policy JSON, and printing
//! result bytes as base64 or text.

use std::path::Path;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use coffer_client::proto::JsonWebKey;
use zeroize::Zeroizing;

use super::CliError;
use super::key::DataType;

/// `--value` of `rotation-policy set`: JSON as is, else the contents of the file it names
/// (`@path`, as `az` writes it, or a bare path).
pub(super) fn policy_text(value: &str) -> Result<String, CliError> {
    if value.trim_start().starts_with('{') {
        return Ok(value.to_owned());
    }
    let path = Path::new(value.strip_prefix('@').unwrap_or(value));
    std::fs::read_to_string(path).map_err(|err| CliError::file(path, err))
}

/// A decrypted value as the output shows it: base64, or the text itself.
pub(super) fn encode_result(
    value: &[u8],
    data_type: DataType,
) -> Result<Zeroizing<String>, CliError> {
    match data_type {
        DataType::Base64 => Ok(Zeroizing::new(STANDARD.encode(value))),
        DataType::Plaintext => std::str::from_utf8(value)
            .map(|text| Zeroizing::new(text.to_owned()))
            .map_err(|_| {
                CliError::bad_parameter(
                    "the decrypted value is not UTF-8 text; use --data-type base64",
                )
            }),
    }
}

/// Decodes base64 in the standard or the URL-safe alphabet, padded or not. The error names
/// the flag and what is wrong, never the text (it may be a plaintext given by mistake).
pub(super) fn decode_base64(flag: &str, text: &str) -> Result<Vec<u8>, CliError> {
    let text = text.trim();
    let alphabet = if text.contains(['-', '_']) {
        &alphabet::URL_SAFE
    } else {
        &alphabet::STANDARD
    };
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    GeneralPurpose::new(alphabet, config)
        .decode(text)
        .map_err(|err| {
            use base64::DecodeError as E;
            let why = match err {
                E::InvalidByte(offset, _) | E::InvalidLastSymbol(offset, _) => {
                    format!("an invalid character at offset {offset}")
                }
                E::InvalidLength(_) => "an impossible length".to_owned(),
                E::InvalidPadding => "invalid padding".to_owned(),
            };
            CliError::bad_parameter(format!(
                "{flag} is not valid base64: {why} (use the standard or URL-safe alphabet)"
            ))
        })
}

pub(super) fn decode_secret_base64(flag: &str, text: &str) -> Result<Zeroizing<Vec<u8>>, CliError> {
    decode_base64(flag, text).map(Zeroizing::new)
}

/// Reads a JSON Web Key with private parts and converts it to the wire form. The file must be
/// readable by its owner only, like every file the CLI reads a secret from; errors never quote
/// its contents.
pub(super) fn read_jwk_file(path: &Path) -> Result<JsonWebKey, CliError> {
    let bytes = coffer_crypto::read_private_file(path).map_err(|err| CliError::Local {
        code: "FileError",
        message: format!("--jwk-file: {err}"),
    })?;
    let bad =
        |what: String| CliError::bad_parameter(format!("--jwk-file {}: {what}", path.display()));
    let mut jwk: coffer_types::keys::JsonWebKey =
        serde_json::from_slice(&bytes).map_err(|err| {
            // serde's message may quote a value from the file; the position is enough.
            bad(format!(
                "not a JSON Web Key ({:?} error at line {} column {}; kty, crv and key_ops take \
             Azure's names, byte fields base64url)",
                err.classify(),
                err.line(),
                err.column()
            ))
        })?;
    let Some(kty) = jwk.kty else {
        jwk.wipe_private_parts();
        return Err(bad("the key has no kty".to_owned()));
    };
    if !jwk.has_private_parts() {
        return Err(bad(
            "the key has no private parts; import needs d (RSA, EC) or k (oct)".to_owned(),
        ));
    }
    let take = |part: &mut Option<Vec<u8>>| part.take().unwrap_or_default();
    let key = JsonWebKey {
        // The vault names the key; an id from elsewhere means nothing here.
        kid: String::new(),
        kty: kty.as_str().to_owned(),
        key_ops: jwk
            .key_ops
            .iter()
            .map(|op| op.as_str().to_owned())
            .collect(),
        n: take(&mut jwk.n),
        e: take(&mut jwk.e),
        d: take(&mut jwk.d),
        dp: take(&mut jwk.dp),
        dq: take(&mut jwk.dq),
        qi: take(&mut jwk.qi),
        p: take(&mut jwk.p),
        q: take(&mut jwk.q),
        k: take(&mut jwk.k),
        crv: jwk
            .crv
            .map(|crv| crv.as_str().to_owned())
            .unwrap_or_default(),
        x: take(&mut jwk.x),
        y: take(&mut jwk.y),
    };
    // Every part was moved out above; this keeps the promise if a field is ever added.
    jwk.wipe_private_parts();
    Ok(key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn base64_accepts_both_alphabets_with_or_without_padding() {
        for text in ["+/8=", "+/8", "-_8", "-_8=", " +/8= "] {
            assert_eq!(
                decode_base64("--value", text).unwrap(),
                [0xfb, 0xff],
                "{text}"
            );
        }
        assert_eq!(decode_base64("--value", "").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn bad_base64_is_a_clear_error_that_does_not_quote_the_value() {
        for text in ["hunter2!", "a", "hunter2-+"] {
            let err = decode_base64("--value", text).unwrap_err().to_string();
            assert!(
                err.starts_with("(BadParameter) --value is not valid base64: "),
                "{err}"
            );
            assert!(!err.contains("hunter2"), "{err}");
        }
        let err = decode_base64("--digest", "ab!c").unwrap_err().to_string();
        assert!(
            err.contains("--digest") && err.contains("offset 2"),
            "{err}"
        );
    }

    #[test]
    fn results_print_as_base64_or_text() {
        assert_eq!(*encode_result(b"hi", DataType::Base64).unwrap(), "aGk=");
        assert_eq!(*encode_result(b"hi", DataType::Plaintext).unwrap(), "hi");
        let err = encode_result(&[0xff], DataType::Plaintext).unwrap_err();
        assert!(err.to_string().contains("--data-type base64"), "{err}");
    }

    fn private_file(dir: &Path, contents: &str, mode: u32) -> PathBuf {
        let path = dir.join("key.json");
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_jwk_file_converts_to_the_wire_form() {
        let dir = tempfile::tempdir().unwrap();
        let path = private_file(
            dir.path(),
            r#"{"kty":"oct","k":"-_8B","key_ops":["wrapKey","unwrapKey"],"kid":"elsewhere",
                "alg":"A256KW"}"#,
            0o600,
        );
        let jwk = read_jwk_file(&path).unwrap();
        assert_eq!(jwk.kty, "oct");
        assert_eq!(jwk.k, [0xfb, 0xff, 0x01]);
        assert_eq!(jwk.key_ops, ["wrapKey", "unwrapKey"]);
        assert!(jwk.kid.is_empty());
        let path = private_file(
            dir.path(),
            r#"{"kty":"EC","crv":"P-256","x":"AQ","y":"Ag","d":"Aw"}"#,
            0o600,
        );
        let jwk = read_jwk_file(&path).unwrap();
        assert_eq!((jwk.crv.as_str(), jwk.d.as_slice()), ("P-256", &[3u8][..]));
    }

    #[test]
    fn bad_jwk_files_are_refused_without_quoting_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = private_file(dir.path(), r#"{"kty":"oct","k":"AAAA"}"#, 0o644);
        let err = read_jwk_file(&path).unwrap_err().to_string();
        assert!(err.starts_with("(FileError) --jwk-file: "), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
        let cases = [
            (r#"{"kty":"oct","k":12345678}"#, "not a JSON Web Key"),
            (r#"{"kty":"oct","k":"hunter2!"}"#, "not a JSON Web Key"),
            (r#"{"k":"AAAA"}"#, "no kty"),
            (r#"{"kty":"RSA","n":"AQ","e":"AQAB"}"#, "no private parts"),
        ];
        for (contents, expected) in cases {
            let path = private_file(dir.path(), contents, 0o600);
            let err = read_jwk_file(&path).unwrap_err().to_string();
            assert!(err.starts_with("(BadParameter) --jwk-file "), "{err}");
            assert!(err.contains(expected), "{contents}: {err}");
            assert!(
                !err.contains("12345678") && !err.contains("hunter2"),
                "{err}"
            );
        }
    }

    #[test]
    fn policy_values_come_inline_or_from_a_file() {
        assert_eq!(policy_text(" {}").unwrap(), " {}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        std::fs::write(&path, r#"{"lifetimeActions":[]}"#).unwrap();
        let text = path.to_str().unwrap();
        assert_eq!(policy_text(text).unwrap(), r#"{"lifetimeActions":[]}"#);
        assert_eq!(
            policy_text(&format!("@{text}")).unwrap(),
            r#"{"lifetimeActions":[]}"#
        );
        let err = policy_text("/nonexistent/policy.json").unwrap_err();
        assert!(err.to_string().starts_with("(FileError) "), "{err}");
    }
}
