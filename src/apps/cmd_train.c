/* cmd_train.c: `safecl train [CONFIG ...] [key=value ...]` (any order, flags anywhere:
 * config_args.c): argv to run_trial_ex, under run.dir's lock (the one a sweep takes), so one run
 * directory holds one running trial. Under `mpirun -np G` (or srun) the G ranks of the job run
 * the one trial as one data-parallel group (docs/architecture.md section 2); alone it is a group
 * of one. A trial refused before it writes anything (a bad dataset, weights or setting found at
 * open) leaves no run directory behind: the directories this command created, holding nothing but
 * its lock file, are removed again; a directory that existed before is never removed.
 *
 * SIGINT, SIGTERM and SIGUSR1 stop the trial gracefully (src/orch/signals.c): the stop hook
 * reports the flag at every step and session boundary, the group agrees on it there (any rank's
 * signal stops every rank at the same step), checkpoints and ends with SCL_ERR_STOP, which this
 * command turns into exit status 75 (EX_TEMPFAIL) and one line naming the command to rerun. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "safecl/apps.h"
#include "safecl/dist_mpi.h"
#include "safecl/orch.h"
#include "safecl/trial.h"

/* Rank 0 takes run.dir's lock (a second train of the directory, or a sweep holding it, refuses
 * at once, naming the holder); every rank learns the verdict. */
static scl_err take_run_dir(const run_trial_cfg *cfg, const dist_comm *world, int *lock_fd) {
  int64_t verdict = SCL_OK;
  char what[512];
  snprintf(what, sizeof what, "%s on %s", cfg->method.name, cfg->dataset_name);
  if (dist_comm_rank(world) == 0) {
    verdict = orch_run_lock(cfg->run_dir, what, lock_fd);
    if (!verdict) orch_rundir_remove_temporaries(cfg->run_dir); /* a kill mid-write left them */
  }
  SCL_CALL(dist_bcast(world, 0, &verdict, sizeof verdict));
  if (verdict && dist_comm_rank(world) != 0)
    return SCL_ERROR((scl_err)verdict, "rank 0 could not take %s/lock", cfg->run_dir);
  return (scl_err)verdict;
}

/* The shortest prefix of dir that does not exist yet ("" when dir exists): what taking the lock
 * creates. */
static void first_missing(const char *dir, char *out, size_t cap) {
  struct stat st;
  out[0] = '\0';
  size_t n = strlen(dir);
  if (n + 1 > cap || stat(dir, &st) == 0) return;
  for (size_t i = 1; i <= n; i++) {
    if (i < n && dir[i] != '/') continue;
    snprintf(out, cap, "%.*s", (int)i, dir);
    if (stat(out, &st) != 0) return;
  }
  snprintf(out, cap, "%s", dir);
}

/* Whether the directory holds nothing but the lock file and the trial log (or nothing). */
static int only_lock(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int other = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    other |= strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "lock") &&
             strcmp(e->d_name, "trial.log");
  closedir(d);
  return !other;
}

/* Removes run_dir and its parents up to `top` (first_missing), each only while it is empty but
 * for the lock and the refused trial's log (whose lines the terminal has shown): rmdir refuses
 * anything that holds a file. */
static void remove_created(const char *run_dir, const char *top) {
  char path[4096], file[4200];
  if (!top[0] || strlen(run_dir) >= sizeof path || !only_lock(run_dir)) return;
  snprintf(path, sizeof path, "%s", run_dir);
  snprintf(file, sizeof file, "%s/trial.log", path);
  unlink(file);
  snprintf(file, sizeof file, "%s/lock", path);
  unlink(file);
  while (strlen(path) >= strlen(top) && rmdir(path) == 0) {
    char *slash = strrchr(path, '/');
    if (!slash || slash == path) break;
    *slash = '\0';
  }
  SCL_INFO("%s: removed again (created by this command, the trial wrote nothing)", run_dir);
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: safecl train [CONFIG.cfg | key=value | --print-config | --print-trial-id] ...\n"
          "  Config files and key=value overrides apply left to right, in any order: a later one\n"
          "  wins for the keys it sets, so an override after a file beats the file and a file\n"
          "  after an override sets that key again (with a warning naming both).\n"
          "  e.g. safecl train configs/datasets/cifar100.cfg configs/methods/simplecil.cfg\n"
          "  --print-config    print the effective config (a config file that reads back to the\n"
          "                    same trial) and exit\n"
          "  --print-trial-id  print the trial's id (what trial.h5 records as trial_id) and exit\n"
          "  Flags may stand anywhere on the line. SAFECL_LOG=debug adds the code locations of a\n"
          "  failure to its message.\n"
          "  Ctrl-C (SIGINT), SIGTERM or SIGUSR1 checkpoints at the next step boundary and exits\n"
          "  75; rerun the same command to resume. A second Ctrl-C ends the process at once (the\n"
          "  last complete checkpoint stays). safecl status RUN_DIR shows where a run stands.\n"
          "  Exit status: 0 finished, 75 stopped by a signal, 1 error.\n\n");
  cfg_print_help(&run_trial_schema, f);
}

