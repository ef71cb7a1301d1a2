#!/usr/bin/env python3
"""Turns one bench run's raw results into the markdown report (figures, ratios, targets).

    report.py RESULTS_DIR  ->  markdown on stdout

RESULTS_DIR holds, per mode M: suite-M.json (loadgen's output) or status-M.txt (why there is
no figure, e.g. "n/a (not built)"), mem-M.json (sampler.py) and flowlog-M.json (flowlog.py);
per start-up command C: startup-C.json (hyperfine --export-json) or startup-C.status; and
meta.json.
"""

import json
import os
import sys

MODES = [
    ("direct", "direct"),
    ("mitmdump", "mitmdump (TLS interception)"),
    ("squid", "squid (CONNECT only)"),
    ("srt", "srt (client inside its sandbox)"),
    ("proxy", "`sandbox proxy`"),
    ("run", "`sandbox run` (agent path)"),
]
PEERS = ["direct", "mitmdump", "squid", "srt"]
OURS = [("run", "`sandbox run` (agent path)"), ("proxy", "`sandbox proxy`")]
# Throughput phases in which a slow upstream could cap what a proxied path shows.
THROUGHPUT = ["par32ka", "par32new", "par256ka", "par256new", "download"]
# The direct figure (client -> the same upstream, same run) must be at least this many times
# every proxied figure: below it the upstream, not the proxy, may be what was measured.
HEADROOM = 1.5

STARTUP = [
    ("bare", "bare `true`"),
    ("bwrap", "bubblewrap"),
    ("srt", "srt"),
    ("run", "`sandbox run -- true`"),
]


