#!/usr/bin/env bash
# Benchmarks sandbox against the tools a user would pick instead, in one run, on loopback only.
# See bench/README.md for what is measured and how to read the table.
#
#   bench/run.sh [--quick] [--no-install] [--modes LIST] [--no-startup] [--keep-work] [--head]
#
# Every process it starts it stops (by PID, on exit or on Ctrl-C). Nothing leaves 127.0.0.1.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/run.sh [options]
  --quick          short phases and few start-up runs (CI smoke; not for claims)
  --no-install     do not install peers (apt, PyPI, npm); missing peers show as n/a
  --modes LIST     comma-separated subset of: direct,mitmdump,squid,srt,proxy,run
  --no-startup     skip the start-up (hyperfine) measurements
  --keep-work      keep the scratch directory (logs, flow logs, certificates)
  --head           measure the committed HEAD: build it from `git archive HEAD` in the
                   cache (its own target dir), not from the working tree
environment:
  SANDBOX_BIN      use this sandbox binary instead of building target/release/sandbox
  BENCH_CACHE      where peers are installed (default bench/.cache)
  BENCH_RESULTS    where results go (default bench/results/<UTC timestamp>)
exit status: 0 when the report is written; 3 when the upstream may have capped a figure
  (a proxied throughput above 1/1.5 of direct in the same run: the report says which); 1 or 2
  on a set-up or usage error
EOF
}

QUICK=0
INSTALL=1
STARTUP=1
KEEP_WORK=0
FROM_HEAD=0
MODES="direct,mitmdump,squid,srt,proxy,run"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --no-install) INSTALL=0 ;;
        --no-startup) STARTUP=0 ;;
        --keep-work) KEEP_WORK=1 ;;
        --head) FROM_HEAD=1 ;;
        --modes)
            [ $# -ge 2 ] || { echo "run.sh: --modes needs a value" >&2; exit 2; }
            MODES=$2
            shift
            ;;
        -h | --help) usage; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

for m in ${MODES//,/ }; do
    case "$m" in
        direct | mitmdump | squid | srt | proxy | run) ;;
        *) echo "run.sh: unknown mode $m (known: direct,mitmdump,squid,srt,proxy,run)" >&2; exit 2 ;;
    esac
done

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
CACHE=${BENCH_CACHE:-$BENCH_DIR/.cache}
RESULTS=${BENCH_RESULTS:-$BENCH_DIR/results/$(date -u +%Y%m%dT%H%M%SZ)}
MITM_VERSION=11.0.2
SRT_VERSION=0.0.78
# The allowed API host our proxy is told to impersonate (via --connect-to / --upstream-ca).
API_HOST=api.eu.mistral.ai  # the host lib/bench-contract.toml allows
# Upper bound for one mode's whole client suite.
SUITE_TIMEOUT=420

mkdir -p "$RESULTS" "$CACHE"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sandbox-bench.XXXXXX")
chmod 755 "$WORK"
PIDS=()

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
note() { printf -- '- %s\n' "$*" >>"$RESULTS/notes.md"; log "$*"; }

stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [ "$KEEP_WORK" = 1 ]; then log "scratch kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts "$@" in the background with output in $WORK/NAME.{out,err}; sets BG_PID.
start_bg() {
    local name=$1
    shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    BG_PID=$!
    PIDS+=("$BG_PID")
}

