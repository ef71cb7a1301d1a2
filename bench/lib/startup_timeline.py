"""Reads `perf script` output of bench/startup-timeline.sh and prints, as markdown, the median
time of each step of `sandbox run -- true` from the supervisor's exec, and the median length of
its longest system calls.

Processes are named by role: S the supervisor (and its proxy thread, P), I the sandbox's init
(pid 1 inside), A the agent (`true`, before and after its exec). Usage:
    startup_timeline.py EVENTS_TXT SANDBOX_COMM HOLD(0|1) PAUSE_SECONDS
"""

import collections
import re
import statistics
import sys

NAMES = {
    56: "clone",
    272: "unshare",
    59: "execve",
    75: "fdatasync",
    18: "pwrite64",
    231: "exit_group",
    155: "pivot_root",
    166: "umount2",
    435: "clone3",
    44: "sendto",
}
WHAT = {
    "S clone #1": "supervisor clones the init (user, mount, pid, ipc, uts namespaces)",
    "I unshare #1": "init creates the network namespace",
    "I sendto #3": "init programs the capture (the nftables batch)",
    "I pivot_root #1": "init enters the new root",
    "S pwrite64 #1": "supervisor writes `session_start`",
    "I umount2 #1": "init detaches the host tree (view sealed)",
    "I clone #1": "init forks the agent",
    "A execve #1": "the agent execs `true`",
    "A exit #1": "`true` exits",
    "P exit #1": "proxy worker stopped",
    "S pwrite64 #2": "supervisor writes `session_end`",
    "S fdatasync #1": "flow log synced",
    "S exit #1": "supervisor exits (`sandbox run` returns)",
    "I exit #1": "init exits (after the supervisor)",
}
LINE = re.compile(r"\s*(\S.*?)\s+(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)")


def parse(path, comm):
    runs, cur, entered = [], None, {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            name, _pid, tid, _cpu, t, event, rest = m.groups()
            t = float(t) * 1000.0
            if event.startswith("sched:sched_process_exec") and "filename=" in rest and comm in rest:
                cur = {"t0": t, "events": [], "supervisor": tid}
                runs.append(cur)
                continue
            if cur is None or not (name.startswith(comm[:15]) or name.startswith("sandbox") or name == "true"):
                continue
            if event.endswith("sys_enter"):
                entered[tid] = (int(rest.split()[1]), t)
            elif event.endswith("sys_exit") and tid in entered:
                nr, start = entered.pop(tid)
                cur["events"].append((start - cur["t0"], t - cur["t0"], tid, name, NAMES.get(nr, str(nr))))
            elif "sched_process_exit" in event:
                cur["events"].append((t - cur["t0"], t - cur["t0"], tid, name, "exit"))
    return runs


def role(tid, name, supervisor):
    if tid == supervisor:
        return "S"
    if name == "true":
        return "A"
    if "proxy" in name:
        return "P"
    return "I"


def main():
    path, comm, hold, pause = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
    runs = parse(path, comm)
    if not runs:
        sys.exit("startup_timeline.py: no run found in the trace")
    marks = collections.defaultdict(list)
    lengths = collections.defaultdict(list)
    for run in runs:
        agent = None
        seen = collections.Counter()
        for start, end, tid, name, call in sorted(run["events"]):
            if name == "true":
                agent = tid
            r = "A" if tid == agent else role(tid, name, run["supervisor"])
            key = f"{r} {call}"
            seen[key] += 1
            label = f"{key} #{seen[key]}"
            marks[label].append((start, end))
            lengths[label].append(end - start)
    # The agent's pre-exec part runs under the sandbox's comm: its execve is seen as "A".
    how = "back to back" if float(pause) == 0 else f"{pause} s apart"
    held = ", netfilter hooks held by another namespace" if hold else ""
    print(f"`sandbox run -- true`, {len(runs)} runs {how}{held}")
    print()
    print("| step | median start (ms) | median end (ms) |")
    print("|---|---|---|")
    rows = [(statistics.median(s for s, _ in v), statistics.median(e for _, e in v), k) for k, v in marks.items() if k in WHAT and len(v) >= len(runs) / 2]
    for start, end, key in sorted(rows):
        print(f"| {WHAT[key]} (`{key}`) | {start:.3f} | {end:.3f} |")
    print()
    print("| system call | median length (ms) |")
    print("|---|---|")
    longest = sorted(((statistics.median(v), k) for k, v in lengths.items() if len(v) >= len(runs) / 2), reverse=True)
    for length, key in longest[:8]:
        if key.endswith("exit #1"):
            continue
        print(f"| `{key}` | {length:.3f} |")


if __name__ == "__main__":
    main()
