//! The supervisor ↔ sandbox-init channel: a SOCK_SEQPACKET socketpair carrying tagged messages
//! and, with SCM_RIGHTS, file descriptors (the proxy listener, the pty master).

use std::cell::RefCell;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    /// child → supervisor: the proxy listener socket, bound inside the sandbox's netns.
    Listener = 1,
    /// child → supervisor: the master side of the sandbox's pty.
    PtyMaster = 2,
    /// supervisor → child: the session CA certificate (PEM), or empty for no network.
    SessionCa = 3,
    /// child → supervisor: the file view is built; the agent is about to start.
    Ready = 4,
    /// child → supervisor: set-up failed; the payload is the explanation.
    Failed = 5,
    /// child → supervisor: the agent exited with this code (4 bytes, little endian) and every
    /// other process of the sandbox is dead; only the init is left, about to exit.
    Exited = 6,
    /// child → supervisor: one socket of the transparent capture (payload: its
    /// `capture::SocketRole` byte), bound inside the sandbox's netns.
    Capture = 7,
    /// supervisor → child: a part of the encoded [`crate::jail::JailSpec`] (`jail::wire`),
    /// more parts follow.
    SpecPart = 8,
    /// supervisor → child: the last part of the encoded [`crate::jail::JailSpec`].
    Spec = 9,
    /// supervisor → child (sessions with network): `session_start` is in the flow log and the
    /// capture is served; the agent may start.
    Start = 10,
    /// supervisor → child, after `Exited`: run one `done` check (payload: the time limit in
    /// seconds, 4 bytes little endian, then the command) (`jail::checks`).
    Check = 11,
    /// child → supervisor: the read end of the running check's stdout+stderr pipe.
    CheckOutput = 12,
    /// child → supervisor: the check ended (exit code, 4 bytes little endian; 1 byte, 1 when it
    /// ran out of time; then why it could not start, if it did not) and nothing it started is
    /// left.
    CheckDone = 13,
}

impl Tag {
    fn from_byte(b: u8) -> Option<Tag> {
        Some(match b {
            1 => Tag::Listener,
            2 => Tag::PtyMaster,
            3 => Tag::SessionCa,
            4 => Tag::Ready,
            5 => Tag::Failed,
            6 => Tag::Exited,
            7 => Tag::Capture,
            8 => Tag::SpecPart,
            9 => Tag::Spec,
            10 => Tag::Start,
            11 => Tag::Check,
            12 => Tag::CheckOutput,
            13 => Tag::CheckDone,
            _ => return None,
        })
    }
}

/// Largest payload of one message (a PEM certificate, an error paragraph, one part of the
/// encoded spec).
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
    /// The receive buffer, allocated (and zeroed) once: every message's bytes are copied out.
    buf: RefCell<Vec<u8>>,
}

/// A received message.
#[derive(Debug)]
pub struct Message {
    /// What it is.
    pub tag: Tag,
    /// Its bytes.
    pub payload: Vec<u8>,
    /// The descriptor passed with it, if any.
    pub fd: Option<OwnedFd>,
}

impl Channel {
    /// A connected pair (close-on-exec on both ends).
    pub fn pair() -> nix::Result<(Channel, Channel)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        Ok((Channel::new(a), Channel::new(b)))
    }

    fn new(fd: OwnedFd) -> Channel {
        Channel {
            fd,
            buf: RefCell::new(Vec::new()),
        }
    }

    /// Sends `tag` with `payload` and optionally a descriptor.
    pub fn send(&self, tag: Tag, payload: &[u8], fd: Option<RawFd>) -> nix::Result<()> {
        let head = [tag as u8];
        let iov = [IoSlice::new(&head), IoSlice::new(payload)];
        let fds;
        let cmsgs: Vec<ControlMessage<'_>> = match fd {
            Some(fd) => {
                fds = [fd];
                vec![ControlMessage::ScmRights(&fds)]
            }
            None => Vec::new(),
        };
        sendmsg::<()>(
            self.fd.as_raw_fd(),
            &iov,
            &cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )?;
        Ok(())
    }

    /// Receives one message; `Ok(None)` when the other end closed the channel.
    pub fn recv(&self) -> nix::Result<Option<Message>> {
        let mut buf = self.buf.borrow_mut();
        if buf.len() < MAX_PAYLOAD + 1 {
            buf.resize(MAX_PAYLOAD + 1, 0);
        }
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let (len, fd) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let mut reset = false;
            let msg = loop {
                match recvmsg::<()>(
                    self.fd.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                ) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    // The peer closed with messages of ours unread. The kernel reports that
                    // once; what the peer sent before it closed (its explanation) is still
                    // queued behind the error, then the end of the channel.
                    Err(nix::errno::Errno::ECONNRESET) if !reset => reset = true,
                    other => break other?,
                }
            };
            let mut fd = None;
            for c in msg.cmsgs()? {
                if let ControlMessageOwned::ScmRights(list) = c {
                    for raw in list {
                        // SAFETY: SCM_RIGHTS installed `raw` as a new descriptor in this
                        // process; nothing else owns it.
                        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                        if fd.is_none() {
                            fd = Some(owned);
                        }
                    }
                }
            }
            (msg.bytes, fd)
        };
        if len == 0 {
            return Ok(None);
        }
        let Some(tag) = Tag::from_byte(buf[0]) else {
            return Err(nix::errno::Errno::EPROTO);
        };
        Ok(Some(Message {
            tag,
            payload: buf[1..len].to_vec(),
            fd,
        }))
    }

    /// The descriptor (for poll).
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.fd)
    }
}
