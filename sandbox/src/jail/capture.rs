//! The sandbox side of the transparent capture (issue 6), run by the init inside the new
//! network namespace before the agent exists:
//!
//! 1. local routes for `0.0.0.0/0` and `::/0` on `lo`, so that a connection to any address
//!    gets as far as netfilter instead of failing with "network unreachable";
//! 2. an nftables table (programmed over netlink, no `nft` binary) that redirects every DNS
//!    query (UDP and TCP port 53, any address) to the resolver socket, every other TCP
//!    connection to a non-loopback address to the capture listener, and logs to NFLOG and
//!    drops every other new flow to a non-loopback address (UDP, ICMP, raw IP, SCTP);
//! 3. the capture and resolver sockets and the NFLOG socket, created here (they belong to
//!    this namespace) and passed to the supervisor over the channel (SCM_RIGHTS).
//!
//! The proxy (`proxy::capture`, `proxy::dns`) serves them; every decision is the engine's.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::SockProtocol;

use crate::jail::channel::{Channel, Tag};
use crate::jail::netlink::{self, Attrs, CREATE, CREATE_EXCL, REQUEST};

/// The port of the capture listener inside the namespace (on 127.0.0.1 and ::1).
pub const CAPTURE_PORT: u16 = 15001;
/// The resolver's port inside the namespace (on 127.0.0.1 and ::1).
pub const DNS_PORT: u16 = 53;
/// The NFLOG group the drop rule logs to.
pub const NFLOG_GROUP: u16 = 7;
/// The nftables table the capture installs.
pub const TABLE: &str = "sandbox_capture";

/// What a [`Tag::Capture`] message carries (its one payload byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SocketRole {
    /// A TCP listener the redirect sends connections to.
    CaptureTcp = 1,
    /// The resolver's UDP socket.
    DnsUdp = 2,
    /// The resolver's TCP listener.
    DnsTcp = 3,
    /// The NFLOG netlink socket of the drop rule.
    Nflog = 4,
}

impl SocketRole {
    /// The role of a payload byte.
    pub fn from_byte(b: u8) -> Option<SocketRole> {
        Some(match b {
            1 => SocketRole::CaptureTcp,
            2 => SocketRole::DnsUdp,
            3 => SocketRole::DnsTcp,
            4 => SocketRole::Nflog,
            _ => return None,
        })
    }
}

/// Sets the capture up in the current (new) network namespace and passes its sockets over
/// `chan`. Errors name the step; the caller refuses to start the sandbox on any of them.
pub fn set_up(chan: &Channel) -> Result<(), String> {
    let ipv6 = add_local_routes()?;
    program_nftables().map_err(|e| {
        format!(
            "program the nftables capture rules inside the sandbox's network namespace: {e} \
             (the kernel needs CONFIG_NF_TABLES_INET, CONFIG_NFT_NAT, CONFIG_NFT_REDIR and \
             CONFIG_NFT_LOG)"
        )
    })?;
    let nflog = bind_nflog().map_err(|e| format!("bind the NFLOG group {NFLOG_GROUP}: {e}"))?;
    let send = |role: SocketRole, fd: &dyn AsRawFd, what: &str| {
        chan.send(Tag::Capture, &[role as u8], Some(fd.as_raw_fd()))
            .map_err(|e| format!("pass the {what} to the supervisor: {e}"))
    };
    let mut v4v6: Vec<std::net::IpAddr> = vec![Ipv4Addr::LOCALHOST.into()];
    if ipv6 {
        v4v6.push(Ipv6Addr::LOCALHOST.into());
    }
    for ip in &v4v6 {
        let l = listener(SocketAddr::new(*ip, CAPTURE_PORT))?;
        send(SocketRole::CaptureTcp, &l, "capture listener")?;
        let u = std::net::UdpSocket::bind(SocketAddr::new(*ip, DNS_PORT))
            .map_err(|e| format!("bind the resolver's UDP socket on {ip}:{DNS_PORT}: {e}"))?;
        send(SocketRole::DnsUdp, &u, "resolver's UDP socket")?;
        let t = listener(SocketAddr::new(*ip, DNS_PORT))?;
        send(SocketRole::DnsTcp, &t, "resolver's TCP listener")?;
    }
    send(SocketRole::Nflog, &nflog, "NFLOG socket")?;
    Ok(())
}

