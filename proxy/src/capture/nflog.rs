//! Packets the sandbox's network namespace dropped (everything that is neither TCP nor DNS:
//! UDP, ICMP, raw IP ...), reported over NFLOG by the namespace's drop rule and logged here as
//! `udp` flow records (destination, port, protocol). Parsing never panics on hostile input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use egress_policy::Verdict;
use nix::errno::Errno;
use nix::sys::socket::{recv, MsgFlags};
use serde_json::json;

use crate::dns::names::SyntheticNames;
use crate::flowlog::{Event, FlowRecord, Kind};
use crate::state::Shared;

/// One dropped packet, as far as the log needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// IP protocol number (17 UDP, 1 ICMP, 58 ICMPv6, ...).
    pub protocol: u8,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port for UDP, TCP, UDP-Lite and SCTP.
    pub port: Option<u16>,
    /// The packet's IP length.
    pub len: usize,
}

/// The NFLOG packets in one netlink datagram.
pub fn parse_datagram(buf: &[u8]) -> Vec<Dropped> {
    const NFULNL_MSG_PACKET: u16 = 4 << 8;
    const NFULA_PAYLOAD: u16 = 9;
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
        let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        if len < 16 || off + len > buf.len() {
            break;
        }
        if ty == NFULNL_MSG_PACKET && len >= 20 {
            let mut a = off + 20;
            let end = off + len;
            while a + 4 <= end {
                let alen = u16::from_ne_bytes([buf[a], buf[a + 1]]) as usize;
                let aty = u16::from_ne_bytes([buf[a + 2], buf[a + 3]]) & 0x3fff;
                if alen < 4 || a + alen > end {
                    break;
                }
                if aty == NFULA_PAYLOAD {
                    if let Some(d) = parse_ip(&buf[a + 4..a + alen]) {
                        out.push(d);
                    }
                }
                a += (alen + 3) & !3;
            }
        }
        off += (len + 3) & !3;
    }
    out
}

/// The destination of an IPv4 or IPv6 packet (extension headers are not followed).
pub fn parse_ip(p: &[u8]) -> Option<Dropped> {
    let version = p.first()? >> 4;
    let (protocol, dst, transport, len) = match version {
        4 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let dst: [u8; 4] = p.get(16..20)?.try_into().ok()?;
            let total = u16::from_be_bytes([*p.get(2)?, *p.get(3)?]) as usize;
            (*p.get(9)?, IpAddr::V4(Ipv4Addr::from(dst)), ihl, total)
        }
        6 => {
            let dst: [u8; 16] = p.get(24..40)?.try_into().ok()?;
            let payload = u16::from_be_bytes([*p.get(4)?, *p.get(5)?]) as usize;
            (
                *p.get(6)?,
                IpAddr::V6(Ipv6Addr::from(dst)),
                40,
                payload + 40,
            )
        }
        _ => return None,
    };
    let port = match protocol {
        6 | 17 | 132 | 136 => p
            .get(transport + 2..transport + 4)
            .map(|b| u16::from_be_bytes([b[0], b[1]])),
        _ => None,
    };
    Some(Dropped {
        protocol,
        dst,
        port,
        len,
    })
}

fn protocol_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        136 => "udplite".into(),
        n => format!("ip-proto-{n}"),
    }
}

/// Dropped packets that got no record of their own since the previous `udp` record.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Unlogged {
    /// Packets read but not logged because the request rate limit was reached: exact.
    suppressed: u64,
    /// The kernel's NFLOG buffer overflowed (`ENOBUFS`): an unknown number of notifications
    /// never reached the reader.
    overflowed: bool,
}

impl Unlogged {
    fn is_empty(&self) -> bool {
        self.suppressed == 0 && !self.overflowed
    }

    /// Accounts for a failed `recv`; `false` when there is nothing more to read now.
    fn on_recv_error(&mut self, e: Errno) -> bool {
        match e {
            Errno::EINTR => true,
            // The kernel dropped notifications under load, how many is unknown (not one): say
            // so in the next record, go on.
            Errno::ENOBUFS => {
                self.overflowed = true;
                true
            }
            _ => false,
        }
    }

