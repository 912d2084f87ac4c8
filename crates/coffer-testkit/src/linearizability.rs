//! Linearizability checking for key/value register histories.
//!
//! Clients record each operation's invocation and completion times in a
//! [`History`] while faults are injected; [`check`] then decides whether
//! some total order of the operations both respects real time (an op that
//! completed before another was invoked comes first) and makes every read
//! return the latest preceding write.
//!
//! The search is Wing & Gong's, with Lowe's memoisation: a configuration
//! (which ops are already linearised, register value) that was explored once
//! is never explored again, which turns the usual exponential blow-up into
//! something manageable for realistic concurrency. Linearizability is local
//! (Herlihy & Wing), so each key's sub-history is checked on its own; that is
//! both sound and complete, and keeps each search small.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// Search steps [`check`] allows before giving up.
pub const DEFAULT_MAX_STEPS: u64 = 10_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Set the key to this value.
    Write(u64),
    /// The value observed; `None` means the key was absent.
    Read(Option<u64>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub client: u64,
    pub key: String,
    pub kind: OpKind,
    /// Nanoseconds since the history started, taken before the request left.
    pub invoked: u64,
    /// Nanoseconds since the history started, taken after the reply arrived;
    /// `None` if the outcome is unknown (timeout, crash): the op may have
    /// taken effect at any point after `invoked`, or never.
    pub completed: Option<u64>,
}

/// A history with no valid linearisation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key {key:?} is not linearizable: {description}")]
pub struct Violation {
    pub key: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    NotLinearizable(#[from] Violation),
    /// The search ran out of budget. Says nothing either way about the
    /// history; a test should treat it as a failure of the test, not of the
    /// system, and reduce concurrency or history length.
    #[error("gave up checking key {key:?} after {steps} search steps")]
    TooComplex { key: String, steps: u64 },
}

/// Check with the default budget of [`DEFAULT_MAX_STEPS`].
pub fn check(history: &[Op]) -> Result<(), CheckError> {
    check_with_budget(history, DEFAULT_MAX_STEPS)
}

/// Check, giving up with [`CheckError::TooComplex`] after `max_steps`
/// search steps in total across all keys.
pub fn check_with_budget(history: &[Op], max_steps: u64) -> Result<(), CheckError> {
    // BTreeMap so keys are checked, and failures reported, in a stable order.
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history {
        // A read whose reply never arrived tells us nothing about the
        // register, and leaving it in only widens the search.
        if matches!(op.kind, OpKind::Read(_)) && op.completed.is_none() {
            continue;
        }
        by_key.entry(&op.key).or_default().push(op);
    }
    let mut steps = 0u64;
    for (key, ops) in by_key {
        check_key(key, &ops, &mut steps, max_steps)?;
    }
    Ok(())
}

/// The register's value; `None` is "absent", which is also where it starts.
type Register = Option<u64>;

/// The register after `kind`, or `None` if `kind` cannot happen in `reg`.
fn step(reg: Register, kind: OpKind) -> Option<Register> {
    match kind {
        OpKind::Write(v) => Some(Some(v)),
        OpKind::Read(seen) => (seen == reg).then_some(reg),
    }
}

/// Call and return events in time order, in a doubly linked list so ops
/// can be lifted out and put back in O(1) while backtracking. Index 0 is a
/// sentinel, which makes the list circular and saves edge cases.
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// For each event (index >= 1): its op, and whether it is the call.
    event: Vec<(usize, bool)>,
    /// For each op: its call event and, if it completed, its return event.
    of_op: Vec<(usize, Option<usize>)>,
}

const HEAD: usize = 0;

