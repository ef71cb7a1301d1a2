#!/usr/bin/env bash
# Profiles `sandbox proxy` under one loadgen phase, on loopback only, and prints where the time
# goes: the CPU split between proxy and client+upstream, the proxy's hottest functions (perf,
# DWARF call graphs), inclusive costs of the proxy's own stages, and syscalls per request.
#
#   bench/profile.sh [--phase par32ka|keepalive|par32new|fresh|download|sse] [--seconds N]
#
# Needs root for perf (or kernel.perf_event_paranoid <= 1). Installs linux-perf and strace
# from Debian when missing and run as root. Every process it starts it stops.
set -euo pipefail

PHASE=par32ka
SECONDS_TO_PROFILE=5
while [ $# -gt 0 ]; do
    case "$1" in
        --phase) PHASE=$2; shift ;;
        --seconds) SECONDS_TO_PROFILE=$2; shift ;;
        -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "profile.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sandbox-profile.XXXXXX")
PIDS=()
log() { printf '[profile] %s\n' "$*" >&2; }

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! command -v perf >/dev/null || ! command -v strace >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-perf strace; } \
            >"$WORK/apt.log" 2>&1 || { log "cannot install linux-perf/strace (see apt log)"; exit 1; }
    else
        log "perf and strace are needed; install linux-perf and strace"
        exit 1
    fi
fi

(cd "$BENCH_DIR/loadgen" && cargo build --release -q)
LOADGEN="$BENCH_DIR/loadgen/target/release/loadgen"
UPSTREAM="$BENCH_DIR/loadgen/target/release/bench-upstream"
SANDBOX=${SANDBOX_BIN:-$REPO/target/release/sandbox}
if [ -z "${SANDBOX_BIN:-}" ]; then
    (cd "$REPO" && cargo build --release -q -p sandbox)
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
unset HTTPS_PROXY https_proxy RUST_BACKTRACE

"$UPSTREAM" --pki-dir "$WORK/pki" --name api.eu.mistral.ai --port-file "$WORK/up.port" --max-seconds 600 \
    2>"$WORK/upstream.err" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/up.port" ] && break; sleep 0.1; done
UP=$(cat "$WORK/up.port")
cp "$BENCH_DIR/lib/bench-contract.toml" "$WORK/contract.toml"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$SANDBOX" proxy --contract "$WORK/contract.toml" --listen "127.0.0.1:$PORT" --log "$WORK/flows.jsonl" \
    --ca-out "$WORK/ca.pem" --upstream-ca "$WORK/pki/ca.pem" \
    --connect-to "api.eu.mistral.ai:443:127.0.0.1:$UP" 2>"$WORK/proxy.err" &
PROXY=$!
PIDS+=("$PROXY")
for _ in $(seq 100); do [ -s "$WORK/ca.pem" ] && break; sleep 0.1; done

client() { # client DURATION_MS -> loadgen JSON on stdout
    "$LOADGEN" suite --target api.eu.mistral.ai:443 --proxy "http://127.0.0.1:$PORT" --ca "$WORK/ca.pem" \
        --phases "$PHASE" --duration-ms "$1" --keepalive-samples 1000000 --fresh-samples 1000000 \
        --downloads 1000 2>/dev/null
}

# 1. System-wide: who burns the CPU (proxy threads are named sandbox-proxy / tokio-rt-worker
#    for loadgen and bench-upstream).
log "perf -a for ${SECONDS_TO_PROFILE}s during $PHASE"
(sleep 1; perf record -a -F 499 -g -o "$WORK/sys.data" -- sleep "$SECONDS_TO_PROFILE" 2>/dev/null) &
PERF=$!
client $(((SECONDS_TO_PROFILE + 2) * 1000)) >"$WORK/run1.json"
wait "$PERF"
# 2. The proxy alone, with DWARF call graphs.
log "perf -p proxy (DWARF) for 2s during $PHASE"
(sleep 1; perf record -F 499 --call-graph dwarf,16384 -p "$PROXY" -o "$WORK/proxy.data" -- sleep 2 2>/dev/null) &
PERF=$!
client 4000 >"$WORK/run2.json"
wait "$PERF"
# 3. Syscalls per request.
log "strace -c on the proxy"
strace -c -f -p "$PROXY" -o "$WORK/strace.txt" &
STRACE=$!
sleep 0.5
client 2000 >"$WORK/run3.json"
sleep 0.3
kill -INT "$STRACE" 2>/dev/null || true
wait "$STRACE" 2>/dev/null || true

# Reporting: a section that finds nothing must not end the script.
set +e +o pipefail
echo "# Profile of \`sandbox proxy\`, phase $PHASE"
echo
python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))[sys.argv[2]]; print("Client figures while profiled:", {k: d[k] for k in ("rps","latency_ms","mib_per_s") if k in d})' "$WORK/run1.json" "$PHASE" || true
echo
echo "## CPU by thread name (system-wide)"
echo '```'
perf report -i "$WORK/sys.data" --no-children --sort comm -g none --stdio 2>/dev/null | grep '%' | sed 's/  */ /g' | head -8
echo '```'
echo
echo "## Proxy: hottest functions (self)"
echo '```'
perf report -i "$WORK/proxy.data" --no-children --sort dso,symbol -g none --stdio 2>/dev/null | grep '%' \
    | sed 's/  */ /g' | cut -c1-140 | head -25
echo '```'
echo
echo "## Proxy: inclusive cost of its stages"
echo '```'
perf report -i "$WORK/proxy.data" --children --sort symbol -g none --stdio 2>/dev/null | grep '%' \
    | grep -v inlined | sed 's/  */ /g' | cut -c1-140 \
    | grep -E 'FlowLog::append|FlowRecord::seal|canonical_bytes|chain_hash|decide_request|decide_connect|catalog::place|decide_and_forward|ChunkVecBuffer::write_to|__GI___writev|decrypt_incoming|send_appdata_encrypt|_int_malloc|malloc_consolidate|Buffered<T,B>::parse' \
    | head -20
echo '```'
echo
echo "## Proxy: syscalls"
requests=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counts"]["requests_sent"])' "$WORK/run3.json")
echo "requests during strace: $requests"
echo '```'
head -n 14 "$WORK/strace.txt"
echo '```'
awk -v n="$requests" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && n > 0 { printf "%s: %.2f per request\n", $NF, $4 / n }' "$WORK/strace.txt" | head -8
