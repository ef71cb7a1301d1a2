#!/usr/bin/env python3
"""Samples the memory of a proxy process (or process tree) while a loadgen suite runs.

It answers loadgen's sync points: when `<sync-dir>/<point>.ready` appears, it records the CPU
time used so far (and, at `warm`, `preidle` and `held`, the resident set size) and creates
`<sync-dir>/<point>.go` so the client goes on. Between points it tracks the peak.

    sampler.py --sync-dir D --out F [--pid P] [--tree] [--exclude-comm loadgen]...
               [--stop-file S] [--max-seconds N]

Without --pid it only answers sync points (the direct mode has no proxy). With --tree the
figure is the sum over P and its descendants, minus processes whose name is excluded (the
client itself). It stops when P exits, when the stop file appears, or after --max-seconds.
Output: one JSON object with KiB figures.
"""

import argparse
import json
import os
import time

MEMORY_POINTS = ("warm", "preidle", "held")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def status_kib(pid, key):
    """VmRSS / VmHWM of one process in KiB, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
        return None
    return 0


def process_table():
    """{pid: (ppid, comm)} for every visible process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                raw = f.read()
        except OSError:
            continue
        # comm is in parentheses and may contain spaces; ppid follows the state field.
        close = raw.rfind(")")
        comm = raw[raw.find("(") + 1 : close]
        fields = raw[close + 2 :].split()
        if len(fields) > 1:
            table[int(entry)] = (int(fields[1]), comm)
    return table


def tree_pids(root, exclude):
    """root and its descendants, without processes named in `exclude`."""
    table = process_table()
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        comm = table.get(pid, (0, ""))[1]
        if pid != root and comm in exclude:
            continue
        out.append(pid)
        stack.extend(children.get(pid, []))
    return out


def pss_kib(pid):
    """Proportional set size of one process in KiB (shared pages split between sharers)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return 0
    return 0


def cpu_seconds(pid, tree, exclude):
    """utime+stime (plus reaped children's) of the process or tree, in seconds."""
    total = 0
    for p in tree_pids(pid, exclude) if tree else [pid]:
        try:
            with open(f"/proc/{p}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            # After the comm: state is fields[0]; utime, stime, cutime, cstime are 11..14.
            total += sum(int(x) for x in fields[11:15])
        except (OSError, ValueError, IndexError):
            continue
    return total / CLK_TCK


def rss_now(pid, tree, exclude):
    """One process's VmRSS; for a tree, the sum of its members' PSS, so that libraries shared
    by many forked helpers (srt's socat bridges) are not counted once per process."""
    if not tree:
        return status_kib(pid, "VmRSS")
    if status_kib(pid, "VmRSS") is None:
        return None
    return sum(pss_kib(p) for p in tree_pids(pid, exclude))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sync-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--tree", action="store_true")
    ap.add_argument("--exclude-comm", action="append", default=[])
    ap.add_argument("--stop-file")
    ap.add_argument("--max-seconds", type=float, default=900)
    args = ap.parse_args()

    exclude = set(args.exclude_comm)
    result = {"pid": args.pid, "tree": args.tree}
    peak_sampled = 0
    hwm_main = 0
    seen = set()
    tick = 0
    start = time.monotonic()
    while time.monotonic() - start < args.max_seconds:
        if args.stop_file and os.path.exists(args.stop_file):
            break
        alive = True
        tick += 1
        # A tree walk reads every /proc/*/stat: do it 4 times a second, not 20, to stay light.
        if args.pid is not None and (not args.tree or tick % 5 == 0):
            rss = rss_now(args.pid, args.tree, exclude)
            if rss is None:
                alive = False
            else:
                peak_sampled = max(peak_sampled, rss)
                hwm_main = max(hwm_main, status_kib(args.pid, "VmHWM") or 0)
        try:
            ready = sorted(f[: -len(".ready")] for f in os.listdir(args.sync_dir) if f.endswith(".ready"))
        except OSError:
            ready = []
        if args.pid is not None and not status_kib(args.pid, "VmRSS"):  # gone, or a zombie
            alive = False
        for point in ready:
            if point in seen:
                continue
            seen.add(point)
            if args.pid is not None and alive:
                if point in MEMORY_POINTS:
                    # Let the proxy settle (freed buffers, closed handshakes) before reading.
                    time.sleep(0.2)
                    result[point + "_kib"] = rss_now(args.pid, args.tree, exclude)
                result.setdefault("cpu_s", {})[point] = cpu_seconds(args.pid, args.tree, exclude)
            with open(os.path.join(args.sync_dir, point + ".go"), "w", encoding="ascii"):
                pass
        if not alive:
            break
        time.sleep(0.05)
    if args.pid is not None:
        result["peak_sampled_kib"] = peak_sampled
        result["hwm_main_kib"] = hwm_main
        result["peak_kib"] = max(peak_sampled, hwm_main)
    with open(args.out, "w", encoding="ascii") as f:
        json.dump(result, f)
        f.write("\n")


if __name__ == "__main__":
    main()
