//! loadgen: the bench client. HTTPS/1.1 to one target, directly or through an HTTP CONNECT
//! proxy, measuring latency, throughput, bulk download, SSE event delay and idle connections.
//!
//! `loadgen suite --target HOST:PORT [options]` runs every phase in order and prints one JSON
//! object (also written to `--out FILE`). `loadgen probe --target HOST:PORT` sends one request
//! and prints its status. Every phase is bounded in time and count. Options:
//!
//! - `--connect ADDR:PORT`   dial this instead of resolving HOST (direct mode)
//! - `--proxy URL`           CONNECT proxy (default: `$HTTPS_PROXY`/`$https_proxy`; `none` = direct)
//! - `--ca FILE`             trust roots (repeatable; default: `$SSL_CERT_FILE`)
//! - `--duration-ms N`       length of each parallel phase (default 3000)
//! - `--phases a,b,...`      subset of: idle,fresh,fresh_full,keepalive,par32ka,par256ka,par32new,par256new,
//!   download,sse (`fresh_full`: new connections without TLS session resumption)
//! - `--fresh-samples N`, `--keepalive-samples N`, `--download-bytes N`, `--downloads N`,
//!   `--sse-events N`, `--sse-interval-ms N`, `--idle-conns N`
//! - `--sync-dir DIR`        at `warm`, `preidle`, `held` and `<phase>.start`/`<phase>.end`, create `DIR/<point>.ready` and
//!   wait (at most 60 s) for `DIR/<point>.go`, so a harness can sample the proxy's memory
//! - `--out FILE`            also write the JSON result there
//! - `--quick`               short phases for CI smoke runs

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use loadgen::dial::{parse_proxy_url, ProxyUrl, Route};
use loadgen::http1::Framed;
use loadgen::stats::Summary;
use loadgen::tls;
use serde_json::{json, Map, Value};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

type Conn = Framed<TlsStream<TcpStream>>;

/// Phases in the order they run. `idle` comes first, on a freshly started proxy, so the memory
/// it adds per held connection is not hidden by buffers the heavy phases left in the allocator.
const ALL_PHASES: &[&str] = &[
    "idle",
    "fresh",
    "fresh_full",
    "keepalive",
    "par32ka",
    "par256ka",
    "par32new",
    "par256new",
    "download",
    "sse",
];
/// Upper bound on the time a latency phase may take, however many samples it still wants.
const LATENCY_PHASE_LIMIT: Duration = Duration::from_secs(8);
/// Upper bound on a single request/response exchange.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound on waiting for the harness at a sync point.
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

struct Options {
    command: String,
    host: String,
    port: u16,
    connect: Option<SocketAddr>,
    proxy: Option<ProxyUrl>,
    cas: Vec<PathBuf>,
    duration: Duration,
    phases: Vec<String>,
    fresh_samples: usize,
    keepalive_samples: usize,
    download_bytes: u64,
    downloads: usize,
    sse_events: u64,
    sse_interval_ms: u64,
    idle_conns: usize,
    sync_dir: Option<PathBuf>,
    out: Option<PathBuf>,
}

