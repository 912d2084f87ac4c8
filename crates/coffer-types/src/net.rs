//! IP networks as vault firewall rules and trusted-proxy lists name them: an address with a
//! prefix length, IPv4 or IPv6.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;
use crate::error::quote_user_text;

/// The longest text accepted as a network (the longest IPv6 form with a prefix is 43).
const MAX_TEXT: usize = 64;

/// An IPv4 or IPv6 network. Host bits beyond the prefix are cleared when parsed, so
/// `10.1.2.3/16` is `10.1.0.0/16`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it carries; any other
/// address as it is.
pub fn canonical_ip(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn mask_v4(addr: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let bits = u32::from(addr);
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    Ipv4Addr::from(bits & mask)
}

fn mask_v6(addr: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let bits = u128::from(addr);
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    Ipv6Addr::from(bits & mask)
}

impl IpNet {
    /// Parses `a.b.c.d`, `a.b.c.d/n`, an IPv6 address, or an IPv6 address with `/n`. A bare
    /// address is a /32 or /128 network.
    pub fn parse(text: &str) -> Result<IpNet, Error> {
        let invalid = |why: &str| {
            Error::bad_parameter(format!(
                "{} is not a valid IP address or CIDR range: {why}.",
                quote_user_text(text)
            ))
        };
        if text.is_empty() || text.len() > MAX_TEXT {
            return Err(invalid(
                "give an address such as 203.0.113.7 or a range such as 203.0.113.0/24",
            ));
        }
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| invalid("the address does not parse"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => {
                let digits_only =
                    !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit());
                if !digits_only || (p.len() > 1 && p.starts_with('0')) {
                    return Err(invalid(
                        "the prefix length must be a number without leading zeros",
                    ));
                }
                let n: u8 = p
                    .parse()
                    .map_err(|_| invalid("the prefix length does not parse"))?;
                if n > max {
                    return Err(invalid(&format!("the prefix length is at most {max}")));
                }
                n
            }
        };
        Ok(IpNet::new(addr, prefix))
    }

    /// The network of `addr` with `prefix` bits (clamped to the family's width).
    pub fn new(addr: IpAddr, prefix: u8) -> IpNet {
        match addr {
            IpAddr::V4(v4) => {
                let prefix = prefix.min(32);
                IpNet {
                    addr: IpAddr::V4(mask_v4(v4, prefix)),
                    prefix,
                }
            }
            IpAddr::V6(v6) => {
                let prefix = prefix.min(128);
                IpNet {
                    addr: IpAddr::V6(mask_v6(v6, prefix)),
                    prefix,
                }
            }
        }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `addr` is in this network. IPv4-mapped IPv6 addresses match IPv4 networks (and
    /// IPv4 addresses match networks written in the mapped form).
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = canonical_ip(addr);
        match (self.addr, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => mask_v4(a, self.prefix) == net,
            (IpAddr::V6(net), IpAddr::V6(a)) => mask_v6(a, self.prefix) == net,
            (IpAddr::V6(net), IpAddr::V4(a)) => {
                // A network written as ::ffff:a.b.c.d/n (n ≥ 96) holds IPv4 addresses.
                self.prefix >= 96
                    && net.to_ipv4_mapped().is_some()
                    && mask_v6(a.to_ipv6_mapped(), self.prefix) == net
            }
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == full {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

impl FromStr for IpNet {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        IpNet::parse(text)
    }
}

impl Serialize for IpNet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        IpNet::parse(&text).map_err(|e| serde::de::Error::custom(e.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        IpNet::parse(text).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn parses_addresses_and_ranges_in_canonical_form() {
        for (text, shown) in [
            ("203.0.113.7", "203.0.113.7"),
            ("203.0.113.7/32", "203.0.113.7"),
            ("203.0.113.0/24", "203.0.113.0/24"),
            ("10.1.2.3/16", "10.1.0.0/16"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("::1", "::1"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("2001:DB8:0:0::1/128", "2001:db8::1"),
            ("::/0", "::/0"),
        ] {
            assert_eq!(net(text).to_string(), shown, "{text}");
            assert_eq!(net(shown), net(text));
        }
        for bad in [
            "",
            " 10.0.0.1",
            "10.0.0.1 ",
            "10.0.0.256",
            "10.0.0.1/33",
            "10.0.0.1/",
            "10.0.0.1/08",
            "10.0.0.1/-1",
            "10.0.0.1/1/2",
            "::1/129",
            "fe80::1%eth0",
            "host.example",
            &"1".repeat(65),
        ] {
            let e = IpNet::parse(bad).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::BadParameter, "{bad}");
        }
    }

    #[test]
    fn containment_across_families_and_boundaries() {
        assert!(net("10.1.0.0/16").contains(ip("10.1.255.255")));
        assert!(!net("10.1.0.0/16").contains(ip("10.2.0.0")));
        assert!(net("0.0.0.0/0").contains(ip("198.51.100.1")));
        assert!(!net("0.0.0.0/0").contains(ip("::1")));
        assert!(net("127.0.0.2").contains(ip("127.0.0.2")));
        assert!(!net("127.0.0.2").contains(ip("127.0.0.3")));
        assert!(net("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(!net("2001:db8::/32").contains(ip("2001:db9::1")));
        assert!(net("::/0").contains(ip("::1")));
        // Mapped addresses are their IPv4 selves, both ways.
        assert!(net("127.0.0.0/8").contains(ip("::ffff:127.0.0.9")));
        assert!(net("::ffff:10.0.0.0/104").contains(ip("10.0.0.9")));
        assert!(!net("::ffff:10.0.0.0/104").contains(ip("11.0.0.9")));
        assert_eq!(canonical_ip(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(canonical_ip(ip("::1")), ip("::1"));
    }

    #[test]
    fn serde_uses_the_text_form() {
        let text = serde_json::to_string(&net("198.51.100.0/24")).unwrap();
        assert_eq!(text, "\"198.51.100.0/24\"");
        assert_eq!(
            serde_json::from_str::<IpNet>(&text).unwrap(),
            net("198.51.100.0/24")
        );
        assert!(serde_json::from_str::<IpNet>("\"10.0.0.1/40\"").is_err());
    }
}
