//! Per-vault throttling against the real binary: limits are set by a cluster operator and
//! checked; a vault over its limit gets 429 Throttled with Retry-After, refused calls take no
//! tokens, classes and vaults have their own buckets, and refusals are audited and counted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use coffer_proto::v1 as pb;
use coffer_proto::v1::key_service_client::KeyServiceClient;
use coffer_proto::v1::secret_service_client::SecretServiceClient;
use coffer_proto::v1::vault_service_client::VaultServiceClient;
use common::{DevServer, vault_with_secret, with_bearer};
use tonic::Code;
use tonic::transport::Channel;

async fn create_vault(server: &DevServer, channel: Channel, name: &str) {
    vault_with_secret(server, channel, name, "s", "v").await;
}

/// The vault's limit for `class`: (rate, burst, is the default).
fn limit_of(vault: &pb::Vault, class: &str) -> (u32, u32, bool) {
    let limit = vault
        .throttle_limits
        .iter()
        .find(|l| l.class == class)
        .unwrap_or_else(|| panic!("no {class} limit in {vault:?}"));
    (limit.rate, limit.burst, limit.default)
}

async fn set_limits(
    server: &DevServer,
    channel: Channel,
    vault: &str,
    limits: Vec<pb::ThrottleLimit>,
    reset: Vec<String>,
) -> Result<pb::Vault, tonic::Status> {
    VaultServiceClient::new(channel)
        .set_throttle_limits(with_bearer(
            &server.token,
            pb::SetThrottleLimitsRequest {
                vault: vault.into(),
                limits,
                reset,
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

fn limit(class: &str, rate: u32, burst: u32) -> pb::ThrottleLimit {
    pb::ThrottleLimit {
        class: class.into(),
        rate,
        burst,
        default: false,
    }
}

async fn get(server: &DevServer, channel: Channel, vault: &str) -> Result<(), tonic::Status> {
    SecretServiceClient::new(channel)
        .get_secret(with_bearer(
            &server.token,
            pb::GetSecretRequest {
                vault: vault.into(),
                name: "s".into(),
                ..Default::default()
            },
        ))
        .await
        .map(|_| ())
}

/// The most a bucket of `rate` a second and burst `burst` admits in `elapsed`.
fn at_most(rate: u32, burst: u32, elapsed: Duration) -> usize {
    burst as usize + (f64::from(rate) * elapsed.as_secs_f64()).ceil() as usize
}

/// Sends `n` gets back to back; returns how many were admitted and the first refusal.
async fn burst_of_gets(
    server: &DevServer,
    channel: Channel,
    vault: &str,
    n: usize,
) -> (usize, Option<tonic::Status>) {
    let mut admitted = 0;
    let mut refusal = None;
    for _ in 0..n {
        match get(server, channel.clone(), vault).await {
            Ok(()) => admitted += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                refusal.get_or_insert(status);
            }
        }
    }
    (admitted, refusal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_over_its_limit_is_throttled_alone() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(&dir.path().join("d"));
    let channel = server.grpc_channel().await;
    create_vault(&server, channel.clone(), "busy-kv").await;
    create_vault(&server, channel.clone(), "quiet-kv").await;

    // Defaults are reported; bad limits are refused and change nothing.
    let vault = VaultServiceClient::new(channel.clone())
        .get_vault(with_bearer(
            &server.token,
            pb::GetVaultRequest {
                name: "busy-kv".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(limit_of(&vault, "secrets"), (2_000, 2_000, true));
    assert_eq!(limit_of(&vault, "keys"), (10_000, 10_000, true));
    for (bad, reset) in [
        (vec![limit("secrets", 0, 0)], vec![]),
        (vec![limit("secrets", 10, 101)], vec![]),
        (vec![limit("Secrets", 10, 0)], vec![]),
        (vec![limit("secrets", 10, 0)], vec!["secrets".to_owned()]),
        (vec![], vec![]),
    ] {
        let e = set_limits(&server, channel.clone(), "busy-kv", bad, reset)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    }

    // Five a second with a burst of five: a quick run of twenty gets admits about five.
    let vault = set_limits(
        &server,
        channel.clone(),
        "busy-kv",
        vec![limit("secrets", 5, 5)],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(limit_of(&vault, "secrets"), (5, 5, false));
    let started = std::time::Instant::now();
    let (first, refusal) = burst_of_gets(&server, channel.clone(), "busy-kv", 20).await;
    let most = at_most(5, 5, started.elapsed());
    assert!(
        (5..=most).contains(&first),
        "admitted {first} of 20, at most {most}"
    );
    let refusal = refusal.expect("some gets are throttled");
    assert_eq!(
        refusal.message(),
        "Request was not processed because too many requests were received. Reason: \
         VaultRequestTypeLimitReached"
    );
    assert_eq!(
        refusal.metadata().get("x-coffer-error-code").unwrap(),
        "Throttled"
    );
    let retry_ms: u64 = refusal
        .metadata()
        .get("x-ms-retry-after-ms")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1_000).contains(&retry_ms), "retry after {retry_ms} ms");
    assert_eq!(refusal.metadata().get("retry-after").unwrap(), "1");

    // Another vault, and another class of the same vault, have buckets of their own.
    let (quiet, none) = burst_of_gets(&server, channel.clone(), "quiet-kv", 20).await;
    assert_eq!((quiet, none.is_none()), (20, true));
    KeyServiceClient::new(channel.clone())
        .get_random_bytes(with_bearer(
            &server.token,
            pb::GetRandomBytesRequest {
                vault: "busy-kv".into(),
                count: 16,
            },
        ))
        .await
        .unwrap();

    // Refused calls took no tokens: after a second's refill, a full burst is admitted again,
    // although the refusals went on all along.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let started = std::time::Instant::now();
    let (second, _) = burst_of_gets(&server, channel.clone(), "busy-kv", 20).await;
    let most = at_most(5, 5, started.elapsed());
    assert!(
        (5..=most).contains(&second),
        "admitted {second} of 20, at most {most}"
    );

    // Refusals are audited as throttled and counted per vault and class.
    let throttled: Vec<_> = server
        .audit_lines()
        .into_iter()
        .filter(|r| r["resultCode"] == "Throttled")
        .collect();
    assert!(
        throttled.len() >= 24,
        "{} throttled records",
        throttled.len()
    );
    assert!(
        throttled.iter().all(|r| r["vault"] == "busy-kv"
            && r["httpStatus"] == 429
            && r["retryAfterMs"].is_u64())
    );
    let (_, metrics) = server.https_get("/metrics");
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("coffer_gateway_throttled_requests_total")
                && l.contains("vault=\"busy-kv\"")
                && l.contains("class=\"secrets\"")
        })
        .unwrap_or_else(|| panic!("no throttle counter in {metrics}"));
    let counted: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(counted as usize, throttled.len());

    // Resetting returns the class to the default.
    let vault = set_limits(
        &server,
        channel.clone(),
        "busy-kv",
        vec![],
        vec!["secrets".into()],
    )
    .await
    .unwrap();
    assert!(limit_of(&vault, "secrets").2);
    // The bucket refills at the new rate from the change on: a moment later it holds plenty.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (admitted, none) = burst_of_gets(&server, channel.clone(), "busy-kv", 20).await;
    assert_eq!((admitted, none.is_none()), (20, true));
}
