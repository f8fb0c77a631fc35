#!/usr/bin/env bash
# prove_paper_configs.sh: runs every "paper" config end to end (data, both models,
# checkpoint selection, test, summary, plots) on the real data available here, with a
# budget cut to a few steps, to show that the path works before anyone spends GPU hours
# on it. The accuracies it prints mean nothing (a few steps; for sequential CIFAR-10 the
# training images are the 200 test images themselves, see below).
#
# Usage: bash tools/prove_paper_configs.sh [OUT_DIR]   (default runs/paper-proof)
# Needs: build/tools/hkt; the real data in $HKT_DATA_DIR (default ../shared/data).
#   listops-paper        generated ListOps-512 (a few examples per split)
#   fashion-mnist-paper  Debian's dataset-fashion-mnist (limits as above)
#   imdb-paper           the aclImdb subset of ../shared/data/imdb instead of a full aclImdb
#   cifar10-paper        a cifar-10-batches-bin folder made in OUT_DIR from the 200 real
#                        CIFAR-10 test images (data_batch_1..5: 40 images each, the last 40
#                        as validation; test_batch: all 200), and the 200-image file as the
#                        extra test set. Only the code path is proven: train and test share
#                        images, so its accuracies are not results.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/paper-proof}"
data="${HKT_DATA_DIR:-../shared/data}"
hkt=./build/tools/hkt
[ -x "$hkt" ] || { echo "prove_paper_configs.sh: build first (cmake --build build)" >&2; exit 2; }
mkdir -p "$out"

short=(--seeds 0 --set train.steps=6 --set train.warmup_steps=2 --set train.eval_every=3 --set train.log_every=3
       --set train.checkpoint_every=3 --set train.batch_size=8 --set train.threads=2)

# The released 2018 test file (10,000 examples) is left out here: evaluating it with the
# paper-size model costs most of this script's time on 2 cores, and the cpu config's runs
# already evaluate it (docs/results/listops-cpu).
"$hkt" experiment --config configs/listops-paper.json --out "$out/listops-paper" "${short[@]}" \
  --set data.listops.train=64 --set data.listops.val=32 --set data.listops.test=32 --set data.listops.extra_test_release='""'
"$hkt" experiment --config configs/fashion-mnist-paper.json --out "$out/fashion-mnist-paper" "${short[@]}" \
  --set data.limit_train=64 --set data.limit_val=32 --set data.limit_test=32
"$hkt" experiment --config configs/imdb-paper.json --out "$out/imdb-paper" "${short[@]}" \
  --set "data.imdb.dir=$data/imdb/aclImdb_subset" --set data.limit_test=64   # the first 64: one class only

# sequential CIFAR-10: a folder in the official layout made from the 200 real images.
ic01="$data/cifar10/mlperf_tiny_ic01/ic01_200.cifar10-binary.bin"
folder="$out/cifar-10-batches-bin"
mkdir -p "$folder"
for i in 1 2 3 4 5; do
  dd if="$ic01" of="$folder/data_batch_$i.bin" bs=3073 skip=$(( (i - 1) * 40 )) count=40 status=none
done
cp "$ic01" "$folder/test_batch.bin"
"$hkt" experiment --config configs/cifar10-paper.json --out "$out/cifar10-paper" "${short[@]}" \
  --set "data.cifar10.dir=$folder" --set data.cifar10.val_size=40 --set "data.cifar10.test_file=$ic01"
echo "prove_paper_configs.sh: every paper config ran end to end; summaries in $out/*/summary.md"