/// Checks, in a fresh network namespace the caller owns (`sandbox doctor`'s probe child), that
/// the capture can be set up: loopback, routes, the nftables rules and the NFLOG binding.
pub fn probe() -> Result<(), String> {
    crate::jail::sys::bring_loopback_up().map_err(|e| format!("bring up lo: {e}"))?;
    add_local_routes()?;
    program_nftables().map_err(|e| format!("nftables: {e}"))?;
    bind_nflog().map_err(|e| format!("NFLOG: {e}"))?;
    Ok(())
}

fn listener(addr: SocketAddr) -> Result<std::net::TcpListener, String> {
    let l = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("bind {addr} inside the sandbox: {e}"))?;
    nix::sys::socket::listen(
        &l,
        nix::sys::socket::Backlog::new(1024).unwrap_or(nix::sys::socket::Backlog::MAXCONN),
    )
    .map_err(|e| format!("listen on {addr}: {e}"))?;
    Ok(l)
}

/// `ip route add local 0.0.0.0/0 dev lo` and the same for `::/0`. Returns whether IPv6 is
/// available in the namespace: when the host disabled it, `::1` cannot be bound, IPv6 has no
/// address and no route at all, and there is nothing to capture.
fn add_local_routes() -> Result<bool, String> {
    let fd = netlink::open(SockProtocol::NetlinkRoute)
        .map_err(|e| format!("open a route netlink socket: {e}"))?;
    route(&fd, libc::AF_INET as u8, 1).map_err(|e| format!("add the IPv4 local route: {e}"))?;
    let ipv6 = std::net::UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).is_ok();
    if ipv6 {
        route(&fd, libc::AF_INET6 as u8, 2)
            .map_err(|e| format!("add the IPv6 local route: {e}"))?;
    }
    Ok(ipv6)
}

fn route(fd: &OwnedFd, family: u8, seq: u32) -> nix::Result<()> {
    const RTM_NEWROUTE: u16 = 24;
    const RT_TABLE_LOCAL: u8 = 255;
    const RTPROT_BOOT: u8 = 3;
    const RT_SCOPE_HOST: u8 = 254;
    const RTN_LOCAL: u8 = 2;
    const RTA_OIF: u16 = 4;
    const RTA_TABLE: u16 = 15;
    const LOOPBACK_IFINDEX: u32 = 1;
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags (u32)
    let rtmsg = [
        family,
        0,
        0,
        0,
        RT_TABLE_LOCAL,
        RTPROT_BOOT,
        RT_SCOPE_HOST,
        RTN_LOCAL,
        0,
        0,
        0,
        0,
    ];
    let attrs = Attrs::new()
        .ne32(RTA_TABLE, u32::from(RT_TABLE_LOCAL))
        .ne32(RTA_OIF, LOOPBACK_IFINDEX);
    let msg = netlink::message(RTM_NEWROUTE, CREATE_EXCL, seq, &rtmsg, &attrs);
    netlink::request(fd, &msg, 1)
}

// nftables netlink constants (linux/netfilter/nf_tables.h, nfnetlink.h).
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_META_NFPROTO: u32 = 15;
const NFT_META_L4PROTO: u32 = 16;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 2;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

fn expr(name: &str, data: Attrs) -> Attrs {
    // NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA }
    Attrs::new().nest(1, Attrs::new().str(1, name).nest(2, data))
}

fn meta(key: u32) -> Attrs {
    expr("meta", Attrs::new().be32(2, key).be32(1, NFT_REG_1))
}

fn cmp_eq(value: &[u8]) -> Attrs {
    expr(
        "cmp",
        Attrs::new()
            .be32(1, NFT_REG_1)
            .be32(2, 0)
            .nest(3, Attrs::new().raw(1, value)),
    )
}

fn payload(base: u32, offset: u32, len: u32) -> Attrs {
    expr(
        "payload",
        Attrs::new()
            .be32(1, NFT_REG_1)
            .be32(2, base)
            .be32(3, offset)
            .be32(4, len),
    )
}

fn verdict(code: u32) -> Attrs {
    expr(
        "immediate",
        Attrs::new()
            .be32(1, NFT_REG_VERDICT)
            .nest(2, Attrs::new().nest(2, Attrs::new().be32(1, code))),
    )
}

fn redirect_to(port: u16) -> Vec<Attrs> {
    vec![
        expr(
            "immediate",
            Attrs::new()
                .be32(1, NFT_REG_1)
                .nest(2, Attrs::new().raw(1, &port.to_be_bytes())),
        ),
        expr(
            "redir",
            Attrs::new()
                .be32(1, NFT_REG_1)
                .be32(3, NF_NAT_RANGE_PROTO_SPECIFIED),
        ),
    ]
}

