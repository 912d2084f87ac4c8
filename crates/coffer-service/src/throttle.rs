//! This node's part of every vault's cluster-wide throttle: token buckets, demand measurement
//! and the division of each limit between nodes. Pure bookkeeping: no I/O and no timers; every
//! function is given the time. The gateway calls [`ThrottleTable::check`] on each request; a
//! background task calls [`ThrottleTable::report`] every 250 ms, exchanges reports with the
//! other members, hands theirs to [`ThrottleTable::absorb`], then calls
//! [`ThrottleTable::rebalance`] and [`ThrottleTable::sweep`] (docs/throttling.md).
//!
//! - A vault's limit `L` (ops/s) and burst `B` per class hold for the whole cluster. Each node
//!   keeps one bucket per (vault, class) that refills at the node's share `s` of `L` and holds
//!   `B·s/L` tokens, but at least one, so a node with no share can still admit a request and
//!   show demand (the cluster's burst is thus at most `B` plus one token per member).
//! - Demand is the requests that arrived per second, admitted and refused alike, smoothed over
//!   exchange intervals (half weight on the newest). Refused requests take no token (as in
//!   Azure, 429s do not count against the limit) but count as demand: otherwise a throttled
//!   node could never show that it needs more.
//! - Every node feeds the same inputs (its demand, that of each peer whose report is younger
//!   than 1 s, and 0 for each other member) to the same max-min fair water-filling, so the
//!   shares add up to `L`, up to what the nodes have heard differently. Demands that fit get
//!   their demand plus an equal part of the spare, so a key nobody uses is split equally.
//! - A silent peer's last report counts for 1 s; then its demand is taken as 0 and its share
//!   goes to the others. In a partition longer than that, each side may admit up to `L`:
//!   availability wins, as the throttle protects the vault's fair use of the cluster and is not
//!   a security boundary.
//! - A new share or limit applies at once: the bucket keeps its tokens (clamped to the new
//!   capacity) and refills at the new rate from then on. The share is kept as a fraction of `L`,
//!   so a new limit applies from the next request, before the next rebalance.
//! - An entry idle for 60 s here, with no fresh peer demand, is swept. Beyond 100,000 entries a
//!   new (vault, class) is admitted untracked (logged once): failing open matches the partition
//!   choice, and only existing vaults reach the throttle, so invented names cannot fill it.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use coffer_types::{ThrottleClass, ThrottleLimit};
use serde::{Deserialize, Serialize};

/// How long a peer's report counts after it arrived: four exchange intervals.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(1);
/// How long a (vault, class) may go without requests here before it is swept.
const IDLE_AFTER: Duration = Duration::from_secs(60);
/// Most (vault, class) entries tracked, and most taken from one peer's report.
const MAX_ENTRIES: usize = 100_000;
const MAX_REPORT_ENTRIES: usize = 100_000;
/// Most peers whose reports are kept (far above any cluster's size).
const MAX_PEERS: usize = 64;
/// Azure vault names have 3 to 24 characters.
const MAX_VAULT_NAME: usize = 24;
/// Weight of the newest interval in the smoothed demand.
const NEWEST_WEIGHT: f64 = 0.5;
/// Demand below this (ops/s) is 0, so that forgotten keys leave the reports.
const DEMAND_FLOOR: f64 = 0.01;
/// Demand is capped here: far above any limit, and sums of it stay finite.
const MAX_DEMAND: f64 = 1e9;
/// A shorter interval is not measured (two reports in a row): its rate would be noise.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Shares change every 250 ms, so a longer promise would be stale before it is due; a client
/// that comes back early and is refused again costs nothing.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Float rounding in token counts: ten refills of 0.1 token must make a token.
const TOKEN_EPSILON: f64 = 1e-9;
/// Requests for different vaults rarely wait on each other, and a rebalance holds each lock for
/// a sixteenth of the table.
const SHARDS: u64 = 16;

/// One node's smoothed demand per (vault, class), sent to its peers every interval. A key that
/// is absent has demand 0.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) struct DemandReport {
    pub node: u64,
    pub demands: Vec<Demand>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) struct Demand {
    pub vault: String,
    pub class: ThrottleClass,
    /// Requests per second that arrived, admitted or refused.
    pub rate: f64,
}

/// Where the water stands once a limit is poured over the demands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Level {
    /// The demands fit: each gets its demand plus this.
    Spare(f64),
    /// They do not: each gets its demand, but at most this.
    Cap(f64),
}

