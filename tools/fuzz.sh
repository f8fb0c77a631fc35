#!/usr/bin/env bash
# fuzz.sh [SECONDS]: builds the libFuzzer targets of the data readers with clang
# (AddressSanitizer + UndefinedBehaviorSanitizer) in build-fuzz/ and runs each for
# SECONDS (default 60), seeded with the reader's fixtures from tests/data/. Prints, per
# target, the executions run and whether it found a crash; exits 1 if any did.
set -euo pipefail
seconds="${1:-60}"
cd "$(dirname "$0")/.."
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ is needed (apt-get install clang)" >&2; exit 2; }
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DHKT_FUZZ=ON -DHKT_CUDA=OFF -DBUILD_TESTING=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_targets >build-fuzz.log 2>&1 ||
  { tail -n 30 build-fuzz.log; echo "fuzz.sh: the build failed (build-fuzz.log)" >&2; exit 2; }
status=0
for target in build-fuzz/tests/fuzz/fuzz_*; do
  [ -x "$target" ] || continue
  name="$(basename "$target")"             # fuzz_listops -> seeds from tests/data/listops
  seeds="tests/data/${name#fuzz_}"
  [ -d "$seeds" ] || seeds="tests/data/images"   # cifar10 and idx share the image fixtures
  corpus="build-fuzz/corpus/$name"
  mkdir -p "$corpus"
  [ -d "$seeds" ] && find "$seeds" -type f -size -64k -exec cp {} "$corpus/" \;
  log="build-fuzz/$name.log"
  if "$target" -max_total_time="$seconds" -rss_limit_mb=4096 "$corpus" >"$log" 2>&1; then
    result="no crash"
  else
    result="CRASH (see $log)"
    status=1
  fi
  runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | grep -Eo '[0-9]+' || echo "?")
  printf '%-16s %10s executions in %ss: %s\n' "$name" "$runs" "$seconds" "$result"
done
exit $status
