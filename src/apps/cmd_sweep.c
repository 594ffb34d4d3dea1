/* cmd_sweep.c: `safecl sweep`: argv to the orchestrator. Under mpirun/srun it runs the sweep
 * (orch_sweep_run, collective over every rank); with --list, --count, --trial or --summary it
 * only plans the sweep and prints, on world rank 0, what job scripts need (array jobs, sizing).
 * MPI is initialised by main for this command (src/apps/main.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/apps.h"
#include "safecl/dist_mpi.h"
#include "safecl/orch.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: mpirun -np N safecl sweep SWEEP.cfg run.dir=DIR [key=value ...]\n"
          "       safecl sweep --list|--count|--summary SWEEP.cfg [run.dir=DIR] [key=value ...]\n"
          "       safecl sweep --plan SWEEP.cfg run.dir=DIR [key=value ...]\n"
          "       safecl sweep --trial I SWEEP.cfg run.dir=DIR [key=value ...]\n\n"
          "  World rank 0 coordinates; ranks 1..N-1 form groups of sweep.group_size ranks that\n"
          "  run trials, longest expected first. Finished trials are skipped on a rerun.\n"
          "  Exit status: 0 all trials finished, 3 all trials ended and some failed (safecl\n"
          "  status RUN_DIR lists them), 75 stopped by SIGUSR1, SIGTERM or SIGINT (requeue the\n"
          "  job), 1 error (nothing planned or the run directory unusable), 2 usage.\n"
          "  Paths in the sweep file (config files, run.dir, dataset.root and backbone.weights\n"
          "  in its settings) are relative to the sweep file; a dataset entry may carry its own\n"
          "  base files and methods list (configs/sweeps/paper.cfg).\n"
          "  key=value: sweep.* and run.dir set the keys below; sweep.seeds=1,2 replaces the\n"
          "  seeds; any other key is a trial key (safecl train --help) set for every trial.\n"
          "  --list     one line per trial: index, id, expected seconds, status, label (and\n"
          "             the error of a trial whose dataset or weights cannot be read); the\n"
          "             status is what the next job does: a trial failed on a fault of the\n"
          "             machine within sweep.max_retries is pending (\"retried\", its error)\n"
          "  --count    the number of trials\n"
          "  --summary  key=value lines for job scripts: trials, to_run, expected_seconds,\n"
          "             longest_seconds, group_size, failed, retried (of to_run: trials\n"
          "             the next job runs again after a fault of the machine)\n"
          "  A sweep may expand to at most sweep.max_trials trials (default 100000), checked\n"
          "  before planning.\n"
          "  --trial I  the `safecl train` arguments of trial I (0-based), one per line\n"
          "  --plan     record the plan in run.dir (ledger, sweep.cfg, index.h5) without running\n"
          "             it, so that status and reports follow array jobs\n\n");
  cfg_print_help(&orch_sweep_schema, f);
}

/* One of the printing options; argv[1] is the option, argv[2] the trial index of --trial. */
static scl_err info(const char *mode, int argc, char **argv) {
  if (!strcmp(mode, "--trial")) return orch_sweep_print_trial(argv[2], argc - 2, argv + 2);
  if (!strcmp(mode, "--plan")) return orch_sweep_plan_record(argc - 1, argv + 1);
  orch_sweep_view view = !strcmp(mode, "--list")    ? ORCH_SWEEP_LIST
                         : !strcmp(mode, "--count") ? ORCH_SWEEP_COUNT
                                                    : ORCH_SWEEP_SUMMARY;
  return orch_sweep_print(view, argc - 1, argv + 1);
}

int cmd_sweep(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    }
  dist_comm *world = NULL;
  if (dist_comm_create(MPI_COMM_WORLD, &world) != SCL_OK) {
    scl_log_error_traceback();
    return 1;
  }
  int code = 0;
  const char *mode = argc > 1 && !strncmp(argv[1], "--", 2) ? argv[1] : NULL;
  if (mode && strcmp(mode, "--list") && strcmp(mode, "--count") && strcmp(mode, "--summary") &&
      strcmp(mode, "--trial") && strcmp(mode, "--plan")) {
    fprintf(stderr, "safecl sweep: unknown option %s\n\n", mode);
    usage(stderr);
    code = 2;
  } else if (mode) {
    int skip = !strcmp(mode, "--trial") ? 2 : 1;
    if (argc <= skip) {
      usage(stderr);
      code = 2;
    } else if (dist_comm_rank(world) == 0 && info(mode, argc, argv) != SCL_OK) {
      scl_log_error_traceback();
      code = 1;
    }
  } else if (orch_sweep_run(world, argc, argv, &code) != SCL_OK) {
    /* the ranks could not agree (an MPI failure): end the whole job from here (docs/conventions.md
     * 3) */
    scl_log_error_traceback();
    dist_abort(world, 1);
    code = 1;
  }
  dist_comm_destroy(&world);
  return code;
}
