#!/usr/bin/env python3
"""Counts a flow log's records and checks its hash chain (docs/flow-log.md).

    flowlog.py LOG  ->  one JSON object: records by event/kind/decision, chain status

The bench compares these counts with the requests and tunnels the client made: every
request through the proxy must have its `decision` record (and an `end` record when allowed).
"""

import hashlib
import json
import sys


def check(path):
    out = {
        "records": 0,
        "request_decisions": 0,
        "request_allowed": 0,
        "request_ends": 0,
        "connect_decisions": 0,
        "connect_ends": 0,
        "other": 0,
        "chain": "ok",
        "chain_error": None,
    }
    prev = "0" * 64
    try:
        f = open(path, "rb")
    except OSError as e:
        out["chain"] = "missing"
        out["chain_error"] = str(e)
        return out
    with f:
        for lineno, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                out["chain"] = "truncated"
                out["chain_error"] = f"line {lineno} has no newline"
                break
            line = raw[:-1]
            try:
                rec = json.loads(line)
            except ValueError:
                out["chain"] = "broken"
                out["chain_error"] = f"line {lineno} is not JSON"
                break
            out["records"] += 1
            cut = line.rfind(b',"hash":"')
            if out["chain"] == "ok":
                canonical = line[:cut] + b"}" if cut >= 0 else b""
                want = hashlib.sha256(prev.encode() + canonical).hexdigest()
                if cut < 0 or rec.get("prev") != prev or rec.get("hash") != want:
                    out["chain"] = "broken"
                    out["chain_error"] = f"line {lineno}: prev/hash do not match"
                prev = rec.get("hash", "")
            event, kind = rec.get("event"), rec.get("kind")
            if kind == "request" and event == "decision":
                out["request_decisions"] += 1
                out["request_allowed"] += rec.get("decision") == "allow"
            elif kind == "request" and event == "end":
                out["request_ends"] += 1
            elif kind == "connect" and event == "decision":
                out["connect_decisions"] += 1
            elif kind == "connect" and event == "end":
                out["connect_ends"] += 1
            else:
                out["other"] += 1
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: flowlog.py LOG")
    print(json.dumps(check(sys.argv[1])))
