#!/usr/bin/env bash
# check_format.sh: fails, listing the files, when a C++ or CUDA source of the repository
# differs from what clang-format makes of it under .clang-format (run from anywhere).
# Exit status: 0 all formatted, 1 some file is not, 77 clang-format is not installed
# (the test that runs this reports itself skipped; tools/setup.sh installs it).
# To format the tree: clang-format -i $(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh')
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check_format: clang-format is not installed" >&2; exit 77; }
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh')
else
  mapfile -t files < <(find engine kernels models datasets tests tools \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) | sort)
fi
bad=()
for f in "${files[@]}"; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "check_format: ${#bad[@]} of ${#files[@]} files differ from clang-format's output (.clang-format):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "check_format: run  clang-format -i FILE...  on them" >&2
  exit 1
fi
echo "check_format: ${#files[@]} files formatted"
