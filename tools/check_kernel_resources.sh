#!/usr/bin/env bash
# check_kernel_resources.sh: the static resources ptxas gives every fused attention
# kernel (kernels/backend/attention_v0.cpp, attention_v1.cpp, attention_v2.cpp,
# attention_v2_backward.cpp), the warp tensor-core
# product's check kernel (mma_gemm.cpp) and the kernels of the row ops and reductions
# (softmax.cpp, layer_norm.cpp, reduce.cpp) for one architecture:
# registers per thread, spill stores/loads, stack frame and static shared memory, as a
# table. Exits 1 when any of them spills registers to local memory (CI runs this through
# ctest in the CUDA build: a spill in these kernels is a regression). Needs nvcc only,
# no GPU.
#
# Usage: bash tools/check_kernel_resources.sh [ARCH]      (default sm_90)
# The dynamic shared memory of the v1 kernels depends on d_h and L at run time; their
# sizes are in kernels/attention_dev/NOTES.md.
set -euo pipefail
arch="${1:-sm_90}"
# Only a real architecture makes nvcc run ptxas (compute_XX stops at PTX: nothing to read).
[[ "$arch" =~ ^sm_[0-9]+a?$ ]] || { echo "check_kernel_resources: ARCH must be sm_NN (e.g. sm_90), got '$arch'" >&2; exit 2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
nvcc_bin="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
[ -x "$nvcc_bin" ] || { echo "check_kernel_resources: nvcc not found" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

spilled=0
v1_kernels=0
v2_kernels=0
mma_kernels=0
row_kernels=0
printf '%-64s %5s %7s %7s %6s %7s\n' kernel regs spill_st spill_ld stack smem_st
for src in attention_v0.cpp attention_v1.cpp attention_v2.cpp attention_v2_backward.cpp mma_gemm.cpp softmax.cpp layer_norm.cpp reduce.cpp; do
  "$nvcc_bin" -std=c++20 -x cu -arch="$arch" --extended-lambda -I"$root/kernels" -I"$root/engine" \
    -I"$root/kernels/backend" -c "$root/kernels/backend/$src" -o "$work/out.o" -Xptxas -v >"$work/log" 2>&1 ||
    { cat "$work/log" >&2; exit 2; }
  # ptxas prints, per entry: "Function properties for NAME", "N bytes stack frame, S bytes
  # spill stores, L bytes spill loads", "Used R registers, ... [, M bytes smem]".
  while IFS=$'\t' read -r name stack st ld regs smem; do
    pretty="$(echo "$name" | c++filt | sed -e 's/hkt::cuda::detail:://g' -e 's/void //' -e 's/(.*//')"
    case "$pretty" in
      *WarpRows*) pretty="$src WarpRows<$(echo "$pretty" | grep -o '[a-z_]*_impl' | head -1)<$(echo "$pretty" | grep -o 'float\|double' | head -1)>>" ;;
      *block_kernel*) pretty="${pretty#block_kernel<}"; pretty="${pretty%>}" ;;
      *for_each_kernel*) pretty="$src $(echo "$pretty" | grep -o '[a-z_]*_impl' | head -1)<$(echo "$pretty" | grep -o 'float\|double' | head -1)>" ;;
    esac
    printf '%-64s %5s %7s %7s %6s %7s\n' "${pretty:0:64}" "$regs" "$st" "$ld" "$stack" "$smem"
    [ "$st" -eq 0 ] && [ "$ld" -eq 0 ] || spilled=1
    case "$pretty" in
      v1::*) v1_kernels=$((v1_kernels + 1)) ;;
      v2::*) v2_kernels=$((v2_kernels + 1)) ;;
      *MmaGemmKernel*) mma_kernels=$((mma_kernels + 1)) ;;
      *WarpRows* | *ColumnSumsPass1* | *SquaresOfChunks* | *SumOfPartials* | *CrossEntropyLoss*)
        row_kernels=$((row_kernels + 1)) ;;
    esac
  done < <(awk '
    /Function properties for/ { name = $NF; next }
    /bytes stack frame/ { stack = $1; st = $5; ld = $9; next }
    /Used [0-9]+ registers/ {
      regs = $5; smem = 0
      if (match($0, /[0-9]+ bytes smem/)) smem = substr($0, RSTART, RLENGTH - 11)
      if (name != "") printf "%s\t%s\t%s\t%s\t%s\t%s\n", name, stack, st, ld, regs, smem
      name = ""
    }' "$work/log")
done
# v1 has three block kernels in two dtypes: fewer parsed means the output was not read.
if [ "$v1_kernels" -ne 6 ]; then
  echo "check_kernel_resources: read $v1_kernels v1 kernels from ptxas's output for $arch, expected 6" >&2
  exit 2
fi
# v2 has three (the bf16 forward, BackwardQ and BackwardKV).
if [ "$v2_kernels" -ne 3 ]; then
  echo "check_kernel_resources: read $v2_kernels v2 kernels from ptxas's output for $arch, expected 3" >&2
  exit 2
fi
# mma_gemm.cpp has two: the instruction and the model.
if [ "$mma_kernels" -ne 2 ]; then
  echo "check_kernel_resources: read $mma_kernels MmaGemmKernel entries from ptxas's output for $arch, expected 2" >&2
  exit 2
fi
# The row ops' block kernels: four warp-per-row kernels (softmax and layer_norm, forward
# and backward), the column sums' first pass, the squares' chunks and the loss, in two
# dtypes each, and the one sum of partials.
if [ "$row_kernels" -ne 15 ]; then
  echo "check_kernel_resources: read $row_kernels row-op block kernels from ptxas's output for $arch, expected 15" >&2
  exit 2
fi
if [ "$spilled" -ne 0 ]; then
  echo "check_kernel_resources: a kernel spills registers for $arch (spill_st/spill_ld above)" >&2
  exit 1
fi
echo "check_kernel_resources: no kernel spills for $arch"
