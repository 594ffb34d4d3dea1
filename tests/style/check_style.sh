#!/usr/bin/env bash
# check_style.sh: the house rules a machine can check (STYLE.md 1, 4, 19, 21; DESIGN.md 5).
#   - every C file is formatted by the committed .clang-format
#   - no exit()/abort() below main (src/apps/ only)
#   - no MPI_COMM_WORLD outside src/apps/ and src/orch/
#   - nn/ and model/ include no MPI, HDF5 or libconfig header
#   - every .c file opens with a comment paragraph
# Prints each violation and exits 1 if there is any.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
fail=0
files=$(find src include tests -name '*.[ch]' | sort)

if command -v clang-format >/dev/null; then
  for f in $files; do
    if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
      echo "format: $f differs from .clang-format (run: clang-format -i $f)"; fail=1
    fi
  done
else
  echo "note: clang-format not installed; formatting not checked"
fi

hits=$(grep -rnE '\b(exit|abort)\s*\(' src --include='*.c' | grep -v '^src/apps/' | grep -v '_exit(')
[ -n "$hits" ] && { echo "exit()/abort() below main:"; echo "$hits"; fail=1; }

hits=$(grep -rn 'MPI_COMM_WORLD' src | grep -vE '^src/(apps|orch)/')
[ -n "$hits" ] && { echo "MPI_COMM_WORLD outside apps/ and orch/:"; echo "$hits"; fail=1; }

hits=$(grep -rnE '#include\s*[<"](mpi|hdf5|H5[A-Za-z]*|libconfig)\.h' src/nn src/model 2>/dev/null)
[ -n "$hits" ] && { echo "nn/ or model/ includes MPI, HDF5 or libconfig:"; echo "$hits"; fail=1; }

for f in $(find src -name '*.c'); do
  head -1 "$f" | grep -q '^/\*' || { echo "no opening paragraph: $f"; fail=1; }
done

if [ "$fail" = 0 ]; then echo "style: all checks passed"; fi
exit "$fail"
