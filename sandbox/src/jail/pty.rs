//! The supervisor's side of an interactive session: the host terminal in raw mode, restored on
//! drop, and the window size copied to the sandbox's pty.

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

use crate::jail::sys;

/// The host terminal in raw mode for as long as this value lives.
pub struct RawTerminal<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawTerminal<'a> {
    /// Switches `fd` (the supervisor's stdin, a terminal) to raw mode.
    pub fn enter(fd: BorrowedFd<'a>) -> nix::Result<RawTerminal<'a>> {
        let saved = tcgetattr(fd)?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(fd, SetArg::TCSANOW, &raw)?;
        Ok(RawTerminal { fd, saved })
    }
}

impl Drop for RawTerminal<'_> {
    fn drop(&mut self) {
        let _ = tcsetattr(self.fd, SetArg::TCSAFLUSH, &self.saved);
    }
}

/// Copies the window size of `from` (the host terminal) to `to` (the pty master).
pub fn copy_window_size(from: BorrowedFd<'_>, to: impl AsFd) {
    if let Ok(ws) = sys::window_size(from) {
        let _ = sys::set_window_size(to.as_fd(), &ws);
    }
}
