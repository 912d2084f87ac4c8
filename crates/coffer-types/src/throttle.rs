//! A vault's throttle limits: one token bucket per operation class, shared by the whole
//! cluster (docs/throttling.md describes how the gateways divide it).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::keys::named_enum;

named_enum!(
    /// Which bucket an operation draws from.
    ThrottleClass, "class", {
        Secrets = "secrets",
        Keys = "keys",
        Certificates = "certificates",
        Management = "management",
    }
);

impl PartialOrd for ThrottleClass {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ThrottleClass {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (*self as u8).cmp(&(*other as u8))
    }
}

/// The highest rate a vault may be given, per class.
pub const MAX_RATE: u32 = 1_000_000;

/// One class's bucket: `rate` tokens a second, holding at most `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleLimit {
    pub rate: u32,
    pub burst: u32,
}

impl ThrottleLimit {
    /// Checks a limit given by an administrator; a burst of 0 means one second's worth.
    pub fn new(rate: u32, burst: u32) -> Result<Self, Error> {
        if !(1..=MAX_RATE).contains(&rate) {
            return Err(Error::bad_parameter(format!(
                "A throttle rate must be 1 to {MAX_RATE} operations per second; {rate} was given."
            )));
        }
        let burst = if burst == 0 { rate } else { burst };
        let max_burst = rate.saturating_mul(10);
        if burst > max_burst {
            return Err(Error::bad_parameter(format!(
                "A throttle burst may be at most ten seconds' worth of the rate ({max_burst}); \
                 {burst} was given."
            )));
        }
        Ok(Self { rate, burst })
    }
}

impl ThrottleClass {
    /// The cluster's default limit: 2,000 secret and 10,000 key operations a second (the
    /// figures DESIGN.md §3.5 sets), 1,000 certificate operations, and 200 management
    /// operations on the vault itself. Each bucket holds one second's worth.
    pub fn default_limit(self) -> ThrottleLimit {
        let rate = match self {
            ThrottleClass::Secrets => 2_000,
            ThrottleClass::Keys => 10_000,
            ThrottleClass::Certificates => 1_000,
            ThrottleClass::Management => 200,
        };
        ThrottleLimit { rate, burst: rate }
    }
}

/// A vault's own limits, where they differ from the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleLimits(pub BTreeMap<ThrottleClass, ThrottleLimit>);

impl ThrottleLimits {
    pub fn limit(&self, class: ThrottleClass) -> ThrottleLimit {
        self.0
            .get(&class)
            .copied()
            .unwrap_or_else(|| class.default_limit())
    }

    pub fn is_default(&self, class: ThrottleClass) -> bool {
        !self.0.contains_key(&class)
    }
}

/// A change to a vault's limits: classes set to a new limit, classes returned to the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottlePatch {
    pub set: BTreeMap<ThrottleClass, ThrottleLimit>,
    pub reset: Vec<ThrottleClass>,
}

impl ThrottlePatch {
    pub fn apply(&self, limits: &mut ThrottleLimits) {
        for class in &self.reset {
            limits.0.remove(class);
        }
        for (class, limit) in &self.set {
            limits.0.insert(*class, *limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_overrides_and_bounds() {
        let mut limits = ThrottleLimits::default();
        assert_eq!(limits.limit(ThrottleClass::Secrets).rate, 2_000);
        assert_eq!(limits.limit(ThrottleClass::Keys).rate, 10_000);
        limits
            .0
            .insert(ThrottleClass::Secrets, ThrottleLimit::new(50, 0).unwrap());
        assert_eq!(
            limits.limit(ThrottleClass::Secrets),
            ThrottleLimit {
                rate: 50,
                burst: 50
            }
        );
        assert!(!limits.is_default(ThrottleClass::Secrets));
        assert!(ThrottleLimit::new(0, 0).is_err());
        assert!(ThrottleLimit::new(MAX_RATE + 1, 0).is_err());
        assert!(ThrottleLimit::new(10, 101).is_err());
        assert_eq!(ThrottleLimit::new(10, 100).unwrap().burst, 100);
        assert_eq!(ThrottleClass::parse("keys").unwrap(), ThrottleClass::Keys);
        assert!(ThrottleClass::parse("Keys").is_err());
    }

    #[test]
    fn limits_survive_a_round_trip_through_json() {
        let mut limits = ThrottleLimits::default();
        limits
            .0
            .insert(ThrottleClass::Keys, ThrottleLimit::new(300, 30).unwrap());
        let text = serde_json::to_string(&limits).unwrap();
        assert_eq!(
            serde_json::from_str::<ThrottleLimits>(&text).unwrap(),
            limits
        );
    }
}
