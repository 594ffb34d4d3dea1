/* sweep.c: `safecl sweep` as one collective over the job's ranks: world rank 0 reads the sweep
 * file and checks the layout, everyone learns the verdict and the group size from one broadcast,
 * the ranks split into groups, each rank plays its role, and one final broadcast gives every
 * rank the same exit status (so mpirun/srun and the job script see one answer).
 *
 * Only world rank 0 reads files: the groups need nothing but the group size, and each trial's
 * layering arrives with the trial. A bad sweep file therefore fails on rank 0 with its file:line
 * while the other ranks return quietly with the same exit status. A group of G ranks runs each
 * trial data-parallel (run_trial_ex on the group's communicator). */
#include <stdlib.h>
#include <string.h>

#include "orch_internal.h"

/* World rank 0: the sweep and its layout, or the reason it cannot run. */
static scl_err prepare(const dist_comm *world, int argc, char **argv, orch_sweep **sweep) {
  int first = 1;
  while (first < argc && !cfg_is_override(argv[first])) first++;
  SCL_CHECK(first == 2, SCL_ERR_ARG,
            "usage: safecl sweep SWEEP.cfg [key=value ...] (one sweep "
            "file; got %d)",
            first - 1);
  SCL_CALL(orch_sweep_load(argv[1], argc - first, argv + first, sweep));
  const orch_sweep *s = *sweep;
  int p = dist_comm_size(world);
  SCL_CHECK(p >= 2, SCL_ERR_ARG,
            "safecl sweep needs at least 2 ranks (world rank 0 "
            "coordinates and never trains): run it under mpirun -np N or srun -n N, "
            "N >= 2; for one trial use safecl train");
  if ((p - 1) % s->group_size)
    return SCL_ERROR(SCL_ERR_ARG,
                     "%d worker ranks do not split into groups of %lld: use "
                     "1 + k x %lld ranks",
                     p - 1, (long long)s->group_size, (long long)s->group_size);
  SCL_CHECK(s->run_dir[0], SCL_ERR_ARG, "run.dir is not set: give run.dir=DIR on the command line");
  return SCL_OK;
}

scl_err orch_sweep_run(const dist_comm *world, int argc, char **argv, int *exit_code) {
  int rank = dist_comm_rank(world);
  orch_sweep *sweep = NULL;
  dist_comm *group = NULL;
  scl_log_set_rank(rank);
  orch_signals_install();
  int64_t info[2] = {0, 1}; /* verdict, group size */
  if (rank == 0) {
    if (prepare(world, argc, argv, &sweep) != SCL_OK) {
      scl_log_error_traceback();
      scl_error_take(NULL, 0);
      info[0] = 1;
    } else {
      info[1] = sweep->group_size;
    }
  }
  scl_err err = dist_bcast(world, 0, info, sizeof info);
  if (err || info[0]) {
    orch_sweep_destroy(&sweep);
    *exit_code = 1;
    return err;
  }
  int g = rank == 0 ? -1 : (rank - 1) / (int)info[1];
  int groups = (dist_comm_size(world) - 1) / (int)info[1];
  SCL_CALL_GOTO(err, dist_comm_split(world, g, rank, &group), done);
  int code = 1;
  if (rank == 0) {
    orch_coord_opts o = {sweep, groups, (int)info[1]};
    SCL_CALL_GOTO(err, orch_coordinator_run(world, &o, &code), done);
  } else {
    SCL_CALL_GOTO(err, orch_worker_run(world, group, g, &code), done);
  }
  int64_t final = code;
  SCL_CALL_GOTO(err, dist_bcast(world, 0, &final, sizeof final), done);
  *exit_code = (int) final;
done:
  dist_comm_destroy(&group);
  orch_sweep_destroy(&sweep);
  return err;
}
