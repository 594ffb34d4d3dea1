/* cmd_train.c: `safecl train CONFIG [key=value ...]`: argv to run_trial_ex, under run.dir's lock
 * (the one a sweep takes), so one run directory holds one running trial. Under `mpirun -np G`
 * (or srun) the G ranks of the job run the one trial as one data-parallel group
 * (docs/architecture.md section 2); alone it is a group of one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/apps.h"
#include "safecl/dist_mpi.h"
#include "safecl/orch.h"
#include "safecl/trial.h"

/* Rank 0 takes run.dir's lock (a second train of the directory, or a sweep holding it, refuses
 * at once, naming the holder); every rank learns the verdict. */
static scl_err take_run_dir(const run_trial_cfg *cfg, const dist_comm *world, int *lock_fd) {
  int64_t verdict = SCL_OK;
  if (dist_comm_rank(world) == 0) verdict = orch_run_lock(cfg->run_dir, lock_fd);
  SCL_CALL(dist_bcast(world, 0, &verdict, sizeof verdict));
  if (verdict && dist_comm_rank(world) != 0)
    return SCL_ERROR((scl_err)verdict, "rank 0 could not take %s/lock", cfg->run_dir);
  return (scl_err)verdict;
}

int cmd_train(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      printf(
          "usage: safecl train [CONFIG.cfg ...] [key=value ...]\n"
          "  Config files apply in order (later ones override), then the key=value pairs.\n"
          "  e.g. safecl train configs/datasets/cifar100.cfg configs/methods/simplecil.cfg\n"
          "  --print-config (first argument): print the effective config and exit.\n\n");
      cfg_print_help(&run_trial_schema, stdout);
      return 0;
    }
  }
  int print_only = argc > 1 && !strcmp(argv[1], "--print-config");
  int first = 1 + print_only;
  while (first < argc && !cfg_is_override(argv[first])) first++;
  run_trial_cfg cfg = {0};
  scl_err err = cfg_load_files(&run_trial_schema, (const char *const *)argv + 1 + print_only,
                               first - 1 - print_only, argc - first, argv + first, &cfg);
  if (!err && print_only) {
    char *text = NULL;
    err = cfg_dump(&run_trial_schema, &cfg, &text);
    if (!err) fputs(text, stdout); /* under mpirun: once per rank, as any serial tool */
    free(text);
  } else if (!err) {
    dist_comm *world = NULL;
    err = dist_comm_create(MPI_COMM_WORLD, &world);
    if (!err && dist_comm_size(world) > 1) scl_log_set_rank(dist_comm_rank(world));
    int lock_fd = -1;
    if (!err) err = take_run_dir(&cfg, world, &lock_fd);
    if (!err) err = run_trial_ex(&cfg, world, NULL, NULL);
    orch_run_unlock(&lock_fd);
    dist_comm_destroy(&world);
  }
  if (err) scl_log_error_traceback();
  cfg_free(&run_trial_schema, &cfg);
  return err ? 1 : 0;
}
