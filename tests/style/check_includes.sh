#!/usr/bin/env bash
# check_includes.sh: no module includes a header private to another module
# (docs/architecture.md section 5; docs/conventions.md 19).
# A module is a top-level folder of src/ (src/linalg, src/run, ...); the .h files inside it are
# its private headers. A file of src/<module>/ may include its own module's headers and the
# public headers of include/safecl/; a public header may include only public headers. Every
# #include, quoted or in angle brackets, is resolved the ways a compiler could find it (beside
# the including file, then against include/, src/ and the repository root); one that names a
# file inside another module's folder ("../linalg/lapack.h", "src/io/h5_internal.h") is a
# violation. Tests are white-box and may include private headers; they are not checked.
# Usage: check_includes.sh [ROOT] (default: this repository). Prints each violation, exits 1 if
# there is any.
set -uo pipefail
root="$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/../..}" && pwd -P)"
cd "$root" || exit 2
if [ ! -d src ] || [ ! -d include ]; then echo "check_includes: $root has no src/ and include/"; exit 2; fi

# shellcheck disable=SC2016
find src include -type f \( -name '*.c' -o -name '*.h' \) | sort | perl -e '
  use strict; use warnings; use Cwd qw(abs_path); use File::Basename qw(dirname);
  my $root = shift;
  # The module of a path below src/ (its first folder), or "" outside src/.
  sub module_of { my ($p) = @_; return $p =~ m{^\Q$root\E/src/([^/]+)/} ? $1 : ""; }
  my $fail = 0;
  while (my $f = <STDIN>) {
    chomp $f;
    my $own = module_of("$root/$f");
    open(my $h, "<", $f) or die "$f: $!";
    while (my $l = <$h>) {
      next unless $l =~ /^\s*#\s*include\s*[<"]([^>"]+)[>"]/;
      my $name = $1;
      for my $cand (dirname($f) . "/$name", "include/$name", "src/$name", $name) {
        next unless -f $cand;
        my $path = abs_path($cand);
        my $target = module_of($path);
        if ($target ne "" && $target ne $own) {
          (my $rel = $path) =~ s{^\Q$root\E/}{};
          print "$f:$.: includes $rel, a header private to src/$target/\n";
          $fail = 1;
        }
        last;
      }
    }
    close $h;
  }
  exit $fail;' "$root"
fail=$?

if [ "$fail" = 0 ]; then echo "includes: no module includes another module's private header"; fi
exit "$fail"
