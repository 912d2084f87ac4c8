//! Keys through the real CLI against a real node: RSA, EC and oct keys are created, shown with
//! their public parts only, and used (sign and verify, RSA-OAEP-256 and A256GCM encrypt and
//! decrypt, A256KW wrap and unwrap); an EC key generated elsewhere is imported and signs;
//! random bytes; rotation, attributes, the rotation policy, and the lifecycle (delete,
//! recover, backup, purge, restore).
//!
//! Results are cross-checked with an independent implementation, Python's `cryptography`:
//! it verifies the signatures Coffer makes against the public parts `key show` prints, and
//! encrypts a plaintext Coffer must decrypt. Needs the Python environment of
//! `scripts/install-python-deps`; `COFFER_VENV` names it if it is not in /var/tmp/coffer-venv.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use coffer_client::CofferClient;
use coffer_testkit::TestCluster;
use serde_json::Value;

const VAULT: &str = "keys1";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_coffer"))
}

/// The independent side, run as `python -c CHECKS <command> <args>`. Byte arguments are
/// base64url or base64, as the CLI prints them.
const CHECKS: &str = r#"
import base64, json, sys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

def b(text):
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4))

def num(text):
    return int.from_bytes(b(text), "big")

def enc(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "new-ec":
    key = ec.generate_private_key(ec.SECP256R1())
    n = key.private_numbers()
    part = lambda i: enc(i.to_bytes(32, "big"))
    print(json.dumps({"kty": "EC", "crv": "P-256", "x": part(n.public_numbers.x),
                      "y": part(n.public_numbers.y), "d": part(n.private_value),
                      "key_ops": ["sign", "verify"]}))
elif cmd == "verify-rs256":
    jwk, digest, sig = json.loads(args[0]), b(args[1]), b(args[2])
    public = rsa.RSAPublicNumbers(num(jwk["e"]), num(jwk["n"])).public_key()
    public.verify(sig, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    print("valid")
elif cmd == "verify-es256":
    jwk, digest, sig = json.loads(args[0]), b(args[1]), b(args[2])
    numbers = ec.EllipticCurvePublicNumbers(num(jwk["x"]), num(jwk["y"]), ec.SECP256R1())
    der = utils.encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                     int.from_bytes(sig[32:], "big"))
    numbers.public_key().verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    print("valid")
elif cmd == "oaep256":
    jwk, plaintext = json.loads(args[0]), args[1].encode()
    public = rsa.RSAPublicNumbers(num(jwk["e"]), num(jwk["n"])).public_key()
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    print(base64.b64encode(public.encrypt(plaintext, oaep)).decode())
"#;

fn check(args: &[&str]) -> String {
    let out = Command::new(common::python_interpreter())
        .arg("-c")
        .arg(CHECKS)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python {}: {}",
        args[0],
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

struct Cli<'a> {
    cluster: &'a TestCluster,
}

impl Cli<'_> {
    /// Runs a CLI command off the runtime's threads: the runtime also runs the cluster's
    /// proxies, which must keep forwarding meanwhile.
    async fn run(&self, args: &[&str]) -> Output {
        let mut command = self.cluster.cli(args);
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    /// The last lines of the node's log, for a failure message.
    fn log_tail(&self) -> String {
        let log = self.cluster.log(1);
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Runs, asserts success, returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "coffer {} failed: {}\nthe node's log ends:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut full = args.to_vec();
        full.extend(["--output", "json"]);
        let text = self.ok(&full).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: not JSON: {text}"))
    }

    /// Runs, asserts failure with one `error: (Code) message` line, returns that line.
    async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "coffer {} did not fail as expected: {stderr}",
            args.join(" ")
        );
        assert!(
            stderr.starts_with("error: (") && !stderr.contains('\n'),
            "{stderr}"
        );
        stderr
    }
}

fn text<'a>(value: &'a Value, path: &str) -> &'a str {
    let mut current = value;
    for key in path.split('.') {
        current = &current[key];
    }
    current
        .as_str()
        .unwrap_or_else(|| panic!("{path} missing in {value}"))
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    STANDARD.decode(text).unwrap()
}

