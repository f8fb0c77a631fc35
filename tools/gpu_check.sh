#!/usr/bin/env bash
# gpu_check.sh: the CUDA backend's checks on a GPU machine, in one call (docs/cuda.md).
#
#   bash tools/gpu_check.sh               on the GPU machine: build for sm_90, run the
#                                         CUDA tests, the tensor-core product against its
#                                         model, the consistency harness (f64, f32),
#                                         compute-sanitizer memcheck, racecheck and
#                                         synccheck, the fused attention timings
#                                         (gpu_bench_attention.sh), then a 300-step
#                                         training run on the GPU against the same run
#                                         on the CPU, and one step of the paper's ListOps
#                                         model (MHA, HKT, HKT with bf16 attention; and in
#                                         PyTorch, bf16 autocast, when it is installed);
#                                         the tables last
#   bash tools/gpu_check.sh --emulate     the same steps with the EMULATE backend, on a
#                                         machine without a GPU (a dry run of the script)
#   bash tools/gpu_check.sh --build-only  the build alone (tools/gpu_bench_attention.sh)
#   bash tools/gpu_check.sh --fetch-deps  here, before the call: downloads the Debian
#                                         packages hkt builds with into .gpu-deps/ (about
#                                         14 MB, git-ignored), for a GPU machine that has
#                                         nvcc and CMake but not OpenBLAS, Catch2, CLI11,
#                                         nlohmann/json; carry .gpu-deps with the call
#
# Full logs and JSON go to $OUT (the device tool's folder) or ./gpu-check-out. The exit
# status is 0 only when every check passed. Budget: under 8 minutes on an H200 machine
# (16 cores): the build takes most of it.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mode=gpu
build_only=0
for arg in "$@"; do [ "$arg" = --build-only ] && build_only=1; done
case "${1:-}" in
  --fetch-deps)
    mkdir -p .gpu-deps
    (cd .gpu-deps && apt-get download catch2 nlohmann-json3-dev libcli11-dev libopenblas-dev libopenblas-pthread-dev \
      libopenblas0-pthread libgfortran5 zlib1g-dev) || { echo "gpu_check: apt-get download failed" >&2; exit 1; }
    du -sh .gpu-deps
    exit 0
    ;;
  --emulate) mode=emulate ;;
  --build-only) ;;
  "") ;;
  *) echo "gpu_check: unknown argument '$1' (expected --emulate or --fetch-deps)" >&2; exit 2 ;;
esac

out=${OUT:-$root/gpu-check-out}
mkdir -p "$out"
log=$out/gpu_check.log
: >"$log"
t_start=$(date +%s)
declare -a rows=()  # "check|result|detail" lines of the final table
failed=0
row() { rows+=("$1|$2|$3"); [ "$2" = ok ] || [ "$2" = n/a ] || failed=1; }
say() { echo "gpu_check: $*" | tee -a "$log"; }

