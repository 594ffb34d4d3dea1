/* orch.h: the sweep orchestrator (docs/architecture.md sections 2, 3, 6, 7): sweep files and their
 * expansion into trials, the run directory's replayed state, the MPI sweep itself, `status`
 * and the run's index.
 *
 * Sweep file (libconfig; paths relative to the file; full description atop
 * configs/sweeps/quickstart.cfg):
 *   sweep = { name; base = [files]; datasets = [entries]; methods = [entries]; seeds = [ints];
 *             grid = ( { key; values = [...]; }, ... ); points = ( ["k=v", ...], ... );
 *             overrides = ["k=v", ...]; group_size; max_retries; max_requeues; max_crashes;
 *             retry_failed; max_trials; };
 *   run = { dir = "..."; };   (or run.dir=DIR on the command line)
 * where an entry is a file name or a group { file; overrides; grid; points; } whose settings
 * apply to trials of that dataset or method only. Trials = datasets x methods x grid points x
 * explicit points x seeds; each trial layers base files, the dataset file and the method file,
 * then overrides (sweep, dataset, method, command line), grid values, point settings and the
 * seed. Unknown keys and bad values are errors naming file:line.
 *
 * Process model: world rank 0 coordinates (plans, owns the ledger, dispatches, never trains);
 * ranks 1..P-1 form groups of sweep.group_size ranks whose group rank 0 talks to the
 * coordinator and broadcasts to its group (src/orch/protocol.c has the message types). */
#ifndef SAFECL_ORCH_H
#define SAFECL_ORCH_H

#include <stdint.h>
#include <stdio.h>

#include "safecl/config.h"
#include "safecl/core.h"
#include "safecl/dist.h"
#include "safecl/ledger.h"

/* Exit status of `safecl sweep` when it stopped on a signal and the job should be requeued
 * (EX_TEMPFAIL from sysexits.h). 0 = every trial finished; 1 = error. */
#define ORCH_EXIT_REQUEUE 75
/* Exit status of `safecl sweep` when every trial ended and some of them failed (`safecl status`
 * lists them with their messages); distinct from 1, a sweep that could not run. */
#define ORCH_EXIT_TRIALS_FAILED 3

/* ---------------------------------------------------------------------------------------- */
/* Sweep files                                                                                */

typedef struct orch_setting {
  char *text;  /* "key=value", a key of the trial's table (safecl train --help) */
  char *where; /* "file:line" or "command line" */
} orch_setting;

typedef struct orch_settings {
  orch_setting *v;
  int n, cap;
} orch_settings;

typedef struct orch_axis { /* one grid axis: key = each of values */
  char *key;
  orch_settings values; /* each "key=value" */
} orch_axis;

typedef struct orch_scope { /* what the sweep, a dataset or a method may add to its trials */
  orch_settings overrides;
  orch_axis *grid;
  int n_grid;
  orch_settings *points; /* each point: a list of settings applied together */
  int n_points;
} orch_scope;

typedef struct orch_entry { /* a dataset or method of the sweep */
  char *file;               /* path as resolved against the sweep file's directory */
  char *where;
  orch_scope scope;
  struct orch_entry *methods; /* a dataset's own methods, replacing the sweep's; NULL: those */
  int n_methods;
  char **base; /* a dataset's own base files (its backbone), layered after the sweep's */
  int n_base;
} orch_entry;

typedef struct orch_sweep {
  char *path; /* the sweep file */
  /* scalar settings, from the key table orch_sweep_schema */
  char *name;
  char *run_dir;
  int64_t group_size, max_retries, max_requeues, max_crashes;
  int retry_failed, dry_run;
  int64_t max_trials; /* the most trials the sweep may expand to (checked before expanding) */
  /* lists */
  char **base;
  int n_base;
  orch_entry *datasets, *methods;
  int n_datasets, n_methods;
  int64_t *seeds;
  int n_seeds; /* 0: the seed of the layered files */
  orch_scope scope;
  orch_settings cmdline; /* trial keys given on the command line */
} orch_sweep;

extern const cfg_schema orch_sweep_schema;

/* Parses a sweep file and command-line overrides (sweep.* and run.* keys set the sweep's
 * settings, sweep.seeds=1,2,3 replaces the seeds, any other key=value is a trial override for
 * every trial). Every trial setting is validated against the trial's key table here, so a typo
 * is reported with its file:line before anything runs. *out is owned: orch_sweep_destroy. */
SCL_NODISCARD scl_err orch_sweep_load(const char *path, int n_overrides, char *const *overrides,
                                      orch_sweep **out);
void orch_sweep_destroy(orch_sweep **s);
/* The effective sweep as a libconfig file (absolute paths, overrides applied) that
 * orch_sweep_load reads back to the same sweep. Caller frees with free(). */
SCL_NODISCARD scl_err orch_sweep_dump(const orch_sweep *s, char **text);

