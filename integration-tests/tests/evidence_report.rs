//! `sandbox report`: one self-contained HTML page, rendered in headless Chromium; the
//! screenshot's pixels show the inline SVG diagram (its agent and proxy boxes, and the
//! deviation box when the log deviates).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use integration_tests::bin::sandbox_bin;
use integration_tests::synthetic_log::write_pilot_scenario;

const APPROVED: &str = r#"
[diagram]
title = "PILOT-77 data flows"
approved_by = ["legal: A. Person, 2026-11-02", "security: B. Person, 2026-11-02"]

[[node]]
id = "agent"
kind = "agent"

[[node]]
id = "proxy"
kind = "proxy"

[[node]]
id = "mistral"
kind = "external"

[[edge]]
name = "prompts to Mistral EU"
to = "mistral"
host = "api.eu.mistral.ai"
methods = ["POST"]
paths = ["/v1/chat/completions"]
data = "source code and prompts"
regions = ["EU"]
"#;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("evidence-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sandbox(args: &[&str]) -> Output {
    Command::new(sandbox_bin())
        .args(args)
        .output()
        .expect("run sandbox")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Screenshots `html` with headless Chromium (bounded to 90 s) and returns RGBA rows.
fn screenshot(dir: &Path, html: &Path) -> (u32, u32, Vec<u8>) {
    let chromium = ["chromium", "chromium-browser"]
        .iter()
        .find(|c| Command::new(c).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success()))
        .expect("Chromium is required for the report test: apt-get install chromium (.ci/test installs it)");
    let png = dir.join("shot.png");
    let profile = dir.join("profile");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1200,2200",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .env("HOME", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let decoder =
        png::Decoder::new(std::fs::File::open(&png).expect("chromium wrote no screenshot"));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let channels = match info.color_type {
        png::ColorType::Rgba => 4,
        png::ColorType::Rgb => 3,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    let mut rgba = Vec::with_capacity((info.width * info.height * 4) as usize);
    for px in buf[..info.buffer_size()].chunks(channels) {
        rgba.extend_from_slice(&[px[0], px[1], px[2], 255]);
    }
    (info.width, info.height, rgba)
}

fn count(rgba: &[u8], rgb: [u8; 3]) -> usize {
    rgba.chunks(4).filter(|p| p[..3] == rgb).count()
}

fn assert_self_contained(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.to_ascii_lowercase().contains("<script"), "no scripts");
    for tag in [
        "<img", "<link", "<iframe", "<object", "<embed", "<image", "<use",
    ] {
        assert!(
            !html.contains(tag),
            "no {tag}: the page must be self-contained"
        );
    }
    assert!(!html.contains("src=\""), "no external resources");
    assert!(!html.contains("href=\""), "no links");
    assert!(!html.contains("url(http"), "no external CSS");
    assert!(html.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
}

#[test]
fn report_renders_in_chromium_with_the_diagram() {
    let dir = temp_dir("conforms");
    let log = dir.join("flows.jsonl");
    write_pilot_scenario(&log).unwrap();
    let diagram = dir.join("approved.toml");
    std::fs::write(&diagram, APPROVED).unwrap();
    let html_path = dir.join("report.html");
    let out = sandbox(&[
        "report",
        s(&log),
        "--approved",
        s(&diagram),
        "-o",
        s(&html_path),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert_self_contained(&html);
    for needle in [
        "Verdict: CONFORMS",
        "Sessions, contracts and classes",
        "tasks/fix-parser.toml",
        ">B<",
        "Evidence per destination",
        "Residency compliance",
        "3 of 3 allowed flows went to regions inside the EU",
        "Blocked attempts (2)",
        "residency: api.openai.com is global (US)",
        "Hash-chain status",
        ">intact<",
        "legal: A. Person",
    ] {
        assert!(html.contains(needle), "report lacks {needle:?}");
    }

    let (w, h, rgba) = screenshot(&dir, &html_path);
    assert!(w >= 1000 && h >= 1000, "{w}x{h}");
    // The diagram's agent box (#e3f2fd) and proxy box (#ede7f6) are only in the SVG: their
    // filled interiors must be on screen (each is about 170 x 76 CSS pixels).
    let agent = count(&rgba, [0xe3, 0xf2, 0xfd]);
    let proxy = count(&rgba, [0xed, 0xe7, 0xf6]);
    assert!(agent > 5000, "agent box not rendered ({agent} px)");
    assert!(proxy > 5000, "proxy box not rendered ({proxy} px)");
    // The denied destinations' boxes (#fdecea) too.
    assert!(
        count(&rgba, [0xfd, 0xec, 0xea]) > 5000,
        "blocked destinations not rendered"
    );
    // Only the legend's small swatch (16 x 12) has the deviation colour when conforming.
    let deviation = count(&rgba, [0xff, 0xf3, 0xe0]);
    assert!(
        deviation < 1000,
        "a deviation box is drawn for a conforming log ({deviation} px)"
    );
}

#[test]
fn deviating_report_shows_the_deviation() {
    let dir = temp_dir("deviates");
    let log = dir.join("flows.jsonl");
    write_pilot_scenario(&log).unwrap();
    let diagram = dir.join("approved.toml");
    std::fs::write(
        &diagram,
        APPROVED.replace("/v1/chat/completions", "/v1/embeddings"),
    )
    .unwrap();
    let html_path = dir.join("report.html");
    let out = sandbox(&[
        "report",
        s(&log),
        "--approved",
        s(&diagram),
        "-o",
        s(&html_path),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("verdict DEVIATES"));
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert_self_contained(&html);
    assert!(html.contains("Verdict: DEVIATES"));
    assert!(html.contains("proxy -&gt; api.eu.mistral.ai:443 POST /v1/chat/completions"));
    let (_, _, rgba) = screenshot(&dir, &html_path);
    assert!(
        count(&rgba, [0xff, 0xf3, 0xe0]) > 5000,
        "deviation box not rendered"
    );
}

#[test]
fn hostile_log_content_is_escaped() {
    let dir = temp_dir("hostile");
    let log = dir.join("flows.jsonl");
    let mut w = integration_tests::synthetic_log::SyntheticLog::create(&log).unwrap();
    let mut req = integration_tests::synthetic_log::Request::new(
        "evil.example",
        "POST",
        "/<script>alert(1)</script>",
    );
    req.rule = None;
    w.denied(&req, "<img src=x onerror=alert(1)>").unwrap();
    w.finish().unwrap();
    let diagram = dir.join("approved.toml");
    std::fs::write(&diagram, APPROVED).unwrap();
    let html_path = dir.join("report.html");
    sandbox(&[
        "report",
        s(&log),
        "--approved",
        s(&diagram),
        "-o",
        s(&html_path),
    ]);
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert_self_contained(&html);
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
}
