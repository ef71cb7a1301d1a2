//! Classification of IP addresses: which destinations the proxy may dial.
//!
//! The proxy resolves a name once, classifies every address, and refuses the flow when any
//! address is forbidden (see `Policy::decide_addresses`). Everything that is not plainly a
//! global unicast address is forbidden.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

/// What kind of address an IP is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddrClass {
    /// Global unicast: the only class that may be dialled.
    Global,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16) and IPv6 unique local fc00::/7 (incl. the
    /// AWS IPv6 metadata address fd00:ec2::254), and deprecated site-local fec0::/10.
    Private,
    /// 169.254.0.0/16 (incl. the cloud metadata address 169.254.169.254) and fe80::/10.
    LinkLocal,
    /// Carrier-grade NAT 100.64.0.0/10 (incl. Alibaba's metadata 100.100.100.200).
    Cgnat,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 0.0.0.0, ::.
    Unspecified,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// NAT64 64:ff9b::/96 and 64:ff9b:1::/48: an IPv4 address in disguise.
    Nat64,
    /// 6to4 2002::/16: an IPv4 address in disguise.
    SixToFour,
    /// Teredo 2001::/32: an IPv4 address in disguise.
    Teredo,
    /// ::ffff:a.b.c.d whose embedded IPv4 address is itself global. (A mapped address that
    /// embeds a forbidden IPv4 address is classified as that address.) Forbidden: a resolver
    /// that hands out mapped addresses is trying to dodge IPv4 checks.
    Ipv4Mapped,
    /// ::a.b.c.d (deprecated IPv4-compatible) whose embedded address is global. Forbidden.
    Ipv4Compat,
    /// Everything else that is not global: 0/8, 192.0.0/24, 192.88.99/24, 198.18/15
    /// (benchmarking), 240/4, 100::/64 (discard), the IETF protocol assignments 2001::/23
    /// (benchmarking, ORCHID, ORCHIDv2, AMT, AS112, ...) apart from Teredo, and IPv6 outside
    /// 2000::/3 (5f00::/16 SRv6 SIDs, 100:0:0:1::/64 ...).
    Reserved,
}

impl AddrClass {
    /// `true` for every class except [`AddrClass::Global`].
    pub fn is_forbidden(&self) -> bool {
        *self != AddrClass::Global
    }

    /// A short name for messages (`link-local`, `private`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            AddrClass::Global => "global",
            AddrClass::Loopback => "loopback",
            AddrClass::Private => "private",
            AddrClass::LinkLocal => "link-local",
            AddrClass::Cgnat => "carrier-grade NAT",
            AddrClass::Multicast => "multicast",
            AddrClass::Unspecified => "unspecified",
            AddrClass::Broadcast => "broadcast",
            AddrClass::Documentation => "documentation",
            AddrClass::Nat64 => "NAT64",
            AddrClass::SixToFour => "6to4",
            AddrClass::Teredo => "Teredo",
            AddrClass::Ipv4Mapped => "IPv4-mapped IPv6",
            AddrClass::Ipv4Compat => "IPv4-compatible IPv6",
            AddrClass::Reserved => "reserved",
        }
    }
}

/// Cloud instance metadata, platform and time/DNS service addresses. Some are link-local,
/// private or CGNAT, and Azure's platform address 168.63.129.16 is even a global unicast
/// address: none of them is ever dialled, whatever a contract names literally.
pub const METADATA: &[IpAddr] = &[
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)), // AWS, GCP, Azure, OpenStack IMDS
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),   // AWS ECS task metadata
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 123)), // AWS time sync
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 253)), // AWS DNS
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)), // Alibaba Cloud metadata
    IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)),   // Azure WireServer / platform DNS
    IpAddr::V4(Ipv4Addr::new(192, 0, 0, 192)),     // Oracle Cloud metadata
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)), // AWS IMDS (IPv6)
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23)), // AWS DNS (IPv6)
    IpAddr::V6(Ipv6Addr::new(0xfd20, 0xce, 0, 0, 0, 0, 0, 0x254)), // GCP metadata (IPv6)
];