fn log_group(group: u16) -> Attrs {
    expr("log", Attrs::new().raw(1, &group.to_be_bytes()))
}

/// `meta nfproto ipv4 ip daddr 127.0.0.0/8` and `meta nfproto ipv6 ip6 daddr ::1`.
fn loopback_matches() -> Vec<Vec<Attrs>> {
    vec![
        vec![
            meta(NFT_META_NFPROTO),
            cmp_eq(&[NFPROTO_IPV4]),
            payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 1),
            cmp_eq(&[127]),
        ],
        vec![
            meta(NFT_META_NFPROTO),
            cmp_eq(&[NFPROTO_IPV6]),
            payload(NFT_PAYLOAD_NETWORK_HEADER, 24, 16),
            cmp_eq(&Ipv6Addr::LOCALHOST.octets()),
        ],
    ]
}

/// The rules of the two chains, each a list of expressions.
fn rules() -> Vec<(&'static str, Vec<Attrs>)> {
    let mut out = Vec::new();
    // nat/output: DNS to any address → the resolver; loopback stays; other TCP → capture.
    for proto in [IPPROTO_UDP, IPPROTO_TCP] {
        let mut r = vec![
            meta(NFT_META_L4PROTO),
            cmp_eq(&[proto]),
            payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2),
            cmp_eq(&DNS_PORT.to_be_bytes()),
        ];
        r.extend(redirect_to(DNS_PORT));
        out.push(("capture", r));
    }
    for mut m in loopback_matches() {
        m.push(verdict(NF_ACCEPT));
        out.push(("capture", m));
    }
    let mut tcp = vec![meta(NFT_META_L4PROTO), cmp_eq(&[IPPROTO_TCP])];
    tcp.extend(redirect_to(CAPTURE_PORT));
    out.push(("capture", tcp));
    // Everything else leaving for a non-loopback address (UDP, ICMP, raw IP, SCTP ...) is
    // logged and dropped. A nat chain sees the first packet of each conntrack flow only, so
    // replies of the resolver (un-NATed by conntrack) pass, and every new flow is logged.
    out.push(("capture", vec![log_group(NFLOG_GROUP), verdict(NF_DROP)]));
    out
}

/// The whole ruleset as one nfnetlink batch; returns the bytes and the number of acks.
fn ruleset_batch() -> (Vec<u8>, usize) {
    let ty = |msg: u16| (NFNL_SUBSYS_NFTABLES << 8) | msg;
    let inet = [NFPROTO_INET, 0, 0, 0];
    let subsys = [
        0u8,
        0,
        (NFNL_SUBSYS_NFTABLES >> 8) as u8,
        NFNL_SUBSYS_NFTABLES as u8,
    ];
    let mut seq = 0u32;
    let mut next = || {
        seq += 1;
        seq
    };
    let mut batch = netlink::message(
        NFNL_MSG_BATCH_BEGIN,
        REQUEST,
        next(),
        &subsys,
        &Attrs::new(),
    );
    let mut acks = 0;
    batch.extend(netlink::message(
        ty(NFT_MSG_NEWTABLE),
        CREATE_EXCL,
        next(),
        &inet,
        &Attrs::new().str(1, TABLE),
    ));
    acks += 1;
    // type nat hook output priority -100; policy accept
    let chain = Attrs::new()
        .str(1, TABLE)
        .str(3, "capture")
        .nest(
            4,
            Attrs::new()
                .be32(1, NF_INET_LOCAL_OUT)
                .be32(2, (-100i32) as u32),
        )
        .be32(5, NF_ACCEPT)
        .str(7, "nat");
    batch.extend(netlink::message(
        ty(NFT_MSG_NEWCHAIN),
        CREATE,
        next(),
        &inet,
        &chain,
    ));
    acks += 1;
    for (chain, exprs) in rules() {
        let mut list = Attrs::new();
        for e in exprs {
            list = list.extend(&e);
        }
        let attrs = Attrs::new().str(1, TABLE).str(2, chain).nest(4, list);
        batch.extend(netlink::message(
            ty(NFT_MSG_NEWRULE),
            CREATE | 0x800, // NLM_F_APPEND: in order
            next(),
            &inet,
            &attrs,
        ));
        acks += 1;
    }
    batch.extend(netlink::message(
        NFNL_MSG_BATCH_END,
        REQUEST,
        next(),
        &subsys,
        &Attrs::new(),
    ));
    (batch, acks)
}

fn program_nftables() -> nix::Result<()> {
    let fd = netlink::open(SockProtocol::NetlinkNetFilter)?;
    let (batch, acks) = ruleset_batch();
    netlink::request(&fd, &batch, acks)
}

