//! Link settings of the `sandbox` binary.
//!
//! Packed relative relocations (`-z pack-relative-relocs`, DT_RELR): the binary has about
//! 23,000 relative relocations, which the dynamic loader applies at every start from a 550 KiB
//! table; packed, the table is 7 KiB and the loader's share of a start drops from about 0.73 to
//! 0.16 million cycles (`LD_DEBUG=statistics`; `sandbox --version` 2.2 -> 1.9 ms, hyperfine).
//! `sandbox run` pays it on every start. The loader must know DT_RELR (glibc 2.36 and later),
//! so the flag is only passed when building for Linux/glibc on a host whose glibc has it and
//! whose linker accepts it; otherwise the binary is linked as before.

use std::process::{Command, Stdio};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if target != host || os != "linux" || env != "gnu" {
        return;
    }
    if glibc_version().is_some_and(|v| v >= (2, 36)) && linker_accepts_relr() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// The host's glibc version, from `getconf GNU_LIBC_VERSION` ("glibc 2.36").
fn glibc_version() -> Option<(u32, u32)> {
    let out = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let version = text.trim().strip_prefix("glibc ")?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.trim().parse().ok()?;
    Some((major, minor))
}

/// Links an empty C program with the flag, with the C compiler cargo links through.
fn linker_accepts_relr() -> bool {
    let cc = std::env::var("RUSTC_LINKER")
        .ok()
        .or_else(|| std::env::var("CC").ok())
        .unwrap_or_else(|| "cc".to_owned());
    let Ok(out_dir) = std::env::var("OUT_DIR") else {
        return false;
    };
    let output = std::path::Path::new(&out_dir).join("relr-probe");
    let Ok(mut child) = Command::new(cc)
        .args(["-x", "c", "-", "-o"])
        .arg(&output)
        .arg("-Wl,-z,pack-relative-relocs")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        if stdin.write_all(b"int main(void) { return 0; }\n").is_err() {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
    }
    let linked = child.wait().is_ok_and(|s| s.success());
    // The probe must also run: an old loader would not apply the packed relocations.
    let runs = linked
        && Command::new(&output)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    let _ = std::fs::remove_file(&output);
    runs
}
