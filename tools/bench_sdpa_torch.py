#!/usr/bin/env python3
"""bench_sdpa_torch.py: PyTorch's attention on the GPU, the reference rows of hkt's
fused attention benchmark (docs/benchmarks.md, tools/gpu_bench_attention.sh).

L = 1: scaled_dot_product_attention on q, k, v [1, bh, T, d_head].
L > 1: PyTorch's best HKT, the concat formulation. HKT's fused score is one ordinary
attention whose query/key rows are the levels' rows repeated and concatenated,
  s(i, j) = scale [a0 Q0[i] | a1 Q1[i>>1] | ...] . [K0[j] | K1[j>>1] | ...],
with values of width d_head: one scaled_dot_product_attention call with query/key width
L x d_head (alpha folded into the query); and the same concatenated rows through
FlexAttention (torch.nn.attention.flex_attention, compiled by torch.compile, V
zero-padded to the query width where this PyTorch's FlexAttention needs equal widths).
Before timing, the script checks in float64 that the SDPA form equals the direct
definition (every level's score matrix lifted, weighted and summed, then softmax) to
1e-10 (exit 1 if not; 2 for invalid arguments), and the FlexAttention form likewise; a
FlexAttention that is missing, fails or differs gives a "note" row instead of times.

Times forward and forward+backward (gradients of every q_l, k_l, v and alpha) with CUDA
events (median of --repeats after warm-up) and prints one JSON object per line:
{"framework", "formulation", "dtype", "T", "L", "bh", "d_head", "forward_ms",
"backward_ms", "forward_tflops"}; FLOPs are counted as hkt counts them
(sum_l 2 T_l^2 d_h for the scores + 2 T^2 d_h for P V per head, no causal discount), so
the rows compare with hkt's. Exit 2 when no CUDA device is available.
"""
import argparse
import json
import math
import sys
import time


def concat_hkt(F, torch, qs, ks, v, alpha):
    """HKT attention as one SDPA call: qs[l], ks[l] [1, bh, T_l, d]; v [1, bh, T, d]; alpha [bh, L]."""
    qc, kc = concat_rows(torch, qs, ks, v, alpha)
    return F.scaled_dot_product_attention(qc, kc, v, scale=1.0 / math.sqrt(v.shape[3]))


def concat_rows(torch, qs, ks, v, alpha):
    """The concatenated query and key rows of concat_hkt: [1, bh, T, L d] each."""
    T = v.shape[2]
    qc = torch.cat([alpha[:, l].view(1, -1, 1, 1) * q.repeat_interleave(2**l, dim=2)[:, :, :T] for l, q in enumerate(qs)], -1)
    kc = torch.cat([k.repeat_interleave(2**l, dim=2)[:, :, :T] for l, k in enumerate(ks)], -1)
    return qc, kc


def concat_hkt_flex(torch, flex, qs, ks, v, alpha):
    """concat_hkt through FlexAttention (`flex`: flex_attention, compiled or not). V is
    zero-padded to the query width and the output cut back, which every FlexAttention
    version accepts."""
    d = v.shape[3]
    qc, kc = concat_rows(torch, qs, ks, v, alpha)
    vp = torch.nn.functional.pad(v, (0, qc.shape[3] - d)) if qc.shape[3] != d else v
    return flex(qc, kc, vp, scale=1.0 / math.sqrt(d))[..., :d]


def make_flex(torch):
    """(flex_attention compiled by torch.compile, ""), or (None, reason) when this PyTorch lacks it."""
    try:
        from torch.nn.attention.flex_attention import flex_attention
    except ImportError as e:
        return None, f"no FlexAttention in this PyTorch ({e})"
    try:
        return torch.compile(flex_attention), ""
    except Exception as e:  # noqa: BLE001 - a note row, not a crash
        return None, f"torch.compile(flex_attention) failed: {e}"


def direct_hkt(torch, qs, ks, v, alpha):
    """The definition: s = sum_l alpha_l lift(scale Q_l K_l^T), softmax over keys, times V."""
    T, d = v.shape[2], v.shape[3]
    s = 0
    for l, (q, k) in enumerate(zip(qs, ks)):
        sl = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        sl = sl.repeat_interleave(2**l, dim=2)[:, :, :T].repeat_interleave(2**l, dim=3)[:, :, :, :T]
        s = s + alpha[:, l].view(1, -1, 1, 1) * sl
    return torch.softmax(s, dim=-1) @ v