/// `true` for a cloud metadata or platform service address (see [`METADATA`]), also when
/// written as an IPv4-mapped IPv6 address.
pub fn is_metadata(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    METADATA.contains(&ip)
}

/// Classify an address.
pub fn classify(ip: IpAddr) -> AddrClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn classify_v4(ip: Ipv4Addr) -> AddrClass {
    if ip.is_unspecified() {
        AddrClass::Unspecified
    } else if ip.is_broadcast() {
        AddrClass::Broadcast
    } else if in_v4(ip, [127, 0, 0, 0], 8) {
        AddrClass::Loopback
    } else if in_v4(ip, [10, 0, 0, 0], 8)
        || in_v4(ip, [172, 16, 0, 0], 12)
        || in_v4(ip, [192, 168, 0, 0], 16)
    {
        AddrClass::Private
    } else if in_v4(ip, [169, 254, 0, 0], 16) {
        AddrClass::LinkLocal
    } else if in_v4(ip, [100, 64, 0, 0], 10) {
        AddrClass::Cgnat
    } else if in_v4(ip, [224, 0, 0, 0], 4) {
        AddrClass::Multicast
    } else if in_v4(ip, [192, 0, 2, 0], 24)
        || in_v4(ip, [198, 51, 100, 0], 24)
        || in_v4(ip, [203, 0, 113, 0], 24)
    {
        AddrClass::Documentation
    } else if in_v4(ip, [0, 0, 0, 0], 8)
        || in_v4(ip, [192, 0, 0, 0], 24)
        || in_v4(ip, [192, 88, 99, 0], 24)
        || in_v4(ip, [198, 18, 0, 0], 15)
        || in_v4(ip, [240, 0, 0, 0], 4)
    {
        AddrClass::Reserved
    } else {
        AddrClass::Global
    }
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    (u128::from(ip) & mask) == (u128::from(Ipv6Addr::from(net)) & mask)
}

