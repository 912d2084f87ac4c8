//! `coffer bench`: an open-loop load generator for a vault, for the load and throttling
//! benchmarks users run against their own clusters.
//!
//! Request `i` is due at `start + i / rate`, whatever the answers to earlier ones: a slow or
//! throttling server does not slow the offered load down (an open loop). At most
//! `--concurrency` requests are in flight; a due request that finds none free waits, and its
//! latency still counts from when it was due (the coordinated-omission correction), so a
//! saturated client shows up as latency and as late starts instead of silently lowering the
//! rate. Requests still waiting for a free slot when the run ends are reported as not sent.
//! Calls go round-robin to every node the address names, one connection each, and are never
//! retried: a 429 is what is measured. The run ends by itself: nothing is started after
//! `--duration`, and answers are awaited at most [`DRAIN`] longer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use coffer_client::proto::{CreateKeyRequest, GetSecretRequest, SetSecretRequest, SignRequest};
use coffer_client::{ClientError, CofferClient, ConnectOptions, split_addrs};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::output::{self, Table};
use super::{CliError, GlobalArgs};

/// A request that starts this much after it was due counts as a late start.
const LATE: Duration = Duration::from_millis(10);
/// In-flight requests get this long after the run before they count as unfinished.
const DRAIN: Duration = Duration::from_secs(10);
const MAX_RATE: u32 = 100_000;
const MAX_DURATION: Duration = Duration::from_secs(3_600);
const MAX_CONCURRENCY: u32 = 4_096;

/// `coffer bench ...`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    global: GlobalArgs,
    /// Vault to load.
    #[arg(long)]
    vault: String,
    /// The operation every request performs.
    #[arg(long, value_enum)]
    op: BenchOp,
    /// Requests per second offered, whatever the answers.
    #[arg(long)]
    rate: u32,
    /// How long to offer load, warm-up included (`30s`, `500ms`, `2m`, or seconds).
    #[arg(long, value_parser = parse_duration)]
    duration: Duration,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 32)]
    concurrency: u32,
    /// The secret or key used (created if missing).
    #[arg(long, default_value = "bench")]
    name: String,
    /// The first part of the run, left out of the results.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    warmup: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchOp {
    /// Read the latest version of a secret.
    SecretGet,
    /// Write a new version of a secret (random 32-character values).
    SecretSet,
    /// Sign a random SHA-256 digest with an EC P-256 key (ES256).
    KeySign,
}

impl BenchOp {
    fn name(self) -> &'static str {
        match self {
            BenchOp::SecretGet => "secret-get",
            BenchOp::SecretSet => "secret-set",
            BenchOp::KeySign => "key-sign",
        }
    }
}