    /// What the packets without a record amount to, for a record's `reason`.
    fn describe(&self) -> String {
        let suppressed = format!(
            "{} dropped packet{} not logged (request rate limit)",
            self.suppressed,
            if self.suppressed == 1 { "" } else { "s" }
        );
        match (self.suppressed, self.overflowed) {
            (0, true) => OVERFLOW_NOTE.to_string(),
            (_, true) => format!("{suppressed}, and an {OVERFLOW_NOTE}"),
            (_, false) => suppressed,
        }
    }
}

/// How a record names an overflow of the kernel's notification buffer.
const OVERFLOW_NOTE: &str = "unknown number lost (kernel buffer overflow)";

/// The `udp` record of one dropped packet; `before` is what went unlogged since the previous
/// `udp` record.
fn packet_record(flow: u64, names: &SyntheticNames, d: &Dropped, before: Unlogged) -> FlowRecord {
    let host = names.name_of(d.dst).unwrap_or_else(|| d.dst.to_string());
    let proto = protocol_name(d.protocol);
    let target = match (d.port, host.contains(':')) {
        (Some(p), true) => format!("[{host}]:{p}"),
        (Some(p), false) => format!("{host}:{p}"),
        (None, _) => host.clone(),
    };
    let mut reason = format!(
        "{proto} to {target} dropped in the sandbox: only TCP (through the proxy) and DNS (the sandbox resolver) leave it"
    );
    if !before.is_empty() {
        reason.push_str(&format!("; before it: {}", before.describe()));
    }
    let mut rec = FlowRecord::new(Event::Decision, Kind::Udp);
    rec.flow = Some(flow);
    rec.decision = Some(Verdict::Deny);
    rec.reason = Some(reason);
    rec.host = Some(host);
    rec.port = d.port;
    rec.detail = Some(json!({
        "protocol": proto,
        "original_dst": d.dst.to_string(),
        "packet_len": d.len,
        "suppressed_before": before.suppressed,
        "overflow_before": before.overflowed,
    }));
    rec
}

/// The last `udp` record of a session whose last dropped packets got no record of their own:
/// no packet (`protocol`, `original_dst`, `packet_len` are `null`), only the count.
fn pending_record(flow: u64, pending: Unlogged) -> FlowRecord {
    let mut rec = FlowRecord::new(Event::Decision, Kind::Udp);
    rec.flow = Some(flow);
    rec.decision = Some(Verdict::Deny);
    rec.reason = Some(format!(
        "session ending: {} since the previous udp record",
        pending.describe()
    ));
    rec.detail = Some(json!({
        "protocol": null,
        "original_dst": null,
        "packet_len": null,
        "suppressed_before": pending.suppressed,
        "overflow_before": pending.overflowed,
    }));
    rec
}

/// The NFLOG reader of one session. A task on the proxy's first worker waits for packets and
/// logs them (within the proxy's rate limit; packets beyond it are counted in the next record's
/// `suppressed_before`, a kernel buffer overflow is flagged in its `overflow_before`);
/// [`NflogReader::finish`] logs what is left, including a record for a count still pending,
/// and stops it, so that no record follows the session's end.
pub struct NflogReader {
    fd: OwnedFd,
    state: Mutex<ReaderState>,
    shared: Arc<Shared>,
    names: Arc<SyntheticNames>,
}

struct ReaderState {
    closed: bool,
    unlogged: Unlogged,
    buf: Vec<u8>,
}

impl std::fmt::Debug for NflogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NflogReader").finish_non_exhaustive()
    }
}

impl NflogReader {
    pub(crate) fn new(
        shared: Arc<Shared>,
        names: Arc<SyntheticNames>,
        fd: OwnedFd,
    ) -> Arc<NflogReader> {
        Arc::new(NflogReader {
            fd,
            state: Mutex::new(ReaderState {
                closed: false,
                unlogged: Unlogged::default(),
                buf: vec![0u8; 64 * 1024],
            }),
            shared,
            names,
        })
    }

    /// Reads every datagram queued on the socket (without waiting) and logs its packets.
    fn drain(&self, st: &mut ReaderState) {
        let ReaderState { unlogged, buf, .. } = st;
        loop {
            match recv(self.fd.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => {
                    for d in parse_datagram(&buf[..n]) {
                        if self.shared.rate.take() {
                            let flow = self.shared.flow_id();
                            let rec = packet_record(flow, &self.names, &d, *unlogged);
                            let _ = self.shared.log_decision(rec);
                            *unlogged = Unlogged::default();
                        } else {
                            unlogged.suppressed += 1;
                        }
                    }
                }
                Err(e) => {
                    if !unlogged.on_recv_error(e) {
                        return;
                    }
                }
            }
        }
    }