impl Level {
    /// `sorted` holds clean demands in increasing order; summing in that order gives the same
    /// bits on every node that has the same demands.
    fn of(limit: f64, sorted: &[f64]) -> Self {
        let total: f64 = sorted.iter().sum();
        if total <= limit {
            return Level::Spare((limit - total) / sorted.len().max(1) as f64);
        }
        let mut remaining = limit;
        for (served, &demand) in sorted.iter().enumerate() {
            let fair = remaining / (sorted.len() - served) as f64;
            if demand >= fair {
                return Level::Cap(fair);
            }
            remaining -= demand;
        }
        // Only rounding gets here (the largest demand is at least what remains): all fit.
        Level::Spare(0.0)
    }

    fn share(self, demand: f64) -> f64 {
        match self {
            Level::Spare(spare) => demand + spare,
            Level::Cap(cap) => demand.min(cap),
        }
    }
}

/// This node's fraction of a key's limit, from its own demand, each fresh peer's, and 0 for
/// each member not heard from. `scratch` is reused between keys to save allocations.
fn fraction_of(
    key: (&str, ThrottleClass),
    own: f64,
    limit: u32,
    peers: &[Arc<PeerDemand>],
    members: usize,
    scratch: &mut Vec<f64>,
) -> f64 {
    if limit == 0 {
        return 0.0;
    }
    scratch.clear();
    scratch.push(own);
    scratch.extend(peers.iter().map(|peer| peer.demand(key)));
    scratch.resize(members.max(scratch.len()), 0.0);
    scratch.sort_by(f64::total_cmp);
    let limit = f64::from(limit);
    (Level::of(limit, scratch).share(own) / limit).clamp(0.0, 1.0)
}

/// How long until `missing` tokens accrue at `rate`, rounded up to whole milliseconds (what
/// clients are told), within 1 ms ..= [`MAX_RETRY_AFTER`].
fn retry_after(missing: f64, rate: f64) -> Duration {
    let millis = (missing / rate * 1000.0 - 1e-6).ceil();
    if !(rate > 1e-9 && millis < MAX_RETRY_AFTER.as_millis() as f64) {
        return MAX_RETRY_AFTER;
    }
    // In range: 0 ..= 999 after the check above, so the conversion is exact.
    Duration::from_millis((millis as u64).max(1))
}

/// One (vault, class) on this node.
#[derive(Debug)]
struct Bucket {
    limit: ThrottleLimit,
    /// This node's share as a fraction of `limit.rate`, so that a new limit applies at once.
    fraction: f64,
    tokens: f64,
    refilled: Instant,
    /// Requests, admitted and refused, since the last report.
    arrivals: u64,
    /// Smoothed demand in ops/s; `None` until a report has measured it.
    demand: Option<f64>,
    last_request: Instant,
}

impl Bucket {
    fn new(limit: ThrottleLimit, fraction: f64, now: Instant) -> Self {
        let mut bucket = Bucket {
            limit,
            fraction,
            tokens: 0.0,
            refilled: now,
            arrivals: 0,
            demand: None,
            last_request: now,
        };
        bucket.tokens = bucket.capacity();
        bucket
    }

    fn rate(&self) -> f64 {
        self.fraction * f64::from(self.limit.rate)
    }

    fn capacity(&self) -> f64 {
        (self.fraction * f64::from(self.limit.burst)).max(1.0)
    }

    /// Adds what the current rate earned until `now`. Concurrent requests read the clock before
    /// they take the lock, so `now` may be a little behind `refilled`: time never runs back.
    fn refill(&mut self, now: Instant) {
        if now > self.refilled {
            let earned = self.rate() * (now - self.refilled).as_secs_f64();
            self.tokens = (self.tokens + earned).min(self.capacity());
            self.refilled = now;
        }
    }

    fn adopt(&mut self, limit: ThrottleLimit, fraction: f64, now: Instant) {
        if limit != self.limit {
            // The vault's limit changed some time since the last request, when is not known:
            // that time is credited at the new rate, so a raised limit is felt at once and a
            // lowered one at once too.
            self.limit = limit;
        }
        self.refill(now);
        self.fraction = fraction;
        self.tokens = self.tokens.min(self.capacity());
    }

    fn take(&mut self, limit: ThrottleLimit, now: Instant) -> Result<(), Duration> {
        self.arrivals = self.arrivals.saturating_add(1);
        self.last_request = self.last_request.max(now);
        self.adopt(limit, self.fraction, now);
        if self.tokens + TOKEN_EPSILON >= 1.0 {
            self.tokens = (self.tokens - 1.0).max(0.0);
            Ok(())
        } else {
            Err(retry_after(1.0 - self.tokens, self.rate()))
        }
    }
}

/// A vault's entries by class: at most four, so a list.
#[derive(Debug)]
struct PerClass<T>(Vec<(ThrottleClass, T)>);

