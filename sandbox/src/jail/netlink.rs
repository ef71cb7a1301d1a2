//! Netlink messages the sandbox's init sends inside its own network namespace: routes
//! (`NETLINK_ROUTE`), the nftables ruleset of the transparent capture and the NFLOG binding
//! (`NETLINK_NETFILTER`). Byte building only, plus a blocking request/acknowledge exchange; no
//! `unsafe` (nix wraps the socket calls).

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

const NLMSG_HDRLEN: usize = 16;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NLA_F_NESTED: u16 = 0x8000;

/// One netlink attribute tree under construction.
#[derive(Debug, Default, Clone)]
pub struct Attrs(Vec<u8>);

impl Attrs {
    /// An empty list.
    pub fn new() -> Attrs {
        Attrs::default()
    }

    /// Appends attribute `ty` with raw `data` (padded to 4 bytes).
    pub fn raw(mut self, ty: u16, data: &[u8]) -> Attrs {
        let len = 4 + data.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(data);
        while self.0.len() % 4 != 0 {
            self.0.push(0);
        }
        self
    }

    /// A NUL-terminated string.
    pub fn str(self, ty: u16, s: &str) -> Attrs {
        let mut d = s.as_bytes().to_vec();
        d.push(0);
        self.raw(ty, &d)
    }

    /// A big-endian u32 (nftables' convention).
    pub fn be32(self, ty: u16, v: u32) -> Attrs {
        self.raw(ty, &v.to_be_bytes())
    }

    /// A host-order u32 (rtnetlink's convention).
    pub fn ne32(self, ty: u16, v: u32) -> Attrs {
        self.raw(ty, &v.to_ne_bytes())
    }

    /// A nested attribute.
    pub fn nest(self, ty: u16, inner: Attrs) -> Attrs {
        self.raw(ty | NLA_F_NESTED, &inner.0)
    }

    /// Appends the attributes of `other` at this level.
    pub fn extend(mut self, other: &Attrs) -> Attrs {
        self.0.extend_from_slice(&other.0);
        self
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A message: header (type, flags, sequence), a fixed family header, attributes.
pub fn message(ty: u16, flags: u16, seq: u32, fixed: &[u8], attrs: &Attrs) -> Vec<u8> {
    let len = NLMSG_HDRLEN + fixed.len() + attrs.bytes().len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(fixed);
    m.extend_from_slice(attrs.bytes());
    m
}

/// A netlink socket of `protocol`, bound.
pub fn open(protocol: SockProtocol) -> nix::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        protocol,
    )?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
    Ok(fd)
}

/// Sends `batch` (one or more messages in one datagram) and waits for `acks` acknowledgements;
/// the first error the kernel reports is returned.
pub fn request(fd: &OwnedFd, batch: &[u8], acks: usize) -> nix::Result<()> {
    send(fd.as_raw_fd(), batch, MsgFlags::empty())?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut seen = 0;
    while seen < acks {
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        let mut off = 0;
        while off + NLMSG_HDRLEN <= n {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap_or([0; 4])) as usize;
            let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
            if len < NLMSG_HDRLEN || off + len > n {
                return Err(nix::errno::Errno::EPROTO);
            }
            if ty == NLMSG_ERROR && len >= NLMSG_HDRLEN + 4 {
                let code = i32::from_ne_bytes(
                    buf[off + NLMSG_HDRLEN..off + NLMSG_HDRLEN + 4]
                        .try_into()
                        .unwrap_or([0; 4]),
                );
                if code != 0 {
                    return Err(nix::errno::Errno::from_raw(-code));
                }
                seen += 1;
            }
            off += (len + 3) & !3;
        }
    }
    Ok(())
}

/// Flags of a create request that wants an acknowledgement.
pub const CREATE: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
/// [`CREATE`], failing if the object exists.
pub const CREATE_EXCL: u16 = CREATE | NLM_F_EXCL;
/// A request without acknowledgement (batch delimiters).
pub const REQUEST: u16 = NLM_F_REQUEST;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_nested() {
        let a = Attrs::new()
            .str(1, "sbx")
            .nest(4, Attrs::new().be32(1, 3).be32(2, (-100i32) as u32));
        let b = a.bytes();
        assert_eq!(&b[..8], &[8, 0, 1, 0, b's', b'b', b'x', 0]);
        assert_eq!(u16::from_ne_bytes([b[8], b[9]]), 20);
        assert_eq!(u16::from_ne_bytes([b[10], b[11]]), 4 | NLA_F_NESTED);
        assert_eq!(&b[24..28], &[0xff, 0xff, 0xff, 0x9c]);
        let m = message(0x0a00, CREATE, 7, &[1, 0, 0, 0], &a);
        assert_eq!(m.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(m[..4].try_into().unwrap()) as usize,
            m.len()
        );
    }
}