/// The length in bytes of a base64url field.
fn url_len(text: &str) -> usize {
    URL_SAFE_NO_PAD.decode(text).unwrap().len()
}

/// `args` for the test's vault.
fn with<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut args = args.to_vec();
    args.extend(["--vault", VAULT]);
    args
}

/// Asserts a key as `key show` prints it has no private part, not even a null one.
fn assert_public_only(key: &Value) {
    for part in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        assert!(key["key"].get(part).is_none(), "{part} shown: {key}");
    }
}

/// A one-node cluster with its geography key (which seals backups) in place.
async fn cluster() -> (TestCluster, CofferClient) {
    let cluster = TestCluster::start(bin(), 1, "eastus", &[]).await.unwrap();
    let client = cluster.client(&cluster.ids()).await.unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        match client.list_geography_keys().await {
            Ok(keys) if !keys.is_empty() => break,
            other => {
                assert!(Instant::now() < until, "no geography key: {other:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    (cluster, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_created_used_and_managed_through_the_cli() {
    let (cluster, client) = cluster().await;
    let cli = Cli { cluster: &cluster };
    cli.ok(&["vault", "create", "--name", VAULT, "--location", "eastus"])
        .await;

    // Three kinds of key, shown with their public parts only.
    let rsa = cli
        .json(&with(&[
            "key", "create", "--name", "rsa1", "--tags", "env=test",
        ]))
        .await;
    assert_eq!(text(&rsa, "key.kty"), "RSA");
    assert_eq!(text(&rsa, "key.e"), "AQAB");
    assert_eq!(url_len(text(&rsa, "key.n")), 256, "{rsa}");
    assert_eq!(rsa["tags"]["env"], "test");
    assert_eq!(rsa["attributes"]["enabled"], true);
    assert_eq!(rsa["attributes"]["exportable"], false);
    assert_public_only(&rsa);
    let ec = cli
        .json(&with(&[
            "key", "create", "--name", "ec1", "--kty", "EC", "--curve", "P-256",
        ]))
        .await;
    assert_eq!(text(&ec, "key.crv"), "P-256");
    assert_eq!(url_len(text(&ec, "key.x")), 32);
    assert_eq!(url_len(text(&ec, "key.y")), 32);
    assert_public_only(&ec);
    let oct = cli
        .json(&with(&["key", "create", "--name", "oct1", "--kty", "oct"]))
        .await;
    assert_eq!(text(&oct, "key.kty"), "oct");
    assert_public_only(&oct);
    for name in ["rsa1", "ec1", "oct1"] {
        let shown = cli.json(&with(&["key", "show", "--name", name])).await;
        assert_public_only(&shown);
        assert!(
            text(&shown, "key.kid").contains(&format!("/keys/{name}/")),
            "{shown}"
        );
    }
    let rsa_jwk = rsa["key"].to_string();

    // RS256: Coffer signs, Coffer and cryptography verify; another digest does not verify.
    let digest = b64(&[7u8; 32]);
    let other = b64(&[8u8; 32]);
    let signed = cli
        .json(&with(&[
            "key",
            "sign",
            "--name",
            "rsa1",
            "--algorithm",
            "RS256",
            "--digest",
            &digest,
        ]))
        .await;
    let signature = text(&signed, "signature").to_owned();
    assert_eq!(unb64(&signature).len(), 256);
    assert_eq!(
        check(&["verify-rs256", &rsa_jwk, &digest, &signature]),
        "valid"
    );
    for (candidate, expected) in [(&digest, true), (&other, false)] {
        let verified = cli
            .json(&with(&[
                "key",
                "verify",
                "--name",
                "rsa1",
                "--algorithm",
                "RS256",
                "--digest",
                candidate,
                "--signature",
                &signature,
            ]))
            .await;
        assert_eq!(verified, serde_json::json!({ "isValid": expected }));
    }

    // RSA-OAEP-256: a round trip, and a ciphertext made by cryptography.
    let encrypted = cli
        .json(&with(&[
            "key",
            "encrypt",
            "--name",
            "rsa1",
            "--algorithm",
            "RSA-OAEP-256",
            "--value",
            "attack at dawn",
            "--data-type",
            "plaintext",
        ]))
        .await;
    assert!(
        text(&encrypted, "kid").contains("/keys/rsa1/"),
        "{encrypted}"
    );
    let foreign = check(&["oaep256", &rsa_jwk, "retreat at dusk"]);
    for (ciphertext, plaintext) in [
        (text(&encrypted, "result"), "attack at dawn"),
        (foreign.as_str(), "retreat at dusk"),
    ] {
        let decrypted = cli
            .json(&with(&[
                "key",
                "decrypt",
                "--name",
                "rsa1",
                "--algorithm",
                "RSA-OAEP-256",
                "--value",
                ciphertext,
                "--data-type",
                "plaintext",
            ]))
            .await;
        assert_eq!(text(&decrypted, "result"), plaintext);
    }

    // A256GCM with additional data: decrypt needs the iv, tag and aad back.
    let secret = b64(b"the launch codes");
    let aad = b64(b"header");
    let sealed = cli
        .json(&with(&[
            "key",
            "encrypt",
            "--name",
            "oct1",
            "--algorithm",
            "A256GCM",
            "--value",
            &secret,
            "--aad",
            &aad,
        ]))
        .await;
    let (iv, tag) = (text(&sealed, "iv"), text(&sealed, "tag"));
    assert_eq!(unb64(iv).len(), 12);
    assert_eq!(unb64(tag).len(), 16);
    let mut decrypt = with(&["key", "decrypt", "--name", "oct1", "--algorithm", "A256GCM"]);
    decrypt.extend(["--value", text(&sealed, "result"), "--iv", iv, "--tag", tag]);
    cli.fails(&decrypt).await;
    decrypt.extend(["--aad", &aad]);
    let opened = cli.json(&decrypt).await;
    assert_eq!(text(&opened, "result"), secret);

    // A256KW: wrap and unwrap a 256-bit key.
    let data_key = b64(&[0x5a; 32]);
    let wrapped = cli
        .json(&with(&[
            "key",
            "wrap",
            "--name",
            "oct1",
            "--algorithm",
            "A256KW",
            "--value",
            &data_key,
        ]))
        .await;
    let wrapped = text(&wrapped, "result").to_owned();
    assert_eq!(unb64(&wrapped).len(), 40);
    let unwrapped = cli
        .json(&with(&[
            "key",
            "unwrap",
            "--name",
            "oct1",
            "--algorithm",
            "A256KW",
            "--value",
            &wrapped,
        ]))
        .await;
    assert_eq!(text(&unwrapped, "result"), data_key);

    // Random bytes: 1 to 128, refused by the CLI and by the server outside that range.
    let random = cli.json(&with(&["rng", "--count", "32"])).await;
    assert_eq!(unb64(text(&random, "value")).len(), 32);
    for count in ["0", "129"] {
        let err = cli.fails(&with(&["rng", "--count", count])).await;
        assert!(err.starts_with("error: (BadParameter) "), "{err}");
    }
    for count in [0, 129] {
        let err = client.get_random_bytes(VAULT, count).await.unwrap_err();
        assert_eq!(err.code(), "BadParameter", "{err}");
    }

    // Import an EC key made elsewhere; it signs, and cryptography verifies with the original.
    let work = tempfile::tempdir().unwrap();
    let jwk_text = check(&["new-ec"]);
    let jwk: Value = serde_json::from_str(&jwk_text).unwrap();
    let jwk_file = work.path().join("ec.jwk");
    std::fs::write(&jwk_file, &jwk_text).unwrap();
    std::fs::set_permissions(&jwk_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let import = with(&[
        "key",
        "import",
        "--name",
        "imported",
        "--jwk-file",
        jwk_file.to_str().unwrap(),
    ]);
    let err = cli.fails(&import).await;
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!err.contains(text(&jwk, "d")), "{err}");
    std::fs::set_permissions(&jwk_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let imported = cli.json(&import).await;
    assert_eq!(text(&imported, "key.kty"), "EC");
    assert_eq!(text(&imported, "key.x"), text(&jwk, "x"));
    assert_public_only(&imported);
    let signed = cli
        .json(&with(&[
            "key",
            "sign",
            "--name",
            "imported",
            "--algorithm",
            "ES256",
            "--digest",
            &digest,
        ]))
        .await;
    let signature = text(&signed, "signature").to_owned();
    assert_eq!(
        check(&["verify-es256", &jwk_text, &digest, &signature]),
        "valid"
    );

    // Rotation: a second version, now the latest.
    let rotated = cli.json(&with(&["key", "rotate", "--name", "rsa1"])).await;
    assert_ne!(text(&rotated, "key.kid"), text(&rsa, "key.kid"));
    assert_ne!(text(&rotated, "key.n"), text(&rsa, "key.n"));
    let versions = cli
        .json(&with(&["key", "list-versions", "--name", "rsa1"]))
        .await;
    assert_eq!(versions.as_array().unwrap().len(), 2, "{versions}");
    let listed = cli.json(&with(&["key", "list"])).await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| text(k, "name"))
        .collect();
    for name in ["rsa1", "ec1", "oct1", "imported"] {
        assert!(names.contains(&name), "{listed}");
    }

    // A disabled key refuses to sign.
    let disabled = cli
        .json(&with(&[
            "key",
            "set-attributes",
            "--name",
            "rsa1",
            "--enabled",
            "false",
        ]))
        .await;
    assert_eq!(disabled["attributes"]["enabled"], false);
    let err = cli
        .fails(&with(&[
            "key",
            "sign",
            "--name",
            "rsa1",
            "--algorithm",
            "RS256",
            "--digest",
            &digest,
        ]))
        .await;
    assert!(err.starts_with("error: (Forbidden) "), "{err}");

    // The rotation policy round-trips in Azure's JSON shape.
    let policy = r#"{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P2Y"}}"#;
    let set = cli
        .json(&with(&[
            "key",
            "rotation-policy",
            "set",
            "--name",
            "ec1",
            "--value",
            policy,
        ]))
        .await;
    let shown = cli
        .json(&with(&["key", "rotation-policy", "show", "--name", "ec1"]))
        .await;
    for policy in [&set, &shown] {
        assert_eq!(
            policy["lifetimeActions"],
            serde_json::json!([{"trigger": {"timeAfterCreate": "P90D"}, "action": {"type": "Rotate"}}])
        );
        assert_eq!(policy["attributes"]["expiryTime"], "P2Y");
        assert!(
            text(policy, "id").ends_with("/keys/ec1/rotationpolicy"),
            "{policy}"
        );
    }

    // Soft delete and recovery.
    let deleted = cli.json(&with(&["key", "delete", "--name", "ec1"])).await;
    assert!(text(&deleted, "recoveryId").contains("ec1"), "{deleted}");
    let listed = cli.json(&with(&["key", "list-deleted"])).await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["name"] == "ec1"),
        "{listed}"
    );
    cli.json(&with(&["key", "show-deleted", "--name", "ec1"]))
        .await;
    cli.fails(&with(&["key", "show", "--name", "ec1"])).await;
    cli.json(&with(&["key", "recover", "--name", "ec1"])).await;
    let recovered = cli.json(&with(&["key", "show", "--name", "ec1"])).await;
    assert_eq!(text(&recovered, "key.x"), text(&ec, "key.x"));

    // Backup, delete for good, restore.
    let backup = work.path().join("oct1.backup");
    let backup_path = backup.to_str().unwrap();
    cli.ok(&with(&[
        "key",
        "backup",
        "--name",
        "oct1",
        "--file",
        backup_path,
    ]))
    .await;
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    cli.ok(&with(&["key", "delete", "--name", "oct1"])).await;
    cli.ok(&with(&["key", "purge", "--name", "oct1"])).await;
    cli.fails(&with(&["key", "show-deleted", "--name", "oct1"]))
        .await;
    let restored = cli
        .json(&with(&["key", "restore", "--file", backup_path]))
        .await;
    assert_eq!(text(&restored, "key.kid"), text(&oct, "key.kid"));
    let shown = cli.json(&with(&["key", "show", "--name", "oct1"])).await;
    assert_eq!(text(&shown, "key.kid"), text(&oct, "key.kid"));
    // The restored key still opens what the original sealed.
    let opened = cli.json(&decrypt).await;
    assert_eq!(text(&opened, "result"), secret);
}