impl Events {
    fn new(ops: &[&Op]) -> Events {
        // (time, is_return, op). At equal times calls sort first: two ops
        // touching at one instant are then treated as concurrent, which can
        // only accept more histories, never flag a correct one.
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.invoked, false, i));
            if let Some(done) = op.completed {
                // A clock can't run backwards within one recorder, but a
                // hand-built history might; an op can't end before it starts.
                order.push((done.max(op.invoked), true, i));
            }
        }
        order.sort_unstable();
        let n = order.len();
        let mut event = vec![(usize::MAX, false); n + 1];
        let mut of_op = vec![(0, None); ops.len()];
        for (pos, &(_, is_return, op)) in order.iter().enumerate() {
            let e = pos + 1;
            event[e] = (op, !is_return);
            if is_return {
                of_op[op].1 = Some(e);
            } else {
                of_op[op].0 = e;
            }
        }
        Events {
            next: (0..=n).map(|e| if e == n { HEAD } else { e + 1 }).collect(),
            prev: (0..=n).map(|e| if e == 0 { n } else { e - 1 }).collect(),
            event,
            of_op,
        }
    }

    fn unlink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    /// Undo `unlink(e)`; valid only in reverse order of the unlinks, which
    /// the search's stack discipline guarantees.
    fn relink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = e;
        self.prev[n] = e;
    }

    fn lift(&mut self, op: usize) {
        let (call, ret) = self.of_op[op];
        self.unlink(call);
        if let Some(r) = ret {
            self.unlink(r);
        }
    }

    fn unlift(&mut self, op: usize) {
        let (call, ret) = self.of_op[op];
        if let Some(r) = ret {
            self.relink(r);
        }
        self.relink(call);
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct BitSet(Vec<u64>);

impl BitSet {
    fn new(bits: usize) -> BitSet {
        BitSet(vec![0; bits.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

fn check_key(key: &str, ops: &[&Op], steps: &mut u64, max_steps: u64) -> Result<(), CheckError> {
    let mut events = Events::new(ops);
    let mut linearized = BitSet::new(ops.len());
    let mut seen: HashSet<(BitSet, Register)> = HashSet::new();
    // (op, register before it) for each op in the current partial order.
    let mut stack: Vec<(usize, Register)> = Vec::new();
    let mut reg: Register = None;
    // Unknown-outcome writes have no return event, so nothing ever forces
    // them into the order; leaving one out is how "never happened" is
    // modelled. Success is therefore "every completed op placed".
    let mut unplaced = ops.iter().filter(|op| op.completed.is_some()).count();
    // Deepest dead end, for the report: (depth, blocking op, register).
    let mut deepest: Option<(usize, usize, Register)> = None;

    let mut e = events.next[HEAD];
    while unplaced > 0 {
        *steps += 1;
        if *steps > max_steps {
            return Err(CheckError::TooComplex {
                key: key.to_owned(),
                steps: *steps - 1,
            });
        }
        let (op, is_call) = events.event[e];
        if e != HEAD && is_call {
            // Every op whose call precedes the first remaining return is a
            // candidate to go next; try this one.
            if let Some(after) = step(reg, ops[op].kind) {
                linearized.set(op);
                if seen.insert((linearized.clone(), after)) {
                    stack.push((op, reg));
                    reg = after;
                    events.lift(op);
                    if ops[op].completed.is_some() {
                        unplaced -= 1;
                    }
                    e = events.next[HEAD];
                    continue;
                }
                linearized.clear(op);
            }
            e = events.next[e];
        } else {
            // A return event: its op had to be placed before anything later,
            // and no candidate works, so undo the last choice. (HEAD means we
            // walked off the end, which only a bug could cause; treat it the
            // same way rather than loop.)
            if e != HEAD && deepest.is_none_or(|(d, _, _)| stack.len() >= d) {
                deepest = Some((stack.len(), op, reg));
            }
            let Some((last, before)) = stack.pop() else {
                return Err(violation(key, ops, deepest));
            };
            linearized.clear(last);
            reg = before;
            events.unlift(last);
            if ops[last].completed.is_some() {
                unplaced += 1;
            }
            e = events.next[events.of_op[last].0];
        }
    }
    Ok(())
}

fn violation(key: &str, ops: &[&Op], deepest: Option<(usize, usize, Register)>) -> CheckError {
    let description = match deepest {
        Some((depth, op, reg)) => format!(
            "no valid order of its {} ops; the longest valid prefix has {} ops, \
             after which {} must come next but cannot (register holds {})",
            ops.len(),
            depth,
            describe(ops[op]),
            show(reg),
        ),
        None => format!("no valid order of its {} ops", ops.len()),
    };
    CheckError::NotLinearizable(Violation {
        key: key.to_owned(),
        description,
    })
}

fn describe(op: &Op) -> String {
    let what = match op.kind {
        OpKind::Write(v) => format!("write {v}"),
        OpKind::Read(seen) => format!("read seeing {}", show(seen)),
    };
    let end = match op.completed {
        Some(t) => format!("{t}"),
        None => "?".to_owned(),
    };
    format!(
        "{what} by client {} [{}ns..{}ns]",
        op.client, op.invoked, end
    )
}

fn show(reg: Register) -> String {
    match reg {
        Some(v) => v.to_string(),
        None => "absent".to_owned(),
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpKind::Write(v) => write!(f, "write({v})"),
            OpKind::Read(seen) => write!(f, "read() -> {}", show(*seen)),
        }
    }
}

/// Thread-safe recorder of a client workload's operations, timed with a
/// monotonic clock started when the history was created.
///
/// Cloning is cheap and every clone records into the same history, so each
/// client task can own one.
#[derive(Debug, Clone)]
pub struct History {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    start: Instant,
    slots: Mutex<Vec<Slot>>,
}

#[derive(Debug)]
struct Slot {
    op: Op,
    /// Failed ops definitely did not happen and are left out of `ops()`.
    failed: bool,
}

/// Handle for an invoked op. Deliberately neither `Clone` nor `Copy`: each
/// op is resolved exactly once, and the type system enforces it.
#[derive(Debug)]
#[must_use = "an invoked op must be completed, failed or marked unknown"]
pub struct OpToken {
    index: usize,
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}

impl History {
    pub fn new() -> History {
        History {
            inner: Arc::new(Inner {
                start: Instant::now(),
                slots: Mutex::new(Vec::new()),
            }),
        }
    }

    fn now(&self) -> u64 {
        // u64 nanoseconds last 584 years; saturate rather than wrap anyway.
        u64::try_from(self.inner.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        // A panic while holding the lock can only have been between plain
        // field writes; the data is still meaningful, so keep recording.
        self.inner
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Record the start of an op. Call it before the request is sent. For a
    /// read the observed value in `kind` is a placeholder, replaced by
    /// [`History::complete_read`].
    pub fn invoke(&self, client: u64, key: impl Into<String>, kind: OpKind) -> OpToken {
        let key = key.into();
        // Taken before the lock: an earlier invocation time is always safe
        // (it only widens the op's interval).
        let invoked = self.now();
        let mut slots = self.slots();
        slots.push(Slot {
            op: Op {
                client,
                key,
                kind,
                invoked,
                completed: None,
            },
            failed: false,
        });
        OpToken {
            index: slots.len() - 1,
        }
    }

    /// The write was acknowledged.
    ///
    /// # Panics
    /// If the token belongs to a read.
    pub fn complete_write(&self, token: OpToken) {
        let now = self.now();
        let mut slots = self.slots();
        let op = &mut slots[token.index].op;
        assert!(
            matches!(op.kind, OpKind::Write(_)),
            "complete_write on a read"
        );
        op.completed = Some(now);
    }

    /// The read returned `value` (`None`: key absent).
    ///
    /// # Panics
    /// If the token belongs to a write.
    pub fn complete_read(&self, token: OpToken, value: Option<u64>) {
        let now = self.now();
        let mut slots = self.slots();
        let op = &mut slots[token.index].op;
        assert!(
            matches!(op.kind, OpKind::Read(_)),
            "complete_read on a write"
        );
        op.kind = OpKind::Read(value);
        op.completed = Some(now);
    }

    /// The op definitely did not take effect (e.g. rejected before being
    /// proposed), so it is dropped from the history.
    pub fn fail(&self, token: OpToken) {
        self.slots()[token.index].failed = true;
    }

    /// The op may or may not have taken effect (timeout, connection lost).
    pub fn unknown(&self, token: OpToken) {
        // Already the state of an unresolved op; the call exists so client
        // code states its intent and the token is consumed.
        debug_assert!(self.slots()[token.index].op.completed.is_none());
    }

    /// The recorded ops in invocation order, without failed ones. Ops whose
    /// token is still outstanding are reported as unknown outcome.
    pub fn ops(&self) -> Vec<Op> {
        self.slots()
            .iter()
            .filter(|s| !s.failed)
            .map(|s| s.op.clone())
            .collect()
    }

    /// [`check`] the ops recorded so far.
    pub fn check(&self) -> Result<(), CheckError> {
        check(&self.ops())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Rng, seed_from_env};

    fn w(client: u64, key: &str, v: u64, inv: u64, done: Option<u64>) -> Op {
        Op {
            client,
            key: key.into(),
            kind: OpKind::Write(v),
            invoked: inv,
            completed: done,
        }
    }

    fn r(client: u64, key: &str, seen: Option<u64>, inv: u64, done: Option<u64>) -> Op {
        Op {
            client,
            key: key.into(),
            kind: OpKind::Read(seen),
            invoked: inv,
            completed: done,
        }
    }

    fn violation_of(history: &[Op]) -> Violation {
        match check(history) {
            Err(CheckError::NotLinearizable(v)) => v,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn empty_history_passes() {
        assert_eq!(check(&[]), Ok(()));
    }

    #[test]
    fn sequential_history_passes() {
        let h = [
            r(1, "k", None, 0, Some(1)),
            w(1, "k", 1, 2, Some(3)),
            r(2, "k", Some(1), 4, Some(5)),
            w(2, "k", 2, 6, Some(7)),
            w(1, "k", 3, 8, Some(9)),
            r(1, "k", Some(3), 10, Some(11)),
        ];
        assert_eq!(check(&h), Ok(()));
    }

    #[test]
    fn overlapping_ops_that_can_be_ordered_pass() {
        // A read concurrent with a write may see either side of it.
        for seen in [None, Some(1)] {
            let h = [w(1, "k", 1, 0, Some(10)), r(2, "k", seen, 2, Some(5))];
            assert_eq!(check(&h), Ok(()), "seen {seen:?}");
        }
        // Two concurrent writes: later reads fix their order, and both
        // orders are fine as long as reads agree.
        for (first, second) in [(1, 2), (2, 1)] {
            let h = [
                w(1, "k", 1, 0, Some(100)),
                w(2, "k", 2, 10, Some(90)),
                r(3, "k", Some(first), 20, Some(95)),
                r(3, "k", Some(second), 96, Some(120)),
                r(4, "k", Some(second), 130, Some(140)),
            ];
            assert_eq!(check(&h), Ok(()), "order {first},{second}");
        }
        // Ops touching at a single instant count as concurrent.
        let h = [w(1, "k", 1, 0, Some(10)), r(2, "k", None, 10, Some(20))];
        assert_eq!(check(&h), Ok(()));
    }

    #[test]
    fn stale_read_after_completed_write_fails() {
        let h = [
            w(1, "k", 1, 0, Some(10)),
            w(1, "k", 2, 20, Some(30)),
            r(2, "k", Some(1), 40, Some(50)),
        ];
        let v = violation_of(&h);
        assert_eq!(v.key, "k");
        assert!(v.description.contains("read seeing 1"), "{v}");
        assert!(v.to_string().contains("\"k\""), "{v}");
        // Absent after a completed write is stale too.
        let h = [w(1, "k", 1, 0, Some(10)), r(2, "k", None, 11, Some(12))];
        violation_of(&h);
    }

    #[test]
    fn reads_disagreeing_on_write_order_fail() {
        // Writes 1 and 2 are concurrent, so either order is possible, but
        // these reads (one after another in real time) see 1, 2, 1, which
        // needs write 1 to happen twice.
        let h = [
            w(1, "k", 1, 0, Some(100)),
            w(2, "k", 2, 0, Some(100)),
            r(3, "k", Some(1), 110, Some(120)),
            r(4, "k", Some(2), 130, Some(140)),
            r(3, "k", Some(1), 150, Some(160)),
        ];
        violation_of(&h);
        // The same, with the reads concurrent with the writes: two clients
        // each read both values, in opposite orders.
        let h = [
            w(1, "k", 1, 0, Some(1000)),
            w(2, "k", 2, 0, Some(1000)),
            r(3, "k", Some(1), 10, Some(20)),
            r(3, "k", Some(2), 30, Some(40)),
            r(4, "k", Some(2), 10, Some(20)),
            r(4, "k", Some(1), 30, Some(40)),
        ];
        violation_of(&h);
    }

    #[test]
    fn unknown_write_may_take_effect_later_or_never() {
        // Observed long after the client gave up on it.
        let h = [
            w(1, "k", 5, 0, None),
            r(2, "k", Some(5), 1_000, Some(1_010)),
        ];
        assert_eq!(check(&h), Ok(()));
        // Never observed.
        let h = [w(1, "k", 5, 0, None), r(2, "k", None, 1_000, Some(1_010))];
        assert_eq!(check(&h), Ok(()));
        // Observed, then overwritten, then observed again: it can only take
        // effect once.
        let h = [
            w(1, "k", 5, 0, None),
            r(2, "k", Some(5), 10, Some(20)),
            w(2, "k", 6, 30, Some(40)),
            r(2, "k", Some(5), 50, Some(60)),
        ];
        violation_of(&h);
        // But it cannot take effect before it was invoked.
        let h = [r(2, "k", Some(5), 0, Some(10)), w(1, "k", 5, 20, None)];
        violation_of(&h);
    }

    #[test]
    fn unknown_reads_and_failed_ops_carry_no_information() {
        let h = [
            w(1, "k", 1, 0, Some(10)),
            r(2, "k", Some(99), 20, None),
            r(2, "k", Some(1), 30, Some(40)),
        ];
        assert_eq!(check(&h), Ok(()));
    }

    #[test]
    fn read_of_value_never_written_fails() {
        let h = [w(1, "k", 1, 0, Some(10)), r(2, "k", Some(7), 5, Some(15))];
        let v = violation_of(&h);
        assert!(v.description.contains("read seeing 7"), "{v}");
    }

    #[test]
    fn keys_are_independent() {
        let h = [w(1, "a", 1, 0, Some(10)), r(2, "b", Some(1), 20, Some(30))];
        assert_eq!(violation_of(&h).key, "b");
        let h = [
            w(1, "a", 1, 0, Some(10)),
            w(1, "b", 2, 0, Some(10)),
            r(2, "b", Some(2), 20, Some(30)),
            r(2, "a", Some(1), 20, Some(30)),
        ];
        assert_eq!(check(&h), Ok(()));
    }

    /// A history that is linearizable by construction: each op gets a
    /// linearization point inside its interval and reads return the
    /// register at that point. Some writes have unknown outcomes (half of
    /// them never take effect), and some reads are unknown with junk values.
    fn random_history(rng: &mut Rng, clients: u64, keys: &[&str], per_client: usize) -> Vec<Op> {
        struct Planned {
            op: Op,
            at: u64,
            applies: bool,
        }
        let mut planned = Vec::new();
        let mut next_value = 1;
        for client in 0..clients {
            let mut t = rng.below(50);
            for _ in 0..per_client {
                let key = (*rng.pick(keys)).to_owned();
                let invoked = t;
                let at = invoked + 1 + rng.below(100);
                let completed = at + 1 + rng.below(100);
                let unknown = rng.chance(0.1);
                let kind = if rng.chance(0.5) {
                    next_value += 1;
                    OpKind::Write(next_value)
                } else {
                    OpKind::Read(None)
                };
                let applies = !(unknown && matches!(kind, OpKind::Write(_)) && rng.chance(0.5));
                planned.push(Planned {
                    op: Op {
                        client,
                        key,
                        kind,
                        invoked,
                        completed: (!unknown).then_some(completed),
                    },
                    at,
                    applies,
                });
                t = completed + rng.below(30);
            }
        }
        planned.sort_by_key(|p| p.at);
        let mut registers: BTreeMap<String, u64> = BTreeMap::new();
        for p in &mut planned {
            match (&mut p.op.kind, p.op.completed) {
                (OpKind::Write(v), _) if p.applies => {
                    registers.insert(p.op.key.clone(), *v);
                }
                (OpKind::Read(seen), Some(_)) => *seen = registers.get(&p.op.key).copied(),
                (OpKind::Read(seen), None) => *seen = Some(u64::MAX),
                _ => {}
            }
        }
        let mut ops: Vec<Op> = planned.into_iter().map(|p| p.op).collect();
        rng.shuffle(&mut ops);
        ops
    }

    #[test]
    fn large_random_histories_pass_quickly_and_corruption_is_caught() {
        let seed = seed_from_env("COFFER_TEST_SEED");
        let mut rng = Rng::new(seed);
        for round in 0..5 {
            let mut h = random_history(&mut rng, 8, &["a", "b", "c", "d"], 50);
            assert_eq!(h.len(), 400);
            let start = std::time::Instant::now();
            assert_eq!(check(&h), Ok(()), "round {round}");
            let took = start.elapsed();
            assert!(took < std::time::Duration::from_secs(5), "took {took:?}");

            // Make one completed read see a value nobody wrote.
            let victim = h
                .iter()
                .position(|op| matches!(op.kind, OpKind::Read(_)) && op.completed.is_some())
                .unwrap();
            h[victim].kind = OpKind::Read(Some(0xDEAD));
            let v = violation_of(&h);
            assert_eq!(v.key, h[victim].key);
        }
    }

    #[test]
    fn budget_is_enforced() {
        let seed = seed_from_env("COFFER_TEST_SEED");
        let mut rng = Rng::new(seed);
        let h = random_history(&mut rng, 8, &["a"], 30);
        match check_with_budget(&h, 10) {
            Err(CheckError::TooComplex { key, steps }) => {
                assert_eq!(key, "a");
                assert_eq!(steps, 10);
            }
            other => panic!("expected TooComplex, got {other:?}"),
        }
        assert_eq!(check(&h), Ok(()));
    }

    #[test]
    fn history_records_and_drops_as_told() {
        let history = History::new();
        let t = history.invoke(1, "k", OpKind::Write(1));
        history.complete_write(t);
        let t = history.invoke(2, "k", OpKind::Read(None));
        history.complete_read(t, Some(1));
        let t = history.invoke(3, "k", OpKind::Write(2));
        history.fail(t);
        let t = history.invoke(4, "k", OpKind::Write(3));
        history.unknown(t);
        let _outstanding = history.invoke(5, "other", OpKind::Write(4));

        let ops = history.ops();
        let clients: Vec<u64> = ops.iter().map(|o| o.client).collect();
        assert_eq!(clients, [1, 2, 4, 5]);
        assert_eq!(ops[1].kind, OpKind::Read(Some(1)));
        assert!(ops[0].completed.is_some() && ops[1].completed.is_some());
        assert_eq!(ops[2].completed, None);
        assert_eq!(ops[3].completed, None);
        for op in &ops {
            assert!(op.completed.is_none_or(|c| c >= op.invoked));
        }
        assert!(ops[0].completed.unwrap() <= ops[1].invoked);
        assert_eq!(history.check(), Ok(()));
    }

    #[test]
    fn history_is_shared_across_threads_and_catches_a_stale_read() {
        let history = History::new();
        let handles: Vec<_> = (0..4)
            .map(|client| {
                let history = history.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let t = history.invoke(client, format!("k{client}"), OpKind::Write(i));
                        history.complete_write(t);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(history.ops().len(), 100);
        assert_eq!(history.check(), Ok(()));
        let t = history.invoke(9, "k0", OpKind::Read(None));
        history.complete_read(t, Some(3));
        assert!(matches!(
            history.check(),
            Err(CheckError::NotLinearizable(Violation { ref key, .. })) if key == "k0"
        ));
    }
}
