#!/usr/bin/env python3
"""Plots of `hkt theory --plots DIR` (docs/theory.md).

Usage: plot_theory.py DIR

Reads DIR/theory.json (written by `hkt theory`) and writes, for the sections it holds:
  theory_spectra.png    psd: the sorted eigenvalues of every M_l^sym (Prop. 3.1), one
                        panel per layer, one line per (head, level), coloured by level;
                        a line that dips below 0 breaks the sufficient condition
  theory_decompose.png  decompose: the symmetric and antisymmetric shares
                        ||sym||_F / ||.||_F of M_l and of S^(l) per level (Props. 3.5-3.6),
                        one panel per layer, mean over heads (the dots are the heads)
  theory_truncate.png   truncate: ||Y_L' - Y_L||_F / ||Y_L||_F against L' (log scale),
                        one line per layer, with the fitted geometric rate in the legend
Needs matplotlib (Debian: python3-matplotlib); exits 2 with a message without it or when
theory.json is missing or malformed.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot_common import fail, read_json  # noqa: E402  (after the path is set)


def layers_of(rows):
    return sorted({r["layer"] for r in rows})


def plot_spectra(plt, psd, out):
    rows = psd["bilinear_forms"]
    layers = layers_of(rows)
    levels = sorted({r["level"] for r in rows})
    colours = plt.get_cmap("viridis")
    fig, axes = plt.subplots(1, len(layers), figsize=(5 * len(layers), 3.8), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        for r in (r for r in rows if r["layer"] == layer):
            colour = colours(r["level"] / max(1, len(levels) - 1) * 0.85)
            label = f"level {r['level']}" if r["head"] == 0 else None
            ax.plot(range(len(r["eigenvalues"])), r["eigenvalues"], color=colour, lw=1, label=label)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_title(f"layer {layer}: eigenvalues of M_l^sym (every head)")
        ax.set_xlabel("index (ascending)")
        ax.set_ylabel("eigenvalue")
        ax.legend(fontsize=8)
    verdict = "holds" if psd["condition_holds"] else "does not hold"
    fig.suptitle(f"Prop. 3.1: sufficient condition (every M_l^sym PSD, alpha >= 0) {verdict}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_decompose(plt, dec, out):
    rows = dec["levels"]
    layers = layers_of(rows)
    levels = sorted({r["level"] for r in rows})
    fig, axes = plt.subplots(1, len(layers), figsize=(5 * len(layers), 3.8), squeeze=False)
    series = [("m_sym_share", "M sym", "tab:blue", -0.3), ("m_anti_share", "M anti", "tab:cyan", -0.1),
              ("s_sym_share", "S sym", "tab:red", 0.1), ("s_anti_share", "S anti", "tab:orange", 0.3)]
    for ax, layer in zip(axes[0], layers):
        mine = [r for r in rows if r["layer"] == layer]
        for key, label, colour, offset in series:
            means = []
            for level in levels:
                values = [r[key] for r in mine if r["level"] == level]
                means.append(sum(values) / len(values))
                ax.scatter([level + offset] * len(values), values, color=colour, s=8, zorder=3)
            ax.bar([level + offset for level in levels], means, width=0.18, color=colour, alpha=0.6, label=label)
        ax.set_xticks(levels)
        ax.set_xlabel("level l")
        ax.set_ylabel("||part||_F / ||matrix||_F")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"layer {layer}: symmetric / antisymmetric shares")
        ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_truncate(plt, rows, out):
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for r in rows:
        kept = [k + 1 for k, e in enumerate(r["errors"]) if e > 0]
        errors = [e for e in r["errors"] if e > 0]
        rate = r["rate"]
        label = f"layer {r['layer']}" + (f" (rate {rate:.3f})" if rate is not None else "")
        ax.plot(kept, errors, marker="o", label=label)
    levels = len(rows[0]["errors"])
    ax.set_xticks(range(1, levels + 1))
    ax.set_yscale("log")
    ax.set_xlabel("levels kept L'")
    ax.set_ylabel("||Y_L' - Y_L||_F / ||Y_L||_F")
    ax.set_title(f"truncating the hierarchy (L = {levels}; the error at L' = L is 0)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main():
    if len(sys.argv) != 2:
        fail("usage: plot_theory.py DIR (the --plots folder of hkt theory)")
    folder = sys.argv[1]
    result = read_json(os.path.join(folder, "theory.json"))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail("matplotlib is not installed (Debian: apt-get install python3-matplotlib)")
    written = []
    try:
        if "psd" in result:
            written.append(os.path.join(folder, "theory_spectra.png"))
            plot_spectra(plt, result["psd"], written[-1])
        if "decompose" in result:
            written.append(os.path.join(folder, "theory_decompose.png"))
            plot_decompose(plt, result["decompose"], written[-1])
        if "truncate" in result and result["truncate"]:
            if any(e > 0 for r in result["truncate"] for e in r["errors"]):
                written.append(os.path.join(folder, "theory_truncate.png"))
                plot_truncate(plt, result["truncate"], written[-1])
            else:
                print("theory_truncate.png skipped: every truncation error is 0 (L = 1, or the dropped levels have weight 0)")
    except (KeyError, TypeError, IndexError) as e:
        fail(f"{folder}/theory.json: unexpected content ({type(e).__name__}: {e})")
    if written:
        print("wrote " + ", ".join(written))
    elif not any(key in result for key in ("psd", "decompose", "truncate")):
        print("no plots: theory.json holds none of psd, decompose, truncate")


if __name__ == "__main__":
    main()