def inputs(torch, bh, T, d, L, dtype, device):
    qs = [torch.randn(1, bh, (T + 2**l - 1) >> l, d, device=device, dtype=dtype, requires_grad=True) for l in range(L)]
    ks = [torch.randn(1, bh, (T + 2**l - 1) >> l, d, device=device, dtype=dtype, requires_grad=True) for l in range(L)]
    v = torch.randn(1, bh, T, d, device=device, dtype=dtype, requires_grad=True)
    alpha = torch.softmax(torch.randn(bh, L, device=device, dtype=dtype), -1).requires_grad_(True)
    return qs, ks, v, alpha


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--T", default="1024,4096,16384")
    parser.add_argument("--L", default="1,3")
    parser.add_argument("--bh", type=int, default=64)
    parser.add_argument("--d-head", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--device", default="cuda", help="cuda, or cpu for a dry run")
    args = parser.parse_args()
    try:  # every list and size checked before PyTorch is loaded; exit 2 names the bad one
        Ts = [int(t) for t in args.T.split(",")]
        Ls = [int(x) for x in args.L.split(",")]
        dtypes = args.dtypes.split(",")
    except ValueError:
        print(f"bench_sdpa_torch: --T and --L must be comma-separated integers, got '{args.T}', '{args.L}'", file=sys.stderr)
        return 2
    bad = ([f"--T {t}" for t in Ts if t < 1] + [f"--L {x} (1 to 4)" for x in Ls if not 1 <= x <= 4]
           + [f"--{k} {v}" for k, v in (("bh", args.bh), ("d-head", args.d_head), ("repeats", args.repeats)) if v < 1]
           + [f"--dtypes {d}" for d in dtypes if d not in ("float32", "float64", "bfloat16", "float16")]
           + ([f"--device {args.device}"] if args.device not in ("cuda", "cpu") else []))
    if bad:
        print("bench_sdpa_torch: invalid " + ", ".join(bad), file=sys.stderr)
        return 2
    import torch
    import torch.nn.functional as F

    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_sdpa_torch: no CUDA device", file=sys.stderr)
        return 2
    # The concat formulation is HKT: float64 check against the definition.
    torch.manual_seed(0)
    for L in (2, 3, 4):
        qs, ks, v, alpha = inputs(torch, 3, 67, 8, L, torch.float64, args.device)
        err = (concat_hkt(F, torch, qs, ks, v, alpha) - direct_hkt(torch, qs, ks, v, alpha)).abs().max().item()
        if err > 1e-10:
            print(f"bench_sdpa_torch: concat formulation differs from the definition by {err} at L = {L}", file=sys.stderr)
            return 1
    flex, flex_note = make_flex(torch) if any(L > 1 for L in Ls) else (None, "")
    if flex is not None:
        # In float64 to 1e-10 where this FlexAttention takes float64, else in float32 to 1e-5
        # (the CPU's takes float32 at most).
        failures = []
        for dtype, tolerance in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
            try:
                qs, ks, v, alpha = inputs(torch, 3, 67, 8, 3, dtype, args.device)
                with torch.no_grad():  # the forward's values (the CPU's FlexAttention has no backward)
                    err = (concat_hkt_flex(torch, flex, qs, ks, v, alpha) - direct_hkt(torch, qs, ks, v, alpha)).abs().max().item()
            except Exception as e:  # noqa: BLE001 - a note row, not a crash
                failures.append(f"{dtype}: {type(e).__name__}: {str(e)[:120]}")
                continue
            if not err <= tolerance:
                failures.append(f"{dtype}: differs from the definition by {err}")
            break
        if len(failures) == 2 or (failures and "differs" in failures[-1]):
            flex, flex_note = None, "FlexAttention failed its check: " + "; ".join(failures)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    def timed(fn):
        """The median time of fn() in ms over --repeats runs after 2 untimed ones."""
        for _ in range(2):
            fn()
        sync()
        times = []
        for _ in range(args.repeats):
            if args.device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                sync()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
        return sorted(times)[len(times) // 2]

    # The FlexAttention rows last: torch.compile's first calls take long, and a time limit
    # should cut those rather than the SDPA rows.
    for flex_pass in (False, True):
        for dtype_name in dtypes:
            dtype = getattr(torch, dtype_name)
            for L in Ls:
                for T in Ts:
                    if flex_pass and L == 1:
                        continue
                    qs, ks, v, alpha = inputs(torch, args.bh, T, args.d_head, L, dtype, args.device)
                    g = torch.randn_like(v)
                    forms = [("sdpa", lambda: F.scaled_dot_product_attention(qs[0], ks[0], v))] if L == 1 else [
                        ("concat sdpa", lambda: concat_hkt(F, torch, qs, ks, v, alpha)),
                        ("concat flex", (lambda: concat_hkt_flex(torch, flex, qs, ks, v, alpha)) if flex else None)]
                    for formulation, f in forms:
                        if (formulation == "concat flex") != flex_pass:
                            continue
                        row = {"framework": f"torch {torch.__version__}", "formulation": formulation, "dtype": dtype_name,
                               "T": T, "L": L, "bh": args.bh, "d_head": args.d_head}
                        if f is None:
                            print(json.dumps({**row, "note": flex_note}), flush=True)
                            continue
                        try:
                            forward = timed(f)
                            both = timed(lambda: f().backward(g))
                        except torch.cuda.OutOfMemoryError:
                            print(json.dumps({**row, "note": "out of memory"}), flush=True)
                            torch.cuda.empty_cache()
                            continue
                        except Exception as e:  # noqa: BLE001 - FlexAttention's compiler may refuse a shape: a note row
                            if formulation != "concat flex":
                                raise
                            print(json.dumps({**row, "note": f"{type(e).__name__}: {e}"[:300]}), flush=True)
                            continue
                        flops = args.bh * (sum(2.0 * ((T + 2**l - 1) >> l) ** 2 * args.d_head for l in range(L))
                                           + 2.0 * T * T * args.d_head)
                        print(json.dumps({**row, "forward_ms": forward, "backward_ms": both - forward,
                                          "forward_tflops": flops / (forward * 1e9)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
