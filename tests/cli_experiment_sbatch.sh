#!/bin/sh
# cli_experiment_sbatch.sh HKT: tools/experiment_array.sbatch as Slurm would run it, two
# array tasks (--array=3-4) on a tiny grid, then the merge it documents; the merged
# directory must hold every run of the grid. Prints "sbatch checks passed".
set -u
hkt="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
d="$(mktemp -d)"
trap 'rm -rf "$d"' EXIT
tiny="--set train.steps=4 --set train.warmup_steps=1 --set train.eval_every=2 --set train.checkpoint_every=2 \
  --set data.listops.train=32 --set data.listops.val=8 --set data.listops.test=8 --set data.max_len=16 \
  --set model.d_model=16 --set model.d_ff=32 --set model.n_layers=1 --set train.threads=1 --seeds 0,1"
for id in 3 4; do
  # shellcheck disable=SC2086
  SLURM_ARRAY_TASK_ID=$id SLURM_ARRAY_TASK_MIN=3 SLURM_ARRAY_TASK_COUNT=2 HKT="$hkt" \
    bash "$root/tools/experiment_array.sbatch" "$root/configs/listops-small.json" "$d/exp" $tiny >"$d/task$id.log" 2>&1 ||
    { echo "task $id failed:"; cat "$d/task$id.log"; exit 1; }
done
"$hkt" experiment --merge "$d"/exp/shard-* --out "$d/exp" --no-plots >"$d/merge.log" 2>&1 ||
  { echo "merge failed:"; cat "$d/merge.log"; exit 1; }
for run in mha/seed-0 hkt/seed-0 mha/seed-1 hkt/seed-1; do
  [ -f "$d/exp/$run/result.json" ] || { echo "$run missing after the merge"; exit 1; }
done
[ -d "$d/exp/shard-3/mha" ] && [ ! -d "$d/exp/shard-3/hkt" ] || { echo "task 3 did not train shard 0 only"; exit 1; }
[ -d "$d/exp/shard-4/hkt" ] && [ ! -d "$d/exp/shard-4/mha" ] || { echo "task 4 did not train shard 1 only"; exit 1; }
grep -q '"missing_runs": {}' "$d/exp/summary.json" || { echo "the merged summary misses runs"; exit 1; }
[ "$(grep -c '"variant": ' "$d/exp/summary.json")" -ge 6 ] || { echo "the merged summary lacks rows or runs"; exit 1; }
bash "$root/tools/experiment_array.sbatch" x y >/dev/null 2>&1 && { echo "ran outside an array task"; exit 1; }
echo "sbatch checks passed"