fn classify_v6(ip: Ipv6Addr) -> AddrClass {
    let seg = ip.segments();
    if ip.is_unspecified() {
        return AddrClass::Unspecified;
    }
    if ip.is_loopback() {
        return AddrClass::Loopback;
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return match classify_v4(v4) {
            AddrClass::Global => AddrClass::Ipv4Mapped,
            other => other,
        };
    }
    if seg[..6] == [0; 6] {
        // ::a.b.c.d, IPv4-compatible (deprecated)
        let v4 = Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        );
        return match classify_v4(v4) {
            AddrClass::Global => AddrClass::Ipv4Compat,
            other => other,
        };
    }
    if in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96)
        || in_v6(ip, [0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48)
    {
        AddrClass::Nat64
    } else if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        AddrClass::SixToFour
    } else if in_v6(ip, [0x2001, 0, 0, 0, 0, 0, 0, 0], 32) {
        AddrClass::Teredo
    } else if in_v6(ip, [0xfe80, 0, 0, 0, 0, 0, 0, 0], 10) {
        AddrClass::LinkLocal
    } else if in_v6(ip, [0xfc00, 0, 0, 0, 0, 0, 0, 0], 7)
        || in_v6(ip, [0xfec0, 0, 0, 0, 0, 0, 0, 0], 10)
    {
        AddrClass::Private
    } else if in_v6(ip, [0xff00, 0, 0, 0, 0, 0, 0, 0], 8) {
        AddrClass::Multicast
    } else if in_v6(ip, [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32)
        || in_v6(ip, [0x3fff, 0, 0, 0, 0, 0, 0, 0], 20)
    {
        AddrClass::Documentation
    } else if in_v6(ip, [0x100, 0, 0, 0, 0, 0, 0, 0], 64)
        // IETF protocol assignments 2001::/23 as a whole: benchmarking 2001:2::/48, ORCHID
        // 2001:10::/28, ORCHIDv2 2001:20::/28, AMT, AS112, anycast services ... none of
        // them an API endpoint
        || in_v6(ip, [0x2001, 0, 0, 0, 0, 0, 0, 0], 23)
        || !in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3)
    {
        AddrClass::Reserved
    } else {
        AddrClass::Global
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> AddrClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn ipv4_classes() {
        let cases = [
            ("8.8.8.8", AddrClass::Global),
            ("1.1.1.1", AddrClass::Global),
            ("127.0.0.1", AddrClass::Loopback),
            ("127.255.255.254", AddrClass::Loopback),
            ("10.1.2.3", AddrClass::Private),
            ("172.16.0.1", AddrClass::Private),
            ("172.31.255.255", AddrClass::Private),
            ("172.32.0.1", AddrClass::Global),
            ("192.168.1.1", AddrClass::Private),
            ("169.254.169.254", AddrClass::LinkLocal),
            ("100.64.0.1", AddrClass::Cgnat),
            ("100.100.100.200", AddrClass::Cgnat),
            ("100.128.0.1", AddrClass::Global),
            ("224.0.0.1", AddrClass::Multicast),
            ("0.0.0.0", AddrClass::Unspecified),
            ("0.1.2.3", AddrClass::Reserved),
            ("255.255.255.255", AddrClass::Broadcast),
            ("240.0.0.1", AddrClass::Reserved),
            ("198.18.0.1", AddrClass::Reserved),
            ("198.19.255.255", AddrClass::Reserved),
            ("192.0.0.170", AddrClass::Reserved),
            ("192.0.2.1", AddrClass::Documentation),
            ("198.51.100.1", AddrClass::Documentation),
            ("203.0.113.1", AddrClass::Documentation),
        ];
        for (ip, class) in cases {
            assert_eq!(c(ip), class, "{ip}");
            assert_eq!(class.is_forbidden(), class != AddrClass::Global);
        }
    }

    #[test]
    fn ipv6_classes() {
        let cases = [
            ("2606:4700::1111", AddrClass::Global),
            ("::1", AddrClass::Loopback),
            ("::", AddrClass::Unspecified),
            ("fe80::1", AddrClass::LinkLocal),
            ("fd00:ec2::254", AddrClass::Private),
            ("fc00::1", AddrClass::Private),
            ("fec0::1", AddrClass::Private),
            ("ff02::1", AddrClass::Multicast),
            ("2001:db8::1", AddrClass::Documentation),
            ("64:ff9b::a9fe:a9fe", AddrClass::Nat64),
            ("64:ff9b::808:808", AddrClass::Nat64),
            ("64:ff9b:1::1", AddrClass::Nat64),
            ("2002:a9fe:a9fe::1", AddrClass::SixToFour),
            ("2001:0:4136:e378::1", AddrClass::Teredo),
            ("100::1", AddrClass::Reserved),
            ("4000::1", AddrClass::Reserved),
        ];
        for (ip, class) in cases {
            assert_eq!(c(ip), class, "{ip}");
        }
    }

    #[test]
    fn embedded_ipv4_is_classified() {
        assert_eq!(c("::ffff:169.254.169.254"), AddrClass::LinkLocal);
        assert_eq!(c("::ffff:127.0.0.1"), AddrClass::Loopback);
        assert_eq!(c("::ffff:10.0.0.1"), AddrClass::Private);
        assert_eq!(c("::ffff:8.8.8.8"), AddrClass::Ipv4Mapped);
        assert!(AddrClass::Ipv4Mapped.is_forbidden());
        assert_eq!(c("::127.0.0.1"), AddrClass::Loopback);
        assert_eq!(c("::8.8.8.8"), AddrClass::Ipv4Compat);
    }
}