/// `30s`, `500ms`, `2m`, `1h`, or a number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 30s, 500ms or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1_000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3_600.0,
        _ => return Err(format!("{text:?}: the unit must be ms, s, m or h")),
    };
    if !seconds.is_finite() || !(0.0..=MAX_DURATION.as_secs_f64()).contains(&seconds) {
        return Err(format!(
            "{text:?} must be at most {}s",
            MAX_DURATION.as_secs()
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// When request `i` is due, counted from the start, at `rate` a second.
fn due_offset(i: u64, rate: u32) -> Duration {
    Duration::from_secs_f64(i as f64 / f64::from(rate))
}

/// The first of `total` requests due at or after `at`; `total` if none is.
fn first_due_at(at: Duration, rate: u32, total: u64) -> u64 {
    let mut i = ((at.as_secs_f64() * f64::from(rate)).floor() as u64).min(total);
    // The estimate may be one off either way from rounding.
    while i > 0 && due_offset(i - 1, rate) >= at {
        i -= 1;
    }
    while i < total && due_offset(i, rate) < at {
        i += 1;
    }
    i
}

/// One finished request.
struct Outcome {
    due: Duration,
    late_start: bool,
    latency: Duration,
    result: Result<(), String>,
}

/// What the measured window saw.
#[derive(Debug)]
struct Summary {
    offered: u64,
    accepted: u64,
    throttled: u64,
    errors: BTreeMap<String, u64>,
    /// Due while every slot was busy, and still waiting when the run ended.
    not_sent: u64,
    /// Sent, but not answered within the drain.
    unfinished: u64,
    late_starts: u64,
    latency: Histogram<u64>,
}

impl Summary {
    fn new() -> Result<Self, CliError> {
        // 1 µs to 60 s at three significant digits.
        let latency = Histogram::new_with_bounds(1, 60_000_000, 3)
            .map_err(|e| CliError::bad_parameter(format!("latency histogram: {e}")))?;
        Ok(Self {
            offered: 0,
            accepted: 0,
            throttled: 0,
            errors: BTreeMap::new(),
            not_sent: 0,
            unfinished: 0,
            late_starts: 0,
            latency,
        })
    }

    fn record(&mut self, outcome: &Outcome) {
        self.late_starts += u64::from(outcome.late_start);
        match &outcome.result {
            Ok(()) => {
                self.accepted += 1;
                let micros = u64::try_from(outcome.latency.as_micros()).unwrap_or(u64::MAX);
                self.latency.saturating_record(micros.max(1));
            }
            Err(code) if code == "Throttled" => self.throttled += 1,
            Err(code) => *self.errors.entry(code.clone()).or_default() += 1,
        }
    }

    fn latency_ms(&self, quantile: f64) -> f64 {
        if self.latency.is_empty() {
            return 0.0;
        }
        self.latency.value_at_quantile(quantile) as f64 / 1_000.0
    }

    fn json(&self, settings: &Value, window: Duration) -> Value {
        let per_s = |n: u64| n as f64 / window.as_secs_f64().max(1e-9);
        let mut report = settings.clone();
        let fields = json!({
            "offered": self.offered,
            "accepted": self.accepted,
            "throttled": self.throttled,
            "errors": self.errors,
            "not_sent": self.not_sent,
            "unfinished": self.unfinished,
            "late_starts": self.late_starts,
            "offered_per_s": per_s(self.offered),
            "accepted_per_s": per_s(self.accepted),
            "throttled_per_s": per_s(self.throttled),
            "latency_ms": {
                "p50": self.latency_ms(0.5),
                "p90": self.latency_ms(0.9),
                "p99": self.latency_ms(0.99),
                "p999": self.latency_ms(0.999),
                "max": self.latency.max() as f64 / 1_000.0,
            },
        });
        if let (Some(report), Some(fields)) = (report.as_object_mut(), fields.as_object()) {
            report.extend(fields.clone());
        }
        report
    }
}

fn check(args: &BenchArgs) -> Result<(), CliError> {
    if !(1..=MAX_RATE).contains(&args.rate) {
        return Err(CliError::bad_parameter(format!(
            "--rate must be 1 to {MAX_RATE} requests a second"
        )));
    }
    if !(1..=MAX_CONCURRENCY).contains(&args.concurrency) {
        return Err(CliError::bad_parameter(format!(
            "--concurrency must be 1 to {MAX_CONCURRENCY}"
        )));
    }
    if args.duration.is_zero() || args.warmup >= args.duration {
        return Err(CliError::bad_parameter(
            "--duration must be longer than --warmup (and than zero)",
        ));
    }
    Ok(())
}

/// One client per node the address names, each bound to that node alone and never retrying.
async fn node_clients(global: &GlobalArgs) -> Result<(Vec<String>, Vec<CofferClient>), CliError> {
    let mut base = ConnectOptions::from_env_with(global.addr.clone(), global.ca_cert.clone())?;
    if global.source_address.is_some() {
        base.source_address = global.source_address;
    }
    let urls = split_addrs(&base.addr);
    let mut clients = Vec::new();
    for url in &urls {
        let options = ConnectOptions {
            addr: url.clone(),
            ..base.clone()
        };
        let client = CofferClient::connect(options)
            .await?
            .with_throttle_retries(0)
            .with_failover_deadline(Duration::ZERO);
        clients.push(client);
    }
    Ok((urls, clients))
}

fn random_bytes(n: usize) -> Result<Vec<u8>, CliError> {
    let mut bytes = vec![0u8; n];
    coffer_crypto::fill_random(&mut bytes)
        .map_err(|e| CliError::bad_parameter(format!("no random bytes: {e}")))?;
    Ok(bytes)
}

fn random_value() -> Result<String, CliError> {
    Ok(random_bytes(16)?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Makes sure the secret or key the requests use exists.
async fn prepare(client: &CofferClient, args: &BenchArgs) -> Result<(), CliError> {
    match args.op {
        BenchOp::SecretGet => {
            let found = client
                .get_secret(GetSecretRequest {
                    vault: args.vault.clone(),
                    name: args.name.clone(),
                    ..Default::default()
                })
                .await;
            match found {
                Ok(_) => Ok(()),
                Err(e) if e.code() == "SecretNotFound" => {
                    client
                        .set_secret(SetSecretRequest {
                            vault: args.vault.clone(),
                            name: args.name.clone(),
                            value: random_value()?,
                            ..Default::default()
                        })
                        .await?;
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        }
        BenchOp::SecretSet => Ok(()),
        BenchOp::KeySign => match client.get_key(&args.vault, &args.name, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == "KeyNotFound" => {
                client
                    .create_key(CreateKeyRequest {
                        vault: args.vault.clone(),
                        name: args.name.clone(),
                        kty: "EC".into(),
                        crv: "P-256".into(),
                        ..Default::default()
                    })
                    .await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        },
    }
}

/// One request of the run.
async fn one_request(
    client: &CofferClient,
    op: BenchOp,
    vault: &str,
    name: &str,
) -> Result<(), ClientError> {
    let random = |n| {
        let mut bytes = vec![0u8; n];
        coffer_crypto::fill_random(&mut bytes)
            .map(|()| bytes)
            .map_err(|e| ClientError::InvalidConfiguration {
                message: format!("no random bytes: {e}"),
            })
    };
    match op {
        BenchOp::SecretGet => client
            .get_secret(GetSecretRequest {
                vault: vault.to_owned(),
                name: name.to_owned(),
                ..Default::default()
            })
            .await
            .map(drop),
        BenchOp::SecretSet => {
            let value: String = random(16)?.iter().map(|b| format!("{b:02x}")).collect();
            client
                .set_secret(SetSecretRequest {
                    vault: vault.to_owned(),
                    name: name.to_owned(),
                    value,
                    ..Default::default()
                })
                .await
                .map(drop)
        }
        BenchOp::KeySign => client
            .sign(SignRequest {
                vault: vault.to_owned(),
                name: name.to_owned(),
                version: String::new(),
                alg: "ES256".into(),
                digest: random(32)?,
            })
            .await
            .map(drop),
    }
}

pub async fn run(args: BenchArgs) -> Result<(), CliError> {
    check(&args)?;
    prepare(&args.global.connect().await?, &args).await?;
    let (urls, clients) = node_clients(&args.global).await?;
    let total = (f64::from(args.rate) * args.duration.as_secs_f64()).round() as u64;
    let permits = Arc::new(tokio::sync::Semaphore::new(args.concurrency as usize));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Outcome>();
    let vault: Arc<str> = Arc::from(args.vault.as_str());
    let name: Arc<str> = Arc::from(args.name.as_str());
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + args.duration;
    // Requests due after the warm-up that were never sent.
    let mut not_sent = 0u64;
    let first_measured = first_due_at(args.warmup, args.rate, total);
    for i in 0..total {
        let offset = due_offset(i, args.rate);
        let due = start + offset;
        tokio::time::sleep_until(due).await;
        // Every slot busy: wait for one, but not past the end of the run, so that a server
        // that stops answering cannot keep the generator running.
        let Ok(Ok(permit)) = tokio::time::timeout_at(end, permits.clone().acquire_owned()).await
        else {
            not_sent = total - i.max(first_measured);
            break;
        };
        let late_start = Instant::now().saturating_duration_since(due) > LATE;
        let client = clients[(i % clients.len() as u64) as usize].clone();
        let (tx, vault, name, op) = (tx.clone(), vault.clone(), name.clone(), args.op);
        tokio::spawn(async move {
            let result = one_request(&client, op, &vault, &name)
                .await
                .map_err(|e| e.code().to_owned());
            let _ = tx.send(Outcome {
                due: offset,
                late_start,
                latency: due.elapsed(),
                result,
            });
            drop(permit);
        });
    }
    drop(tx);
    let mut summary = Summary::new()?;
    let mut finished_measured = 0u64;
    let drain_until = Instant::now() + DRAIN;
    while let Ok(Some(outcome)) = tokio::time::timeout_at(drain_until, rx.recv()).await {
        if outcome.due >= args.warmup {
            finished_measured += 1;
            summary.record(&outcome);
        }
    }
    summary.offered = total - first_measured;
    summary.not_sent = not_sent;
    summary.unfinished = summary
        .offered
        .saturating_sub(finished_measured)
        .saturating_sub(not_sent);
    let window = args.duration - args.warmup;
    let settings = json!({
        "op": args.op.name(),
        "vault": args.vault,
        "name": args.name,
        "nodes": urls,
        "rate_target": args.rate,
        "duration_s": args.duration.as_secs_f64(),
        "warmup_s": args.warmup.as_secs_f64(),
        "concurrency": args.concurrency,
    });
    let report = summary.json(&settings, window);
    output::print(&args.global, &report, || table(&report))
}

fn table(report: &Value) -> Table {
    let n = |field: &str| report[field].as_f64().unwrap_or(0.0);
    let ms = |q: &str| report["latency_ms"][q].as_f64().unwrap_or(0.0);
    let errors: Vec<String> = report["errors"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(code, count)| format!("{code}: {count}"))
        .collect();
    let rows = vec![
        (
            "Offered",
            format!("{:.0} ({:.1}/s)", n("offered"), n("offered_per_s")),
        ),
        (
            "Accepted",
            format!("{:.0} ({:.1}/s)", n("accepted"), n("accepted_per_s")),
        ),
        (
            "Throttled (429)",
            format!("{:.0} ({:.1}/s)", n("throttled"), n("throttled_per_s")),
        ),
        (
            "Other errors",
            if errors.is_empty() {
                "0".into()
            } else {
                errors.join(", ")
            },
        ),
        (
            "Not sent (client saturated)",
            format!("{:.0}", n("not_sent")),
        ),
        (
            "Unanswered after the run",
            format!("{:.0}", n("unfinished")),
        ),
        ("Late starts (>10 ms)", format!("{:.0}", n("late_starts"))),
        (
            "Latency ms p50/p90/p99/p99.9/max",
            format!(
                "{:.2} / {:.2} / {:.2} / {:.2} / {:.2}",
                ms("p50"),
                ms("p90"),
                ms("p99"),
                ms("p999"),
                ms("max")
            ),
        ),
    ];
    Table {
        headers: vec!["Measure", "Value"],
        rows: rows
            .into_iter()
            .map(|(k, v)| vec![k.to_owned(), v])
            .collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_bounds() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1_500));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3_600));
        for bad in ["", "s", "10x", "-1s", "2h", "1e9s", "ten"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requests_are_due_at_fixed_intervals() {
        assert_eq!(due_offset(0, 200), Duration::ZERO);
        assert_eq!(due_offset(200, 200), Duration::from_secs(1));
        assert_eq!(due_offset(3, 4), Duration::from_millis(750));
    }

    #[test]
    fn the_measured_window_starts_with_the_first_request_due_after_the_warmup() {
        for (warmup_ms, rate, total) in
            [(0, 10, 50), (1_000, 10, 50), (1_050, 10, 50), (999, 3, 30)]
        {
            let warmup = Duration::from_millis(warmup_ms);
            let expected = (0..total)
                .position(|i| due_offset(i, rate) >= warmup)
                .map_or(total, |i| i as u64);
            assert_eq!(
                first_due_at(warmup, rate, total),
                expected,
                "{warmup_ms} ms"
            );
        }
        assert_eq!(first_due_at(Duration::from_secs(60), 10, 50), 50);
    }

    #[test]
    fn the_summary_counts_outcomes_and_rates_over_the_window() {
        let mut summary = Summary::new().unwrap();
        summary.offered = 10;
        for (i, result) in [
            Ok(()),
            Ok(()),
            Err("Throttled".to_owned()),
            Err("Throttled".to_owned()),
            Err("ServiceUnavailable".to_owned()),
        ]
        .into_iter()
        .enumerate()
        {
            summary.record(&Outcome {
                due: Duration::ZERO,
                late_start: i == 0,
                latency: Duration::from_millis(2 + i as u64 * 2),
                result,
            });
        }
        let report = summary.json(&json!({"op": "secret-get"}), Duration::from_secs(2));
        assert_eq!(report["op"], "secret-get");
        assert_eq!(report["accepted"], 2);
        assert_eq!(report["throttled"], 2);
        assert_eq!(report["errors"]["ServiceUnavailable"], 1);
        assert_eq!(report["late_starts"], 1);
        assert_eq!(report["offered_per_s"], 5.0);
        assert_eq!(report["accepted_per_s"], 1.0);
        let p50 = report["latency_ms"]["p50"].as_f64().unwrap();
        let max = report["latency_ms"]["max"].as_f64().unwrap();
        assert!((1.9..=2.1).contains(&p50), "{p50}");
        assert!((3.9..=4.1).contains(&max), "{max}");
    }
}