fn parse_args() -> Result<Options> {
    let mut args = std::env::args().skip(1).peekable();
    let command = match args.peek().map(String::as_str) {
        Some("suite") | Some("probe") => args.next().unwrap_or_default(),
        _ => bail!("usage: loadgen suite|probe --target HOST:PORT [options]; see loadgen.rs"),
    };
    let mut o = Options {
        command,
        host: String::new(),
        port: 443,
        connect: None,
        proxy: None,
        cas: Vec::new(),
        duration: Duration::from_millis(3000),
        phases: ALL_PHASES.iter().map(|s| s.to_string()).collect(),
        fresh_samples: 300,
        keepalive_samples: 3000,
        download_bytes: 64 << 20,
        downloads: 5,
        sse_events: 20,
        sse_interval_ms: 50,
        idle_conns: 1000,
        sync_dir: None,
        out: None,
    };
    let mut proxy_arg: Option<String> = None;
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--target" => {
                let t = val()?;
                let (h, p) = t
                    .rsplit_once(':')
                    .with_context(|| format!("--target {t}: want HOST:PORT"))?;
                o.host = h.to_string();
                o.port = p
                    .parse()
                    .with_context(|| format!("--target {t}: bad port"))?;
            }
            "--connect" => o.connect = Some(val()?.parse().context("--connect wants ADDR:PORT")?),
            "--proxy" => proxy_arg = Some(val()?),
            "--ca" => o.cas.push(val()?.into()),
            "--duration-ms" => {
                o.duration = Duration::from_millis(val()?.parse().context("--duration-ms")?)
            }
            "--phases" => o.phases = val()?.split(',').map(str::to_string).collect(),
            "--fresh-samples" => o.fresh_samples = val()?.parse().context("--fresh-samples")?,
            "--keepalive-samples" => {
                o.keepalive_samples = val()?.parse().context("--keepalive-samples")?
            }
            "--download-bytes" => o.download_bytes = val()?.parse().context("--download-bytes")?,
            "--downloads" => o.downloads = val()?.parse().context("--downloads")?,
            "--sse-events" => o.sse_events = val()?.parse().context("--sse-events")?,
            "--sse-interval-ms" => {
                o.sse_interval_ms = val()?.parse().context("--sse-interval-ms")?
            }
            "--idle-conns" => o.idle_conns = val()?.parse().context("--idle-conns")?,
            "--sync-dir" => o.sync_dir = Some(val()?.into()),
            "--out" => o.out = Some(val()?.into()),
            "--quick" => {
                o.duration = Duration::from_millis(700);
                o.fresh_samples = 30;
                o.keepalive_samples = 300;
                o.download_bytes = 16 << 20;
                o.downloads = 1;
                o.sse_events = 10;
                o.idle_conns = 100;
            }
            other => bail!("unknown argument {other}; see the comment at the top of loadgen.rs"),
        }
    }
    if o.host.is_empty() {
        bail!("--target HOST:PORT is required");
    }
    if let Some(bad) = o.phases.iter().find(|p| !ALL_PHASES.contains(&p.as_str())) {
        bail!("unknown phase {bad}; known: {}", ALL_PHASES.join(","));
    }
    let proxy = proxy_arg
        .or_else(|| std::env::var("HTTPS_PROXY").ok())
        .or_else(|| std::env::var("https_proxy").ok())
        .filter(|p| !p.is_empty() && p != "none");
    o.proxy = proxy.map(|p| parse_proxy_url(&p)).transpose()?;
    if o.cas.is_empty() {
        match std::env::var_os("SSL_CERT_FILE") {
            Some(f) => o.cas.push(f.into()),
            None => bail!("no trust roots: pass --ca FILE or set SSL_CERT_FILE"),
        }
    }
    Ok(o)
}

/// What every request and tunnel did, for counting against the flow log.
#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Counters {
    fn fail(&self, e: &anyhow::Error) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(format!("{e:#}"));
        }
    }
}

struct Ctx {
    o: Options,
    route: Route,
    /// The same route with TLS session resumption off: a full handshake every time.
    route_full: Route,
    counters: Counters,
}