    /// The reader's task on the proxy's first worker: waits until the socket is readable,
    /// then drains it, until [`NflogReader::finish`] or the proxy's runtime stops (which
    /// drops the task; `finish` then logs what is left). No thread of its own: a session
    /// that drops no packet pays nothing for the reader.
    pub(crate) async fn serve(self: Arc<Self>) {
        // Registered by number: `self.fd` (owned by this reader, which the task holds) stays
        // open for as long as the registration, which this function drops before returning.
        // That is the I/O-safety condition tokio's deprecation of `with_interest` is about;
        // its replacement differs only in being `unsafe`, which this crate has none of.
        #[allow(deprecated)]
        let registered = tokio::io::unix::AsyncFd::with_interest(
            self.fd.as_raw_fd(),
            tokio::io::Interest::READABLE,
        );
        let Ok(socket) = registered else {
            // Not registrable: `finish` still logs what is queued at the session's end.
            return;
        };
        loop {
            let Ok(mut ready) = socket.readable().await else {
                return;
            };
            {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if st.closed {
                    return;
                }
                self.drain(&mut st);
            }
            // `drain` read until the socket had nothing more (or failed): wait for new data.
            ready.clear_ready();
        }
    }

    /// Logs the packets still queued, then what is still unaccounted for (one record, outside
    /// the rate limit), and stops the reader: no record is written after this returns.
    pub fn finish(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !st.closed {
            self.drain(&mut st);
            if !st.unlogged.is_empty() {
                let rec = pending_record(self.shared.flow_id(), st.unlogged);
                let _ = self.shared.log_decision(rec);
                st.unlogged = Unlogged::default();
            }
            st.closed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp4() -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 29, 0, 0, 0, 0, 64, 17, 0, 0, 127, 0, 0, 1, 192, 0, 2, 1,
        ];
        p.extend_from_slice(&[0x30, 0x39, 0, 9, 0, 9, 0, 0, b'x']);
        p
    }

