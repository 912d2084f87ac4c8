//! Every request, allowed or refused, leaves one audit line and is counted in /metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::DevServer;

#[test]
fn audit_lines_and_metrics_for_allowed_and_refused_calls() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(&dir.path().join("d"));
    let value = "audit-check-value-91f3";
    server.ok(&[
        "vault",
        "create",
        "--name",
        "audit-kv",
        "--location",
        "eastus",
    ]);
    server.ok(&[
        "secret",
        "set",
        "--vault",
        "audit-kv",
        "--name",
        "audited-secret-name",
        "--value",
        value,
    ]);
    server.ok(&[
        "secret",
        "show",
        "--vault",
        "audit-kv",
        "--name",
        "audited-secret-name",
    ]);
    server.fails(&["secret", "show", "--vault", "audit-kv", "--name", "missing"]);
    let out = server
        .command(&[
            "secret",
            "show",
            "--vault",
            "audit-kv",
            "--name",
            "audited-secret-name",
        ])
        .env("COFFER_TOKEN", "cft_bogus")
        .output()
        .unwrap();
    assert!(!out.status.success());

    let lines = server.audit_lines();
    let find = |op: &str, result: &str| {
        lines
            .iter()
            .filter(|l| l["operationName"] == op && l["resultCode"] == result)
            .count()
    };
    assert_eq!(find("VaultPut", "OK"), 1);
    assert_eq!(find("SecretSet", "OK"), 1);
    assert_eq!(find("SecretGet", "OK"), 1);
    assert_eq!(find("SecretGet", "SecretNotFound"), 1);
    assert_eq!(find("SecretGet", "Unauthorized"), 1);

    let ok_get = lines
        .iter()
        .find(|l| l["operationName"] == "SecretGet" && l["resultCode"] == "OK")
        .unwrap();
    assert_eq!(ok_get["caller"], "bootstrap");
    assert_eq!(ok_get["callerIpAddress"], "127.0.0.1");
    assert_eq!(ok_get["vault"], "audit-kv");
    assert!(
        ok_get["id"]
            .as_str()
            .unwrap()
            .starts_with("audit-kv/secrets/audited-secret-name/")
    );
    assert_eq!(ok_get["httpStatus"], 200);
    assert!(ok_get["durationMs"].as_f64().unwrap() >= 0.0);
    let refused = lines
        .iter()
        .find(|l| l["resultCode"] == "Unauthorized")
        .unwrap();
    assert_eq!(refused["caller"], "anonymous");
    assert_eq!(refused["httpStatus"], 401);

    let raw = std::fs::read_to_string(server.data_dir.join("audit.log")).unwrap();
    assert!(!raw.contains(value), "the audit log holds a value");
    assert!(
        !raw.contains(&server.token),
        "the audit log holds the token"
    );
    assert!(
        !raw.contains("cft_bogus"),
        "the audit log holds a presented credential"
    );

    let (status, metrics) = server.https_get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"coffer_gateway_requests_total{operation="SecretGet",result="OK"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(
        r#"coffer_gateway_requests_total{operation="SecretGet",result="SecretNotFound"} 1"#
    ));
    assert!(metrics.contains(
        r#"coffer_gateway_requests_total{operation="SecretGet",result="Unauthorized"} 1"#
    ));
    assert!(
        metrics
            .contains(r#"coffer_gateway_request_duration_seconds_count{operation="SecretSet"} 1"#)
    );
    assert!(!metrics.contains(value));
    assert!(
        !metrics.contains("audited-secret-name"),
        "object names are not metric labels"
    );

    let (status, health) = server.https_get("/healthz");
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["leader"], 1);
}
