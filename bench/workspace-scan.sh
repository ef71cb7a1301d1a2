#!/usr/bin/env bash
# The cost of the protected-path scans of `sandbox run` (the plan's scan, the live watch of
# planted hooks and config, the sweep after the agent) as the workspace grows: the mean wall
# time of `sandbox run -- true` in an empty workspace and in one of DIRS directories
# (default 20,000: 200 x 100), RUNS runs each, with the given binary (default: a release build
# of this checkout). Local only; the scratch directories are removed at the end.
#
#   bench/workspace-scan.sh [--bin PATH] [--dirs N] [--runs N]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="" dirs=20000 runs=10
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin="$2"; shift 2 ;;
        --dirs) dirs="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        *) echo "usage: $0 [--bin PATH] [--dirs N] [--runs N]" >&2; exit 2 ;;
    esac
done
if [ -z "$bin" ]; then
    cargo build -q --release -p sandbox
    bin="$PWD/target/release/sandbox"
fi
scratch=$(mktemp -d /var/tmp/sandbox-bench-scan.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/empty" "$scratch/big"
python3 - "$scratch/big" "$dirs" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
per = 100
for i in range((n + per - 1) // per):
    for j in range(min(per, n - i * per)):
        os.makedirs(f"{root}/d{i}/e{j}", exist_ok=True)
PY
echo "| workspace | directories | mean of $runs runs of \`sandbox run -- true\` |"
echo "|---|---|---|"
for ws in empty big; do
    cd "$scratch/$ws"
    "$bin" run -- true 2>/dev/null   # warm the page cache
    start=$(date +%s%N)
    for _ in $(seq 1 "$runs"); do "$bin" run -- true 2>/dev/null; done
    end=$(date +%s%N)
    count=$(find . -type d | wc -l)
    echo "| $ws | $count | $(( (end - start) / runs / 1000000 )) ms |"
done
