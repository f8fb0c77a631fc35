#!/usr/bin/env python3
"""hkt against PyTorch on the CPU: training-step time and peak RSS of the same MHA and HKT
classifiers, measured in one run on one machine, written to docs/benchmarks.md.

For every T (batch B = --tokens / T, so every point steps over the same number of tokens)
and model (MHA, HKT): `hkt bench step --export` writes the model's initial parameters and
a batch; then, for every thread count, --rounds rounds each run `hkt bench step` and
tools/bench_torch.py (which first checks that its logits match hkt's) one after the other,
alternating, so that a slow spell of the machine hits both alike. A point's time is the
median over rounds of each run's median step time; its memory the largest peak RSS.

The table replaces the part of --out between the markers
<!-- bench-vs-torch:begin --> and <!-- bench-vs-torch:end --> (appended when absent);
the raw rows go to --raw as JSON.

Usage (the torch Python needs torch >= 2.1 and safetensors; the runner only the stdlib):
  python3 tools/bench_vs_torch.py --torch-python .venv-torch/bin/python
"""
import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile

BEGIN, END = "<!-- bench-vs-torch:begin -->", "<!-- bench-vs-torch:end -->"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run_json(cmd):
    """Runs cmd, returns its last stdout line as JSON; exits naming the command on failure."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit("bench_vs_torch.py: `%s` failed (exit %d):\n%s" % (" ".join(map(shlex.quote, cmd)), p.returncode, p.stderr))
    return json.loads(p.stdout.strip().splitlines()[-1])


def int_list(s):
    try:
        values = [int(x) for x in s.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected a comma-separated list of positive integers, got '%s'" % s)
    return values


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def markdown(rows, args, torch_version, command):
    """The benchmarks.md section: one line per (model, T, threads)."""
    out = [BEGIN, "",
           "Measured by one run of `tools/bench_vs_torch.py` on %s (%d logical CPUs), PyTorch %s, float32, "
           "config `%s` (d_model 128, 4 heads, 2 layers, d_ff 256, dropout 0.1, HKT L = 3), batch = %d / T sequences "
           "of random bytes, no padding. A step is forward + cross entropy + backward + gradient clipping + AdamW; "
           "ms are the median over %d alternating rounds of each run's median over %d steps. Peak RSS is the "
           "largest resident set while stepping (after a VmHWM reset); \"+step\" is what the steps added to the "
           "RSS they started from (0 where it shrank). PyTorch's logits matched hkt's (scaled max error <= %.0e) before every timing."
           % (cpu_name(), os.cpu_count() or 0, torch_version, os.path.relpath(args.config, ROOT), args.tokens,
              args.rounds, args.repeats, args.tolerance),
           "", "```sh", command, "```", "",
           "| model | T | B | threads | hkt ms | PyTorch ms | hkt / PyTorch | hkt peak RSS MiB (+step) | PyTorch peak RSS MiB (+step) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append("| %s | %d | %d | %d | %.1f | %.1f | **%.2f** | %.0f (%+.0f) | %.0f (%+.0f) |"
                   % (r["attention"].upper(), r["T"], r["batch_size"], r["threads"], r["hkt_ms"], r["torch_ms"],
                      r["hkt_ms"] / r["torch_ms"], r["hkt_peak_rss_mib"], max(0.0, r["hkt_step_rss_mib"]),
                      r["torch_peak_rss_mib"], max(0.0, r["torch_step_rss_mib"])))
    out += ["", END]
    return "\n".join(out)


def write_outputs(args, section, command, rows):
    """Replaces the marked section of args.out (or appends it) and writes the raw rows."""
    text = open(args.out).read() if os.path.exists(args.out) else "# Benchmarks\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n## Training step: hkt vs PyTorch on the CPU (`hkt bench step`, `tools/bench_torch.py`)\n\n" + section + "\n"
    outputs = [(args.out, text)]
    if not args.render_only:
        outputs.append((args.raw, json.dumps({"command": command, "rows": rows}, indent=1) + "\n"))
    for path, content in outputs:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path + ".tmp", "w") as f:
            f.write(content)
        os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hkt", default=os.path.join(ROOT, "build", "tools", "hkt"), help="the hkt binary")
    ap.add_argument("--torch-python", default=os.environ.get("HKT_TORCH_PYTHON", sys.executable),
                    help="Python with torch and safetensors (default $HKT_TORCH_PYTHON, else this Python)")
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "bench-step.json"))
    ap.add_argument("--T", type=int_list, default=[256, 512, 1024, 2048])
    ap.add_argument("--threads", type=int_list, default=[1, 2])
    ap.add_argument("--models", default="mha,hkt")
    ap.add_argument("--tokens", type=int, default=8192, help="tokens per batch: B = tokens / T")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5, help="timed steps per run")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    ap.add_argument("--raw", default=os.path.join(ROOT, "docs", "results", "bench-vs-torch.json"))
    ap.add_argument("--render-only", action="store_true",
                    help="measure nothing: rewrite the table in --out from the rows in --raw (same other options)")
    args = ap.parse_args()
    models = args.models.split(",")
    if not set(models) <= {"mha", "hkt"}:
        ap.error("--models lists mha and/or hkt")
    if args.rounds < 1 or args.repeats < 1 or args.tokens < 1:
        ap.error("--rounds, --repeats and --tokens must be >= 1")
    for path in (args.hkt, args.config):
        if not os.path.exists(path):
            ap.error("%s does not exist (build hkt first: cmake --build build)" % path)
    command = "python3 tools/bench_vs_torch.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if args.render_only:
        with open(args.raw) as f:
            raw = json.load(f)
        rows = raw["rows"]
        write_outputs(args, markdown(rows, args, rows[0]["torch_runs"][0]["torch_version"], raw["command"]), raw["command"], rows)
        return 0

    rows, torch_version = [], "?"
    with tempfile.TemporaryDirectory(prefix="hkt-bench-") as tmp:
        for T in args.T:
            B = max(1, args.tokens // T)
            for model in models:
                sets = ["--set", "data.max_len=%d" % T, "--set", "train.batch_size=%d" % B, "--set", "model.attention=" + model]
                export = os.path.join(tmp, "%s-%d" % (model, T))
                run_json([args.hkt, "bench", "step", "--config", args.config, *sets, "--export", export,
                          "--repeats", "1", "--warmup", "0", "--json"])
                for threads in args.threads:
                    hkt_runs, torch_runs = [], []
                    for _ in range(args.rounds):
                        hkt_runs.append(run_json([args.hkt, "bench", "step", "--config", args.config, *sets,
                                                  "--threads", str(threads), "--repeats", str(args.repeats), "--json"]))
                        torch_runs.append(run_json([args.torch_python, os.path.join(HERE, "bench_torch.py"), "--export", export,
                                                    "--threads", str(threads), "--repeats", str(args.repeats),
                                                    "--tolerance", str(args.tolerance), "--json"]))
                    torch_version = torch_runs[0]["torch_version"]
                    row = {"attention": model, "T": T, "batch_size": B, "threads": threads,
                           "hkt_ms": statistics.median(r["median_ms"] for r in hkt_runs),
                           "torch_ms": statistics.median(r["median_ms"] for r in torch_runs),
                           "hkt_peak_rss_mib": max(r["peak_rss_mib"] for r in hkt_runs),
                           "hkt_step_rss_mib": max(r["step_rss_mib"] for r in hkt_runs),
                           "torch_peak_rss_mib": max(r["peak_rss_mib"] for r in torch_runs),
                           "torch_step_rss_mib": max(r["step_rss_mib"] for r in torch_runs),
                           "logit_error": max(r["logit_error"] for r in torch_runs),
                           "hkt_runs": hkt_runs, "torch_runs": torch_runs}
                    rows.append(row)
                    print("%s T=%d B=%d threads=%d: hkt %.1f ms, PyTorch %.1f ms (ratio %.2f); peak RSS %.0f vs %.0f MiB"
                          % (model, T, B, threads, row["hkt_ms"], row["torch_ms"], row["hkt_ms"] / row["torch_ms"],
                             row["hkt_peak_rss_mib"], row["torch_peak_rss_mib"]), flush=True)

    section = markdown(rows, args, torch_version, command)
    write_outputs(args, section, command, rows)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
