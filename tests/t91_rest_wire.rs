//! The Key Vault REST API on the wire, against a real dev node: the challenge, Azure's status
//! codes, error envelopes and headers, and hostile requests answered with client errors while
//! the node keeps serving and nothing leaks into a message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{DevServer, HttpRequest, HttpResponse};

struct Rest<'a> {
    server: &'a DevServer,
    host: String,
    token: String,
}

impl Rest<'_> {
    fn send(&self, method: &str, path: &str, body: &str) -> HttpResponse {
        self.server.https(
            &HttpRequest::new(method, &self.host, path)
                .header("Authorization", &format!("Bearer {}", self.token))
                .header("Content-Type", "application/json")
                .body(body),
        )
    }

    fn error(&self, method: &str, path: &str, body: &str, status: u16, code: &str) -> String {
        let response = self.send(method, path, body);
        assert_eq!(
            response.status, status,
            "{method} {path}: {}",
            response.body
        );
        let json = response.json();
        assert_eq!(json["error"]["code"], code, "{method} {path}: {json}");
        assert_eq!(response.header("x-ms-error-code"), Some(code));
        json["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

#[test]
fn the_wire_follows_azure_and_hostile_requests_are_client_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(&dir.path().join("node"));
    server.ok(&[
        "vault",
        "create",
        "--name",
        "wire-kv",
        "--location",
        "eastus",
    ]);
    let suffix = server.env_value("COFFER_DNS_SUFFIX");
    let rest = Rest {
        server: &server,
        host: format!("wire-kv.{suffix}"),
        token: server.token.clone(),
    };

    // The SDKs' first request: no token, no body. The challenge comes before any validation.
    let challenge = server.https(
        &HttpRequest::new("PUT", &rest.host, "/secrets/s1?api-version=7.6")
            .header(
                "x-ms-client-request-id",
                "11111111-2222-3333-4444-555555555555",
            )
            .body("{not json"),
    );
    assert_eq!(challenge.status, 401);
    let header = challenge.header("www-authenticate").expect("challenge");
    assert!(
        header.starts_with("Bearer authorization=\"https://")
            && header.ends_with(&format!("resource=\"https://{suffix}\"")),
        "{header}"
    );
    assert_eq!(challenge.json()["error"]["code"], "Unauthorized");
    assert_eq!(
        challenge.header("x-ms-client-request-id"),
        Some("11111111-2222-3333-4444-555555555555")
    );
    assert!(challenge.header("x-ms-request-id").is_some());

    // A set answers 200 with the value and a versioned id under the request's own authority.
    let set = rest.send(
        "PUT",
        "/secrets/s1?api-version=2026-04-01",
        r#"{"value":"wire value","attributes":{"enabled":true,"exp":4102444800},"tags":{"k":"v"}}"#,
    );
    assert_eq!(set.status, 200, "{}", set.body);
    let json = set.json();
    assert_eq!(json["value"], "wire value");
    assert_eq!(json["attributes"]["exp"], 4_102_444_800_i64);
    let id = json["id"].as_str().unwrap();
    assert!(
        id.starts_with(&format!("https://{}/secrets/s1/", rest.host)),
        "{id}"
    );
    assert_eq!(set.header("cache-control"), Some("no-cache"));

    // Malformed and hostile bodies: 400 BadParameter, and the message quotes none of them.
    for body in [
        "{not json",
        r#"{"value": 12345678}"#,
        r#"{"contentType":"text","value":"x","attributes":{"exp":"hunter2-secret"}}"#,
        "",
        "[]",
    ] {
        let message = rest.error(
            "PUT",
            "/secrets/s2?api-version=7.6",
            body,
            400,
            "BadParameter",
        );
        assert!(
            !message.contains("hunter2") && !message.contains("12345678"),
            "{message}"
        );
    }
    let message = rest.error(
        "PUT",
        "/secrets/s2?api-version=7.6",
        r#"{"contentType":"x"}"#,
        400,
        "BadParameter",
    );
    assert!(message.contains("'value'"), "{message}");
    rest.error("GET", "/secrets/s1", "", 400, "BadParameter");
    rest.error(
        "GET",
        "/secrets/s1?api-version=1.0",
        "",
        400,
        "BadParameter",
    );
    rest.error(
        "GET",
        "/secrets?api-version=7.6&maxresults=26",
        "",
        400,
        "BadParameter",
    );
    rest.error(
        "GET",
        "/secrets?api-version=7.6&maxresults=x",
        "",
        400,
        "BadParameter",
    );
    rest.error(
        "GET",
        "/secrets?api-version=7.6&$skiptoken=%00%01",
        "",
        400,
        "BadParameter",
    );
    rest.error(
        "DELETE",
        "/secrets?api-version=7.6",
        "",
        400,
        "BadParameter",
    );
    rest.error("GET", "/nothing/here?api-version=7.6", "", 404, "NotFound");
    rest.error(
        "PUT",
        "/secrets/bad_name?api-version=7.6",
        r#"{"value":"x"}"#,
        400,
        "BadParameter",
    );
    rest.error(
        "GET",
        "/secrets/s1/nothex?api-version=7.6",
        "",
        400,
        "BadParameter",
    );
    let message = rest.error(
        "POST",
        "/keys/k1/encrypt?api-version=7.6",
        r#"{"alg":"RSA-OAEP","value":"not*base64*hunter2"}"#,
        400,
        "BadParameter",
    );
    assert!(!message.contains("hunter2"), "{message}");
    // A body announced larger than the limit is refused before it is read.
    let mut big = HttpRequest::new("PUT", &rest.host, "/secrets/big?api-version=7.6")
        .header("Authorization", &format!("Bearer {}", rest.token));
    big.content_length = Some(2 * 1024 * 1024);
    let refused = server.https(&big);
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], "BadParameter");

    // Hosts: another vault is 404, a host outside the suffix is refused.
    let elsewhere = Rest {
        host: format!("no-such-kv.{suffix}"),
        ..rest_clone(&rest)
    };
    elsewhere.error(
        "GET",
        "/secrets/s1?api-version=7.6",
        "",
        404,
        "VaultNotFound",
    );
    let outside = Rest {
        host: "localhost".to_owned(),
        ..rest_clone(&rest)
    };
    outside.error(
        "GET",
        "/secrets/s1?api-version=7.6",
        "",
        400,
        "BadParameter",
    );

    // Lifecycle codes: a deleted name is 409 with Azure's inner code; a purge is 204. The
    // delete is a POST naming its method, as Azure allows clients that cannot send DELETE.
    let deleted = server.https(
        &HttpRequest::new("POST", &rest.host, "/secrets/s1?api-version=7.6")
            .header("Authorization", &format!("Bearer {}", rest.token))
            .header("X-HTTP-METHOD", "DELETE"),
    );
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert!(deleted.json()["recoveryId"].is_string(), "{}", deleted.body);
    assert!(
        deleted
            .header("x-ms-keyvault-service-version")
            .is_some_and(|v| v.starts_with("coffer/"))
    );
    let conflict = rest.send("PUT", "/secrets/s1?api-version=7.6", r#"{"value":"again"}"#);
    assert_eq!(conflict.status, 409);
    assert_eq!(
        conflict.json()["error"]["innererror"]["code"],
        "ObjectIsDeletedButRecoverable"
    );
    let purged = rest.send("DELETE", "/deletedsecrets/s1?api-version=7.6", "");
    assert_eq!(purged.status, 204);
    assert!(purged.body.is_empty(), "{}", purged.body);
    let audited = server
        .audit_lines()
        .into_iter()
        .rfind(|r| r["operationName"] == "SecretPurge")
        .expect("the purge is audited");
    assert_eq!(audited["httpStatus"], 204);
    assert_eq!(audited["resultCode"], "OK");
    rest.error(
        "GET",
        "/secrets/s1/?api-version=7.6",
        "",
        404,
        "SecretNotFound",
    );

    // 429 over REST: Azure's body, Retry-After in seconds and milliseconds.
    server.ok(&[
        "vault", "throttle", "set", "--name", "wire-kv", "--class", "secrets", "--rate", "1",
        "--burst", "1",
    ]);
    let throttled = (0..6)
        .map(|_| rest.send("GET", "/secrets?api-version=7.6", ""))
        .find(|r| r.status == 429)
        .expect("a 429 within six calls at 1/s");
    let json = throttled.json();
    assert_eq!(json["error"]["code"], "Throttled");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("VaultRequestTypeLimitReached")
    );
    let seconds: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    let ms: u64 = throttled
        .header("x-ms-retry-after-ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=1).contains(&seconds) && ms <= 1_000,
        "{seconds} s, {ms} ms"
    );
    server.ok(&[
        "vault", "throttle", "reset", "--name", "wire-kv", "--class", "secrets",
    ]);

    // A few hundred hostile requests: no answer is a server error, and the node still serves.
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let methods = ["GET", "PUT", "POST", "PATCH", "DELETE"];
    let paths = [
        "/secrets/",
        "/keys/k/",
        "/keys/k//encrypt",
        "/deletedsecrets/",
        "/rng",
        "/keys/k/",
        "//secrets//",
        "/keys/k/v/sign",
        "/keys/k/rotationpolicy",
        "/secrets/restore",
    ];
    let bodies = [
        "",
        "{}",
        "null",
        r#"{"value":null}"#,
        r#"{"value":"AAAA","alg":"RS256","digest":"AAAA","count":99999}"#,
        r#"{"kty":"EC","crv":"P-999"}"#,
        r#"{"key":{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB"}}"#,
        r#"{"lifetimeActions":[{"trigger":{},"action":{"type":"Explode"}}]}"#,
        r#"{"count":-1}"#,
        "\u{0}\u{1}\u{2}",
    ];
    for i in 0..300 {
        let method = methods[(next() % methods.len() as u64) as usize];
        let mut path = paths[(next() % paths.len() as u64) as usize].to_owned();
        if next() % 2 == 0 {
            path.push_str(&format!("x{}", next() % 1000));
        }
        let query = if next() % 5 == 0 {
            ""
        } else {
            "?api-version=7.6"
        };
        let body = bodies[(next() % bodies.len() as u64) as usize];
        let response = rest.send(method, &format!("{path}{query}"), body);
        assert!(
            (200..500).contains(&response.status),
            "request {i}: {method} {path}{query} {body:?} → {} {}",
            response.status,
            response.body
        );
        if response.status >= 400 {
            let code = &response.json()["error"]["code"];
            assert!(code.is_string(), "{method} {path}: {}", response.body);
        }
    }
    assert_eq!(server.https_get("/healthz").0, 200);
    assert_eq!(rest.send("GET", "/secrets?api-version=7.6", "").status, 200);
}

fn rest_clone<'a>(rest: &Rest<'a>) -> Rest<'a> {
    Rest {
        server: rest.server,
        host: rest.host.clone(),
        token: rest.token.clone(),
    }
}