/* --print-config / --print-trial-id: on every rank, as any serial tool under mpirun. */
static scl_err print_only(const run_trial_cfg *cfg, int config, int trial_id) {
  if (config) {
    char *text = NULL;
    SCL_CALL(cfg_dump(&run_trial_schema, cfg, &text));
    fputs(text, stdout);
    free(text);
  }
  if (trial_id) {
    char id[33];
    SCL_CALL(run_trial_identity(cfg, id));
    printf("%s\n", id);
  }
  return SCL_OK;
}

static int stop_requested(void *ctx) {
  (void)ctx;
  return orch_signals_caught() != 0;
}

/* The one line a stopped trial leaves on world rank 0: what stopped it, where its checkpoint is
 * and the command that resumes it (this process's own argv). */
static void report_stop(const run_trial_cfg *cfg, int argc, char **argv) {
  char msg[1024];
  scl_error_take(msg, sizeof msg);
  fprintf(stderr,
          "safecl train: stopped by %s: %s in %s/ckpt.h5; rerun the same command to resume:",
          orch_signal_name(orch_signals_caught()), msg, cfg->run_dir);
  fprintf(stderr, " safecl train");
  for (int i = 1; i < argc; i++) {
    const char *q = strpbrk(argv[i], " \t'\"$*?") ? "'" : "";
    fprintf(stderr, " %s%s%s", q, argv[i], q);
  }
  fprintf(stderr, "\n");
}

int cmd_train(int argc, char **argv) {
  static const char *const flags[] = {"--help", "--print-config", "--print-trial-id"};
  int found[3], n = 0;
  char **rest = calloc((size_t)argc + 1, sizeof *rest);
  if (!rest) {
    fprintf(stderr, "safecl train: out of memory\n");
    return 1;
  }
  int code = apps_config_args("train", argc, argv, flags, 3, found, rest, &n);
  if (code || found[0]) {
    if (!code) usage(stdout);
    free(rest);
    return code;
  }
  run_trial_cfg cfg = {0};
  scl_err err = cfg_load_args(&run_trial_schema, n, rest, &cfg);
  if (!err && (found[1] || found[2])) {
    err = print_only(&cfg, found[1], found[2]);
  } else if (!err) {
    dist_comm *world = NULL;
    err = dist_comm_create(MPI_COMM_WORLD, &world);
    if (!err && dist_comm_size(world) > 1) scl_log_set_rank(dist_comm_rank(world));
    int lock_fd = -1, rank = world ? dist_comm_rank(world) : 0;
    char created[4096];
    first_missing(cfg.run_dir, created, sizeof created);
    if (!err) err = take_run_dir(&cfg, world, &lock_fd);
    int locked = !err; /* removal under the lock: no other train can be using the directory */
    run_trial_hooks hooks = {stop_requested, NULL};
    orch_signals_install();
    if (!err) err = run_trial_ex(&cfg, world, &hooks, NULL);
    if (err == SCL_ERR_STOP) {
      if (rank == 0)
        report_stop(&cfg, argc, argv);
      else
        scl_error_take(NULL, 0);
    } else if (err && locked && rank == 0) {
      remove_created(cfg.run_dir, created);
    }
    orch_run_unlock(&lock_fd);
    dist_comm_destroy(&world);
  }
  if (err && err != SCL_ERR_STOP) scl_log_error_traceback();
  cfg_free(&run_trial_schema, &cfg);
  free(rest);
  return err == SCL_ERR_STOP ? EX_TEMPFAIL : err ? 1 : 0;
}