impl Ctx {
    fn request_bytes(&self, method: &str, path: &str, body: &str, close: bool) -> Vec<u8> {
        let host = if self.o.port == 443 {
            self.o.host.clone()
        } else {
            format!("{}:{}", self.o.host, self.o.port)
        };
        let conn = if close { "connection: close\r\n" } else { "" };
        let body_hdr = if method == "GET" {
            String::new()
        } else {
            format!(
                "content-type: application/json\r\ncontent-length: {}\r\n",
                body.len()
            )
        };
        format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nuser-agent: sandbox-bench-loadgen/0.1\r\naccept: */*\r\n{body_hdr}{conn}\r\n{body}")
            .into_bytes()
    }

    fn small(&self, close: bool) -> Vec<u8> {
        self.request_bytes(
            "POST",
            "/v1/chat/completions",
            r#"{"model":"bench","messages":[{"role":"user","content":"ping"}]}"#,
            close,
        )
    }

    async fn open(&self) -> Result<Conn> {
        Ok(Framed::new(self.route.open().await?))
    }

    /// Sends `req` on `conn`, reads the whole response into `sink`; 2xx or an error.
    async fn exchange(&self, conn: &mut Conn, req: &[u8], sink: impl FnMut(&[u8])) -> Result<u64> {
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        let r = tokio::time::timeout(REQUEST_TIMEOUT, async {
            conn.send(req).await?;
            let head = conn
                .read_head()
                .await?
                .context("the connection closed before a response")?;
            let n = conn.read_body(&head, sink).await?;
            if !head.second.starts_with('2') {
                bail!("status {} from the path under test", head.second);
            }
            Ok(n)
        })
        .await
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "no complete response within {REQUEST_TIMEOUT:?}"
            ))
        });
        match &r {
            Ok(_) => self.counters.ok.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                self.counters.fail(e);
                0
            }
        };
        r
    }

    /// One new connection and one request on it.
    async fn fresh_request(&self, req: &[u8]) -> Result<()> {
        let mut conn = self.open().await?;
        self.exchange(&mut conn, req, |_| {}).await?;
        Ok(())
    }

    /// As [`Ctx::fresh_request`], with a full TLS handshake (no session resumption).
    async fn fresh_request_full(&self, req: &[u8]) -> Result<()> {
        let mut conn = Framed::new(self.route_full.open().await?);
        self.exchange(&mut conn, req, |_| {}).await?;
        Ok(())
    }

    async fn sync(&self, point: &str) {
        let Some(dir) = &self.o.sync_dir else { return };
        let ready = dir.join(format!("{point}.ready"));
        let go = dir.join(format!("{point}.go"));
        if std::fs::write(&ready, b"").is_err() {
            eprintln!("loadgen: cannot write {}; not waiting", ready.display());
            return;
        }
        let t0 = Instant::now();
        while !go.exists() && t0.elapsed() < SYNC_TIMEOUT {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// This process's CPU time (user + system) in seconds, from `/proc/self/stat` (clock ticks of
/// 1/100 s, the value of `USER_HZ` on Linux); `None` without a readable procfs.
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_comm = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary_json(mut v: Vec<f64>) -> Value {
    Summary::of(&mut v)
        .map(Summary::to_json)
        .unwrap_or(Value::Null)
}

async fn phase_fresh(cx: &Ctx) -> Result<Value> {
    let req = cx.small(true);
    let mut lat = Vec::new();
    let t0 = Instant::now();
    for _ in 0..3 {
        cx.fresh_request(&req).await?;
    }
    while lat.len() < cx.o.fresh_samples && t0.elapsed() < LATENCY_PHASE_LIMIT {
        let t = Instant::now();
        cx.fresh_request(&req).await?;
        lat.push(ms(t.elapsed()));
    }
    Ok(json!({"latency_ms": summary_json(lat)}))
}

async fn phase_fresh_full(cx: &Ctx) -> Result<Value> {
    let req = cx.small(true);
    let mut lat = Vec::new();
    let t0 = Instant::now();
    cx.fresh_request_full(&req).await?;
    while lat.len() < cx.o.fresh_samples && t0.elapsed() < LATENCY_PHASE_LIMIT {
        let t = Instant::now();
        cx.fresh_request_full(&req).await?;
        lat.push(ms(t.elapsed()));
    }
    Ok(json!({"latency_ms": summary_json(lat)}))
}

async fn phase_keepalive(cx: &Ctx) -> Result<Value> {
    let req = cx.small(false);
    let mut conn = cx.open().await?;
    for _ in 0..20 {
        cx.exchange(&mut conn, &req, |_| {}).await?;
    }
    let mut lat = Vec::new();
    let t0 = Instant::now();
    while lat.len() < cx.o.keepalive_samples && t0.elapsed() < LATENCY_PHASE_LIMIT {
        let t = Instant::now();
        cx.exchange(&mut conn, &req, |_| {}).await?;
        lat.push(ms(t.elapsed()));
    }
    Ok(json!({"latency_ms": summary_json(lat)}))
}

/// `clients` tasks, each looping until the deadline; keep-alive or a new connection each time.
async fn phase_parallel(cx: &Arc<Ctx>, clients: usize, keepalive: bool) -> Result<Value> {
    let deadline = Instant::now() + cx.o.duration;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let cx = cx.clone();
        tasks.spawn(async move {
            let req = cx.small(!keepalive);
            let (mut done, mut errors, mut lat) = (0u64, 0u64, Vec::new());
            let mut conn: Option<Conn> = None;
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = if keepalive {
                    if conn.is_none() {
                        conn = cx.open().await.ok();
                    }
                    match conn.as_mut() {
                        Some(c) => cx.exchange(c, &req, |_| {}).await.map(|_| ()),
                        None => Err(anyhow::anyhow!("could not open a connection")),
                    }
                } else {
                    cx.fresh_request(&req).await
                };
                match r {
                    Ok(()) => {
                        done += 1;
                        lat.push(ms(t.elapsed()));
                    }
                    Err(e) => {
                        if keepalive {
                            conn = None;
                        }
                        if e.to_string().contains("could not open") || !keepalive {
                            cx.counters.fail(&e);
                        }
                        errors += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            (done, errors, lat)
        });
    }
    let (mut done, mut errors, mut lat) = (0u64, 0u64, Vec::new());
    while let Some(r) = tasks.join_next().await {
        let (d, e, l) = r.context("a client task panicked")?;
        done += d;
        errors += e;
        lat.extend(l);
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(
        json!({"clients": clients, "requests": done, "errors": errors, "seconds": secs,
              "rps": done as f64 / secs, "latency_ms": summary_json(lat)}),
    )
}

async fn phase_download(cx: &Ctx) -> Result<Value> {
    let req = cx.request_bytes(
        "GET",
        &format!("/v1/bytes/{}", cx.o.download_bytes),
        "",
        false,
    );
    let mut conn = cx.open().await?;
    let mut rates = Vec::new();
    let t0 = Instant::now();
    for _ in 0..cx.o.downloads {
        if !rates.is_empty() && t0.elapsed() > LATENCY_PHASE_LIMIT {
            break;
        }
        let t = Instant::now();
        let n = cx.exchange(&mut conn, &req, |_| {}).await?;
        if n != cx.o.download_bytes {
            bail!("downloaded {n} bytes, expected {}", cx.o.download_bytes);
        }
        rates.push(n as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64());
    }
    let best = rates.iter().copied().fold(0.0, f64::max);
    Ok(
        json!({"bytes": cx.o.download_bytes, "mib_per_s": summary_json(rates), "best_mib_per_s": best}),
    )
}

async fn phase_sse(cx: &Ctx) -> Result<Value> {
    let path = format!(
        "/v1/sse?n={}&interval_ms={}",
        cx.o.sse_events, cx.o.sse_interval_ms
    );
    let req = cx.request_bytes("POST", &path, r#"{"stream":true}"#, false);
    let mut conn = cx.open().await?;
    let mut delays = Vec::new();
    let mut pending = String::new();
    cx.exchange(&mut conn, &req, |piece| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        pending.push_str(&String::from_utf8_lossy(piece));
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            if let Some(sent) = line
                .trim_end()
                .strip_prefix("data: ")
                .and_then(|v| v.parse::<u128>().ok())
            {
                delays.push(now.saturating_sub(sent) as f64 / 1e6);
            }
        }
    })
    .await?;
    if delays.len() as u64 != cx.o.sse_events {
        bail!("received {} of {} events", delays.len(), cx.o.sse_events);
    }
    Ok(json!({"events": delays.len(), "delay_ms": summary_json(delays)}))
}

async fn phase_idle(cx: &Arc<Ctx>) -> Result<Value> {
    let req = Arc::new(cx.small(false));
    let mut held: Vec<Conn> = Vec::with_capacity(cx.o.idle_conns);
    let mut failures = 0usize;
    cx.sync("preidle").await;
    let t0 = Instant::now();
    // Open in waves of 32 so no listen backlog is overrun.
    while held.len() + failures < cx.o.idle_conns && t0.elapsed() < Duration::from_secs(60) {
        let wave = (cx.o.idle_conns - held.len() - failures).min(32);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..wave {
            let (cx, req) = (cx.clone(), req.clone());
            tasks.spawn(async move {
                let mut c = cx.open().await?;
                cx.exchange(&mut c, &req, |_| {}).await?;
                anyhow::Ok(c)
            });
        }
        while let Some(r) = tasks.join_next().await {
            match r.context("a client task panicked")? {
                Ok(c) => held.push(c),
                Err(e) => {
                    cx.counters.fail(&e);
                    failures += 1;
                }
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    cx.sync("held").await;
    let n = held.len();
    drop(held);
    Ok(json!({"wanted": cx.o.idle_conns, "held": n, "failed": failures}))
}

async fn run(o: Options) -> Result<Value> {
    let cas: Vec<&Path> = o.cas.iter().map(PathBuf::as_path).collect();
    let route = Route {
        host: o.host.clone(),
        port: o.port,
        connect_addr: o.connect,
        proxy: o.proxy.clone(),
        tls: tls::client_config(&cas)?,
        tunnels: Arc::new(AtomicU64::new(0)),
    };
    let route_full = Route {
        tls: tls::client_config_with(&cas, false)?,
        ..route.clone()
    };
    let cx = Arc::new(Ctx {
        o,
        route,
        route_full,
        counters: Counters::default(),
    });
    if cx.o.command == "probe" {
        let req = cx.small(true);
        cx.fresh_request(&req).await?;
        return Ok(
            json!({"probe": "ok", "via_proxy": cx.o.proxy.as_ref().map(|p| p.authority.clone())}),
        );
    }
    let started = Instant::now();
    let mut out = Map::new();
    // Warm the path (leaf certificates, session caches), then let the harness read idle memory.
    // A wrapper may start its in-sandbox bridge beside the client (srt does): give the path up
    // to 5 s to come up before the first request counts as a failure.
    let warm_start = Instant::now();
    loop {
        match cx.fresh_request(&cx.small(true)).await {
            Ok(()) => break,
            Err(e) if warm_start.elapsed() < Duration::from_secs(5) => {
                eprintln!("loadgen: path not up yet ({e:#}); retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.context("the first request through the path failed")),
        }
    }
    cx.sync("warm").await;
    for phase in cx.o.phases.clone() {
        // Lets the harness read the proxy's CPU time around each phase.
        cx.sync(&format!("{phase}.start")).await;
        let t = Instant::now();
        let cpu_before = own_cpu_seconds();
        let r = match phase.as_str() {
            "fresh" => phase_fresh(&cx).await,
            "fresh_full" => phase_fresh_full(&cx).await,
            "keepalive" => phase_keepalive(&cx).await,
            "par32ka" => phase_parallel(&cx, 32, true).await,
            "par256ka" => phase_parallel(&cx, 256, true).await,
            "par32new" => phase_parallel(&cx, 32, false).await,
            "par256new" => phase_parallel(&cx, 256, false).await,
            "download" => phase_download(&cx).await,
            "sse" => phase_sse(&cx).await,
            "idle" => phase_idle(&cx).await,
            _ => unreachable!("phases are checked when parsed"),
        };
        let v = match r {
            Ok(mut v) => {
                v["phase_seconds"] = json!(t.elapsed().as_secs_f64());
                if let (Some(a), Some(b)) = (cpu_before, own_cpu_seconds()) {
                    v["client_cpu_seconds"] = json!(b - a);
                }
                v
            }
            Err(e) => json!({"error": format!("{e:#}")}),
        };
        cx.sync(&format!("{phase}.end")).await;
        eprintln!("loadgen: {phase}: {v}");
        out.insert(phase, v);
    }
    let c = &cx.counters;
    out.insert(
        "counts".into(),
        json!({
            "requests_sent": c.sent.load(Ordering::Relaxed),
            "responses_ok": c.ok.load(Ordering::Relaxed),
            "failures": c.failed.load(Ordering::Relaxed),
            "first_error": *c.first_error.lock().unwrap_or_else(|p| p.into_inner()),
            "tunnels": cx.route.tunnels.load(Ordering::Relaxed),
            "via_proxy": cx.o.proxy.as_ref().map(|p| p.authority.clone()),
            "seconds": started.elapsed().as_secs_f64(),
        }),
    );
    Ok(Value::Object(out))
}

fn main() -> Result<()> {
    let o = parse_args()?;
    let out_file = o.out.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(run(o))?;
    let text = result.to_string();
    if let Some(f) = out_file {
        std::fs::write(&f, format!("{text}\n"))
            .with_context(|| format!("writing {}", f.display()))?;
    }
    println!("{text}");
    Ok(())
}
