//! The byte encoding of a [`JailSpec`], which the supervisor sends to the sandbox's init over
//! the channel after the clone (the init was cloned before the contract was read).
//!
//! A version byte, then every field in a fixed order: integers little endian, byte strings as
//! a `u32` length and the bytes, lists as a `u32` count and the items, options and flags as one
//! byte. Decoding checks every length against what is left, rejects unknown tags, NUL bytes in
//! C strings and trailing bytes: a malformed spec is refused, never guessed at.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use seccompiler::{sock_filter, BpfProgram};

use crate::jail::landlock_rules::LandlockSpec;
use crate::jail::seccomp::SeccompPrograms;
use crate::jail::view::{MountOp, MountPlan};
use crate::jail::{JailLimits, JailSpec};

/// The format version; bumped on any change of the layout.
const VERSION: u8 = 3;

/// Why a received spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes end inside a field.
    #[error("the sandbox spec is truncated (reading {0})")]
    Truncated(&'static str),
    /// A version this build does not know.
    #[error("the sandbox spec has version {0}, this build reads version {VERSION}")]
    Version(u8),
    /// A tag or flag byte out of range.
    #[error("the sandbox spec has an invalid {what} byte {byte}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// Its value.
        byte: u8,
    },
    /// A C string (argument or environment entry) holds a NUL byte.
    #[error("the sandbox spec has a NUL byte inside {0}")]
    Nul(&'static str),
    /// Bytes left after the last field.
    #[error("the sandbox spec has {0} bytes after its end")]
    Trailing(usize),
}

/// Encodes `spec`.
pub fn encode(spec: &JailSpec) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(16 * 1024));
    w.u8(VERSION);
    w.u32(len(spec.mounts.ops.len()));
    for op in &spec.mounts.ops {
        match op {
            MountOp::Tmpfs { target } => {
                w.u8(1);
                w.path(target);
            }
            MountOp::Bind {
                source,
                target,
                writable,
            } => {
                w.u8(2);
                w.path(source);
                w.path(target);
                w.flag(*writable);
            }
            MountOp::Symlink { target, points_to } => {
                w.u8(3);
                w.path(target);
                w.path(points_to);
            }
            MountOp::Hide { target, directory } => {
                w.u8(4);
                w.path(target);
                w.flag(*directory);
            }
        }
    }
    match &spec.mounts.host_ca_bundle {
        Some(p) => {
            w.u8(1);
            w.path(p);
        }
        None => w.u8(0),
    }
    w.paths(&spec.mounts.ca_bundle_targets);
    for list in [&spec.argv, &spec.envp] {
        w.u32(len(list.len()));
        for c in list {
            w.bytes(c.as_bytes());
        }
    }
    w.bytes(spec.search_path.as_bytes());
    w.path(&spec.workdir);
    w.paths(&spec.landlock.read);
    w.paths(&spec.landlock.write);
    match spec.landlock.proxy_port {
        Some(port) => {
            w.u8(1);
            w.0.extend_from_slice(&port.to_le_bytes());
        }
        None => w.u8(0),
    }
    w.flag(spec.landlock.best_effort);
    w.program(&spec.seccomp.deny);
    w.program(&spec.seccomp.clone3);
    w.u32(spec.limits.pid_max.unwrap_or(0));
    w.u64(spec.limits.data_bytes.unwrap_or(0));
    w.u64(spec.limits.nproc.unwrap_or(0));
    w.u8(spec.limits.nice);
    w.u32(len(spec.home_files.len()));
    for (path, contents) in &spec.home_files {
        w.path(path);
        w.bytes(contents);
    }
    w.0
}

