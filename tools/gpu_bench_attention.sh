#!/usr/bin/env bash
# gpu_bench_attention.sh: the fused attention measurements of docs/benchmarks.md on a GPU
# machine, in one call: hkt's fused HKT (L = 3) and MHA (L = 1) against the unfused
# composite op (cuBLAS + softmax) at T = 1024, 4096, 16384, batch x heads = 64,
# d_head = 64, float32; the memory check at T = 65536 (forward); PyTorch's
# scaled_dot_product_attention in float32 and bf16 for MHA. Builds with
# tools/gpu_check.sh --build-only. Each point has a time limit (the v0 kernels are
# slow at large T); a point past it is reported as "timeout". JSON under $OUT, the
# table last.
#
#   bash tools/gpu_bench_attention.sh             on the GPU machine
#   bash tools/gpu_bench_attention.sh --emulate   a dry run at tiny sizes without a GPU
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${OUT:-$root/gpu-check-out}
mkdir -p "$out"
if [ "${1:-}" = --emulate ]; then
  bash tools/gpu_check.sh --emulate --build-only || exit 1
  hkt=build-gpu-emulate/tools/hkt
  sizes=(--T 32,64 --heads 2 --d-head 16); big=(--T 128 --heads 1 --d-head 16); huge=(--T 256 --heads 1 --d-head 16)
else
  bash tools/gpu_check.sh --build-only || exit 1
  hkt=build-gpu/tools/hkt
  sizes=(--T 1024,4096 --heads 64 --d-head 64); big=(--T 16384 --heads 64 --d-head 64); huge=(--T 65536 --heads 64 --d-head 64)
fi
common=(bench attention --device cuda --L 1,3 --json)
timeout 300 "$hkt" "${common[@]}" "${sizes[@]}" --impl fused,composite --repeats 3 >"$out/bench_small.json" 2>"$out/bench_small.err" ||
  echo '[{"note": "failed or timeout (bench_small.err)"}]' >"$out/bench_small.json"
timeout 240 "$hkt" "${common[@]}" "${big[@]}" --impl fused,composite --repeats 1 >"$out/bench_big.json" 2>"$out/bench_big.err" ||
  echo '[{"note": "failed or timeout (bench_big.err)"}]' >"$out/bench_big.json"
timeout 120 "$hkt" bench attention --device cuda --L 3 --json "${huge[@]}" --impl fused --repeats 1 --forward-only \
  >"$out/bench_huge.json" 2>"$out/bench_huge.err" || echo '[{"note": "failed or timeout (bench_huge.err)"}]' >"$out/bench_huge.json"
if [ "${1:-}" != --emulate ]; then
  timeout 180 python3 tools/bench_sdpa_torch.py --T 1024,4096,16384 --bh 64 --d-head 64 >"$out/bench_sdpa.jsonl" 2>"$out/bench_sdpa.err"
fi
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = []
for name in ("bench_small.json", "bench_big.json", "bench_huge.json"):
    try:
        rows += json.load(open(os.path.join(out, name)))
    except Exception as e:
        rows.append({"note": f"{name}: {e}"})
print(f"{'impl':10} {'T':>6} {'L':>2} {'fwd_ms':>9} {'bwd_ms':>9} {'fwd_TF/s':>9} {'time_x':>7} {'peak_MiB':>9}  note")
for r in rows:
    if "T" not in r:
        print("  ", r.get("note")); continue
    print(f"{r['impl']:10} {r['T']:>6} {r['L']:>2} {r['forward_ms']:>9.2f} {r['backward_ms']:>9.2f} "
          f"{r.get('forward_tflops', 0):>9.3f} {r['time_ratio']:>7.3f} {r['peak_mib']:>9.1f}  {r.get('note', '')}")
path = os.path.join(out, "bench_sdpa.jsonl")
if os.path.exists(path):
    for line in open(path):
        r = json.loads(line)
        print(f"{'sdpa ' + r['dtype']:16} T {r['T']:>6}: fwd {r['forward_ms']:.2f} ms, bwd {r['backward_ms']:.2f} ms, "
              f"{r['forward_tflops']:.1f} TF/s")
PY