/* ---------------------------------------------------------------------------------------- */
/* Plans: the sweep expanded into identified trials                                           */

typedef struct orch_trial {
  char id[33]; /* content hash (run_trial_identity); for a trial that cannot be identified
                       (see error), the hash of its arguments */
  int dataset, method;
  int has_seed;
  int64_t seed;
  char *settings;                          /* grid and point settings, '\n'-separated (owned) */
  char *dataset_name, *method_name, *arch; /* from the trial's effective config (owned) */
  double cost;                             /* expected seconds (cost.c) */
  int backbone_random; /* 1: no backbone.weights, the backbone has random weights */
  char *error;         /* not NULL: the trial could not be identified (its inputs are unreadable);
                       it fails with this message and never runs (owned) */
} orch_trial;

typedef struct orch_plan {
  orch_trial *trials; /* in expansion order: dataset, method, grid, point, seed */
  int64_t n;
  int64_t duplicates; /* expanded combinations that named an already planned trial */
} orch_plan;

/* The number of trials the sweep expands to before duplicates are dropped (datasets x methods x
 * grid values x points x seeds), counted without expanding; -1 beyond int64. */
SCL_NODISCARD scl_err orch_plan_size(const orch_sweep *s, int64_t *n);
/* Expands the sweep: refuses more than sweep.max_trials trials (orch_plan_size) before anything
 * is loaded, then loads each grid/point combination's trial config once (config errors are
 * errors of the sweep, naming the trial), identifies and prices each of its seeds from its
 * dataset's cached facts, drops duplicates (same id) with a warning. A trial whose dataset or
 * weights cannot be read is planned with that message (orch_trial.error).
 * *out is owned: orch_plan_destroy. */
SCL_NODISCARD scl_err orch_plan_create(const orch_sweep *s, orch_plan **out);
void orch_plan_destroy(orch_plan **p);
/* The trial's `safecl train` arguments: config files, then key=value overrides, then
 * run.dir=RUN_DIR/trials/<id> when run_dir is not NULL. *argv is a NULL-terminated array of *argc
 * strings owned by the caller: orch_args_free. */
SCL_NODISCARD scl_err orch_plan_args(const orch_sweep *s, const orch_trial *t, const char *run_dir,
                                     int *argc, char ***argv);
void orch_args_free(int argc, char **argv);
/* How many of those arguments are config files (the sweep's base files, dataset d's own base
 * files and file, method m's file; d, m < 0: none). */
int orch_plan_n_files(const orch_sweep *s, int d, int m);
/* "dataset/method seed=S k=v ..." into buf. */
void orch_trial_label(const orch_trial *t, char *buf, size_t cap);

/* ---------------------------------------------------------------------------------------- */
/* The run directory's state, replayed from its ledgers                                       */

typedef enum {
  ORCH_TRIAL_PENDING = 0,
  ORCH_TRIAL_RUNNING,
  ORCH_TRIAL_FINISHED,
  ORCH_TRIAL_FAILED
} orch_trial_status;

const char *orch_trial_status_name(orch_trial_status s);

typedef struct orch_trial_state {
  char id[33];
  int64_t plan_index; /* -1 without a PLAN record */
  char *plan_text;    /* PLAN text: dataset \t method \t seed \t settings (owned) */
  double cost;
  int backbone_random;      /* PLAN: 1 random backbone weights, 0 given, -1 not recorded (older) */
  orch_trial_status status; /* RUNNING only while the latest job has not ended */
  int retries;              /* transient failures (RETRY records) */
  int crashes;              /* attempts that died of a fatal signal (CRASHED records) */
  double crash_stamp;       /* the attempt of the latest CRASHED record (one count per attempt) */
  char *crash;              /* the latest CRASHED record's text (owned) */
  int machine_failures;     /* FAILED records of the machine's faults (count = 1) */
  int retryable;            /* FAILED by the machine's fault: the next job runs it again */
  int sessions;             /* boundaries (session or step) passed, as last recorded */
  int group;                /* group of the latest START */
  double started;           /* time of the latest START */
  double seconds, final_acc, avg_acc, val_acc; /* FINISHED */
  int measured;  /* 1: seconds were measured by a run (not skipped, reconciled or dry) */
  char *message; /* FAILED: error name and message (owned) */
  int open;      /* replay bookkeeping: START without outcome yet */
} orch_trial_state;

typedef struct orch_group_state {
  int64_t trial; /* index into state->trials, -1 if idle */
  double since;
  int sessions;
} orch_group_state;

typedef struct orch_job_state { /* the latest job segment (JOB record to now or END) */
  char job_id[256];
  char sweep[128]; /* the sweep's name */
  double start, last;
  int64_t restart;
  int groups, group_size;
  int ended;
  char end[64];
  int64_t finished, failed, stopped, dispatched;
  orch_group_state *group; /* groups entries (owned) */
} orch_job_state;

