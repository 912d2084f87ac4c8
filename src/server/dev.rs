//! `coffer server --dev`: everything a development node needs, generated into its data
//! directory on first start and reused after a restart: root key, CA and server certificate,
//! bootstrap admin token (only its hash kept by the server) and `dev.env` for the CLI and the
//! Azure SDKs.

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use coffer_crypto::{SecretString, TokenHash, create_private_file, generate_token, pki};

/// DNS suffix of vault URIs in dev mode; `*.vault.coffer.localhost` resolves to loopback.
pub const DEV_DNS_SUFFIX: &str = "vault.coffer.localhost";

/// Paths of the generated material.
pub struct DevFiles {
    pub data_dir: PathBuf,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub root_key: PathBuf,
    pub token_hash: PathBuf,
    /// The dev tenant's administrator credentials (see `dev_identity`).
    pub identity: PathBuf,
    pub dev_env: PathBuf,
    pub audit: PathBuf,
}

impl DevFiles {
    pub fn in_dir(data_dir: PathBuf) -> Self {
        let tls = data_dir.join("tls");
        Self {
            ca_cert: tls.join("ca.pem"),
            server_cert: tls.join("server.pem"),
            server_key: tls.join("server.key"),
            root_key: data_dir.join("root.key"),
            token_hash: data_dir.join("admin-token.sha256"),
            identity: data_dir.join("dev-identity.json"),
            dev_env: data_dir.join("dev.env"),
            audit: data_dir.join("audit.log"),
            data_dir,
        }
    }
}

/// Creates the data directory (0700) and the TLS material if missing.
pub fn prepare(files: &DevFiles, listen: &SocketAddr) -> anyhow::Result<()> {
    fs::create_dir_all(files.data_dir.join("tls"))
        .with_context(|| format!("creating {}", files.data_dir.display()))?;
    fs::set_permissions(&files.data_dir, fs::Permissions::from_mode(0o700))?;
    if !files.ca_cert.exists() {
        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            format!("*.{DEV_DNS_SUFFIX}"),
        ];
        let ip = listen.ip();
        if !ip.is_unspecified() && !ip.is_loopback() {
            names.push(ip.to_string());
        }
        let generated = pki::generate_dev_pki(&names)?;
        fs::write(&files.ca_cert, &generated.ca_cert_pem)?;
        fs::write(&files.server_cert, &generated.server_cert_pem)?;
        create_private_file(
            &files.server_key,
            generated.server_key_pem.expose().as_bytes(),
        )?;
        create_private_file(
            &files.data_dir.join("tls").join("ca.key"),
            generated.ca_key_pem.expose().as_bytes(),
        )?;
    }
    Ok(())
}

/// The admin token's hash, generating a token on first start. Returns the new token when one
/// was generated: it is shown once and written to `dev.env`, never kept by the server.
pub fn admin_token(files: &DevFiles) -> anyhow::Result<(TokenHash, Option<SecretString>)> {
    if files.token_hash.exists() {
        let text = fs::read_to_string(&files.token_hash)?;
        let hash = TokenHash::from_hex(&text).with_context(|| {
            format!(
                "{} does not hold a SHA-256 in hex",
                files.token_hash.display()
            )
        })?;
        return Ok((hash, None));
    }
    let token = generate_token()?;
    let hash = TokenHash::of(token.expose());
    create_private_file(&files.token_hash, format!("{}\n", hash.to_hex()).as_bytes())?;
    Ok((hash, Some(token)))
}

/// The `export COFFER_TOKEN=...` line for `dev.env`: the new token's, or the one the last
/// `dev.env` holds (the server keeps only the hash, so the file is the only copy).
fn token_line(files: &DevFiles, new_token: Option<&SecretString>) -> Option<String> {
    match new_token {
        Some(token) => Some(format!("export COFFER_TOKEN={}", token.expose())),
        None => fs::read_to_string(&files.dev_env).ok().and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("export COFFER_TOKEN="))
                .map(str::to_owned)
        }),
    }
}

/// Writes `dev.env` (mode 0600) for this start: the addresses may differ from the last start
/// (ephemeral ports), the token only changes when a new one was generated. `addrs` are the
/// nodes' client addresses, the first of which also names the DNS suffix's port.
pub fn write_env(
    files: &DevFiles,
    addrs: &[SocketAddr],
    new_token: Option<&SecretString>,
    extra: &[(String, String)],
) -> anyhow::Result<String> {
    let token_line = token_line(files, new_token);
    let ca = fs::canonicalize(&files.ca_cert)?;
    let urls: Vec<String> = addrs.iter().map(|a| format!("https://{a}")).collect();
    let mut text = format!("export COFFER_ADDR={}\n", urls.join(","));
    if let Some(line) = &token_line {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(&format!("export COFFER_CA_CERT={}\n", ca.display()));
    if let Some(first) = addrs.first() {
        text.push_str(&format!(
            "export COFFER_DNS_SUFFIX={DEV_DNS_SUFFIX}:{}\n",
            first.port()
        ));
    }
    for (name, value) in extra {
        text.push_str(&format!("export {name}={value}\n"));
    }
    // So that `coffer` runs the binary that started this server, wherever it was built.
    if let Some(bin_dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        text.push_str(&format!("export PATH=\"{}:$PATH\"\n", bin_dir.display()));
    }
    write_private(&files.dev_env, text.as_bytes())?;
    Ok(text)
}

/// Replaces `path` with `contents`, mode 0600, through a temporary file and a rename.
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_env_is_private_and_keeps_the_token_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let files = DevFiles::in_dir(dir.path().join("d"));
        let addr: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        prepare(&files, &addr).unwrap();
        let (hash, token) = admin_token(&files).unwrap();
        let token = token.expect("first start generates a token");
        assert!(hash.matches(token.expose()));
        let first = write_env(&files, &[addr], Some(&token), &[]).unwrap();
        assert!(first.contains(&format!("COFFER_TOKEN={}", token.expose())));
        assert_eq!(
            fs::metadata(&files.dev_env).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let (hash2, again) = admin_token(&files).unwrap();
        assert!(again.is_none(), "a restart keeps the token");
        assert_eq!(hash2, hash);
        let moved: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let second = write_env(&files, &[moved], None, &[]).unwrap();
        assert!(second.contains("COFFER_ADDR=https://127.0.0.1:9000"));
        assert!(second.contains(&format!("COFFER_TOKEN={}", token.expose())));
        let stored_hash = fs::read_to_string(&files.token_hash).unwrap();
        assert!(
            !stored_hash.contains(token.expose()),
            "the server keeps only the hash"
        );
    }
}
