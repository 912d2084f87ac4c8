//! Hostile and malformed input gets a clear error, changes nothing, and the server keeps
//! serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::DevServer;

const V: &str = "guarded-kv";

/// What must not change, captured before and compared after every bad request.
fn snapshot(server: &DevServer) -> (String, usize, usize) {
    let value = server.ok(&[
        "secret", "show", "--vault", V, "--name", "good", "--query", "value",
    ]);
    let versions = server.json(&["secret", "list-versions", "--vault", V, "--name", "good"]);
    let vaults = server.json(&["vault", "list"]);
    (
        value,
        versions.as_array().unwrap().len(),
        vaults.as_array().unwrap().len(),
    )
}

fn setup(dir: &std::path::Path) -> (DevServer, (String, usize, usize)) {
    let server = DevServer::start(&dir.join("d"));
    server.ok(&["vault", "create", "--name", V, "--location", "eastus"]);
    server.ok(&[
        "secret", "set", "--vault", V, "--name", "good", "--value", "original",
    ]);
    let before = snapshot(&server);
    assert_eq!(before, ("original\n".to_owned(), 1, 1));
    (server, before)
}

#[test]
fn invalid_names_are_bad_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let (server, before) = setup(dir.path());
    let long = "a".repeat(128);
    for bad in ["", long.as_str(), "a_b", "../x", "ünïcode", "a--b"] {
        let e = server.fails(&["vault", "create", "--name", bad, "--location", "eastus"]);
        assert!(e.contains("BadParameter"), "vault {bad:?}: {e}");
        if bad == "a--b" {
            continue; // valid as a secret name
        }
        let e = server.fails(&["secret", "set", "--vault", V, "--name", bad, "--value", "x"]);
        assert!(e.contains("BadParameter"), "secret {bad:?}: {e}");
        let e = server.fails(&["secret", "show", "--vault", V, "--name", bad]);
        assert!(e.contains("BadParameter"), "secret show {bad:?}: {e}");
    }
    assert_eq!(snapshot(&server), before);
}

#[test]
fn oversize_values_too_many_tags_and_unknown_versions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (server, before) = setup(dir.path());

    let big = dir.path().join("big.txt");
    std::fs::write(&big, "x".repeat(25_601)).unwrap();
    let e = server.fails(&[
        "secret",
        "set",
        "--vault",
        V,
        "--name",
        "good",
        "--file",
        big.to_str().unwrap(),
    ]);
    assert!(e.contains("BadParameter") && e.contains("25600"), "{e}");

    let mut args = vec![
        "secret", "set", "--vault", V, "--name", "good", "--value", "y", "--tags",
    ];
    let tags: Vec<String> = (0..16).map(|i| format!("k{i}=v")).collect();
    args.extend(tags.iter().map(String::as_str));
    let e = server.fails(&args);
    assert!(e.contains("BadParameter") && e.contains("16"), "{e}");

    let e = server.fails(&[
        "secret",
        "show",
        "--vault",
        V,
        "--name",
        "good",
        "--version",
        &"0".repeat(32),
    ]);
    assert!(e.contains("SecretNotFound"), "{e}");
    let e = server.fails(&[
        "secret",
        "show",
        "--vault",
        V,
        "--name",
        "good",
        "--version",
        "not-a-version",
    ]);
    assert!(e.contains("BadParameter"), "{e}");

    for flag in ["--expires", "--not-before"] {
        let e = server.fails(&[
            "secret",
            "set",
            "--vault",
            V,
            "--name",
            "good",
            "--value",
            "z",
            flag,
            "2027-13-45T99:00:00Z",
        ]);
        assert!(!e.is_empty());
        let e = server.fails(&[
            "secret",
            "set-attributes",
            "--vault",
            V,
            "--name",
            "good",
            flag,
            "yesterday",
        ]);
        assert!(!e.is_empty());
    }
    assert_eq!(snapshot(&server), before);

    // The boundary itself is accepted.
    let max = dir.path().join("max.txt");
    std::fs::write(&max, "x".repeat(25_600)).unwrap();
    server.ok(&[
        "secret",
        "set",
        "--vault",
        V,
        "--name",
        "largest",
        "--file",
        max.to_str().unwrap(),
    ]);
    assert_eq!(
        server
            .ok(&[
                "secret", "show", "--vault", V, "--name", "largest", "--query", "value"
            ])
            .trim()
            .len(),
        25_600
    );
}