    fn nflog_message(payload: &[u8]) -> Vec<u8> {
        let mut attrs = Vec::new();
        attrs.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        attrs.extend_from_slice(&9u16.to_ne_bytes());
        attrs.extend_from_slice(payload);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let len = 16 + 4 + attrs.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&(4u16 << 8).to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&[2, 0, 0, 7]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn udp_and_icmp_destinations() {
        let d = parse_ip(&udp4()).unwrap();
        assert_eq!((d.protocol, d.port, d.len), (17, Some(9), 29));
        assert_eq!(d.dst, "192.0.2.1".parse::<IpAddr>().unwrap());
        let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 58, 64];
        v6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        v6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&[128, 0, 0, 0, 0, 0, 0, 0]);
        let d = parse_ip(&v6).unwrap();
        assert_eq!((d.protocol, d.port), (58, None));
        assert_eq!(protocol_name(d.protocol), "icmpv6");
    }

    #[test]
    fn datagrams_with_several_messages() {
        let mut dg = nflog_message(&udp4());
        dg.extend(nflog_message(&udp4()));
        assert_eq!(parse_datagram(&dg).len(), 2);
    }

    #[test]
    fn an_overflow_is_an_unknown_loss_not_one_packet() {
        let mut u = Unlogged::default();
        assert!(u.on_recv_error(Errno::ENOBUFS));
        assert!(u.on_recv_error(Errno::ENOBUFS));
        assert!(u.on_recv_error(Errno::EINTR));
        assert!(!u.on_recv_error(Errno::EAGAIN));
        assert_eq!(
            u,
            Unlogged {
                suppressed: 0,
                overflowed: true
            }
        );
        let names = SyntheticNames::new();
        let d = parse_ip(&udp4()).unwrap();
        let rec = packet_record(7, &names, &d, u);
        let detail = rec.detail.as_ref().unwrap();
        assert_eq!(detail["suppressed_before"], 0);
        assert_eq!(detail["overflow_before"], true);
        let reason = rec.reason.as_deref().unwrap();
        assert!(
            reason.ends_with("; before it: unknown number lost (kernel buffer overflow)"),
            "{reason}"
        );
        u.suppressed = 3;
        let rec = packet_record(8, &names, &d, u);
        assert_eq!(rec.detail.as_ref().unwrap()["suppressed_before"], 3);
        assert!(rec.reason.as_deref().unwrap().ends_with(
            "3 dropped packets not logged (request rate limit), and an unknown number lost (kernel buffer overflow)"
        ));
        let rec = packet_record(9, &names, &d, Unlogged::default());
        assert_eq!(rec.detail.as_ref().unwrap()["overflow_before"], false);
        assert!(!rec.reason.as_deref().unwrap().contains("before it"));
    }

    /// A started proxy serving the NFLOG reader on one end of a datagram pair; the other end
    /// plays the kernel.
    fn serve_nflog(
        name: &str,
        limits: impl FnOnce(&mut crate::Limits),
    ) -> (
        crate::ProxyHandle,
        std::path::PathBuf,
        std::os::unix::net::UnixDatagram,
    ) {
        use crate::capture::test_support::start_proxy;
        use crate::capture::CaptureSockets;
        let (handle, log) = start_proxy(name, limits);
        let (kernel, reader) = std::os::unix::net::UnixDatagram::pair().unwrap();
        handle
            .serve_capture(CaptureSockets {
                nflog: Some(reader.into()),
                ..Default::default()
            })
            .unwrap();
        (handle, log, kernel)
    }

    #[test]
    fn packets_are_logged_while_the_session_runs_not_only_at_its_end() {
        use crate::capture::test_support::records;

        let (handle, log, kernel) = serve_nflog("nflog-live", |_| {});
        // Twice, so that the reader is seen to wait again after draining.
        for round in 1..=2 {
            kernel.send(&nflog_message(&udp4())).unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let udp = records(&log)
                    .into_iter()
                    .filter(|r| r["kind"] == "udp")
                    .count();
                if udp == round {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "round {round}: {udp} udp records 10 s after the packet, before the session's end"
                );
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        handle.shutdown();
    }

    /// Packets over the rate limit at the end of a session are counted in a last `udp`
    /// record, written before `shutdown` returns (so before `session_end`).
    #[test]
    fn a_count_pending_at_session_end_is_written() {
        use crate::capture::test_support::records;

        const DATAGRAMS: usize = 5;
        const PER_DATAGRAM: usize = 10;
        let (handle, log, kernel) = serve_nflog("nflog-pending", |l| l.requests_per_second = 1);
        let mut dg = Vec::new();
        for _ in 0..PER_DATAGRAM {
            dg.extend(nflog_message(&udp4()));
        }
        for _ in 0..DATAGRAMS {
            kernel.send(&dg).unwrap();
        }
        let report = handle.shutdown();
        let recs = records(&log);
        let udp: Vec<_> = recs.iter().filter(|r| r["kind"] == "udp").collect();
        let logged = udp.iter().filter(|r| !r["detail"]["packet_len"].is_null());
        let suppressed: u64 = udp
            .iter()
            .map(|r| r["detail"]["suppressed_before"].as_u64().unwrap())
            .sum();
        assert_eq!(
            logged.count() as u64 + suppressed,
            (DATAGRAMS * PER_DATAGRAM) as u64,
            "every packet is logged or counted: {udp:#?}"
        );
        let last = udp.last().unwrap();
        assert!(last["detail"]["packet_len"].is_null(), "{udp:#?}");
        assert!(last["detail"]["suppressed_before"].as_u64().unwrap() > 0);
        assert_eq!(last["detail"]["overflow_before"], false);
        assert_eq!(last["decision"], "deny");
        assert!(last["reason"]
            .as_str()
            .unwrap()
            .starts_with("session ending: "));
        assert_eq!(report.stats.flows, udp.len() as u64);
    }

    #[test]
    fn hostile_input_never_panics() {
        let dg = nflog_message(&udp4());
        for cut in 0..dg.len() {
            let _ = parse_datagram(&dg[..cut]);
        }
        for i in 0..dg.len() {
            for b in [0u8, 1, 3, 4, 0x7f, 0x80, 0xff] {
                let mut m = dg.clone();
                m[i] = b;
                let _ = parse_datagram(&m);
            }
        }
        assert_eq!(parse_ip(&[]), None);
        assert_eq!(parse_ip(&[0x45]), None);
    }
}