# Waits (at most $2 seconds, default 20) until 127.0.0.1:$1 accepts connections.
wait_port() {
    local port=$1 limit=${2:-20} i
    for i in $(seq $((limit * 10))); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

wait_file() {
    local file=$1 limit=${2:-20} i
    for i in $(seq $((limit * 10))); do
        [ -s "$file" ] && return 0
        sleep 0.1
    done
    return 1
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

has() { command -v "$1" >/dev/null 2>&1; }
want() { case ",$MODES," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
status() { printf '%s\n' "$2" >"$RESULTS/status-$1.txt"; log "$1: $2"; }

# ---------------------------------------------------------------------------------------------
# Install the peers from the package registries.
install_peers() {
    local pkgs=()
    has bwrap || pkgs+=(bubblewrap)
    has squid || pkgs+=(squid)
    has hyperfine || pkgs+=(hyperfine)
    has socat || pkgs+=(socat)   # srt's in-sandbox bridge
    has rg || pkgs+=(ripgrep)    # srt's deny-path scan
    if [ ${#pkgs[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ] && has apt-get; then
            log "apt-get install ${pkgs[*]}"
            { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}"; } \
                >"$RESULTS/apt.log" 2>&1 || note "apt-get install ${pkgs[*]} failed (see $RESULTS/apt.log)"
        else
            note "not root (or no apt-get): cannot install ${pkgs[*]}"
        fi
    fi
    if ! "$CACHE/venv/bin/mitmdump" --version 2>/dev/null | grep -q "Mitmproxy: $MITM_VERSION"; then
        log "pip install mitmproxy==$MITM_VERSION into $CACHE/venv"
        { python3 -m venv "$CACHE/venv" && "$CACHE/venv/bin/pip" install -q "mitmproxy==$MITM_VERSION"; } \
            >"$RESULTS/pip.log" 2>&1 || note "pip install mitmproxy failed (see $RESULTS/pip.log)"
    fi
    if ! grep -q "\"version\": \"$SRT_VERSION\"" \
        "$CACHE/npm/node_modules/@anthropic-ai/sandbox-runtime/package.json" 2>/dev/null; then
        log "npm install @anthropic-ai/sandbox-runtime@$SRT_VERSION into $CACHE/npm"
        npm install --prefix "$CACHE/npm" --no-audit --no-fund "@anthropic-ai/sandbox-runtime@$SRT_VERSION" \
            >"$RESULTS/npm.log" 2>&1 || note "npm install sandbox-runtime failed (see $RESULTS/npm.log)"
    fi
}

# ---------------------------------------------------------------------------------------------
# Build the load generator and, unless SANDBOX_BIN is given, the sandbox binary.
LOADGEN="$BENCH_DIR/loadgen/target/release/loadgen"
UPSTREAM="$BENCH_DIR/loadgen/target/release/bench-upstream"
SANDBOX=""
HAS_PROXY=0
HAS_RUN=0

build() {
    log "building bench/loadgen (release)"
    (cd "$BENCH_DIR/loadgen" && cargo build --release -q) || { log "loadgen does not build"; exit 1; }
    if [ -n "${SANDBOX_BIN:-}" ]; then
        SANDBOX=$SANDBOX_BIN
    elif [ "$FROM_HEAD" = 1 ]; then
        local src="$CACHE/head-src" rev
        rev=$(git -C "$REPO" rev-parse --short HEAD)
        log "building the sandbox binary (release) from HEAD $rev in $src"
        rm -rf "$src" && mkdir -p "$src"
        if git -C "$REPO" archive HEAD | tar -x -C "$src" \
            && (cd "$src" && CARGO_TARGET_DIR="$CACHE/head-target" cargo build --release -q -p sandbox \
                >"$RESULTS/sandbox-build.log" 2>&1); then
            SANDBOX="$CACHE/head-target/release/sandbox"
        else
            note "HEAD $rev does not build (see $RESULTS/sandbox-build.log): our rows are n/a"
        fi
    else
        log "building the sandbox binary (release)"
        if (cd "$REPO" && cargo build --release -q -p sandbox >"$RESULTS/sandbox-build.log" 2>&1); then
            SANDBOX="$REPO/target/release/sandbox"
        else
            note "the sandbox binary does not build (see $RESULTS/sandbox-build.log): our rows are n/a"
        fi
    fi
    if [ -n "$SANDBOX" ] && [ -x "$SANDBOX" ]; then
        "$SANDBOX" proxy --help >/dev/null 2>&1 && HAS_PROXY=1
        "$SANDBOX" run --help >/dev/null 2>&1 && HAS_RUN=1
    fi
}

# ---------------------------------------------------------------------------------------------
PKI="$WORK/pki"
UP_PORT=""
CONTRACT="$WORK/bench-contract.toml"
WS="$WORK/ws"
SRT_SETTINGS="$WORK/srt-settings.json"
SRT="$CACHE/npm/node_modules/.bin/srt"
MITMDUMP="$CACHE/venv/bin/mitmdump"

start_upstream() {
    start_bg upstream "$UPSTREAM" --pki-dir "$PKI" --name "$API_HOST" --name localhost --name 127.0.0.1 \
        --port-file "$WORK/upstream.port" --stats "$RESULTS/upstream-stats.json" --max-seconds 3600
    wait_file "$WORK/upstream.port" || { log "bench-upstream did not start"; exit 1; }
    UP_PORT=$(cat "$WORK/upstream.port")
    wait_port "$UP_PORT"
    log "upstream on 127.0.0.1:$UP_PORT"
}

write_configs() {
    mkdir -p "$WS"
    cp "$LOADGEN" "$WS/loadgen"
    cp "$BENCH_DIR/lib/bench-contract.toml" "$CONTRACT"
    # BENCH_LOG_SYNC=flow|session: the flow log's [log] sync (default: the contract's default,
    # flow: every allowed flow's record on disk before the flow), to measure what it costs.
    if [ -n "${BENCH_LOG_SYNC:-}" ]; then
        printf '\n[log]\nsync = "%s"\n' "$BENCH_LOG_SYNC" >>"$CONTRACT"
    fi
    cat >"$SRT_SETTINGS" <<EOF
{"network": {"allowedDomains": ["localhost"], "deniedDomains": []},
 "filesystem": {"denyRead": [], "allowWrite": ["$WORK"], "denyWrite": []}}
EOF
}

LG_COMMON=()
setup_loadgen_args() {
    LG_COMMON=(suite)
    [ "$QUICK" = 1 ] && LG_COMMON+=(--quick)
    return 0
}

# run_client MODE SAMPLER_ARGS... -- CLIENT...  : runs the client with a memory sampler beside it.
# The client must write its JSON to the path given as --out (see each mode).
sample_and_run() {
    local mode=$1 sync=$2
    shift 2
    local sampler_args=()
    while [ "$1" != "--" ]; do sampler_args+=("$1"); shift; done
    shift
    rm -rf "$sync" && mkdir -p "$sync" && chmod 777 "$sync"
    start_bg "sampler-$mode" python3 "$BENCH_DIR/lib/sampler.py" --sync-dir "$sync" \
        --out "$RESULTS/mem-$mode.json" --stop-file "$sync/stop" --max-seconds $((SUITE_TIMEOUT + 60)) \
        "${sampler_args[@]}"
    local sampler=$BG_PID rc=0
    timeout -k 5 "$SUITE_TIMEOUT" "$@" >"$WORK/client-$mode.out" 2>"$WORK/client-$mode.err" || rc=$?
    touch "$sync/stop"
    wait "$sampler" 2>/dev/null || true
    return $rc
}

# Same, but the client is started in the background so the sampler can follow its PID tree
# (srt and sandbox run host the proxy in the wrapper process).
sample_wrapper() {
    local mode=$1 sync=$2
    shift 2
    rm -rf "$sync" && mkdir -p "$sync" && chmod 777 "$sync"
    start_bg "client-$mode" timeout -k 5 "$SUITE_TIMEOUT" "$@"
    local client=$BG_PID rc=0
    python3 "$BENCH_DIR/lib/sampler.py" --sync-dir "$sync" --out "$RESULTS/mem-$mode.json" \
        --pid "$client" --tree --exclude-comm loadgen --exclude-comm timeout \
        --max-seconds $((SUITE_TIMEOUT + 60)) || true
    wait "$client" || rc=$?
    return $rc
}

finish_suite() {
    local mode=$1 out=$2 rc=$3
    if [ "$rc" = 0 ] && [ -s "$out" ]; then
        [ "$out" = "$RESULTS/suite-$mode.json" ] || cp "$out" "$RESULTS/suite-$mode.json"
        rm -f "$RESULTS/status-$mode.txt"
        log "$mode: done ($(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["counts"]; print(c["requests_sent"], "requests,", c["failures"], "failed")' "$RESULTS/suite-$mode.json"))"
    else
        cp "$WORK/client-$mode.err" "$RESULTS/client-$mode.err" 2>/dev/null || true
        status "$mode" "failed (exit $rc): $(tail -n 1 "$WORK/client-$mode.err" 2>/dev/null | cut -c1-160)"
    fi
}

# Counts a flow log's records (lib/flowlog.py) and has `sandbox log verify --strict` check its
# chain independently.
check_log() {
    local mode=$1 file=$2
    python3 "$BENCH_DIR/lib/flowlog.py" "$file" >"$RESULTS/flowlog-$mode.json"
    if "$SANDBOX" log verify --strict "$file" >"$WORK/verify-$mode.txt" 2>&1; then
        echo "intact" >"$RESULTS/flowlog-$mode.verify"
    else
        echo "FAILED: $(head -n 1 "$WORK/verify-$mode.txt" | cut -c1-160)" >"$RESULTS/flowlog-$mode.verify"
    fi
}

mode_direct() {
    local rc=0
    sample_and_run direct "$WORK/sync-direct" -- \
        "$LOADGEN" "${LG_COMMON[@]}" --target "$API_HOST:443" --connect "127.0.0.1:$UP_PORT" --proxy none \
        --ca "$PKI/ca.pem" --sync-dir "$WORK/sync-direct" --out "$RESULTS/suite-direct.json" || rc=$?
    finish_suite direct "$RESULTS/suite-direct.json" "$rc"
}

mode_mitmdump() {
    [ -x "$MITMDUMP" ] || { status mitmdump "n/a (mitmproxy not installed)"; return; }
    local port rc=0
    port=$(free_port)
    mkdir -p "$WORK/mitm"
    # -q: no per-flow console output; defaults otherwise (bodies are buffered, as users get it).
    start_bg mitmdump "$MITMDUMP" -q --listen-host 127.0.0.1 --listen-port "$port" \
        --set confdir="$WORK/mitm" --set ssl_verify_upstream_trusted_ca="$PKI/ca.pem"
    local pid=$BG_PID
    if ! wait_port "$port" 30 || ! wait_file "$WORK/mitm/mitmproxy-ca-cert.pem"; then
        status mitmdump "failed: mitmdump did not start ($(tail -n 1 "$WORK/mitmdump.err"))"
        stop_pid "$pid"
        return
    fi
    sample_and_run mitmdump "$WORK/sync-mitmdump" --pid "$pid" -- \
        "$LOADGEN" "${LG_COMMON[@]}" --target "localhost:$UP_PORT" --proxy "http://127.0.0.1:$port" \
        --ca "$WORK/mitm/mitmproxy-ca-cert.pem" --sync-dir "$WORK/sync-mitmdump" \
        --out "$RESULTS/suite-mitmdump.json" || rc=$?
    stop_pid "$pid"
    finish_suite mitmdump "$RESULTS/suite-mitmdump.json" "$rc"
}

mode_squid() {
    has squid || { status squid "n/a (squid not installed)"; return; }
    local port rc=0 dir="$WORK/squid" fds
    port=$(free_port)
    fds=$(ulimit -n)
    mkdir -p "$dir" && chmod 777 "$dir"
    cat >"$dir/squid.conf" <<EOF
http_port 127.0.0.1:$port
acl loopback src 127.0.0.0/8
http_access allow loopback
http_access deny all
cache deny all
cache_mem 0 MB
access_log stdio:$dir/access.log
cache_log $dir/cache.log
cache_store_log none
pid_filename $dir/squid.pid
coredump_dir $dir
max_filedescriptors $fds
shutdown_lifetime 0 seconds
EOF
    # -N: no daemon, one process, so its memory is one PID's.
    start_bg squid squid -N -f "$dir/squid.conf"
    local pid=$BG_PID
    if ! wait_port "$port" 20; then
        status squid "failed: squid did not start ($(tail -n 1 "$dir/cache.log" 2>/dev/null))"
        stop_pid "$pid"
        return
    fi
    sample_and_run squid "$WORK/sync-squid" --pid "$pid" -- \
        "$LOADGEN" "${LG_COMMON[@]}" --target "localhost:$UP_PORT" --proxy "http://127.0.0.1:$port" \
        --ca "$PKI/ca.pem" --sync-dir "$WORK/sync-squid" --out "$RESULTS/suite-squid.json" || rc=$?
    stop_pid "$pid"
    finish_suite squid "$RESULTS/suite-squid.json" "$rc"
}

mode_srt() {
    [ -x "$SRT" ] || { status srt "n/a (sandbox-runtime not installed)"; return; }
    has bwrap || { status srt "n/a (bubblewrap not installed)"; return; }
    local rc=0
    # srt puts HTTPS_PROXY (with its credentials) in the sandbox's environment; loadgen reads it.
    sample_wrapper srt "$WORK/sync-srt" "$SRT" --settings "$SRT_SETTINGS" -- \
        "$LOADGEN" "${LG_COMMON[@]}" --target "localhost:$UP_PORT" --ca "$PKI/ca.pem" \
        --sync-dir "$WORK/sync-srt" --out "$WORK/suite-srt.json" || rc=$?
    finish_suite srt "$WORK/suite-srt.json" "$rc"
}

mode_proxy() {
    [ "$HAS_PROXY" = 1 ] || { status proxy "n/a (not built)"; return; }
    local port rc=0
    port=$(free_port)
    start_bg proxy "$SANDBOX" proxy --contract "$CONTRACT" --listen "127.0.0.1:$port" \
        --log "$WORK/flows-proxy.jsonl" --ca-out "$WORK/proxy-ca.pem" --upstream-ca "$PKI/ca.pem" \
        --connect-to "$API_HOST:443:127.0.0.1:$UP_PORT"
    local pid=$BG_PID
    if ! wait_port "$port" 20 || ! wait_file "$WORK/proxy-ca.pem"; then
        status proxy "failed: sandbox proxy did not start ($(tail -n 1 "$WORK/proxy.err" | cut -c1-160))"
        stop_pid "$pid"
        return
    fi
    sample_and_run proxy "$WORK/sync-proxy" --pid "$pid" -- \
        "$LOADGEN" "${LG_COMMON[@]}" --target "$API_HOST:443" --proxy "http://127.0.0.1:$port" \
        --ca "$WORK/proxy-ca.pem" --sync-dir "$WORK/sync-proxy" --out "$RESULTS/suite-proxy.json" || rc=$?
    stop_pid "$pid"
    finish_suite proxy "$RESULTS/suite-proxy.json" "$rc"
    check_log proxy "$WORK/flows-proxy.jsonl"
}

mode_run() {
    [ "$HAS_RUN" = 1 ] || { status run "n/a (not built)"; return; }
    local rc=0
    # The client runs inside the sandbox, with the proxy variables and CA bundle that
    # `sandbox run` sets; it finds the proxy through HTTPS_PROXY and the CA via SSL_CERT_FILE.
    sample_wrapper run "$WS/sync" "$SANDBOX" run --contract "$CONTRACT" --no-checks --workspace "$WS" \
        --log "$WORK/flows-run.jsonl" --upstream-ca "$PKI/ca.pem" \
        --connect-to "$API_HOST:443:127.0.0.1:$UP_PORT" -- \
        "$WS/loadgen" "${LG_COMMON[@]}" --target "$API_HOST:443" --sync-dir "$WS/sync" \
        --out "$WS/suite-run.json" || rc=$?
    finish_suite run "$WS/suite-run.json" "$rc"
    check_log run "$WORK/flows-run.jsonl"
}

# ---------------------------------------------------------------------------------------------
# Start-up of `true`.
hf() {
    local name=$1 runs=$2
    shift 2
    local warm=3
    [ "$QUICK" = 1 ] && { runs=5; warm=1; }
    if hyperfine -N --style none --warmup "$warm" --runs "$runs" \
        --export-json "$RESULTS/startup-$name.json" "$*" >"$WORK/startup-$name.out" 2>"$WORK/startup-$name.err"; then
        log "start-up $name: $(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["results"][0]["median"]*1000,2),"ms")' "$RESULTS/startup-$name.json")"
    else
        rm -f "$RESULTS/startup-$name.json"
        echo "failed: $(grep -v '^\s*$' "$WORK/startup-$name.err" | tail -n 1 | cut -c1-120)" >"$RESULTS/startup-$name.status"
    fi
}

measure_startup() {
    has hyperfine || { note "hyperfine missing: no start-up figures"; return; }
    local t
    t=$(command -v true)
    hf bare 200 "$t"
    if has bwrap; then
        hf bwrap 100 bwrap --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --unshare-all --die-with-parent "$t"
    else
        echo "n/a (bubblewrap not installed)" >"$RESULTS/startup-bwrap.status"
    fi
    if [ -x "$SRT" ] && has bwrap; then
        hf srt 30 "$SRT" --settings "$SRT_SETTINGS" -- "$t"
    else
        echo "n/a (sandbox-runtime not installed)" >"$RESULTS/startup-srt.status"
    fi
    if [ "$HAS_RUN" = 1 ]; then
        hf run 100 "$SANDBOX" run --contract "$CONTRACT" --no-checks --workspace "$WS" --log "$WORK/flows-startup.jsonl" -- "$t"
    else
        echo "n/a (not built)" >"$RESULTS/startup-run.status"
    fi
}

write_meta() {
    local versions
    versions="mitmproxy $MITM_VERSION, $(squid -v 2>/dev/null | head -n 1 | sed 's/ Cache: Version//' || true), "
    versions+="sandbox-runtime $SRT_VERSION, $(bwrap --version 2>/dev/null || true), $(hyperfine --version 2>/dev/null || true); "
    versions+="sandbox $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"
    if [ -n "${SANDBOX_BIN:-}" ]; then
        versions+=" (binary given: $SANDBOX_BIN)"
    elif [ "$FROM_HEAD" = 0 ] && ! git -C "$REPO" diff --quiet HEAD -- egress-policy proxy sandbox 2>/dev/null; then
        versions+=" plus uncommitted changes in the working tree"
    fi
    python3 - "$RESULTS/meta.json" "$QUICK" "$versions" <<'EOF'
import json, os, platform, sys, time
json.dump({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "quick": sys.argv[2] == "1",
           "cpus": os.cpu_count(), "kernel": platform.release(), "versions": sys.argv[3],
           "load_at_start": os.getloadavg()[0]},
          open(sys.argv[1], "w"))
EOF
}

# ---------------------------------------------------------------------------------------------
main() {
    : >"$RESULTS/notes.md"
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    [ "$(ulimit -n)" -ge 4096 ] || note "open-file limit $(ulimit -n) is below 4096: the 1,000 idle connections phase will fail"
    # Host proxy settings must not leak into the direct measurements; backtraces are noise.
    unset HTTPS_PROXY https_proxy HTTP_PROXY http_proxy ALL_PROXY all_proxy RUST_BACKTRACE RUST_LIB_BACKTRACE
    [ "$INSTALL" = 1 ] && install_peers
    # Before the build, so the load average shows other people's work, not ours.
    write_meta
    build
    start_upstream
    write_configs
    setup_loadgen_args
    [ "$STARTUP" = 1 ] && measure_startup
    local mode
    for mode in direct mitmdump squid srt proxy run; do
        if want "$mode"; then
            log "measuring $mode"
            "mode_$mode"
        fi
    done
    python3 "$BENCH_DIR/lib/report.py" "$RESULTS" >"$RESULTS/report.md"
    cat "$RESULTS/report.md"
    log "raw results and report in $RESULTS"
    local headroom
    headroom=$(cat "$RESULTS/headroom.status" 2>/dev/null || echo "failed: report.py wrote no headroom.status")
    case "$headroom" in
        failed*)
            {
                echo
                echo "!! bench/run.sh: THE UPSTREAM MAY HAVE CAPPED THE FIGURES; do not quote this run."
                echo "!! $headroom"
                echo "!! A proxied throughput came within 1/1.5 of what the same upstream served directly"
                echo "!! in this run (see \"Upstream headroom\" in $RESULTS/report.md)."
            } >&2
            exit 3 ;;
        not\ checked*) log "upstream headroom $headroom" ;;
    esac
}

main
