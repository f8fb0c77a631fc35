#!/usr/bin/env python3
"""hkt against PyTorch on the CPU: training-step time and peak RSS of the same MHA and HKT
classifiers, measured in one run on one machine, written to docs/benchmarks.md.

For every T (batch B = --tokens // T, so every point steps over about the same number of tokens)
and model (MHA, HKT): `hkt bench step --export` writes the model's initial parameters and
a batch; then, for every thread count, --rounds rounds each run `hkt bench step` and every
PyTorch variant of the model through tools/bench_torch.py (which first checks that its
logits match hkt's) one after the other, the order rotated every round, so that a slow
spell of the machine hits all alike. PyTorch's variants: for MHA, scaled_dot_product_attention
("sdpa"); for HKT, the concat formulation (one SDPA call over the levels' repeated and
concatenated query/key rows), the same with V zero-padded to the query/key width
("concat-padv", which lets PyTorch's CPU SDPA run its flash kernel) and the straightforward
composite (every level's T x T scores), --hkt-torch choosing which. A point's time is the median over
rounds of each run's median step time; its memory the largest peak RSS.

The table replaces the part of --out between the markers
<!-- bench-vs-torch:begin --> and <!-- bench-vs-torch:end --> (appended when absent);
the raw rows and the run's settings go to --raw as JSON, rewritten after every point.
By default both are the committed docs/benchmarks.md and docs/results/bench-vs-torch.json;
point --out and --raw elsewhere for a trial run. The default run takes about half an
hour on 2 cores (PyTorch's composite HKT step at T = 2048 alone takes about 6 to 10 s).

Usage (the torch Python needs torch >= 2.1 and safetensors; the runner only the stdlib):
  python3 tools/bench_vs_torch.py --torch-python .venv-torch/bin/python
"""
import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile

BEGIN, END = "<!-- bench-vs-torch:begin -->", "<!-- bench-vs-torch:end -->"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run_json(cmd):
    """Runs cmd, returns its last stdout line as JSON; exits naming the command on failure."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as e:
        sys.exit("bench_vs_torch.py: cannot run `%s`: %s" % (cmd[0], e))
    if p.returncode != 0:
        sys.exit("bench_vs_torch.py: `%s` failed (exit %d):\n%s" % (" ".join(map(shlex.quote, cmd)), p.returncode, p.stderr))
    return json.loads(p.stdout.strip().splitlines()[-1])


def int_list(s):
    """'256,512' -> [256, 512]; an argparse type (positive integers only)."""
    try:
        values = [int(x) for x in s.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected a comma-separated list of positive integers, got '%s'" % s)
    return values


def cpu_name():
    """The CPU's model name from /proc/cpuinfo (or what platform knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe_model(export_dir):
    """The model and dtype of an export's resolved config, in words for the table's text."""
    with open(os.path.join(export_dir, "config.json")) as f:
        c = json.load(f)
    m = c["model"]
    return ("%s, d_model %d, %d heads, %d layers, d_ff %d, dropout %g, HKT L = %d"
            % (c["train"]["dtype"], m["d_model"], m["n_heads"], m["n_layers"], m["d_ff"], m["dropout"], m["hkt"]["levels"]))


VARIANT_NAMES = {"sdpa": "SDPA", "concat": "concat (one SDPA)", "concat-padv": "concat, V padded (one flash SDPA)",
                 "composite": "composite"}


def torch_variants(row):
    """[(variant, {"ms", "runs"})] of a row; rows written before the variants existed hold one
    PyTorch run list (SDPA for MHA, the composite for HKT) under torch_ms/torch_runs."""
    if "torch" in row:
        return [(name, row["torch"][name]) for name in VARIANT_NAMES if name in row["torch"]]
    return [("sdpa" if row["attention"] == "mha" else "composite", {"ms": row["torch_ms"], "runs": row["torch_runs"]})]