# ---- 1. dependencies: carried Debian packages unpacked into a prefix, when missing here
cmake_extra=()
if [ -d .gpu-deps ] && ! [ -f /usr/include/cblas.h ] && ! ls /usr/include/*/openblas*/cblas.h >/dev/null 2>&1; then
  prefix=/tmp/hkt-deps
  mkdir -p "$prefix"
  for f in .gpu-deps/*.deb; do
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$f" "$prefix"
    else  # a .deb is an ar archive holding data.tar.*
      (cd /tmp && ar x "$root/$f" && tar -xf data.tar.* -C "$prefix" && rm -f data.tar.* control.tar.* debian-binary)
    fi
  done
  multiarch=$prefix/usr/lib/x86_64-linux-gnu
  # zlib's development link points at an absolute path of the build machine's version.
  if [ -L "$multiarch/libz.so" ] && ! [ -e "$multiarch/libz.so" ]; then
    sys_z=$(ls /lib/x86_64-linux-gnu/libz.so.1 /usr/lib/x86_64-linux-gnu/libz.so.1 2>/dev/null | head -1)
    [ -n "$sys_z" ] && ln -sf "$sys_z" "$multiarch/libz.so"
  fi
  cmake_extra=(-DCMAKE_PREFIX_PATH="$prefix/usr"
               -DCMAKE_LIBRARY_PATH="$multiarch/openblas-pthread;$multiarch"
               -DCMAKE_INCLUDE_PATH="$prefix/usr/include/x86_64-linux-gnu;$prefix/usr/include")
  export LD_LIBRARY_PATH="$multiarch/openblas-pthread:$multiarch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  say "dependencies unpacked from .gpu-deps into $prefix"
fi

# ---- 2. configure and build (sm_90: H100/H200; -Werror for the CUDA sources)
if [ "$mode" = gpu ]; then
  build=build-gpu
  cuda_args=(-DHKT_CUDA=ON -DHKT_CUDA_ARCHITECTURES=90)
  command -v nvidia-smi >/dev/null && nvidia-smi -L | tee -a "$log"
else
  build=build-gpu-emulate
  cuda_args=(-DHKT_CUDA=EMULATE)
fi
t0=$(date +%s)
if cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "${cuda_args[@]}" "${cmake_extra[@]}" >>"$log" 2>&1 &&
   cmake --build "$build" -j"$(nproc)" >>"$log" 2>&1; then
  row build ok "$build, $(( $(date +%s) - t0 )) s"
else
  row build FAILED "see $log"
  tail -30 "$log"
  printf '%s\n' "${rows[@]}"
  exit 1
fi
hkt=$build/tools/hkt
"$hkt" devices | tee -a "$log"
[ $build_only = 1 ] && exit 0

# ctest_row NAME REGEX LOG [all]: runs the tests matching REGEX into LOG and adds a row;
# with "all", on a GPU a skipped test fails the row (nothing there may be skipped).
ctest_row() {
  local t0 result summary skipped
  t0=$(date +%s)
  if ctest --test-dir "$build" -R "$2" --no-tests=error --output-on-failure >"$3" 2>&1; then result=ok; else result=FAILED; fi
  summary=$(grep -E "tests passed|tests failed" "$3" | tail -1)
  skipped=$(grep -c "\*\*\*Skipped" "$3")
  [ "${4:-}" = all ] && [ "$mode" = gpu ] && [ "$skipped" -gt 0 ] && result=FAILED
  row "$1" "$result" "$summary; $skipped skipped; $(( $(date +%s) - t0 )) s"
}

# ---- 3. the CUDA tests (Catch2 through ctest): allocator, harness, dropout, training
ctest_row "ctest cuda" '^(cuda|caching allocator)' "$out/ctest_cuda.log"

# ---- 3b. the warp tensor-core product (kernels/backend/mma.h): the mma.sync instruction
# and the emulator's model of it against exact products, on the device (tests/test_mma.cpp)
ctest_row "mma m16n8k16" '^mma' "$out/ctest_mma.log" all

# ---- 4. the consistency harness, every op forward and backward, CUDA vs CPU
for dtype in f64 f32; do
  "$hkt" gradcheck --device cuda --dtype "$dtype" >"$out/consistency_$dtype.txt" 2>&1
  status=$?
  "$hkt" gradcheck --device cuda --dtype "$dtype" --json >"$out/consistency_$dtype.json" 2>/dev/null
  detail=$(python3 - "$out/consistency_$dtype.json" <<'EOF'
import json, sys
try:
    rows = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"no JSON ({e})"); sys.exit()
run = [r for r in rows if not r["skipped"]]
worst = max(run, key=lambda r: max(r["forward_err"], r["backward_err"]) / r["bound"])
ratio = max(worst["forward_err"], worst["backward_err"]) / worst["bound"]
print(f'{sum(r["passed"] for r in run)}/{len(run)} rows pass, {len(rows) - len(run)} skipped; '
      f'worst {worst["op"]} at {ratio:.2g} of its bound')
EOF
)
  [ $status -eq 0 ] && row "harness $dtype" ok "$detail" || row "harness $dtype" FAILED "$detail"
done

# ---- 4b. compute-sanitizer memcheck over a few ops (catches out-of-bounds reads too,
# which the harness's guard bytes cannot); reported n/a where the runtime has no
# sanitizer support (gVisor machines)
if [ "$mode" = gpu ] && command -v compute-sanitizer >/dev/null; then
  bad=0; ran=0
  for op in layer_norm softmax embedding causal_conv1d hkt_attention_fused; do
    timeout 120 compute-sanitizer --tool memcheck "$hkt" gradcheck --device cuda --op "$op" >"$out/memcheck_$op.txt" 2>&1
    if grep -q "ERROR SUMMARY: 0 errors" "$out/memcheck_$op.txt"; then ran=$((ran + 1))
    elif grep -q "ERROR SUMMARY: [1-9]" "$out/memcheck_$op.txt"; then ran=$((ran + 1)); bad=$((bad + 1)); fi
  done
  if [ $ran -eq 0 ]; then row memcheck n/a "compute-sanitizer did not run here (see $out/memcheck_*.txt)"
  elif [ $bad -eq 0 ]; then row memcheck ok "$ran ops, 0 errors"
  else row memcheck FAILED "$bad of $ran ops report errors (see $out/memcheck_*.txt)"; fi
fi

# ---- 4c. compute-sanitizer racecheck (shared-memory races) and synccheck (barriers) on
# the fused attention kernels' harness cases (small: T <= 64)
if [ "$mode" = gpu ] && command -v compute-sanitizer >/dev/null; then
  for tool in racecheck synccheck; do
    timeout 150 compute-sanitizer --tool "$tool" "$hkt" gradcheck --device cuda --dtype f32 --op hkt_attention_fused \
      >"$out/${tool}_attention.txt" 2>&1
    if grep -q "ERROR SUMMARY: 0 errors\|RACECHECK SUMMARY: 0 hazards" "$out/${tool}_attention.txt"; then
      row "$tool" ok "hkt_attention_fused harness cases, 0 errors"
    elif grep -q "SUMMARY: [1-9]" "$out/${tool}_attention.txt"; then
      row "$tool" FAILED "$(grep "SUMMARY" "$out/${tool}_attention.txt" | head -1)"
    else
      row "$tool" n/a "compute-sanitizer did not run here (see $out/${tool}_attention.txt)"
    fi
  done
fi

# ---- 5. fused attention timings: v0, v1, PyTorch SDPA and concat HKT (the table of
# tools/gpu_bench_attention.sh), within the 8-minute budget, keeping 150 s for step 6
left=$(( 470 - 150 - ($(date +%s) - t_start) ))
[ $left -gt 240 ] && left=240
if [ $left -gt 60 ]; then
  BUDGET_S=$left bash tools/gpu_bench_attention.sh --no-build $([ "$mode" = emulate ] && echo --emulate) \
    >"$out/bench_attention.txt" 2>&1
  row "attention bench" ok "table below ($out/bench_attention.txt)"
else
  row "attention bench" n/a "no time left in the budget ($left s)"
fi

# ---- 6. training: 300 steps of the demo model on the GPU and on the CPU, same seed
train_args=(--config configs/listops-small.json --set train.steps=300 --set train.log_every=1 --set train.eval_every=100
            --set train.checkpoint_every=100 --set train.threads=0 --overwrite)
for device in cpu cuda; do
  t0=$(date +%s)
  if "$hkt" train "${train_args[@]}" --device "$device" --out "$out/train_$device" >"$out/train_$device.log" 2>&1; then
    say "train $device: $(( $(date +%s) - t0 )) s"
  else
    row "train $device" FAILED "$(tail -2 "$out/train_$device.log" | tr '\n' ' ')"
  fi
done
detail=$(python3 - "$out" <<'EOF'
import json, sys
out = sys.argv[1]
def losses(device):
    rows = [json.loads(l) for l in open(f"{out}/train_{device}/metrics.jsonl")]
    return [r["loss"] for r in rows if "loss" in r]
def result(device):
    return json.load(open(f"{out}/train_{device}/result.json"))
try:
    a, b = losses("cpu"), losses("cuda")
    rel = [abs(x - y) / abs(x) for x, y in zip(a, b)]
    first = max(rel[:10])
    rc, rg = result("cpu"), result("cuda")
    ok = len(a) == len(b) == 300 and first <= 1e-4
    print(("ok" if ok else "FAILED") + f"|first 10 steps max rel diff {first:.1e}, step 300 {rel[-1]:.1e}; "
          f"loss {a[-1]:.4f} (cpu) {b[-1]:.4f} (gpu); test acc {rc['test_accuracy']:.3f} / {rg['test_accuracy']:.3f}; "
          f"ms/step {rc['time_per_step_ms']:.1f} / {rg['time_per_step_ms']:.1f}; "
          f"gpu peak {rg['peak_cuda_tensor_bytes'] / 2**20:.1f} MiB")
except Exception as e:
    print(f"FAILED|could not compare the runs: {e}")
EOF
)
row "train gpu vs cpu" "${detail%%|*}" "${detail#*|}"

# ---- 7. one training step of the paper's ListOps model on the GPU (hkt bench step
# --device cuda, MHA and HKT in float32, HKT with model.attention_precision = bf16): time
# per step and peak device memory, if time is left
left=$(( 470 - ($(date +%s) - t_start) ))
if [ $left -gt 40 ]; then
  for variant in mha hkt hkt-bf16; do
    extra=(--set model.attention=${variant%-bf16})
    [ "$variant" = hkt-bf16 ] && extra+=(--set model.attention_precision=bf16)
    [ "$mode" = emulate ] && extra+=(--set data.max_len=64 --set train.batch_size=2)  # a dry run: tiny
    if line=$(timeout $(( left / 5 )) "$hkt" bench step --config configs/listops-paper.json --device cuda --repeats 5 \
        --warmup 2 "${extra[@]}" --json 2>"$out/bench_step_$variant.log"); then
      echo "$line" >"$out/bench_step_$variant.json"
      row "step $variant" ok "$(python3 -c 'import json, sys; r = json.loads(sys.argv[1]); print("T=%d B=%d: %.1f ms/step, peak %.0f MiB" % (r["T"], r["batch_size"], r["median_ms"], r["peak_cuda_mib"]))' "$line")"
    else
      row "step $variant" FAILED "see $out/bench_step_$variant.log"
    fi
    # The same model, weights and batch in PyTorch on the GPU (SDPA, or concat HKT), bf16
    # autocast: what a PyTorch user would train with. hkt exports them from a CPU step.
    [ "$variant" = hkt-bf16 ] && continue
    if [ "$mode" = emulate ] || ! python3 -c 'import torch, safetensors; assert torch.cuda.is_available()' 2>/dev/null; then
      row "torch step $variant" n/a "no PyTorch with CUDA here"
    elif ! timeout $(( left / 5 )) "$hkt" bench step --config configs/listops-paper.json --repeats 1 --warmup 0 \
        "${extra[@]}" --export "$out/step_export_$variant" >/dev/null 2>"$out/export_$variant.log"; then
      row "torch step $variant" FAILED "hkt could not export the model (see $out/export_$variant.log)"
    elif line=$(timeout $(( left / 5 )) python3 tools/bench_torch.py --export "$out/step_export_$variant" --device cuda \
        --autocast bf16 --repeats 5 --warmup 2 --json 2>"$out/torch_step_$variant.log"); then
      echo "$line" >"$out/torch_step_$variant.json"
      row "torch step $variant" ok "$(python3 -c 'import json, sys; r = json.loads(sys.argv[1]); print("T=%d B=%d bf16 autocast: %.1f ms/step, peak %.0f MiB" % (r["T"], r["batch_size"], r["median_ms"], r["peak_cuda_mib"]))' "$line")"
    else
      row "torch step $variant" FAILED "see $out/torch_step_$variant.log"
    fi
  done
else
  row "bench step" n/a "no time left in the budget ($left s)"
fi

# ---- the table (last, so that it ends the output)
[ -f "$out/bench_attention.txt" ] && tail -40 "$out/bench_attention.txt"
echo
printf '%-18s %-7s %s\n' check result detail
for r in "${rows[@]}"; do
  IFS='|' read -r name result rest <<<"$r"
  printf '%-18s %-7s %s\n' "$name" "$result" "$rest"
done
echo "gpu_check ($mode): $(( $(date +%s) - t_start )) s in all; logs in $out"
exit $failed
