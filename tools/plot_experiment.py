#!/usr/bin/env python3
"""Plots of an `hkt experiment` directory (docs/experiments.md, "Outputs").

Usage: plot_experiment.py EXPERIMENT_DIR

Reads EXPERIMENT_DIR/summary.json (its "all_runs": variant, seed, run directory), every
run's metrics.jsonl and EXPERIMENT_DIR/attention_maps.json, and writes:
  curves.png          training loss (per log window) and validation accuracy against step,
                      one line per variant: the mean over seeds, with a band from the
                      lowest to the highest seed
  level_weights.png   level weights alpha_l (softmax of the learned logits) against step,
                      one panel per layer, mean over heads and seeds, for variants with L > 1
  accuracy_vs_levels.png  test (and extra test) accuracy against L with error bars (sample
                      std over seeds), over the variants that change only model.attention
                      and model.hkt.levels, when they have more than one L
  attention_maps.png  one validation example through layer 0, head 0 of each variant: the
                      attention map of every level at its own resolution and the fused map
Needs matplotlib (Debian: python3-matplotlib); exits 2 with a message without it or
when a file is missing or malformed.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot_common import fail, read_json  # noqa: E402  (after the path is set)


def read_metrics(path):
    """Training lines (with "loss") and evaluation lines (with "val_accuracy") of a run."""
    train, evals = [], []
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as e:
                    fail(f"{path}:{number}: {e}")
                (evals if "val_accuracy" in row else train).append(row)
    except OSError as e:
        fail(f"{path}: {e}")
    return train, evals


def band(runs, key):
    """Steps and the mean, min and max of `key` over runs, on the steps all runs have."""
    common = sorted(set.intersection(*[{r["step"] for r in run} for run in runs]))
    by_step = [{r["step"]: r[key] for r in run} for run in runs]
    values = [[s[step] for s in by_step] for step in common]
    mean = [sum(v) / len(v) for v in values]
    return common, mean, [min(v) for v in values], [max(v) for v in values]


def main():
    try:
        draw()
    except (KeyError, IndexError, ValueError, TypeError, OSError) as e:
        # A summary or metrics file that is not what hkt experiment writes.
        fail(f"{sys.argv[1]}: unexpected content or unwritable plot ({type(e).__name__}: {e})")


def draw():
    if len(sys.argv) != 2:
        fail("usage: plot_experiment.py EXPERIMENT_DIR")
    out = sys.argv[1]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail("matplotlib is not installed (Debian: apt-get install python3-matplotlib)")

    summary = read_json(os.path.join(out, "summary.json"))
    if not summary["all_runs"]:  # e.g. a shard whose share of the runs was empty
        print(f"plot_experiment.py: {out} holds no finished run: no plots")
        return
    variants = [row["variant"] for row in summary["variants"]]
    metrics = {v: [] for v in variants}
    for run in summary["all_runs"]:
        metrics[run["variant"]].append(read_metrics(os.path.join(out, run["dir"], "metrics.jsonl")))

    # ---- loss and validation accuracy against step
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for v in variants:
        for ax, key, which in ((axes[0], "loss", 0), (axes[1], "val_accuracy", 1)):
            steps, mean, low, high = band([m[which] for m in metrics[v]], key)
            scale = 100 if key == "val_accuracy" else 1
            line, = ax.plot(steps, [scale * x for x in mean], label=f"{v} (n={len(metrics[v])})")
            ax.fill_between(steps, [scale * x for x in low], [scale * x for x in high], alpha=0.2, color=line.get_color())
    axes[0].set(xlabel="step", ylabel="training loss (window mean)", title="loss")
    axes[1].set(xlabel="step", ylabel="validation accuracy (%)", title="validation accuracy")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{summary['name'] or summary['task']}: mean over seeds, band = min..max")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "curves.png"), dpi=110)
    plt.close(fig)

    # ---- level weights against step (layer panels; mean over heads and seeds)
    multi = [v for v in variants if metrics[v] and metrics[v][0][0] and len(metrics[v][0][0][0]["level_weights"][0][0]) > 1]
    if multi:
        # Variants may differ in depth: one panel per layer of the deepest.
        layers = max(len(metrics[v][0][0][0]["level_weights"]) for v in multi)
        fig, axes = plt.subplots(1, layers, figsize=(5 * layers, 3.8), squeeze=False)
        for v in multi:
            for layer in range(len(metrics[v][0][0][0]["level_weights"])):
                runs = metrics[v]
                levels = len(runs[0][0][0]["level_weights"][layer][0])
                for level in range(levels):
                    rows = [[{"step": r["step"],
                              "a": sum(h[level] for h in r["level_weights"][layer]) / len(r["level_weights"][layer])}
                             for r in run[0]] for run in runs]
                    steps, mean, _, _ = band(rows, "a")
                    axes[0][layer].plot(steps, mean, label=f"{v}: level {level} (T/{2 ** level})")
        for layer, ax in enumerate(axes[0]):
            ax.set(xlabel="step", ylabel="alpha (mean over heads and seeds)", title=f"layer {layer}", ylim=(0, 1))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "level_weights.png"), dpi=110)
        plt.close(fig)

    # ---- test accuracy against L, for the variants that change only the attention and L
    sweep = [row for row in summary["variants"]
             if all(item.split("=", 1)[0] in ("model.attention", "model.hkt.levels") for item in row.get("set", []))]
    if len({row["levels"] for row in sweep}) > 1:
        sweep.sort(key=lambda row: row["levels"])
        fig, ax = plt.subplots(figsize=(5.5, 4))
        sets = [("test", lambda row: row["test_accuracy"])]
        sets += [(name, lambda row, name=name: row["extra_tests"].get(name))
                 for name in sorted({name for row in sweep for name in row["extra_tests"]})]
        for label, get in sets:
            rows = [row for row in sweep if get(row)]
            ax.errorbar([row["levels"] for row in rows], [100 * get(row)["mean"] for row in rows],
                        yerr=[100 * get(row)["std"] for row in rows], marker="o", capsize=4, label=label)
        ax.set(xlabel="levels L (1: standard MHA)", ylabel="accuracy (%)", xticks=sorted({r["levels"] for r in sweep}),
               title="accuracy against L: mean ± sample std over seeds")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out, "accuracy_vs_levels.png"), dpi=110)
        plt.close(fig)

    # ---- per-level attention maps of one example (layer 0, head 0)
    maps_path = os.path.join(out, "attention_maps.json")
    if os.path.exists(maps_path):
        maps = read_json(maps_path)
        names = [v for v in variants if v in maps]
        cols = max(maps[v]["levels"] + (maps[v]["fused"] is not None) for v in names)
        fig, axes = plt.subplots(len(names), cols, figsize=(3.2 * cols, 3.2 * len(names)), squeeze=False)
        for r, v in enumerate(names):
            m = maps[v]
            panels = [(f"level {l} (T/{2 ** l}), alpha={m['alpha'][0][l]:.2f}", m["level"][l][0]) for l in range(m["levels"])]
            if m["fused"] is not None and m["levels"] > 1:
                panels.append(("fused (scores)", m["fused"][0]))
            for c in range(cols):
                ax = axes[r][c]
                ax.axis("off")
                if c < len(panels):
                    ax.imshow(panels[c][1], cmap="viridis", interpolation="nearest")
                    ax.set_title(f"{v}: {panels[c][0]}", fontsize=8)
        fig.suptitle(f"validation example {maps[names[0]]['example']} (length {maps[names[0]]['length']}), "
                     f"layer 0, head 0, first {maps[names[0]]['crop']} positions", fontsize=9)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "attention_maps.png"), dpi=110)
        plt.close(fig)
    print(f"wrote plots to {out}: curves.png, level_weights.png, accuracy_vs_levels.png (for an L sweep), "
          "attention_maps.png")


if __name__ == "__main__":
    main()