/// Decodes what [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<JailSpec, WireError> {
    let mut r = Reader(bytes);
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let count = r.count("mount steps")?;
    let mut ops = Vec::with_capacity(count);
    for _ in 0..count {
        let op = match r.u8("mount step")? {
            1 => MountOp::Tmpfs {
                target: r.path("tmpfs target")?,
            },
            2 => MountOp::Bind {
                source: r.path("bind source")?,
                target: r.path("bind target")?,
                writable: r.flag("bind writable")?,
            },
            3 => MountOp::Symlink {
                target: r.path("symlink")?,
                points_to: r.path("symlink target")?,
            },
            4 => MountOp::Hide {
                target: r.path("cover target")?,
                directory: r.flag("cover kind")?,
            },
            byte => {
                return Err(WireError::Invalid {
                    what: "mount step",
                    byte,
                })
            }
        };
        ops.push(op);
    }
    let host_ca_bundle = match r.flag("host CA bundle")? {
        true => Some(r.path("host CA bundle")?),
        false => None,
    };
    let ca_bundle_targets = r.paths("CA bundle targets")?;
    let argv = r.cstrings("argument")?;
    let envp = r.cstrings("environment entry")?;
    let search_path = OsString::from_vec(r.bytes("PATH")?.to_vec());
    let workdir = r.path("working directory")?;
    let read = r.paths("Landlock read paths")?;
    let write = r.paths("Landlock write paths")?;
    let proxy_port = match r.flag("proxy port")? {
        true => {
            let b = r.take(2, "proxy port")?;
            Some(u16::from_le_bytes([b[0], b[1]]))
        }
        false => None,
    };
    let best_effort = r.flag("best effort")?;
    let seccomp = SeccompPrograms {
        deny: r.program("seccomp deny program")?,
        clone3: r.program("seccomp clone3 program")?,
    };
    let limits = JailLimits {
        pid_max: Some(r.u32("pid limit")?).filter(|n| *n != 0),
        data_bytes: Some(r.u64("memory limit")?).filter(|n| *n != 0),
        nproc: Some(r.u64("process limit")?).filter(|n| *n != 0),
        nice: r.u8("nice")?,
    };
    let count = r.count("home files")?;
    let mut home_files = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let path = r.path("home file path")?;
        let contents = r.bytes("home file contents")?.to_vec();
        home_files.push((path, contents));
    }
    if !r.0.is_empty() {
        return Err(WireError::Trailing(r.0.len()));
    }
    Ok(JailSpec {
        mounts: MountPlan {
            ops,
            host_ca_bundle,
            ca_bundle_targets,
        },
        argv,
        envp,
        search_path,
        workdir,
        landlock: LandlockSpec {
            read,
            write,
            proxy_port,
            best_effort,
        },
        seccomp,
        limits,
        home_files,
    })
}