def load(rdir, name):
    try:
        with open(os.path.join(rdir, name), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def text(rdir, name):
    try:
        with open(os.path.join(rdir, name), encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


def dig(obj, *keys):
    for k in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
    return obj


def fmt(v, unit=""):
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    a = abs(v)
    if a >= 1000:
        s = f"{v:,.0f}"
    elif a >= 100:
        s = f"{v:.0f}"
    elif a >= 10:
        s = f"{v:.1f}"
    elif a >= 1:
        s = f"{v:.2f}"
    else:
        s = f"{v:.3f}"
    return s + unit


# (key, label, better, extractor(suite, mem, flow) -> number or None)
def mib(kib):
    return None if kib is None else kib / 1024


def per_conn_kib(mem, suite):
    held, pre = dig(mem, "held_kib"), dig(mem, "preidle_kib")
    n = dig(suite, "idle", "held")
    if held is None or pre is None or not n:
        return None
    return (held - pre) / n


def cpu_per(mem, suite, phase, count, scale):
    """Proxy CPU seconds spent during `phase`, divided by `count` items, times `scale`."""
    cpu = dig(mem, "cpu_s") or {}
    start, end = cpu.get(phase + ".start"), cpu.get(phase + ".end")
    if start is None or end is None or not count:
        return None
    return (end - start) / count * scale


MEASURES = [
    ("fresh", "new connection + request (ms, median)", "lower",
     lambda s, m: dig(s, "fresh", "latency_ms", "p50")),
    ("fresh99", "new connection + request (ms, p99)", "lower",
     lambda s, m: dig(s, "fresh", "latency_ms", "p99")),
    ("fresh_full", "new connection + request, full TLS handshake (ms, median)", "lower",
     lambda s, m: dig(s, "fresh_full", "latency_ms", "p50")),
    ("keepalive", "request on a kept-alive connection (ms, median)", "lower",
     lambda s, m: dig(s, "keepalive", "latency_ms", "p50")),
    ("par32ka", "32 parallel clients, keep-alive (req/s)", "higher",
     lambda s, m: dig(s, "par32ka", "rps")),
    ("par32new", "32 parallel clients, new connection each (req/s)", "higher",
     lambda s, m: dig(s, "par32new", "rps")),
    ("par256ka", "256 parallel clients, keep-alive (req/s)", "higher",
     lambda s, m: dig(s, "par256ka", "rps")),
    ("par256new", "256 parallel clients, new connection each (req/s)", "higher",
     lambda s, m: dig(s, "par256new", "rps")),
    ("download", "64 MiB download (MiB/s, median)", "higher",
     lambda s, m: dig(s, "download", "mib_per_s", "p50")),
    ("sse", "server-sent event delay (ms, median)", "lower",
     lambda s, m: dig(s, "sse", "delay_ms", "p50")),
    ("idle_rss", "proxy idle RSS (MiB)", "lower", lambda s, m: mib(dig(m, "warm_kib"))),
    ("peak_rss", "proxy peak RSS (MiB)", "lower", lambda s, m: mib(dig(m, "peak_kib"))),
    ("per_conn", "memory per idle connection (KiB, 1,000 held)", "lower",
     lambda s, m: per_conn_kib(m, s)),
    ("cpu_ka", "proxy CPU per kept-alive request, 32 clients (µs)", "lower",
     lambda s, m: cpu_per(m, s, "par32ka", dig(s, "par32ka", "requests"), 1e6)),
    ("cpu_new", "proxy CPU per new connection + request, 32 clients (µs)", "lower",
     lambda s, m: cpu_per(m, s, "par32new", dig(s, "par32new", "requests"), 1e6)),
    ("client_cpu_ka", "client CPU per kept-alive request, 32 clients (µs)", "lower",
     lambda s, m: None if not dig(s, "par32ka", "requests") or dig(s, "par32ka", "client_cpu_seconds") is None
     else dig(s, "par32ka", "client_cpu_seconds") / dig(s, "par32ka", "requests") * 1e6),
    ("cpu_dl", "proxy CPU per 64 MiB download (ms)", "lower",
     lambda s, m: cpu_per(m, s, "download", dig(s, "download", "mib_per_s", "n"), 1e3)),
]


def cell(rdir, mode, key, extract):
    status = text(rdir, f"status-{mode}.txt")
    suite = load(rdir, f"suite-{mode}.json")
    if suite is None:
        if status and status.startswith("failed"):
            return "failed (see below)", None
        return status or "n/a", None
    phase = "fresh" if key == "fresh99" else key
    err = dig(suite, phase, "error")
    if err:
        return "failed", None
    v = extract(suite, load(rdir, f"mem-{mode}.json"))
    if mode == "direct" and key in ("idle_rss", "peak_rss", "per_conn", "cpu_ka", "cpu_new", "cpu_dl"):
        return "(no proxy)", None
    return fmt(v), v


def main():
    rdir = sys.argv[1]
    meta = load(rdir, "meta.json") or {}
    out = []
    out.append(f"# sandbox bench: {meta.get('date', '')}\n")
    out.append(
        f"Machine: {meta.get('cpus', '?')} cores, kernel {meta.get('kernel', '?')}; "
        f"mode: {'quick (smoke, not for claims)' if meta.get('quick') else 'full'}; "
        f"upstream: loopback HTTPS/1.1 (`bench-upstream`), client: `loadgen`. "
        f"Peers: {meta.get('versions', '')}.\n"
    )
    if "load_at_start" in meta:
        out.append(
            f"Load average (1 min) before the run: {meta['load_at_start']:.2f}. Above about 0.5, other "
            "work shared the 2 cores and the figures are noisier than usual.\n"
        )

    # Start-up.
    out.append("## Start-up of `true` (hyperfine, median ms)\n")
    vals = {}
    row = []
    for key, label in STARTUP:
        h = load(rdir, f"startup-{key}.json")
        if h:
            v = h["results"][0]["median"] * 1000
            vals[key] = v
            row.append(fmt(v))
        else:
            row.append(text(rdir, f"startup-{key}.status") or "n/a")
    out.append("| " + " | ".join(l for _, l in STARTUP) + " |")
    out.append("|" + "---|" * len(STARTUP))
    out.append("| " + " | ".join(row) + " |")
    if "run" in vals:
        rs = [f"{vals['run'] / vals[k]:.2f}× {l}" for k, l in STARTUP[:3] if k in vals]
        out.append(f"\n`sandbox run -- true` is {', '.join(rs)} (lower is better).")
    out.append("")

    # Figures.
    figures = {}
    out.append("## Figures (medians unless noted; loopback only)\n")
    out.append("| measure | " + " | ".join(l for _, l in MODES) + " |")
    out.append("|---|" + "---|" * len(MODES))
    for key, label, _, extract in MEASURES:
        row = []
        for mode, _ in MODES:
            shown, v = cell(rdir, mode, key, extract)
            figures[(mode, key)] = v
            row.append(shown)
        out.append(f"| {label} | " + " | ".join(row) + " |")
    # Errors and flow-log completeness.
    row = []
    for mode, _ in MODES:
        s = load(rdir, f"suite-{mode}.json")
        row.append("–" if s is None else f"{dig(s, 'counts', 'failures')} / {dig(s, 'counts', 'requests_sent')}")
    out.append("| failed requests / requests sent | " + " | ".join(row) + " |")
    row = []
    complete = {}
    for mode, _ in MODES:
        fl, s = load(rdir, f"flowlog-{mode}.json"), load(rdir, f"suite-{mode}.json")
        if fl is None or s is None:
            row.append("–")
            continue
        sent = dig(s, "counts", "requests_sent")
        tunnels = dig(s, "counts", "tunnels")
        ok = (fl["request_decisions"] == sent and fl["request_ends"] == fl["request_allowed"]
              and fl["connect_decisions"] >= (tunnels or 0) and fl["chain"] == "ok")
        complete[mode] = ok
        verify = text(rdir, f"flowlog-{mode}.verify")
        ok = ok and verify in (None, "intact")
        complete[mode] = ok
        row.append(
            f"{fl['request_decisions']} request decisions / {sent} requests, "
            f"{fl['request_ends']} ends, {fl['connect_decisions']} CONNECT records / {tunnels} tunnels, "
            f"chain {fl['chain']}"
            + (f", `sandbox log verify --strict`: {verify}" if verify else "")
            + (" (complete)" if ok else " (INCOMPLETE)")
        )
    out.append("| flow log records | " + " | ".join(row) + " |")
    out.append("")

    # Ratios.
    for mode, label in OURS:
        if load(rdir, f"suite-{mode}.json") is None:
            continue
        out.append(f"## Ratios: {label} ÷ peer\n")
        out.append("| measure | better | " + " | ".join(PEERS) + " |")
        out.append("|---|---|" + "---|" * len(PEERS))
        for key, label2, better, _ in MEASURES:
            ours = figures.get((mode, key))
            row = []
            for peer in PEERS:
                theirs = figures.get((peer, key))
                row.append("–" if not ours or not theirs else f"{ours / theirs:.2f}×")
            out.append(f"| {label2} | {better} | " + " | ".join(row) + " |")
        out.append("")

    # Upstream headroom: is the upstream fast enough that it never capped a proxied figure?
    out.append("## Upstream headroom (direct ÷ proxied, same upstream, same run)\n")
    out.append(
        f"Each proxied throughput must stay below 1/{HEADROOM} of what the same client got from "
        "the same upstream directly in this run; otherwise the upstream may be the bottleneck "
        "and the proxied figure understates the proxy. The run fails when any cell is below "
        f"{HEADROOM}×.\n")
    proxied = [(m, l) for m, l in MODES if m != "direct"]
    out.append("| measure | " + " | ".join(l for _, l in proxied) + " |")
    out.append("|---|" + "---|" * len(proxied))
    short = []
    for key, label, _, _ in MEASURES:
        if key not in THROUGHPUT:
            continue
        d = figures.get(("direct", key))
        row = []
        for mode, mlabel in proxied:
            p = figures.get((mode, key))
            if not d or not p:
                row.append("–")
                continue
            h = d / p
            ok = h >= HEADROOM
            row.append(f"{h:.2f}×" + ("" if ok else " **TOO LOW**"))
            if not ok:
                short.append(f"{label}: {mlabel} {fmt(p)} against direct {fmt(d)} ({h:.2f}×)")
        out.append(f"| {label} | " + " | ".join(row) + " |")
    out.append("")
    if not any(figures.get(("direct", k)) for k in THROUGHPUT):
        status = "not checked: direct was not measured (add direct to --modes)"
    elif short:
        status = "failed: " + "; ".join(short)
    else:
        status = f"ok: every proxied throughput is at most 1/{HEADROOM} of direct"
    out.append(f"Headroom: {status}.\n")
    with open(os.path.join(rdir, "headroom.status"), "w") as fh:
        fh.write(status + "\n")

    # Targets (issue 7) for the agent path.
    f = lambda m, k: figures.get((m, k))
    run_ok = load(rdir, "suite-run.json") is not None
    out.append("## Targets for the agent path (issue 7)\n")
    if not run_ok:
        out.append("`sandbox run` was not measured: " + (text(rdir, "status-run.txt") or "n/a") + "\n")
    targets = []

    def target(name, value, ok):
        targets.append((name, value, "–" if ok is None else ("met" if ok else "**missed**")))

    sv = vals.get("run")
    target("`sandbox run -- true` ≤ 8 ms, ≤ 2× bubblewrap, ≥ 30× faster than srt",
           fmt(sv, " ms"),
           None if sv is None or "bwrap" not in vals or "srt" not in vals
           else sv <= 8 and sv <= 2 * vals["bwrap"] and sv * 30 <= vals["srt"])
    fr, fd = f("run", "fresh"), f("direct", "fresh")
    target("new connection + request ≤ direct + 2.5 ms",
           fmt(None if fr is None or fd is None else fr - fd, " ms over direct"),
           None if fr is None or fd is None else fr <= fd + 2.5)
    ka = f("run", "keepalive")
    target("kept-alive request ≤ 0.15 ms", fmt(ka, " ms"), None if ka is None else ka <= 0.15)
    p, d, m = f("run", "par32ka"), f("direct", "par32ka"), f("mitmdump", "par32ka")
    target("32 parallel keep-alive ≥ 50% of direct and ≥ 10× mitmdump",
           fmt(p, " req/s"), None if p is None or d is None or m is None else p >= d / 2 and p >= 10 * m)
    p, d = f("run", "par32new"), f("direct", "par32new")
    target("32 parallel new connections ≥ 50% of direct", fmt(p, " req/s"),
           None if p is None or d is None else p >= d / 2)
    p, d = f("run", "download"), f("direct", "download")
    target("64 MiB download ≥ 70% of direct", fmt(p, " MiB/s"),
           None if p is None or d is None else p >= 0.7 * d)
    p, d = f("run", "sse"), f("direct", "sse")
    target("SSE event delay ≤ direct + 1 ms", fmt(None if p is None or d is None else p - d, " ms over direct"),
           None if p is None or d is None else p <= d + 1)
    p = f("run", "idle_rss")
    target("proxy idle RSS ≤ 20 MiB", fmt(p, " MiB"), None if p is None else p <= 20)
    p = f("run", "peak_rss")
    target("proxy peak RSS ≤ 64 MiB", fmt(p, " MiB"), None if p is None else p <= 64)
    p = f("run", "per_conn")
    target("memory per idle intercepted connection (reported)", fmt(p, " KiB"), None)
    target("flow log complete in every measurement", "see the flow log row",
           complete.get("run"))
    out.append("| target | agent path | status |")
    out.append("|---|---|---|")
    for name, value, status in targets:
        out.append(f"| {name} | {value} | {status} |")
    out.append("")
    failed = [(label, text(rdir, f"status-{mode}.txt")) for mode, label in MODES]
    failed = [(label, st) for label, st in failed if st and st.startswith("failed")]
    if failed:
        out.append("## Modes that failed\n")
        for label, st in failed:
            out.append(f"- {label}: {st}")
        out.append("")
    notes = text(rdir, "notes.md")
    if notes:
        out.append("## Notes from this run\n")
        out.append(notes)
    print("\n".join(out))


if __name__ == "__main__":
    main()
