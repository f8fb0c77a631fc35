#!/usr/bin/env bash
# gpu_bench_attention.sh: the fused attention timings of docs/benchmarks.md on a GPU
# machine: forward and forward+backward time of hkt's v0 (per-row), v1 (tiled) and v2
# (bf16 tensor cores) kernels, PyTorch's scaled_dot_product_attention (L = 1) and
# PyTorch's best HKT (the concat formulation, L = 3, through SDPA and FlexAttention;
# tools/bench_sdpa_torch.py), at T = 1024, 4096, 16384,
# batch x heads = 64, d_head = 64, float32 (PyTorch also in bf16, for reference). Each
# hkt point runs in its own process under a time limit (v0 is slow at large T; v0 at
# T = 16384 is left out); a point past its limit reads "timeout". JSON under $OUT, the
# table last. $BUDGET_S (default 400) caps the whole run.
#
#   bash tools/gpu_bench_attention.sh             on the GPU machine (builds first)
#   bash tools/gpu_bench_attention.sh --no-build  with build-gpu already built (gpu_check.sh)
#   bash tools/gpu_bench_attention.sh --emulate   a dry run at tiny sizes without a GPU
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${OUT:-$root/gpu-check-out}
mkdir -p "$out"
budget=${BUDGET_S:-400}
t_start=$(date +%s)
emulate=0; build=1
for arg in "$@"; do
  case "$arg" in
    --emulate) emulate=1 ;;
    --no-build) build=0 ;;
    *) echo "gpu_bench_attention: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done
if [ $emulate = 1 ]; then
  [ $build = 1 ] && { bash tools/gpu_check.sh --emulate --build-only || exit 1; }
  hkt=build-gpu-emulate/tools/hkt
  Ts=(32 64 128); shape=(--heads 2 --d-head 16); torch_args=(--T 32,64,128 --bh 2 --d-head 16 --device cpu --repeats 2)
else
  [ $build = 1 ] && { bash tools/gpu_check.sh --build-only || exit 1; }
  hkt=build-gpu/tools/hkt
  Ts=(1024 4096 16384); shape=(--heads 64 --d-head 64); torch_args=(--T 1024,4096,16384 --bh 64 --d-head 64)
fi
: >"$out/bench_attention.jsonl"
left() { echo $(( budget - ($(date +%s) - t_start) )); }

# hkt: one process per (implementation, T), L = 1 and 3 alternating inside it.
for T in "${Ts[@]}"; do
  for impl in fused fused-v2 fused-v0; do
    [ "$impl" = fused-v0 ] && [ "$T" = "${Ts[2]}" ] && continue  # v0 at the largest T: minutes
    limit=$(( $(left) < 120 ? $(left) : 120 ))
    if [ "$limit" -le 5 ]; then echo "{\"impl\": \"$impl\", \"T\": $T, \"note\": \"no time left\"}" >>"$out/bench_attention.jsonl"; continue; fi
    if timeout "$limit" "$hkt" bench attention --device cuda --L 1,3 --T "$T" "${shape[@]}" --impl "$impl" \
         --repeats 3 --json >"$out/bench_${impl}_$T.json" 2>"$out/bench_${impl}_$T.err"; then
      python3 -c 'import json,sys; [print(json.dumps(r)) for r in json.load(open(sys.argv[1]))]' \
        "$out/bench_${impl}_$T.json" >>"$out/bench_attention.jsonl"
    else
      echo "{\"impl\": \"$impl\", \"T\": $T, \"note\": \"timeout after $limit s or failed (bench_${impl}_$T.err)\"}" \
        >>"$out/bench_attention.jsonl"
    fi
  done
done
# PyTorch: SDPA (L = 1) and concat HKT (L = 3), fp32 then bf16.
limit=$(( $(left) < 180 ? $(left) : 180 ))
if [ "$limit" -gt 10 ] && python3 -c 'import torch' 2>/dev/null; then
  timeout "$limit" python3 tools/bench_sdpa_torch.py "${torch_args[@]}" --L 1,3 >>"$out/bench_attention.jsonl" \
    2>"$out/bench_torch.err" || echo '{"impl": "torch", "note": "failed or timeout (bench_torch.err)"}' >>"$out/bench_attention.jsonl"
else
  echo '{"impl": "torch", "note": "PyTorch not installed or no time left"}' >>"$out/bench_attention.jsonl"
fi

python3 - "$out/bench_attention.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{'implementation':26} {'T':>6} {'L':>2} {'fwd_ms':>9} {'fwd+bwd_ms':>11} {'fwd_TF/s':>9}  note")
def name(r):
    if "framework" in r:
        return f"torch {r.get('formulation', '')} {r['dtype']}"
    return {"fused": "hkt v1 (tiled) f32", "fused-v0": "hkt v0 (per row) f32",
            "fused-v2": "hkt v2 (bf16 MMA)"}.get(r.get("impl"), r.get("impl", "?"))
for r in rows:
    if "forward_ms" not in r:
        print(f"{name(r):26} {r.get('T', ''):>6} {r.get('L', ''):>2} {'':>9} {'':>11} {'':>9}  {r.get('note', '')}")
        continue
    tf = r.get("forward_tflops", 0.0)
    print(f"{name(r):26} {r['T']:>6} {r['L']:>2} {r['forward_ms']:>9.3f} {r['forward_ms'] + r['backward_ms']:>11.3f} "
          f"{tf:>9.2f}  {r.get('note', '')}")
PY