def markdown(rows, meta):
    """The benchmarks.md section from the rows and the run's meta (machine, options, model)."""
    out = [BEGIN, "",
           "Measured by one run of `tools/bench_vs_torch.py` on %s (%d logical CPUs), PyTorch %s, config `%s` "
           "(%s), batch B = %d // T sequences of random tokens of the task's vocabulary, no padding. A step is "
           "forward + cross entropy + backward + gradient clipping + AdamW; ms are the median over %d rounds (hkt and "
           "PyTorch alternating, %s) of each run's median over %d steps. RSS: the process's "
           "resident set after %d warm-up steps, and its peak while the timed steps ran (VmHWM reset in between), "
           "both from the run with the largest peak; "
           "memory freed by the warm-up and reused by the timed steps shows in the first, not as growth. "
           "PyTorch's logits matched hkt's (scaled max error <= %.0e) before every timing."
           % (meta["cpu"], meta["cpus"], meta["torch_version"], meta["config"], meta["model"], meta["tokens"],
              meta["rounds"], meta["order"], meta["repeats"], meta["warmup"], meta["tolerance"]),
           "", "```sh", meta["command"], "```", "",
           "| model | T | B | threads | hkt ms | PyTorch variant | PyTorch ms | hkt / PyTorch | "
           "hkt RSS MiB: after warm-up, peak | PyTorch RSS MiB: after warm-up, peak |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    def rss(runs):
        """(after warm-up, peak) of the run with the largest peak: both numbers from one run."""
        top = max(runs, key=lambda run: run["peak_rss_mib"])
        return top["peak_rss_mib"] - top["step_rss_mib"], top["peak_rss_mib"]

    for r in rows:
        for name, v in torch_variants(r):
            out.append("| %s | %d | %d | %d | %.1f | %s | %.1f | **%.2f** | %.0f, %.0f | %.0f, %.0f |"
                       % (r["attention"].upper(), r["T"], r["batch_size"], r["threads"], r["hkt_ms"], VARIANT_NAMES[name],
                          v["ms"], r["hkt_ms"] / v["ms"], *rss(r["hkt_runs"]), *rss(v["runs"])))
    out += ["", END]
    return "\n".join(out)


def write_outputs(args, rows, meta):
    """Writes the raw rows and meta to args.raw (unless rendering only) and replaces the
    marked section of args.out (appending it, with a heading, when the file has no markers)."""
    if not args.render_only:
        write_atomic(args.raw, json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    if not rows:
        return
    text = open(args.out).read() if os.path.exists(args.out) else "# Benchmarks\n"
    if (BEGIN in text) != (END in text):
        sys.exit("bench_vs_torch.py: %s has only one of the markers %s and %s" % (args.out, BEGIN, END))
    section = markdown(rows, meta)
    if BEGIN in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n## Training step: hkt against PyTorch on the CPU\n\n" + section + "\n"
    write_atomic(args.out, text)


def write_atomic(path, content):
    """Writes path + '.tmp', then renames it over path."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".tmp", "w") as f:
        f.write(content)
    os.replace(path + ".tmp", path)


def main():
    """Measures every (T, model, threads) point, writing the raw rows after each; then the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hkt", default=os.path.join(ROOT, "build", "tools", "hkt"), help="the hkt binary")
    ap.add_argument("--torch-python", default=os.environ.get("HKT_TORCH_PYTHON", sys.executable),
                    help="Python with torch and safetensors (default $HKT_TORCH_PYTHON, else this Python)")
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "bench-step.json"))
    ap.add_argument("--T", type=int_list, default=[512, 1024, 2048])
    ap.add_argument("--threads", type=int_list, default=[1, 2])
    ap.add_argument("--models", default="mha,hkt")
    ap.add_argument("--hkt-torch", default="concat,concat-padv,composite",
                    help="PyTorch's HKT formulations to time: any of concat, concat-padv, composite")
    ap.add_argument("--tokens", type=int, default=8192, help="tokens per batch: B = tokens // T (at least 1)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5, help="timed steps per run")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per run first")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    ap.add_argument("--raw", default=os.path.join(ROOT, "docs", "results", "bench-vs-torch.json"))
    ap.add_argument("--render-only", action="store_true", help="measure nothing: rewrite the table in --out from --raw")
    args = ap.parse_args()
    if args.render_only:
        try:
            with open(args.raw) as f:
                raw = json.load(f)
            rows, meta = raw["rows"], raw["meta"]
        except (OSError, ValueError, KeyError) as e:
            ap.error("--render-only: cannot read rows and meta from %s: %s" % (args.raw, e))
        if not rows:
            ap.error("--render-only: %s holds no rows" % args.raw)
        write_outputs(args, rows, meta)
        return 0
    models = args.models.split(",")
    if not set(models) <= {"mha", "hkt"} or len(set(models)) != len(models):
        ap.error("--models lists mha and/or hkt, each once")
    hkt_torch = args.hkt_torch.split(",")
    if not set(hkt_torch) <= {"concat", "concat-padv", "composite"} or len(set(hkt_torch)) != len(hkt_torch):
        ap.error("--hkt-torch lists some of concat, concat-padv, composite, each once")
    if args.rounds < 1 or args.repeats < 1 or args.tokens < 1 or args.warmup < 0:
        ap.error("--rounds, --repeats and --tokens must be >= 1, --warmup >= 0")
    if not os.access(args.hkt, os.X_OK):
        ap.error("%s is not an executable (build hkt first: cmake --build build)" % args.hkt)
    if not os.path.isfile(args.config):
        ap.error("--config %s does not exist" % args.config)
    if shutil.which(args.torch_python) is None:
        ap.error("--torch-python %s is not an executable" % args.torch_python)
    meta = {"command": "python3 tools/bench_vs_torch.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
            "cpu": cpu_name(), "cpus": os.cpu_count() or 0, "config": os.path.relpath(args.config, ROOT),
            "tokens": args.tokens, "rounds": args.rounds, "repeats": args.repeats, "warmup": args.warmup,
            "tolerance": args.tolerance, "torch_version": "?", "model": "?",
            "order": "the order rotated every round"}

    rows = []
    with tempfile.TemporaryDirectory(prefix="hkt-bench-") as tmp:
        for T in args.T:
            B = max(1, args.tokens // T)
            for model in models:
                sets = ["--set", "data.max_len=%d" % T, "--set", "train.batch_size=%d" % B, "--set", "model.attention=" + model]
                export = os.path.join(tmp, "%s-%d" % (model, T))
                run_json([args.hkt, "bench", "step", "--config", args.config, *sets, "--export", export,
                          "--repeats", "1", "--warmup", "0", "--json"])
                meta["model"] = describe_model(export)
                for threads in args.threads:
                    hkt_cmd = [args.hkt, "bench", "step", "--config", args.config, *sets, "--threads", str(threads),
                               "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--json"]
                    variants = ["sdpa"] if model == "mha" else hkt_torch
                    cmds = [("hkt", hkt_cmd)] + [
                        (v, [args.torch_python, os.path.join(HERE, "bench_torch.py"), "--export", export,
                             "--threads", str(threads), "--repeats", str(args.repeats), "--warmup", str(args.warmup),
                             "--tolerance", str(args.tolerance), "--json"]
                         + ([] if v == "sdpa" else ["--hkt-formulation", v])) for v in variants]
                    runs = {name: [] for name, _ in cmds}
                    for round_index in range(args.rounds):
                        # Rotate who goes first every round, so that no side always runs on a
                        # machine just warmed (or heated) by another.
                        shift = round_index % len(cmds)
                        for name, cmd in cmds[shift:] + cmds[:shift]:
                            runs[name].append(run_json(cmd))
                    hkt_runs = runs["hkt"]
                    meta["torch_version"] = runs[variants[0]][0]["torch_version"]
                    row = {"attention": model, "T": T, "batch_size": B, "threads": threads,
                           "hkt_ms": statistics.median(r["median_ms"] for r in hkt_runs),
                           "hkt_peak_rss_mib": max(r["peak_rss_mib"] for r in hkt_runs),
                           "hkt_step_rss_mib": max(r["step_rss_mib"] for r in hkt_runs),
                           "hkt_runs": hkt_runs,
                           "torch": {v: {"ms": statistics.median(r["median_ms"] for r in runs[v]),
                                         "peak_rss_mib": max(r["peak_rss_mib"] for r in runs[v]),
                                         "logit_error": max(r["logit_error"] for r in runs[v]),
                                         "runs": runs[v]} for v in variants}}
                    rows.append(row)
                    write_atomic(args.raw, json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")  # a late failure loses nothing
                    print("%s T=%d B=%d threads=%d: hkt %.1f ms, peak RSS %.0f MiB; " % (
                        model, T, B, threads, row["hkt_ms"], row["hkt_peak_rss_mib"]) + "; ".join(
                        "PyTorch %s %.1f ms (ratio %.2f), peak RSS %.0f MiB" % (v, t["ms"], row["hkt_ms"] / t["ms"], t["peak_rss_mib"])
                        for v, t in row["torch"].items()), flush=True)
    write_outputs(args, rows, meta)
    print(markdown(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