/// A length as the format's `u32`. Nothing the supervisor builds comes near 4 GiB (argv and
/// the environment are bounded by the kernel's ARG_MAX); saturating keeps `encode` total, and
/// the decoder then refuses the spec as truncated.
fn len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, b: u8) {
        self.0.push(b);
    }
    fn u64(&mut self, n: u64) {
        self.0.extend_from_slice(&n.to_le_bytes());
    }
    fn u32(&mut self, n: u32) {
        self.0.extend_from_slice(&n.to_le_bytes());
    }
    fn flag(&mut self, b: bool) {
        self.u8(u8::from(b));
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(len(b.len()));
        self.0.extend_from_slice(b);
    }
    fn path(&mut self, p: &Path) {
        self.bytes(p.as_os_str().as_bytes());
    }
    fn paths(&mut self, list: &[PathBuf]) {
        self.u32(len(list.len()));
        for p in list {
            self.path(p);
        }
    }
    fn program(&mut self, program: &BpfProgram) {
        self.u32(len(program.len()));
        for insn in program {
            self.0.extend_from_slice(&insn.code.to_le_bytes());
            self.0.push(insn.jt);
            self.0.push(insn.jf);
            self.0.extend_from_slice(&insn.k.to_le_bytes());
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Truncated(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn flag(&mut self, what: &'static str) -> Result<bool, WireError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(WireError::Invalid { what, byte }),
        }
    }
    /// A list count, bounded by what is left (every item takes at least one byte), so that a
    /// corrupt count cannot make the decoder reserve gigabytes.
    fn count(&mut self, what: &'static str) -> Result<usize, WireError> {
        let n = self.u32(what)? as usize;
        if n > self.0.len() {
            return Err(WireError::Truncated(what));
        }
        Ok(n)
    }
    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], WireError> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }
    fn path(&mut self, what: &'static str) -> Result<PathBuf, WireError> {
        Ok(PathBuf::from(OsStr::from_bytes(self.bytes(what)?)))
    }
    fn paths(&mut self, what: &'static str) -> Result<Vec<PathBuf>, WireError> {
        let n = self.count(what)?;
        (0..n).map(|_| self.path(what)).collect()
    }
    fn program(&mut self, what: &'static str) -> Result<BpfProgram, WireError> {
        let n = self.count(what)?;
        (0..n)
            .map(|_| {
                let b = self.take(8, what)?;
                Ok(sock_filter {
                    code: u16::from_le_bytes([b[0], b[1]]),
                    jt: b[2],
                    jf: b[3],
                    k: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
                })
            })
            .collect()
    }
    fn cstrings(&mut self, what: &'static str) -> Result<Vec<CString>, WireError> {
        let n = self.count(what)?;
        (0..n)
            .map(|_| CString::new(self.bytes(what)?).map_err(|_| WireError::Nul(what)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> JailSpec {
        JailSpec {
            mounts: MountPlan {
                ops: vec![
                    MountOp::Tmpfs {
                        target: "/tmp".into(),
                    },
                    MountOp::Bind {
                        source: "/usr".into(),
                        target: "/usr".into(),
                        writable: false,
                    },
                    MountOp::Symlink {
                        target: "/bin".into(),
                        points_to: "usr/bin".into(),
                    },
                    MountOp::Bind {
                        source: "/home/u/p".into(),
                        target: "/home/u/p".into(),
                        writable: true,
                    },
                    MountOp::Hide {
                        target: "/home/u/p/.env".into(),
                        directory: false,
                    },
                    MountOp::Hide {
                        // Not UTF-8: paths are bytes.
                        target: PathBuf::from(OsStr::from_bytes(b"/home/u/p/s\xffcret")),
                        directory: true,
                    },
                ],
                host_ca_bundle: Some("/etc/ssl/certs/ca-certificates.crt".into()),
                ca_bundle_targets: vec!["/etc/ssl/certs/ca-certificates.crt".into()],
            },
            argv: vec![CString::new("sh").unwrap(), CString::new("-c").unwrap()],
            envp: vec![CString::new("PATH=/usr/bin").unwrap()],
            search_path: "/usr/bin:/bin".into(),
            workdir: "/home/u/p".into(),
            landlock: LandlockSpec {
                read: vec!["/usr".into(), "/etc".into()],
                write: vec!["/tmp".into(), "/home/u/p".into()],
                proxy_port: Some(3128),
                best_effort: false,
            },
            seccomp: crate::jail::seccomp::compile(false).unwrap(),
            limits: JailLimits {
                pid_max: Some(4097),
                data_bytes: Some(8 << 30),
                nproc: None,
                nice: 10,
            },
            home_files: vec![(
                "/home/u/.gemini/settings.json".into(),
                b"{\"usageStatisticsEnabled\": false}".to_vec(),
            )],
        }
    }

    #[test]
    fn a_spec_survives_the_round_trip_byte_for_byte() {
        let spec = sample();
        assert_eq!(decode(&encode(&spec)).unwrap(), spec);
        let mut offline = sample();
        offline.mounts.host_ca_bundle = None;
        offline.landlock.proxy_port = None;
        offline.landlock.best_effort = true;
        assert_eq!(decode(&encode(&offline)).unwrap(), offline);
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = encode(&sample());
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes[..cut]).is_err(),
                "a spec cut at {cut} of {} bytes was accepted",
                bytes.len()
            );
        }
    }

    #[test]
    fn trailing_bytes_a_wrong_version_and_bad_tags_are_refused() {
        let mut bytes = encode(&sample());
        bytes.push(0);
        assert_eq!(decode(&bytes), Err(WireError::Trailing(1)));
        let mut bytes = encode(&sample());
        bytes[0] = VERSION + 1;
        assert_eq!(decode(&bytes), Err(WireError::Version(VERSION + 1)));
        // The first mount step's tag sits after the version byte and the u32 count.
        let mut bytes = encode(&sample());
        bytes[5] = 9;
        assert_eq!(
            decode(&bytes),
            Err(WireError::Invalid {
                what: "mount step",
                byte: 9
            })
        );
        // A flag that is neither 0 nor 1: best_effort, the byte before the two programs and
        // the limits (u32, two u64, u8).
        let spec = sample();
        let programs = 2 * 4 + 8 * (spec.seccomp.deny.len() + spec.seccomp.clone3.len());
        let limits = 4 + 8 + 8 + 1;
        let home_files: usize = 4 + spec
            .home_files
            .iter()
            .map(|(p, c)| 4 + p.as_os_str().len() + 4 + c.len())
            .sum::<usize>();
        let limits = limits + home_files;
        let mut bytes = encode(&spec);
        let at = bytes.len() - programs - limits - 1;
        assert_eq!(bytes[at], 0);
        bytes[at] = 2;
        assert_eq!(
            decode(&bytes),
            Err(WireError::Invalid {
                what: "best effort",
                byte: 2
            })
        );
    }

    #[test]
    fn a_nul_inside_an_argument_and_a_huge_count_are_refused() {
        let mut spec = sample();
        spec.mounts.ops.clear();
        spec.mounts.host_ca_bundle = None;
        spec.mounts.ca_bundle_targets.clear();
        spec.argv = vec![CString::new("ab").unwrap()];
        let mut bytes = encode(&spec);
        // version(1) ops count(4) ca flag(1) targets count(4) argv count(4) len(4) "ab"
        let at = 1 + 4 + 1 + 4 + 4 + 4;
        assert_eq!(&bytes[at..at + 2], b"ab");
        bytes[at + 1] = 0;
        assert_eq!(decode(&bytes), Err(WireError::Nul("argument")));
        let mut bytes = encode(&spec);
        bytes[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&bytes), Err(WireError::Truncated("mount steps")));
    }
}
