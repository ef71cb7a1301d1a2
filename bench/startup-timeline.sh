#!/usr/bin/env bash
# Where the time of `sandbox run -- true` goes: runs it N times under `perf record` (a few
# syscalls and the process exec/exit events only, so the tracing itself costs little) and prints
# the median time of each step from the supervisor's exec, per process, and the median length of
# the steps that take the longest (namespace creation, the nftables batch, the flow log's
# fdatasync...). The bench contract and a scratch workspace; no network is used.
#
#   bench/startup-timeline.sh [--runs N] [--pause SECONDS] [--hold-netfilter]
#
# --pause SECONDS   sleep between runs (default 0: back to back, as hyperfine runs them); a
#                   start after a pause is what a developer sees, and it differs (below)
# --hold-netfilter  keeps a network namespace with nat and filter chains alive while measuring
#                   (root only; the namespace has no interface but lo). The kernel patches its
#                   netfilter hook switches (static keys) when the first such chain appears on
#                   the machine and again when the last goes away: on a host without any
#                   firewall, every sandbox pays that; with this option, none does, as on a
#                   host whose firewall already uses those hooks.
#
# Needs root for perf (or kernel.perf_event_paranoid <= 1). SANDBOX_BIN=path measures a given
# binary instead of building target/release/sandbox. Every process it starts it stops.
set -euo pipefail

RUNS=40
PAUSE=0
HOLD=0
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift ;;
        --pause) PAUSE=$2; shift ;;
        --hold-netfilter) HOLD=1 ;;
        -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "startup-timeline.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sandbox-startup.XXXXXX")
HOLDER=
cleanup() {
    if [ -n "$HOLDER" ]; then kill "$HOLDER" 2>/dev/null || true; wait "$HOLDER" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

command -v perf >/dev/null || { echo "startup-timeline.sh: perf is missing (apt-get install linux-perf)" >&2; exit 1; }
SANDBOX=${SANDBOX_BIN:-}
if [ -z "$SANDBOX" ]; then
    (cd "$REPO" && cargo build --release -q -p sandbox)
    SANDBOX="$REPO/target/release/sandbox"
fi

if [ "$HOLD" = 1 ]; then
    [ "$(id -u)" = 0 ] || { echo "startup-timeline.sh: --hold-netfilter needs root" >&2; exit 1; }
    command -v nft >/dev/null || { echo "startup-timeline.sh: --hold-netfilter needs nft" >&2; exit 1; }
    printf '%s\n' 'table inet bench_hold {' \
        '  chain out { type nat hook output priority -100; }' \
        '  chain pre { type nat hook prerouting priority -100; }' \
        '  chain post { type nat hook postrouting priority 100; }' \
        '  chain filter_out { type filter hook output priority 0; }' \
        '  chain filter_in { type filter hook input priority 0; }' \
        '}' >"$WORK/hold.nft"
    unshare -n sh -c "nft -f '$WORK/hold.nft' && exec sleep 600" &
    HOLDER=$!
    sleep 0.5
    kill -0 "$HOLDER" 2>/dev/null || { echo "startup-timeline.sh: could not hold the netfilter hooks" >&2; exit 1; }
fi

cp "$BENCH_DIR/lib/bench-contract.toml" "$WORK/contract.toml"
mkdir -p "$WORK/ws"
printf '%s\n' "#!/bin/sh" "for i in \$(seq $RUNS); do '$SANDBOX' run --contract '$WORK/contract.toml' --no-checks --workspace '$WORK/ws' --log '$WORK/flows.jsonl' -- /usr/bin/true || exit 1; sleep $PAUSE; done" >"$WORK/loop.sh"

# clone, unshare, execve, fdatasync, pwrite64, exit_group, pivot_root, umount2, clone3, sendto
FILTER='id == 56 || id == 272 || id == 59 || id == 75 || id == 18 || id == 231 || id == 155 || id == 166 || id == 435 || id == 44'
perf record -q -a -o "$WORK/perf.data" \
    -e sched:sched_process_exec -e sched:sched_process_exit \
    -e raw_syscalls:sys_enter --filter "$FILTER" -e raw_syscalls:sys_exit --filter "$FILTER" \
    -- sh "$WORK/loop.sh" >/dev/null 2>"$WORK/perf.err" || { cat "$WORK/perf.err" >&2; exit 1; }
perf script -i "$WORK/perf.data" -F comm,pid,tid,cpu,time,event,trace 2>/dev/null >"$WORK/events.txt"
python3 "$BENCH_DIR/lib/startup_timeline.py" "$WORK/events.txt" "$(basename "$SANDBOX")" "$HOLD" "$PAUSE"