impl<T> Default for PerClass<T> {
    fn default() -> Self {
        PerClass(Vec::new())
    }
}

impl<T> PerClass<T> {
    fn get(&self, class: ThrottleClass) -> Option<&T> {
        self.0.iter().find(|(c, _)| *c == class).map(|(_, v)| v)
    }

    fn get_mut(&mut self, class: ThrottleClass) -> Option<&mut T> {
        self.0.iter_mut().find(|(c, _)| *c == class).map(|(_, v)| v)
    }

    fn insert(&mut self, class: ThrottleClass, value: T) -> &mut T {
        self.0.retain(|(c, _)| *c != class);
        self.0.push((class, value));
        let last = self.0.len() - 1;
        &mut self.0[last].1
    }
}

/// A peer's latest report, immutable once stored: readers clone the `Arc` and so never hold the
/// peers' lock together with a shard's.
#[derive(Debug)]
struct PeerDemand {
    received: Instant,
    demands: HashMap<Box<str>, PerClass<f64>>,
}

impl PeerDemand {
    fn fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.received) < STALE_AFTER
    }

    fn demand(&self, (vault, class): (&str, ThrottleClass)) -> f64 {
        self.demands
            .get(vault)
            .and_then(|classes| classes.get(class))
            .copied()
            .unwrap_or(0.0)
    }
}

type Shard = Mutex<HashMap<Box<str>, PerClass<Bucket>>>;

/// The buckets hold counters, and no update can panic half-way, so a poisoned lock's data is
/// as good as any.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This node's buckets and what it has heard of its peers' demand.
#[derive(Debug)]
pub(crate) struct ThrottleTable {
    node: u64,
    shards: Vec<Shard>,
    hasher: RandomState,
    /// Buckets tracked, against [`MAX_ENTRIES`].
    entries: AtomicUsize,
    full_logged: AtomicBool,
    /// Members serving clients, as the last rebalance was told; new buckets start with it.
    members: AtomicUsize,
    peers: Mutex<HashMap<u64, Arc<PeerDemand>>>,
    /// The end of the last measured interval.
    last_report: Mutex<Instant>,
}

impl ThrottleTable {
    pub(crate) fn new(node_id: u64) -> Self {
        ThrottleTable {
            node: node_id,
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            hasher: RandomState::new(),
            entries: AtomicUsize::new(0),
            full_logged: AtomicBool::new(false),
            members: AtomicUsize::new(1),
            peers: Mutex::default(),
            last_report: Mutex::new(Instant::now()),
        }
    }

    fn shard(&self, vault: &str) -> &Shard {
        // Below SHARDS, which is the length of `shards`.
        &self.shards[(self.hasher.hash_one(vault) % SHARDS) as usize]
    }

    /// Admits one request or says how long until a token is free. `limit` is the vault's
    /// current limit for `class`; a changed one applies to this request.
    pub(crate) fn check(
        &self,
        vault: &str,
        class: ThrottleClass,
        limit: ThrottleLimit,
        now: Instant,
    ) -> Result<(), Duration> {
        let shard = self.shard(vault);
        if let Some(bucket) = lock(shard).get_mut(vault).and_then(|c| c.get_mut(class)) {
            return bucket.take(limit, now);
        }
        // The first request for this key here. Its share follows what peers report, read
        // without the shard's lock held.
        let members = self.members.load(Relaxed);
        let peers = self.fresh_peers(now);
        let fraction = fraction_of(
            (vault, class),
            0.0,
            limit.rate,
            &peers,
            members,
            &mut Vec::new(),
        );
        let mut map = lock(shard);
        if let Some(bucket) = map.get_mut(vault).and_then(|c| c.get_mut(class)) {
            return bucket.take(limit, now); // another request created it meanwhile
        }
        if self.entries.load(Relaxed) >= MAX_ENTRIES {
            if !self.full_logged.swap(true, Relaxed) {
                tracing::warn!(
                    max_entries = MAX_ENTRIES,
                    "the throttle table is full: further vaults are admitted without a limit"
                );
            }
            return Ok(());
        }
        self.entries.fetch_add(1, Relaxed);
        map.entry(Box::from(vault))
            .or_default()
            .insert(class, Bucket::new(limit, fraction, now))
            .take(limit, now)
    }

