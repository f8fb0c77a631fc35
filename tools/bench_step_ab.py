#!/usr/bin/env python3
"""Two hkt binaries against each other: training-step time of `hkt bench step`, alternating.

For a before/after of engine changes: build the older commit beside this one (a git
worktree, `cmake -DHKT_CUDA=OFF`, target hkt) and give both binaries. For every T (batch
B = --tokens // T), model (mha, hkt) and thread count, --rounds rounds each run binary A
and binary B once (the order swapped every round, so that a slow spell of the machine hits
both alike); a point's time is the median over rounds of each run's median step time.
Prints a markdown table (A ms, B ms, B / A) and writes the raw rows to --raw as JSON.

Usage:
  python3 tools/bench_step_ab.py --a /tmp/old/build/tools/hkt --b build/tools/hkt --raw /tmp/ab.json
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def step_ms(binary, config, T, B, model, threads, repeats, warmup):
    """Median step ms of one `hkt bench step` run; exits naming the command on failure."""
    cmd = [binary, "bench", "step", "--config", config, "--set", "data.max_len=%d" % T, "--set",
           "train.batch_size=%d" % B, "--set", "model.attention=" + model, "--threads", str(threads),
           "--repeats", str(repeats), "--warmup", str(warmup), "--json"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit("bench_step_ab.py: `%s` failed (exit %d):\n%s" % (" ".join(cmd), p.returncode, p.stderr))
    return json.loads(p.stdout.strip().splitlines()[-1])["median_ms"]


def main():
    """Measures every point, prints the table, writes the raw rows."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True, help="binary A (before)")
    ap.add_argument("--b", required=True, help="binary B (after)")
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "bench-step.json"))
    ap.add_argument("--T", default="512,1024,2048", help="comma-separated sequence lengths")
    ap.add_argument("--models", default="mha,hkt")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--tokens", type=int, default=8192, help="tokens per batch: B = tokens // T")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--raw", required=True, help="JSON file for the raw rows")
    a = ap.parse_args()
    for path in (a.a, a.b):
        if not os.access(path, os.X_OK):
            ap.error("%s is not an executable" % path)
    if a.rounds < 1 or a.repeats < 1 or a.warmup < 0 or a.tokens < 1:
        ap.error("--rounds, --repeats, --tokens must be >= 1 and --warmup >= 0")
    try:
        Ts = [int(x) for x in a.T.split(",")]
        threads = [int(x) for x in a.threads.split(",")]
    except ValueError:
        ap.error("--T and --threads take comma-separated integers")
    rows = []
    print("| model | T | B | threads | A ms | B ms | B / A |\n|---|---|---|---|---|---|---|")
    for T in Ts:
        B = max(1, a.tokens // T)
        for model in a.models.split(","):
            for n in threads:
                runs = {"a": [], "b": []}
                for r in range(a.rounds):
                    for side in ("a", "b") if r % 2 == 0 else ("b", "a"):
                        runs[side].append(step_ms(getattr(a, side), a.config, T, B, model, n, a.repeats, a.warmup))
                row = {"model": model, "T": T, "B": B, "threads": n, "a_ms": statistics.median(runs["a"]),
                       "b_ms": statistics.median(runs["b"]), "a_runs": runs["a"], "b_runs": runs["b"]}
                rows.append(row)
                print("| %s | %d | %d | %d | %.1f | %.1f | **%.2f** |"
                      % (model.upper(), T, B, n, row["a_ms"], row["b_ms"], row["b_ms"] / row["a_ms"]), flush=True)
                with open(a.raw + ".tmp", "w") as f:
                    json.dump({"a": a.a, "b": a.b, "rows": rows}, f, indent=1)
                os.replace(a.raw + ".tmp", a.raw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
