#!/usr/bin/env bash
# test_install_jobs.sh BUILD_DIR: `cmake --install BUILD_DIR --prefix P` puts the SLURM scripts in
# P/share/safecl/jobs, and P/share/safecl/jobs/submit.sh run from an unrelated directory (no
# SAFECL_BIN, SAFECL_ROOT or cluster file set) finds the installed P/bin/safecl and its own job
# scripts: its --print plan of the installed quickstart sweep names them, and jobs/env.sh sourced
# as a batch script does (SAFECL_ROOT=P/share/safecl) names P/bin/safecl. Exits non-zero on any
# failure.
set -u
build=$1
tmp=$(mktemp -d /tmp/safecl_install_jobs.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
cmake --install "$build" --prefix "$tmp/p" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }
P=$tmp/p J=$tmp/p/share/safecl/jobs
for f in submit.sh sweep.sbatch array.sbatch report.sbatch; do
  check "$f installed executable in P/share/safecl/jobs" '[ -x "$J/$f" ]'
done
check "env.sh installed in P/share/safecl/jobs" '[ -f "$J/env.sh" ]'
mkdir -p "$tmp/project" "$tmp/home" && cd "$tmp/project" || exit 1
clean=(env -u SAFECL_BIN -u SAFECL_ROOT -u SAFECL_BUILD_DIR -u SAFECL_CLUSTER -u SAFECL_SETUP
       -u SAFECL_MODULES HOME="$tmp/home")
"${clean[@]}" bash "$J/submit.sh" "$P/share/safecl/configs/sweeps/quickstart.cfg" --print \
  >"$tmp/out" 2>"$tmp/err"
rc=$?
check "submit.sh --print from the installed tree exits 0 (got $rc)" '[ "$rc" = 0 ]'
check "its sweep job runs the installed sweep.sbatch" \
  'grep -q "^sbatch .* $J/sweep.sbatch " "$tmp/err"'
check "its report job runs the installed report.sbatch" 'grep -q "^sbatch .* $J/report.sbatch " "$tmp/err"'
check "the jobs get SAFECL_BIN=P/bin/safecl and SAFECL_ROOT=P/share/safecl" \
  'grep -q -- "--export=ALL,SAFECL_ROOT=$P/share/safecl,SAFECL_BIN=$P/bin/safecl" "$tmp/err"'
check "the plan was made by the installed safecl (trials counted)" \
  'grep -q "^submit: .*quickstart.cfg: [1-9][0-9]* trial(s)" "$tmp/err"'
bin=$("${clean[@]}" SAFECL_ROOT="$P/share/safecl" bash -c 'source "$SAFECL_ROOT/jobs/env.sh" && echo "$SAFECL_BIN"')
check "a batch job's env.sh names P/bin/safecl (got $bin)" '[ "$bin" = "$P/bin/safecl" ]'
[ "$fail" = 0 ] || cat "$tmp/err"
exit "$fail"