/// A NETLINK_NETFILTER socket bound to the drop rule's NFLOG group, copying the first 128
/// bytes of each packet (enough for the IP and transport headers).
fn bind_nflog() -> nix::Result<OwnedFd> {
    const NFNL_SUBSYS_ULOG: u16 = 4;
    const NFULNL_MSG_CONFIG: u16 = 1;
    const NFULA_CFG_CMD: u16 = 1;
    const NFULA_CFG_MODE: u16 = 2;
    const NFULA_CFG_TIMEOUT: u16 = 4;
    const NFULA_CFG_QTHRESH: u16 = 5;
    const NFULNL_CFG_CMD_BIND: u8 = 1;
    const NFULNL_COPY_PACKET: u8 = 2;
    let fd = netlink::open(SockProtocol::NetlinkNetFilter)?;
    let ty = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
    let group = NFLOG_GROUP.to_be_bytes();
    let fixed = [0u8, 0, group[0], group[1]];
    let bind = netlink::message(
        ty,
        CREATE,
        1,
        &fixed,
        &Attrs::new().raw(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND]),
    );
    netlink::request(&fd, &bind, 1)?;
    let mut mode = 128u32.to_be_bytes().to_vec();
    mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
    // Deliver each packet at once: no batching (qthreshold 1), no flush timer.
    let set_mode = netlink::message(
        ty,
        CREATE,
        2,
        &fixed,
        &Attrs::new()
            .raw(NFULA_CFG_MODE, &mode)
            .be32(NFULA_CFG_TIMEOUT, 0)
            .be32(NFULA_CFG_QTHRESH, 1),
    );
    netlink::request(&fd, &set_mode, 1)?;
    Ok(fd)
}

/// The resolver configuration the agent sees: the sandbox's resolver, on both families.
pub const RESOLV_CONF: &str =
    "# sandbox: the supervisor's resolver; every DNS query (port 53, any address) is\n\
# answered there, per the contract, and logged.\n\
nameserver 127.0.0.1\nnameserver ::1\noptions edns0\n";

/// Where the init writes [`RESOLV_CONF`] before binding it over `/etc/resolv.conf`.
pub const RESOLV_CONF_PATH: &str = "/etc/sandbox/resolv.conf";

/// Points the sandbox's `/etc/resolv.conf` at the resolver (a read-only bind of
/// [`RESOLV_CONF`]); run in the new root, before it is sealed. The host's search domains and
/// resolver addresses are not shown to the agent. Where the view has no `/etc/resolv.conf`
/// (or only a dangling symlink) nothing is mounted: resolvers then use 127.0.0.1, which is the
/// sandbox's resolver too.
pub fn install_resolv_conf() -> Result<(), String> {
    use nix::mount::{mount, MsFlags};
    std::fs::write(RESOLV_CONF_PATH, RESOLV_CONF)
        .map_err(|e| format!("write {RESOLV_CONF_PATH}: {e}"))?;
    let target = std::path::Path::new("/etc/resolv.conf");
    if !target.exists() {
        return Ok(());
    }
    mount(
        Some(RESOLV_CONF_PATH),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| format!("bind {RESOLV_CONF_PATH} over /etc/resolv.conf: {e}"))?;
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| format!("make /etc/resolv.conf read-only: {e}"))
}

/// Sorts the sockets received from the sandbox by role, for `proxy::ProxyHandle::serve_capture`.
pub fn proxy_sockets(sockets: Vec<(SocketRole, OwnedFd)>) -> proxy::capture::CaptureSockets {
    let mut out = proxy::capture::CaptureSockets::default();
    for (role, fd) in sockets {
        match role {
            SocketRole::CaptureTcp => out.tcp.push(fd.into()),
            SocketRole::DnsUdp => out.dns_udp.push(fd.into()),
            SocketRole::DnsTcp => out.dns_tcp.push(fd.into()),
            SocketRole::Nflog => out.nflog = Some(fd),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_is_well_formed() {
        let (batch, acks) = ruleset_batch();
        assert_eq!(acks, 1 + 1 + 6, "table, one chain, six rules");
        let mut off = 0;
        let mut count = 0;
        while off < batch.len() {
            let len = u32::from_ne_bytes(batch[off..off + 4].try_into().unwrap()) as usize;
            assert!(len >= 16 && len % 4 == 0 && off + len <= batch.len());
            off += len;
            count += 1;
        }
        assert_eq!(count, acks + 2, "plus batch begin and end");
    }
}
