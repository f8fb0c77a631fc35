#!/usr/bin/env python3
"""bench_sdpa_torch.py: PyTorch's scaled_dot_product_attention (flash / memory-efficient
kernels) on the GPU, the reference for hkt's fused MHA (L = 1) in docs/benchmarks.md.

Times forward and forward+backward with CUDA events (median of --repeats after warm-up),
on random inputs [1, heads, T, d_head] (batch x heads = --bh), fp32 and bf16, and
prints one JSON object per line: {"framework", "dtype", "T", "bh", "d_head",
"forward_ms", "backward_ms", "forward_tflops"} (FLOPs counted as hkt counts them:
4 T^2 d_h per head for QK^T and PV, causality not discounted).
Exit 2 when no CUDA device is available.
"""
import argparse
import json
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--T", default="1024,4096,16384")
    parser.add_argument("--bh", type=int, default=64)
    parser.add_argument("--d-head", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    args = parser.parse_args()
    import torch
    import torch.nn.functional as F

    if not torch.cuda.is_available():
        print("bench_sdpa_torch: no CUDA device", file=sys.stderr)
        return 2
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        for T in [int(t) for t in args.T.split(",")]:
            shape = (1, args.bh, T, args.d_head)
            q, k, v = (torch.randn(shape, device="cuda", dtype=dtype, requires_grad=True) for _ in range(3))
            g = torch.randn(shape, device="cuda", dtype=dtype)

            def timed(fn):
                for _ in range(3):
                    fn()
                times = []
                for _ in range(args.repeats):
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    fn()
                    end.record()
                    torch.cuda.synchronize()
                    times.append(start.elapsed_time(end))
                return sorted(times)[len(times) // 2]

            forward = timed(lambda: F.scaled_dot_product_attention(q, k, v))
            both = timed(lambda: F.scaled_dot_product_attention(q, k, v).backward(g))
            flops = 4.0 * args.bh * T * T * args.d_head
            print(json.dumps({"framework": f"torch {torch.__version__} sdpa", "dtype": dtype_name, "T": T, "bh": args.bh,
                              "d_head": args.d_head, "forward_ms": forward, "backward_ms": both - forward,
                              "forward_tflops": flops / (forward * 1e9)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