#[test]
fn missing_and_wrong_credentials_are_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let (server, before) = setup(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use coffer_proto::v1::vault_service_client::VaultServiceClient;
        let channel = server.grpc_channel().await;
        let mut client = VaultServiceClient::new(channel);
        for header in [
            None,
            Some("Bearer cft_wrong-token"),
            Some("Basic abc"),
            Some("Bearer "),
        ] {
            let mut request = tonic::Request::new(coffer_proto::v1::ListVaultsRequest::default());
            if let Some(h) = header {
                request
                    .metadata_mut()
                    .insert("authorization", h.parse().unwrap());
            }
            let status = client.list_vaults(request).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{header:?}");
            assert_eq!(
                status.metadata().get("x-coffer-error-code").unwrap(),
                "Unauthorized"
            );
            assert!(!status.message().contains("wrong-token"));
        }
    });
    // Times are checked by the server, not only by the CLI's parser.
    runtime.block_on(async {
        use coffer_proto::v1::secret_service_client::SecretServiceClient;
        let channel = server.grpc_channel().await;
        let mut client = SecretServiceClient::new(channel);
        for expires in [-1, 253_402_300_800, i64::MAX] {
            let mut request = tonic::Request::new(coffer_proto::v1::SetSecretRequest {
                vault: V.into(),
                name: "good".into(),
                value: "never-stored".into(),
                expires: Some(expires),
                ..Default::default()
            });
            let auth = format!("Bearer {}", server.token).parse().unwrap();
            request.metadata_mut().insert("authorization", auth);
            let status = client.set_secret(request).await.unwrap_err();
            assert_eq!(
                status.code(),
                tonic::Code::InvalidArgument,
                "expires {expires}"
            );
            assert_eq!(
                status.metadata().get("x-coffer-error-code").unwrap(),
                "BadParameter"
            );
            assert!(!status.message().contains("never-stored"));
        }
    });
    // The CLI with a wrong token says so in one line.
    let out = server
        .command(&["vault", "list"])
        .env("COFFER_TOKEN", "cft_not-the-token")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unauthorized"));
    assert_eq!(snapshot(&server), before);
}

#[test]
fn plain_tcp_garbage_and_tls_1_1_are_refused_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, before) = setup(dir.path());

    // Plain HTTP on the TLS port: no HTTP answer comes back.
    let mut tcp = TcpStream::connect(&server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    let _ = tcp.read_to_end(&mut reply);
    assert!(
        !String::from_utf8_lossy(&reply).contains("HTTP/1.1 200"),
        "plain HTTP must not be served"
    );

    // Random bytes.
    let mut tcp = TcpStream::connect(&server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    tcp.write_all(&[0xde, 0xad, 0xbe, 0xef].repeat(256))
        .unwrap();
    let _ = tcp.read_to_end(&mut Vec::new());

    // A TLS 1.1 ClientHello (legacy_version 3.2, no supported_versions extension): the server
    // answers with a fatal alert (record type 21) instead of a ServerHello (type 22). rustls
    // names it handshake_failure (40) or protocol_version (70) depending on which check fires
    // first; either way no TLS 1.1 session exists.
    let mut hello_body = vec![0x03, 0x02];
    hello_body.extend_from_slice(&[0x42; 32]); // random
    hello_body.push(0); // session id
    // Suites rustls supports (ECDHE-ECDSA and ECDHE-RSA with AES-128-GCM): only the version is wrong.
    hello_body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x2f]);
    hello_body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut handshake = vec![0x01, 0x00, 0x00, hello_body.len() as u8];
    handshake.extend_from_slice(&hello_body);
    let mut record = vec![0x16, 0x03, 0x02, 0x00, handshake.len() as u8];
    record.extend_from_slice(&handshake);
    let mut tcp = TcpStream::connect(&server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    tcp.write_all(&record).unwrap();
    let mut reply = Vec::new();
    let _ = tcp.read_to_end(&mut reply);
    assert!(reply.len() >= 7, "expected an alert, got {reply:?}");
    assert_eq!(reply[0], 0x15, "alert record expected, got {reply:?}");
    assert_eq!(reply[5], 2, "a fatal alert expected, got {reply:?}");
    assert!(
        matches!(reply[6], 40 | 70),
        "handshake_failure or protocol_version expected, got {reply:?}"
    );

    // TLS 1.2 and 1.3 clients are served.
    assert_eq!(
        server.tls_handshake(&rustls::version::TLS12),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(
        server.tls_handshake(&rustls::version::TLS13),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    let (status, _) = server.https_get("/healthz");
    assert_eq!(status, 200);

    assert!(server.is_running());
    assert_eq!(snapshot(&server), before);
    let (_, metrics) = server.https_get("/metrics");
    let failures = metrics
        .lines()
        .find(|l| l.starts_with("coffer_gateway_tls_handshake_failures_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap();
    assert!(failures >= 3.0, "{failures}");
}
