#!/usr/bin/env bash
# check_style.sh: the house rules a machine can check
# (docs/conventions.md 1, 4, 19, 21; docs/architecture.md 5).
#   - every C file is formatted by the committed .clang-format
#   - no exit()/abort() below main (src/apps/ only)
#   - no MPI_COMM_WORLD outside src/apps/ and src/orch/
#   - nn/ and model/ include no MPI, HDF5 or libconfig header
#   - every .c file opens with a comment paragraph
#   - every repository document cited in the code and docs exists (see cited_docs below)
#   - no comment describes a future or a ticket (see future_comments below)
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

# Cited documents. A name counts as a repository document when its file name is in capitals
# (the convention for docs beside code, e.g. the benchmark logs in tests/bench/) or its path
# starts with docs/, tests/ or analysis/; lower-case names elsewhere are run outputs in example
# commands (a sweep's report) and are not checked. A citation resolves against the repository
# root or the citing file's folder, and must stay inside the repository. A Markdown link's text
# is not a citation; its target is, and a link to any .md file resolves against the linking
# file's folder, as a Markdown viewer resolves it.
cited_docs() {
  local scan=(src include tests jobs configs analysis docs CMakeLists.txt README.md)
  local f hit line tok cand ok
  for f in $(find "${scan[@]}" -type f \( -name '*.[ch]' -o -name '*.py' -o -name '*.sh' \
      -o -name '*.cfg' -o -name '*.md' -o -name '*.txt' -o -name '*.csv' -o -name '*.sbatch' \
      -o -name '*.cmake' \) 2>/dev/null | sort); do
    while IFS= read -r hit; do
      line=${hit%%:*}; tok=${hit#*:}
      case "$tok" in
        docs/* | tests/* | analysis/* | */docs/* | */tests/* | */analysis/*) ;;
        *) [[ "$(basename -- "$tok")" =~ ^[A-Z0-9_-]+\.md$ ]] || continue ;;
      esac
      ok=0
      for cand in "$tok" "$(dirname -- "$f")/$tok"; do
        cand=$(realpath -m -- "$cand")
        if [[ "$cand" == "$root"/* ]] && [ -f "$cand" ]; then ok=1; break; fi
      done
      [ "$ok" = 1 ] || echo "$f:$line: cites $tok, which is not in the repository"
    done < <(sed -E 's/\[[^]]*\]\(/](/g' -- "$f" | grep -noE '[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md\b')
    # In Markdown, every link to a .md file is checked, whatever its name.
    case "$f" in *.md) ;; *) continue ;; esac
    while IFS= read -r hit; do
      line=${hit%%:*}; tok=${hit#*:](}
      case "$tok" in http://* | https://*) continue ;; esac
      cand=$(realpath -m -- "$(dirname -- "$f")/$tok")
      [[ "$cand" == "$root"/* ]] && [ -f "$cand" ] ||
        echo "$f:$line: links $tok, which is not in the repository"
    done < <(grep -noE '\]\([^)#[:space:]]+\.md' -- "$f")
  done
}
hits=$(cited_docs)
[ -n "$hits" ] && { echo "cited documents that do not exist:"; echo "$hits"; fail=1; }

# Comments that describe a future or a ticket: the code says what is true now; plans belong in
# the tracker. Comment text is extracted first (C block and line comments outside string
# literals; # comments and docstrings of scripts), so messages and data are not matched.
comment_lines() {
  perl -e '
    for my $f (@ARGV) {
      open(my $h, "<", $f) or next; local $/; my $s = <$h>; close $h;
      my ($line, $c) = (1, $f =~ /\.[ch]$/);
      my @tok = $c
        ? (qr{/\*.*?\*/}s, qr{//[^\n]*}, qr{"(?:\\.|[^"\\\n])*"|\x27(?:\\.|[^\x27\\\n])*\x27})
        : (qr{"""(?:.*?)"""|\x27\x27\x27(?:.*?)\x27\x27\x27}s, qr{(?<![^\s])#[^\n]*},
           qr{"(?:\\.|[^"\\\n])*"|\x27(?:\\.|[^\x27\\\n])*\x27});
      while ($s =~ /\G(?:($tok[0])|($tok[1])|$tok[2]|([^\n])|\n)/gc) {
        my $m = $&;
        if (defined $1 || defined $2) {
          my $l = $line;
          print "$f:", $l++, ":$_\n" for split /\n/, $m, -1;
        }
        $line += ($m =~ tr/\n//);
      }
    }' -- "$@"
}
# Legitimate uses, as "path|text the line contains" (keep this list short).
# Each is about the running program (what a plan predicts, what a later step of a run does or
# which groups a loop has not reached), not about the code's own future.
future_allow=(
  "include/safecl/plan.h|what a trial will cost"
  "src/orch/coord_setup.c|the runner will name the file"
  "src/orch/coordinator.h|groups not yet sent EXIT"
)
future_comments() {
  local files
  files=$(find src include tests jobs configs -type f \( -name '*.[ch]' -o -name '*.py' \
    -o -name '*.sh' -o -name '*.cfg' -o -name '*.sbatch' -o -name 'CMakeLists.txt' \) | sort)
  # shellcheck disable=SC2086
  comment_lines $files CMakeLists.txt |
    grep -E ':[0-9]+:.*(\b[Ww]ill\b|\bcomes with\b|\b(TODO|FIXME)\b|\b[Nn]ot yet\b|\b[Ff]or now\b|\b[Ii]ssues? *#?[0-9]+|\b[a-z-]+ issue\b|#[0-9]+\b)' |
    while IFS= read -r hit; do
      local a allowed=0
      for a in "${future_allow[@]}"; do
        [[ "$hit" == "${a%%|*}:"* && "$hit" == *"${a#*|}"* ]] && { allowed=1; break; }
      done
      [ "$allowed" = 1 ] || echo "$hit"
    done
}
hits=$(future_comments)
[ -n "$hits" ] && { echo "comments about a future or a ticket (say what is true now):"; echo "$hits"; fail=1; }

if [ "$fail" = 0 ]; then echo "style: all checks passed"; fi
exit "$fail"
