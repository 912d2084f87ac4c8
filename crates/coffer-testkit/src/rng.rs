//! A small seeded random source for tests.
//!
//! Randomised cluster tests are only useful if a failure can be replayed, so
//! every choice they make must flow from one printed `u64` seed. SplitMix64 is
//! enough for that: it is fast, passes the usual statistical batteries, and
//! is simple enough that no external crate is needed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Golden-ratio increment of SplitMix64: odd, so the state walks all 2^64
/// values before repeating.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// Deterministic pseudo-random generator (SplitMix64). Not for cryptography.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// The same seed always yields the same sequence, on every platform.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// Uniform in `0..n`.
    ///
    /// # Panics
    /// If `n == 0`: there is no value to return, and silently returning 0
    /// would hide a bug in the test that asked.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0): empty range");
        // Plain `x % n` favours small results when n does not divide 2^64.
        // Draws below `threshold` are exactly the surplus (2^64 mod n values),
        // so rejecting them leaves a multiple of n equally likely outcomes.
        let threshold = n.wrapping_neg() % n;
        loop {
            let x = self.next_u64();
            if x >= threshold {
                return x % n;
            }
        }
    }

    /// True with probability `p`; `p <= 0` (or NaN) is never, `p >= 1` always.
    pub fn chance(&mut self, p: f64) -> bool {
        // 53 bits is all the precision an f64 in [0, 1) can hold.
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p
    }

    /// A uniformly chosen element.
    ///
    /// # Panics
    /// If `items` is empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        assert!(!items.is_empty(), "Rng::pick on an empty slice");
        &items[self.index(items.len())]
    }

    /// Fisher–Yates: every permutation equally likely.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }

    fn index(&mut self, len: usize) -> usize {
        // usize -> u64 is lossless on every target Rust supports (<= 64-bit),
        // and the result is below `len`, so it fits back into usize.
        self.below(len as u64) as usize
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seed for a randomised test: the value of env var `var` if set (decimal or
/// `0x` hex), otherwise fresh entropy from the clock.
///
/// The chosen seed is always printed to stderr as `var=seed`; the test
/// harness shows captured output for failing tests, so the line needed to
/// replay a failure is right next to it.
///
/// # Panics
/// If `var` is set but is not a valid `u64`: someone asked for a specific
/// replay, and running a different seed instead would waste their time.
pub fn seed_from_env(var: &str) -> u64 {
    let seed = match std::env::var(var) {
        Ok(text) => match parse_seed(&text) {
            Some(seed) => seed,
            None => panic!("{var}={text:?} is not a u64 seed (decimal or 0x-hex)"),
        },
        Err(_) => fresh_seed(),
    };
    eprintln!("{var}={seed}  (set this env var to replay)");
    tracing::info!(var, seed, "test seed");
    seed
}

fn parse_seed(text: &str) -> Option<u64> {
    let text = text.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn fresh_seed() -> u64 {
    // Tests in one binary start within the same clock tick often enough that
    // the time alone would hand several of them the same seed; the counter
    // and pid keep parallel tests (and parallel test binaries) apart.
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    mix(nanos ^ mix(u64::from(std::process::id()) ^ n.wrapping_mul(GAMMA)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_splitmix64() {
        // Reference outputs of SplitMix64 (Vigna's splitmix64.c) for these
        // seeds; any change to the constants or shifts breaks them.
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        let mut r = Rng::new(1_234_567);
        let got: Vec<u64> = (0..5).map(|_| r.next_u64()).collect();
        assert_eq!(
            got,
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423,
                4593380528125082431,
                16408922859458223821,
            ]
        );
    }

    #[test]
    fn same_seed_same_sequence_different_seed_different_sequence() {
        let a: Vec<u64> = {
            let mut r = Rng::new(42);
            (0..16).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::new(42);
            (0..16).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = Rng::new(43);
            (0..16).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let seed = seed_from_env("COFFER_TEST_SEED");
        let mut r = Rng::new(seed);
        let mut buckets = [0u32; 10];
        for _ in 0..100_000 {
            let x = r.below(10);
            assert!(x < 10);
            buckets[x as usize] += 1;
        }
        // Expected 10_000 each; sd is ~95, so +-1_000 only fails if broken.
        for (i, &count) in buckets.iter().enumerate() {
            assert!((9_000..=11_000).contains(&count), "bucket {i}: {count}");
        }
        assert_eq!(r.below(1), 0);
        // With a bound of 2/3 of 2^64, plain `x % n` would make the lower
        // half of the range twice as likely as the upper half (p = 2/3);
        // rejection sampling keeps it at 1/2.
        let big = u64::MAX / 3 * 2;
        let mut low = 0;
        for _ in 0..10_000 {
            let x = r.below(big);
            assert!(x < big);
            if x < big / 2 {
                low += 1;
            }
        }
        assert!((4_700..=5_300).contains(&low), "low half drawn {low} times");
    }

    #[test]
    #[should_panic(expected = "empty range")]
    fn below_zero_panics() {
        Rng::new(1).below(0);
    }

    #[test]
    fn chance_edges_and_frequency() {
        let seed = seed_from_env("COFFER_TEST_SEED");
        let mut r = Rng::new(seed);
        for _ in 0..1000 {
            assert!(!r.chance(0.0));
            assert!(r.chance(1.0));
            assert!(!r.chance(f64::NAN));
        }
        let hits = (0..100_000).filter(|_| r.chance(0.3)).count();
        assert!((28_500..=31_500).contains(&hits), "hits {hits}");
    }

    #[test]
    fn pick_covers_every_element() {
        let seed = seed_from_env("COFFER_TEST_SEED");
        let mut r = Rng::new(seed);
        let items = ["a", "b", "c", "d"];
        let mut seen = [false; 4];
        for _ in 0..1000 {
            let p = r.pick(&items);
            let i = items.iter().position(|x| x == p).unwrap();
            seen[i] = true;
        }
        assert_eq!(seen, [true; 4]);
    }

    #[test]
    fn shuffle_permutes_and_moves_things() {
        let seed = seed_from_env("COFFER_TEST_SEED");
        let mut r = Rng::new(seed);
        let original: Vec<u32> = (0..50).collect();
        let mut v = original.clone();
        r.shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, original, "shuffle must be a permutation");
        // 1/50! chance of being the identity for a correct shuffle.
        assert_ne!(v, original);
        // Every position should be able to receive the first element.
        let mut first_at = [false; 5];
        for _ in 0..1000 {
            let mut w = [0, 1, 2, 3, 4];
            r.shuffle(&mut w);
            first_at[w.iter().position(|&x| x == 0).unwrap()] = true;
        }
        assert_eq!(first_at, [true; 5]);
        let mut empty: [u8; 0] = [];
        r.shuffle(&mut empty);
    }

    #[test]
    fn parse_seed_accepts_decimal_and_hex_only() {
        assert_eq!(parse_seed("123"), Some(123));
        assert_eq!(parse_seed(" 0x1f \n"), Some(31));
        assert_eq!(parse_seed("0XFF"), Some(255));
        assert_eq!(parse_seed("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_seed("18446744073709551616"), None);
        assert_eq!(parse_seed("-1"), None);
        assert_eq!(parse_seed("seed"), None);
    }

    #[test]
    fn unset_var_gives_distinct_fresh_seeds() {
        let var = "COFFER_TESTKIT_SURELY_UNSET_VAR";
        assert!(std::env::var(var).is_err());
        let a = seed_from_env(var);
        let b = seed_from_env(var);
        assert_ne!(a, b);
    }
}