    /// This node's demand per key, for its peers, after folding the interval since the last
    /// call into the smoothed demand.
    pub(crate) fn report(&self, now: Instant) -> DemandReport {
        let mut last = lock(&self.last_report);
        let elapsed = now.saturating_duration_since(*last);
        if elapsed < MIN_INTERVAL {
            drop(last);
            return self.current_report();
        }
        *last = now;
        let seconds = elapsed.as_secs_f64();
        for shard in &self.shards {
            for (_, bucket) in lock(shard).values_mut().flat_map(|c| c.0.iter_mut()) {
                let newest = (bucket.arrivals as f64 / seconds).min(MAX_DEMAND);
                bucket.arrivals = 0;
                let smoothed = match bucket.demand {
                    Some(old) => NEWEST_WEIGHT * newest + (1.0 - NEWEST_WEIGHT) * old,
                    None => newest,
                };
                bucket.demand = Some(if smoothed < DEMAND_FLOOR {
                    0.0
                } else {
                    smoothed
                });
            }
        }
        drop(last);
        self.current_report()
    }

    /// This node's demand as the last [`report`](Self::report) measured it (the answer to a
    /// peer's report, which must not start a new interval).
    pub(crate) fn current_report(&self) -> DemandReport {
        let mut demands = Vec::new();
        for shard in &self.shards {
            for (vault, classes) in lock(shard).iter() {
                for (class, bucket) in &classes.0 {
                    match bucket.demand {
                        Some(rate) if rate > 0.0 => demands.push(Demand {
                            vault: vault.to_string(),
                            class: *class,
                            rate,
                        }),
                        _ => {}
                    }
                }
            }
        }
        demands.sort_by(|a, b| (&a.vault, a.class).cmp(&(&b.vault, b.class)));
        DemandReport {
            node: self.node,
            demands,
        }
    }

    /// Keeps a peer's report, replacing its previous one. The peer is authenticated but its
    /// report is still bounded: entries past [`MAX_REPORT_ENTRIES`], rates that are not
    /// positive and finite, and names longer than a vault's are ignored.
    pub(crate) fn absorb(&self, report: DemandReport, now: Instant) {
        if report.node == self.node {
            return;
        }
        let mut demands: HashMap<Box<str>, PerClass<f64>> = HashMap::new();
        for demand in report.demands.into_iter().take(MAX_REPORT_ENTRIES) {
            if demand.vault.len() <= MAX_VAULT_NAME && demand.rate.is_finite() && demand.rate > 0.0
            {
                demands
                    .entry(demand.vault.into_boxed_str())
                    .or_default()
                    .insert(demand.class, demand.rate.min(MAX_DEMAND));
            }
        }
        let peer = Arc::new(PeerDemand {
            received: now,
            demands,
        });
        let mut peers = lock(&self.peers);
        if peers.len() >= MAX_PEERS && !peers.contains_key(&report.node) {
            tracing::debug!(
                node = report.node,
                "too many peers report demand; report ignored"
            );
            return;
        }
        let previous = peers.insert(report.node, peer);
        drop(peers);
        drop(previous); // freed outside the lock
    }

    /// Recomputes every share from the latest demands. `members` counts the nodes that serve
    /// clients (from the Raft membership, this one included); those not reporting count as
    /// demand 0 once their report is stale.
    pub(crate) fn rebalance(&self, members: usize, now: Instant) {
        let members = members.max(1);
        self.members.store(members, Relaxed);
        let peers = self.fresh_peers(now);
        let mut scratch = Vec::with_capacity(members.max(peers.len() + 1));
        for shard in &self.shards {
            for (vault, classes) in lock(shard).iter_mut() {
                for (class, bucket) in &mut classes.0 {
                    let own = bucket.demand.unwrap_or(0.0);
                    let rate = bucket.limit.rate;
                    let f = fraction_of((vault, *class), own, rate, &peers, members, &mut scratch);
                    bucket.adopt(bucket.limit, f, now);
                }
            }
        }
    }

    /// Forgets stale peers, and keys idle here for [`IDLE_AFTER`] that no fresh peer uses.
    pub(crate) fn sweep(&self, now: Instant) {
        let stale: Vec<_> = lock(&self.peers)
            .extract_if(|_, peer| !peer.fresh(now))
            .collect();
        drop(stale); // freed outside the lock
        let peers = self.fresh_peers(now);
        for shard in &self.shards {
            let mut removed = 0;
            lock(shard).retain(|vault, classes| {
                classes.0.retain(|(class, bucket)| {
                    let keep = now.saturating_duration_since(bucket.last_request) < IDLE_AFTER
                        || peers.iter().any(|peer| peer.demand((vault, *class)) > 0.0);
                    removed += usize::from(!keep);
                    keep
                });
                !classes.0.is_empty()
            });
            self.entries.fetch_sub(removed, Relaxed);
        }
        if self.entries.load(Relaxed) < MAX_ENTRIES {
            self.full_logged.store(false, Relaxed);
        }
    }