typedef struct orch_state {
  orch_trial_state *trials;
  int64_t n, cap;
  int64_t *table; /* open-addressing hash of ids: trial index + 1, 0 = empty */
  int64_t table_cap;
  orch_job_state job;
  int n_jobs, n_files;
  int64_t n_records, n_damaged, torn_bytes;
  double replay_seconds;
} orch_state;

/* Replays every ledger of run_dir (a missing directory is an empty state). */
SCL_NODISCARD scl_err orch_state_load(const char *run_dir, orch_state **out);
SCL_NODISCARD scl_err orch_state_create(orch_state **out);
/* Applies one record (what replay does for each record, and the coordinator for each record
 * it appends). */
SCL_NODISCARD scl_err orch_state_apply(orch_state *s, const orch_record *r);
void orch_state_destroy(orch_state **s);
/* The trial with this id, or NULL. */
orch_trial_state *orch_state_find(const orch_state *s, const char *id);
/* Settles every attempt still open as interrupted (its job is known to be dead): the trial is
 * pending again, and nothing is charged to it (only CRASHED records count as crashes). */
void orch_state_settle(orch_state *s);

/* ---------------------------------------------------------------------------------------- */
/* Running                                                                                    */

/* `safecl sweep`: collective over world (every rank of the job). World rank 0 loads the sweep
 * file (argv: SWEEP.cfg [key=value ...]) and coordinates; the other ranks form groups and run
 * trials. On return every rank holds the same *exit_code (0, 1, ORCH_EXIT_TRIALS_FAILED or
 * ORCH_EXIT_REQUEUE). A
 * returned error means the ranks could not agree (an MPI failure): the caller aborts the job. */
SCL_NODISCARD scl_err orch_sweep_run(const dist_comm *world, int argc, char **argv, int *exit_code);

/* `safecl train`'s run directory lock, the one a sweep takes (src/orch/rundir.c): creates RUN_DIR
 * and locks RUN_DIR/lock for this process's life, recording `what` (e.g. "safe on cifar100"),
 * host, pid and the heartbeat interval in it, and refreshes its mtime from a thread (the
 * heartbeat `safecl status` reads). Fails (SCL_ERR_ARG) naming the directory and the holder while
 * another process holds it. orch_run_unlock stops the heartbeat and releases the lock. */
SCL_NODISCARD scl_err orch_run_lock(const char *run_dir, const char *what, int *fd);
/* Removes ckpt.h5.tmp.<pid> and trial.h5.tmp.<pid> in a trial's directory `dir` (publishes a
 * killed process never committed); call it only while holding the trial, so that no live writer
 * owns them. */
void orch_rundir_remove_temporaries(const char *dir);
void orch_run_unlock(int *fd);

/* Stop signals (src/orch/signals.c): after orch_signals_install, SIGUSR1, SIGTERM and SIGINT
 * only record the first signal (orch_signals_caught: its number, 0 if none), and a second SIGINT
 * kills the process at once. orch_signal_name: "SIGINT", "SIGTERM", "SIGUSR1" or "a signal"
 * (static). */
void orch_signals_install(void);
int orch_signals_caught(void);
const char *orch_signal_name(int sig);

/* What `safecl sweep` prints about a planned sweep without running it. */
typedef enum {
  ORCH_SWEEP_LIST,   /* --list: one line per trial: index, id, expected seconds, status, label */
  ORCH_SWEEP_COUNT,  /* --count: the number of trials */
  ORCH_SWEEP_SUMMARY /* --summary: key=value lines for job scripts */
} orch_sweep_view;

/* In the three functions below argv[1] is the sweep file and argv[2..] its overrides, and the
 * output goes to stdout. */
/* `safecl sweep --list|--count|--summary SWEEP.cfg [k=v]`: plans the sweep and prints `view`. */
SCL_NODISCARD scl_err orch_sweep_print(orch_sweep_view view, int argc, char **argv);
/* `safecl sweep --trial I SWEEP.cfg run.dir=DIR [k=v]`: the `safecl train` arguments of the trial
 * at position `index` (decimal text, 0-based, expansion order), one per line. */
SCL_NODISCARD scl_err orch_sweep_print_trial(const char *index, int argc, char **argv);
/* `safecl sweep --plan SWEEP.cfg run.dir=DIR [k=v]`: records the plan in run.dir (ledger,
 * sweep.cfg, index.h5) without running it, so that status and reports follow array jobs. */
SCL_NODISCARD scl_err orch_sweep_plan_record(int argc, char **argv);

/* `safecl status RUN_DIR`: trials by state, what each group is doing, throughput and ETA. */
SCL_NODISCARD scl_err orch_status_print(const char *run_dir, FILE *out);
/* Rebuilds RUN_DIR/index.h5 and RUN_DIR/trials.tsv from the ledgers and the trial files
 * (atomically replaced). */
SCL_NODISCARD scl_err orch_index_rebuild(const char *run_dir);

#endif /* SAFECL_ORCH_H */
