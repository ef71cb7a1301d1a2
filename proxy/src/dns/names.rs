//! Synthetic addresses: each name the resolver may answer gets its own address from reserved
//! ranges (198.18.0.0/16, the benchmarking range, and a ULA /64), which routes back into the
//! transparent capture. The capture maps a connection's original destination back to the name;
//! the agent never learns a real upstream address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;

/// The IPv4 range of synthetic addresses (198.18.0.0/16, RFC 2544 benchmarking).
pub const SYNTHETIC_V4_PREFIX: [u8; 2] = [198, 18];
/// The IPv6 /64 of synthetic addresses (a ULA: `fd53:616e:6462:6f78::/64`).
pub const SYNTHETIC_V6_PREFIX: [u16; 4] = [0xfd53, 0x616e, 0x6462, 0x6f78];
/// How many names one session can hold (index 0 and the broadcast-looking last are unused).
pub const MAX_NAMES: usize = 65_534;

/// The per-session table name ↔ synthetic addresses.
#[derive(Debug, Default)]
pub struct SyntheticNames {
    inner: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    by_name: HashMap<String, u32>,
    names: Vec<String>,
}

/// Why a name got no address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the session's synthetic address table is full ({MAX_NAMES} names)")]
pub struct TableFull;

impl SyntheticNames {
    /// An empty table.
    pub fn new() -> SyntheticNames {
        SyntheticNames::default()
    }

    /// The addresses (IPv4, IPv6) of `name` (normalised by the caller), allocating on first use.
    pub fn assign(&self, name: &str) -> Result<(Ipv4Addr, Ipv6Addr), TableFull> {
        let mut t = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let index = match t.by_name.get(name) {
            Some(i) => *i,
            None => {
                if t.names.len() >= MAX_NAMES {
                    return Err(TableFull);
                }
                t.names.push(name.to_owned());
                let i = t.names.len() as u32;
                t.by_name.insert(name.to_owned(), i);
                i
            }
        };
        Ok(addresses(index))
    }

    /// The name behind a synthetic address, if `ip` is one this session handed out.
    pub fn name_of(&self, ip: IpAddr) -> Option<String> {
        let index = index_of(ip)?;
        let t = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        t.names.get(index.checked_sub(1)? as usize).cloned()
    }
}

/// `true` when `ip` lies in one of the synthetic ranges (handed out or not).
pub fn is_synthetic(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[..2] == SYNTHETIC_V4_PREFIX,
        IpAddr::V6(v6) => v6.segments()[..4] == SYNTHETIC_V6_PREFIX,
    }
}

fn addresses(index: u32) -> (Ipv4Addr, Ipv6Addr) {
    let [_, _, hi, lo] = index.to_be_bytes();
    let p = SYNTHETIC_V6_PREFIX;
    (
        Ipv4Addr::new(SYNTHETIC_V4_PREFIX[0], SYNTHETIC_V4_PREFIX[1], hi, lo),
        Ipv6Addr::new(p[0], p[1], p[2], p[3], 0, 0, 0, index as u16),
    )
}

fn index_of(ip: IpAddr) -> Option<u32> {
    if !is_synthetic(ip) {
        return None;
    }
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            Some(u32::from(o[2]) << 8 | u32::from(o[3]))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            (s[4] == 0 && s[5] == 0 && s[6] == 0).then_some(u32::from(s[7]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_both_families() {
        let t = SyntheticNames::new();
        let (a4, a6) = t.assign("api.eu.mistral.ai").unwrap();
        let (b4, b6) = t.assign("git.example.eu").unwrap();
        assert_eq!(
            t.assign("api.eu.mistral.ai").unwrap(),
            (a4, a6),
            "stable per name"
        );
        assert_ne!(a4, b4);
        assert_eq!(a4, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(t.name_of(a4.into()).as_deref(), Some("api.eu.mistral.ai"));
        assert_eq!(t.name_of(b6.into()).as_deref(), Some("git.example.eu"));
        assert!(is_synthetic(a6.into()));
    }

    #[test]
    fn addresses_not_handed_out_have_no_name() {
        let t = SyntheticNames::new();
        t.assign("a.example").unwrap();
        for ip in [
            "198.18.0.0",
            "198.18.0.2",
            "198.18.255.255",
            "198.19.0.1",
            "192.0.2.1",
            "fd53:616e:6462:6f78::2",
            "fd53:616e:6462:6f78:1::1",
            "2001:db8::1",
            "::ffff:198.18.0.1",
        ] {
            assert_eq!(t.name_of(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn the_table_is_bounded() {
        let t = SyntheticNames::new();
        for i in 0..MAX_NAMES {
            t.assign(&format!("n{i}.example")).unwrap();
        }
        assert_eq!(t.assign("one-more.example"), Err(TableFull));
        assert!(t.assign("n0.example").is_ok(), "known names still answer");
        let (last4, last6) = t.assign(&format!("n{}.example", MAX_NAMES - 1)).unwrap();
        assert_eq!(last4, Ipv4Addr::new(198, 18, 255, 254));
        assert_eq!(
            t.name_of(last6.into()),
            Some(format!("n{}.example", MAX_NAMES - 1))
        );
    }
}