    /// This node's current share (ops/s) of a key, if tracked.
    #[cfg(test)]
    pub(crate) fn share(&self, vault: &str, class: ThrottleClass) -> Option<f64> {
        lock(self.shard(vault))
            .get(vault)
            .and_then(|classes| classes.get(class))
            .map(Bucket::rate)
    }

    fn fresh_peers(&self, now: Instant) -> Vec<Arc<PeerDemand>> {
        lock(&self.peers)
            .values()
            .filter(|peer| peer.fresh(now))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Divides `limit` between nodes with these demands (ops/s), max-min fair: if they fit, each
    /// gets its demand plus an equal part of the spare; if not, nodes are served in order of
    /// increasing demand, each getting the smaller of its demand and an equal part of what remains.
    /// Negative or non-finite demands count as 0.
    // The table computes only its own entry, with the same `Level` and no allocation
    // (`fraction_of`); the whole allocation is what the tests check.
    fn water_fill(limit: f64, demands: &[f64]) -> Vec<f64> {
        let demands: Vec<f64> = demands.iter().map(|&d| clean(d)).collect();
        let mut sorted = demands.clone();
        sorted.sort_by(f64::total_cmp);
        let level = Level::of(limit.max(0.0), &sorted);
        demands.into_iter().map(|d| level.share(d)).collect()
    }

    fn clean(demand: f64) -> f64 {
        if demand.is_finite() && demand > 0.0 {
            demand.min(MAX_DEMAND)
        } else {
            0.0
        }
    }

    const SECRETS: ThrottleClass = ThrottleClass::Secrets;
    /// The cluster limit of the simulations, in ops/s and tokens.
    const L: f64 = 300.0;

    fn limit(rate: u32, burst: u32) -> ThrottleLimit {
        ThrottleLimit { rate, burst }
    }

    fn assert_close(actual: &[f64], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len(), "{actual:?} != {expected:?}");
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < 1e-9, "{actual:?} != {expected:?}");
        }
    }

    /// Nodes driven together in simulated time, exchanging reports every 250 ms as the
    /// background task does; `offered[i]` requests a second arrive at node i, evenly spread.
    struct Sim {
        nodes: Vec<ThrottleTable>,
        silent: Vec<bool>,
        limit: ThrottleLimit,
        start: Instant,
        elapsed_ms: u64,
        owed: Vec<f64>,
        admitted: Vec<u64>,
        refused: Vec<u64>,
    }

    impl Sim {
        fn new(n: u64, limit: ThrottleLimit) -> Self {
            let nodes: Vec<_> = (1..=n).map(ThrottleTable::new).collect();
            let start = Instant::now();
            for node in &nodes {
                node.rebalance(nodes.len(), start);
            }
            let n = nodes.len();
            Sim {
                nodes,
                silent: vec![false; n],
                limit,
                start,
                elapsed_ms: 0,
                owed: vec![0.0; n],
                admitted: vec![0; n],
                refused: vec![0; n],
            }
        }

        fn now(&self) -> Instant {
            self.start + Duration::from_millis(self.elapsed_ms)
        }

        fn run(&mut self, ms: u64, offered: &[f64]) {
            for _ in 0..ms {
                self.elapsed_ms += 1;
                let now = self.now();
                for (i, node) in self.nodes.iter().enumerate() {
                    self.owed[i] += offered[i] / 1000.0;
                    while self.owed[i] >= 1.0 {
                        self.owed[i] -= 1.0;
                        match node.check("vault", SECRETS, self.limit, now) {
                            Ok(()) => self.admitted[i] += 1,
                            Err(_) => self.refused[i] += 1,
                        }
                    }
                }
                if self.elapsed_ms.is_multiple_of(250) {
                    self.exchange(now);
                }
            }
        }

        fn exchange(&self, now: Instant) {
            let reports: Vec<_> = (self.nodes.iter().zip(&self.silent))
                .filter(|(_, silent)| !**silent)
                .map(|(node, _)| node.report(now))
                .collect();
            for (node, silent) in self.nodes.iter().zip(&self.silent) {
                if !silent {
                    for report in &reports {
                        node.absorb(report.clone(), now); // its own is ignored
                    }
                    node.rebalance(self.nodes.len(), now);
                    node.sweep(now);
                }
            }
        }

        fn reset_counts(&mut self) {
            self.admitted.fill(0);
            self.refused.fill(0);
        }

        fn shares(&self) -> Vec<f64> {
            let share = |node: &ThrottleTable| node.share("vault", SECRETS).unwrap_or(0.0);
            self.nodes.iter().map(share).collect()
        }

        /// Admitted within 5% of the limit over `seconds`, plus at most one burst.
        fn assert_admitted_about(&self, seconds: f64, burst: f64) {
            let admitted = self.admitted.iter().sum::<u64>() as f64;
            let (floor, ceiling) = (0.95 * L * seconds, 1.05 * L * seconds + burst);
            assert!(
                (floor..=ceiling).contains(&admitted),
                "admitted {admitted} ({:?}), expected {floor}..={ceiling}",
                self.admitted
            );
        }
    }

    #[test]
    fn water_fill_splits_the_spare_equally_when_demand_fits() {
        assert_close(&water_fill(100.0, &[10.0, 20.0, 40.0]), &[20.0, 30.0, 50.0]);
        assert_close(&water_fill(90.0, &[0.0, 0.0, 0.0]), &[30.0; 3]);
        assert_close(&water_fill(90.0, &[]), &[]);
    }

    #[test]
    fn water_fill_serves_small_demands_and_caps_large_ones() {
        assert_close(&water_fill(90.0, &[100.0; 3]), &[30.0; 3]);
        assert_close(
            &water_fill(100.0, &[10.0, 200.0, 50.0]),
            &[10.0, 45.0, 45.0],
        );
        assert_close(
            &water_fill(100.0, &[200.0, 20.0, 30.0]),
            &[50.0, 20.0, 30.0],
        );
        let broken = [f64::NAN, -5.0, f64::INFINITY, 20.0];
        assert_close(&water_fill(10.0, &broken), &[0.0, 0.0, 0.0, 10.0]);
    }

    #[test]
    fn water_fill_gives_out_exactly_the_limit_max_min_fairly() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 10_000) as f64 / 10.0
        };
        for round in 0..1_000 {
            let demands: Vec<f64> = (0..1 + round % 7).map(|_| next()).collect();
            let limit = next();
            let shares = water_fill(limit, &demands);
            let total: f64 = shares.iter().sum();
            assert!(
                (total - limit).abs() < 1e-9 * limit.max(1.0),
                "{demands:?} {shares:?}"
            );
            let fits = demands.iter().sum::<f64>() <= limit;
            let most = shares.iter().copied().fold(0.0, f64::max);
            for (demand, share) in demands.iter().zip(&shares) {
                if fits {
                    assert!(share >= demand, "{demands:?} {shares:?}");
                } else {
                    // Nobody gets more than it asks; whoever gets less gets the most anyone gets.
                    assert!(*share <= demand + 1e-9, "{demands:?} {shares:?}");
                    assert!(*share >= demand - 1e-9 || most - share < 1e-9, "{shares:?}");
                }
            }
        }
    }

    #[test]
    fn one_node_admits_its_limit_and_refusals_take_no_tokens() {
        let mut sim = Sim::new(1, limit(100, 100));
        sim.run(10_000, &[300.0]);
        let expected = 100.0 * 10.0 + 100.0;
        let admitted = sim.admitted[0] as f64;
        assert!(
            (admitted - expected).abs() <= 0.02 * expected,
            "admitted {admitted}"
        );
        assert!(sim.refused[0] >= 1_800, "refused {}", sim.refused[0]);
        // Had the refusals taken tokens, the bucket would be in debt now, not full.
        sim.run(1_000, &[0.0]);
        let now = sim.now();
        let node = &sim.nodes[0];
        let burst = (0..150)
            .filter(|_| node.check("vault", SECRETS, sim.limit, now).is_ok())
            .count();
        assert_eq!(burst, 100);
    }

    #[test]
    fn three_nodes_overloaded_evenly_admit_the_cluster_limit() {
        let mut sim = Sim::new(3, limit(300, 300));
        sim.run(10_000, &[L; 3]);
        sim.assert_admitted_about(10.0, L);
        assert_close(&sim.shares(), &[L / 3.0; 3]);
    }

    #[test]
    fn three_nodes_overloaded_unevenly_admit_the_cluster_limit() {
        let mut sim = Sim::new(3, limit(300, 300));
        sim.run(10_000, &[0.8 * 3.0 * L, 0.1 * 3.0 * L, 0.1 * 3.0 * L]);
        sim.assert_admitted_about(10.0, L);
        // The light nodes keep what they use (90/s each); the busy one gets the rest.
        let shares = sim.shares();
        assert!((shares.iter().sum::<f64>() - L).abs() < 1e-6, "{shares:?}");
        for (share, expected) in shares.iter().zip([120.0, 90.0, 90.0]) {
            assert!((share - expected).abs() < 5.0, "{shares:?}");
        }
    }

    #[test]
    fn three_nodes_under_the_limit_refuse_nothing() {
        let mut sim = Sim::new(3, limit(300, 300));
        sim.run(10_000, &[0.5 * L / 3.0; 3]);
        assert_eq!(sim.refused, [0, 0, 0]);
        assert_eq!(sim.admitted.iter().sum::<u64>(), 1_500);
    }

    #[test]
    fn a_silent_peers_share_goes_to_the_others_once_stale() {
        let mut sim = Sim::new(3, limit(300, 300));
        sim.run(2_000, &[L; 3]);
        sim.silent[2] = true;
        sim.reset_counts();
        // For a second its last report stands, and nodes 1 and 2 keep their thirds.
        sim.run(1_000, &[1.5 * L, 1.5 * L, 0.0]);
        let admitted = (sim.admitted[0] + sim.admitted[1]) as f64;
        assert!(
            (admitted - 2.0 * L / 3.0).abs() <= 0.1 * L,
            "admitted {admitted}"
        );
        sim.reset_counts();
        sim.run(5_000, &[1.5 * L, 1.5 * L, 0.0]);
        sim.assert_admitted_about(5.0, L);
        assert_close(&sim.shares()[..2], &[L / 2.0; 2]);
    }

    #[test]
    fn retry_after_is_the_time_until_the_next_token() {
        let table = ThrottleTable::new(1);
        let now = Instant::now();
        let one_ms = Duration::from_millis(1);
        table.rebalance(1, now);
        let solo = limit(100, 100);
        while table.check("solo", SECRETS, solo, now).is_ok() {}
        assert_eq!(table.check("solo", SECRETS, solo, now), Err(10 * one_ms));
        assert_eq!(
            table.check("solo", SECRETS, solo, now + 5 * one_ms),
            Err(5 * one_ms)
        );

        // With three members and no reports yet, a new key starts with a third of the limit.
        table.rebalance(3, now);
        let shared = limit(300, 300);
        while table.check("shared", SECRETS, shared, now).is_ok() {}
        let share = table.share("shared", SECRETS).unwrap();
        assert!((share - 100.0).abs() < 1e-9, "{share}");
        let retry = table.check("shared", SECRETS, shared, now).unwrap_err();
        assert!(
            retry.abs_diff(Duration::from_secs_f64(1.0 / share)) <= one_ms,
            "{retry:?}"
        );

        // When peers' demand takes the whole limit, a new key here has no share: it admits
        // its one token, then asks for the longest wait.
        for node in [2, 3] {
            let busy = Demand {
                vault: "busy".into(),
                class: SECRETS,
                rate: 1_000.0,
            };
            table.absorb(
                DemandReport {
                    node,
                    demands: vec![busy],
                },
                now,
            );
        }
        assert_eq!(table.check("busy", SECRETS, shared, now), Ok(()));
        assert_eq!(table.share("busy", SECRETS), Some(0.0));
        assert_eq!(
            table.check("busy", SECRETS, shared, now),
            Err(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn a_new_limit_applies_to_the_next_request() {
        let table = ThrottleTable::new(1);
        let now = Instant::now();
        table.rebalance(1, now);
        assert!(table.check("vault", SECRETS, limit(100, 100), now).is_ok());
        // Lowered: the 99 tokens left are clamped to the new burst at once.
        let low = limit(10, 10);
        let admitted = (0..50)
            .filter(|_| table.check("vault", SECRETS, low, now).is_ok())
            .count();
        assert_eq!(admitted, 10);
        assert_eq!(
            table.check("vault", SECRETS, low, now),
            Err(Duration::from_millis(100))
        );
        assert_eq!(table.share("vault", SECRETS), Some(10.0));
        // Raised: no free burst, but the new rate from now on.
        let high = limit(1_000, 1_000);
        assert_eq!(
            table.check("vault", SECRETS, high, now),
            Err(Duration::from_millis(1))
        );
        let later = now + Duration::from_millis(10);
        let admitted = (0..50)
            .filter(|_| table.check("vault", SECRETS, high, later).is_ok())
            .count();
        assert_eq!(admitted, 10);
    }

    #[test]
    fn demand_counts_refused_requests_and_is_smoothed() {
        let table = ThrottleTable::new(7);
        let start = Instant::now();
        table.rebalance(1, start);
        let admitted = (0..100)
            .filter(|_| table.check("vault", SECRETS, limit(10, 10), start).is_ok())
            .count();
        assert_eq!(admitted, 10);
        let first = table.report(start + Duration::from_millis(250));
        assert_eq!((first.node, first.demands.len()), (7, 1));
        assert!((first.demands[0].rate - 400.0).abs() < 1.0, "{first:?}");
        let second = table.report(start + Duration::from_millis(500));
        assert!((second.demands[0].rate - 200.0).abs() < 1.0, "{second:?}");
        // Answering a peer does not start an interval.
        assert_eq!(table.current_report(), second);
        assert_eq!(table.report(start + Duration::from_millis(501)), second);
        // serde_json may round the last bit of a float; a share is none the worse for it.
        let json = serde_json::to_vec(&second).unwrap();
        let parsed: DemandReport = serde_json::from_slice(&json).unwrap();
        assert_eq!(parsed.node, second.node);
        for (p, s) in parsed.demands.iter().zip(&second.demands) {
            assert_eq!((&p.vault, p.class), (&s.vault, s.class));
            assert!((p.rate - s.rate).abs() <= 1e-12 * s.rate, "{p:?} {s:?}");
        }
    }

    #[test]
    fn absorb_ignores_what_a_report_should_not_hold() {
        let table = ThrottleTable::new(1);
        let now = Instant::now();
        let demand = |vault: &str, rate| Demand {
            vault: vault.into(),
            class: SECRETS,
            rate,
        };
        let long_name = "v".repeat(MAX_VAULT_NAME + 1);
        let mut demands = vec![
            demand("nan", f64::NAN),
            demand("negative", -1.0),
            demand("infinite", f64::INFINITY),
            demand(&long_name, 5.0),
            demand("huge", 1e300),
            demand("ok", 7.0),
        ];
        demands.extend((0..MAX_REPORT_ENTRIES).map(|i| demand(&format!("v{i}"), 1.0)));
        demands.push(demand("beyond", 1.0));
        table.absorb(DemandReport { node: 2, demands }, now);
        table.absorb(
            DemandReport {
                node: 1,
                demands: vec![demand("self", 1.0)],
            },
            now,
        );
        {
            let peers = lock(&table.peers);
            assert_eq!(peers.keys().collect::<Vec<_>>(), [&2]);
            let peer = &peers[&2];
            for vault in ["nan", "negative", "infinite", &long_name, "beyond", "self"] {
                assert_eq!(peer.demand((vault, SECRETS)), 0.0, "{vault}");
            }
            assert_eq!(peer.demand(("huge", SECRETS)), MAX_DEMAND);
            assert_eq!(peer.demand(("ok", SECRETS)), 7.0);
        }
        for node in 3..100 {
            table.absorb(
                DemandReport {
                    node,
                    demands: vec![demand("ok", 1.0)],
                },
                now,
            );
        }
        assert_eq!(lock(&table.peers).len(), MAX_PEERS);
    }

    #[test]
    fn sweep_forgets_idle_keys_unless_peers_still_use_them() {
        let table = ThrottleTable::new(1);
        let now = Instant::now();
        for vault in ["idle", "shared"] {
            assert!(table.check(vault, SECRETS, limit(10, 10), now).is_ok());
        }
        table.sweep(now + IDLE_AFTER - Duration::from_millis(1));
        assert_eq!(table.entries.load(Relaxed), 2);
        let later = now + IDLE_AFTER;
        let shared = Demand {
            vault: "shared".into(),
            class: SECRETS,
            rate: 5.0,
        };
        table.absorb(
            DemandReport {
                node: 2,
                demands: vec![shared],
            },
            later,
        );
        table.sweep(later);
        assert_eq!(table.share("idle", SECRETS), None);
        assert!(table.share("shared", SECRETS).is_some());
        assert_eq!(table.entries.load(Relaxed), 1);
        // Once the peer's report is stale, the key goes, and so does the peer.
        table.sweep(later + STALE_AFTER);
        assert_eq!(table.share("shared", SECRETS), None);
        assert_eq!(table.entries.load(Relaxed), 0);
        assert!(lock(&table.peers).is_empty());
    }

    #[test]
    fn a_full_table_admits_new_keys_untracked() {
        let table = ThrottleTable::new(1);
        let now = Instant::now();
        assert!(table.check("known", SECRETS, limit(1, 1), now).is_ok());
        table.entries.store(MAX_ENTRIES, Relaxed);
        for _ in 0..3 {
            assert_eq!(table.check("new", SECRETS, limit(1, 1), now), Ok(()));
        }
        assert_eq!(table.share("new", SECRETS), None);
        assert!(table.check("known", SECRETS, limit(1, 1), now).is_err());
    }

    #[test]
    fn concurrent_requests_share_one_bucket() {
        let table = ThrottleTable::new(1);
        let now = Instant::now();
        table.rebalance(1, now);
        let admitted: usize = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        (0..5_000)
                            .filter(|_| {
                                table
                                    .check("vault", SECRETS, limit(1_000, 1_000), now)
                                    .is_ok()
                            })
                            .count()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert_eq!(admitted, 1_000);
    }
}
