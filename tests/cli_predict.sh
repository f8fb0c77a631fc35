#!/bin/sh
# cli_predict.sh HKT: `hkt predict` on a tiny trained run. Trailing padding (token 0) is
# masked, so [3, 1, 4] and [3, 1, 4, 0, 0] give the same logits; a 0 inside a sequence,
# an all-padding item and a sequence over max_len are refused naming the item. Prints
# "predict checks passed" when every check held.
set -u
hkt="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
d="$(mktemp -d)"
trap 'rm -rf "$d"' EXIT
"$hkt" train --config "$root/configs/listops-small.json" --set train.steps=12 --set train.warmup_steps=2 \
  --set train.eval_every=6 --set data.listops.train=32 --set data.listops.val=8 --set data.listops.test=8 \
  --set data.max_len=16 --set model.d_model=16 --set model.d_ff=32 --set model.n_layers=1 --set train.threads=1 \
  --out "$d/run" >/dev/null 2>&1 || { echo "training failed"; exit 1; }
predict() { "$hkt" predict --checkpoint "$d/run/best.safetensors" --config "$d/run/config.json" --input "$d/in.json" --output "$d/out_$1.json" 2>&1; }
echo '[[3, 1, 4]]' >"$d/in.json" && predict plain >/dev/null || { echo "predict failed"; exit 1; }
echo '[[3, 1, 4, 0, 0]]' >"$d/in.json" && predict padded >/dev/null || { echo "predict with padding failed"; exit 1; }
cmp -s "$d/out_plain.json" "$d/out_padded.json" || { echo "trailing padding changed the logits"; exit 1; }
expect() {  # expect INPUT MESSAGE: predict refuses INPUT with MESSAGE and exit 2
  echo "$1" >"$d/in.json"
  out="$(predict bad)"; status=$?
  [ $status -eq 2 ] && echo "$out" | grep -qF "$2" || { echo "for $1: exit $status, '$out' (expected '$2')"; exit 1; }
}
expect '[[3, 1, 4], [3, 0, 4]]' "item 1 token 1 is 0, the padding token, inside the sequence"
expect '[[0, 0]]' "item 0 holds only padding (token 0)"
expect '[[3, 1, 4], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]]' "item 1 has 17 tokens, more than the model's max_len 16"
echo "predict checks passed"
