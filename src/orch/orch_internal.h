/* orch_internal.h: what the orchestrator's files share and nobody else needs: sweep-file
 * helpers, the coordinator/group message protocol, the run directory's files and the two roles.
 * Private to src/orch/. */
#ifndef SAFECL_ORCH_INTERNAL_H
#define SAFECL_ORCH_INTERNAL_H

#include "safecl/ledger.h"
#include "safecl/orch.h"
#include "safecl/plan.h"
#include "safecl/trial.h"

/* ---------------------------------------------------------------------------------------- */
/* Sweep files (sweep_file.c)                                                                 */

/* Checks "key=value" against the trial's key table; errors start with `where`. */
SCL_NODISCARD scl_err orch_check_trial_setting(const char *text, const char *where);
SCL_NODISCARD scl_err orch_settings_add(orch_settings *l, const char *text, const char *where);
void orch_settings_free(orch_settings *l);
SCL_NODISCARD scl_err orch_seeds_set(orch_sweep *s, const int64_t *v, int n, const char *where);
/* Walks a sweep file into s; the sweep table's scalars met on the way go to *scalars as
 * "key=value" settings with their file:line (freed by the caller, also on error). */
SCL_NODISCARD scl_err orch_sweep_parse_file(orch_sweep *s, orch_settings *scalars,
                                            const char *path);
/* Re-raises the current error with `where` in front of its message. */
SCL_NODISCARD scl_err orch_rewhere(scl_err err, const char *where);

/* ---------------------------------------------------------------------------------------- */
/* Cost model (cost.c)                                                                        */

/* The facts of cfg's dataset, read on first use and kept for the process (run_plan_dataset_key
 * names a dataset): *facts (owned by the cache), or NULL and *error, the message of a dataset
 * that cannot be read (owned by the cache). Fails only when out of memory. */
SCL_NODISCARD scl_err orch_cost_facts(const run_trial_cfg *cfg, const run_plan_facts **facts,
                                      const char **error);
/* Expected seconds of a trial before anything was measured (see cost.c for the model), from
 * its dataset's facts. */
double orch_cost_prior(const run_trial_cfg *cfg, const run_plan_facts *facts);
/* Measured seconds of finished trials (those a run timed) per dataset/method, and the overall
 * measured/prior ratio that scales the prior of classes nothing was measured for. */
#define ORCH_COST_CLASSES 64
typedef struct orch_cost_model {
  struct {
    char key[256]; /* "dataset\tmethod" */
    double sum;
    int n;
  } classes[ORCH_COST_CLASSES];
  int n;
  double ratio, measured;
} orch_cost_model;
void orch_cost_model_fit(const orch_state *state, orch_cost_model *m);
/* Expected seconds of a trial given its PLAN text and prior. */
double orch_cost_model_expect(const orch_cost_model *m, const char *plan_text, double prior);
/* Replaces each planned (prior) cost by the model's expectation (state may be NULL). */
void orch_cost_calibrate(orch_plan *plan, const orch_state *state);
/* Trial indices sorted longest expected first (ties: plan order). Caller frees with free(). */
SCL_NODISCARD scl_err orch_cost_order(const orch_plan *plan, int64_t **order);

/* ---------------------------------------------------------------------------------------- */
/* The coordinator/group protocol (protocol.c)                                               */

#define ORCH_TAG 7301
#define ORCH_MSG_MAGIC 0x5343u /* "SC": both ends run the same safecl */
#define ORCH_MSG_VERSION 1

/* Messages. Groups -> coordinator, each answered by exactly one reply:
 *   HELLO     the group is ready for its first trial                    -> TRIAL or EXIT
 *   PROGRESS  the trial passed a boundary: sessions = boundaries so far  -> CONTINUE or HALT
 *   RESULT    the trial ended: status (scl_err; SCL_ERR_STOP after HALT), skipped, seconds,
 *             final/avg/val accuracy, text = error message              -> TRIAL or EXIT
 * Coordinator -> groups:
 *   TRIAL     run this trial: trial (plan index), id, attempt, flags (dry run), text = its
 *             layering, "F <config file>" and "O <key=value>" lines in order; seconds is set
 *             by the group's rank 0 on receipt (the attempt's stamp in crash records)
 *   CONTINUE  go on;  HALT  checkpoint and stop the trial (it returns SCL_ERR_STOP)
 *   EXIT      no more work: exit_code is the sweep's status so far (the final one is
 *             broadcast to every rank at the end)
 * Every message carries `latency`: the sender's last round trip to the coordinator. */
#define ORCH_MSG_LIST(X) X(HELLO) X(PROGRESS) X(RESULT) X(TRIAL) X(CONTINUE) X(HALT) X(EXIT)
typedef enum {
  ORCH_MSG_NONE = 0,
#define ORCH_MSG_ENUM(name) ORCH_MSG_##name,
  ORCH_MSG_LIST(ORCH_MSG_ENUM)
#undef ORCH_MSG_ENUM
      ORCH_MSG_COUNT
} orch_msg_type;

#define ORCH_FLAG_DRY_RUN 1

typedef struct orch_msg {
  int32_t type, group;
  int64_t trial;
  int32_t attempt, sessions, status, flags, skipped, exit_code;
  double seconds, final_acc, avg_acc, val_acc;
  double latency; /* RESULT/PROGRESS: the group's last round trip to the coordinator (s) */
  char id[33];
  char *text; /* owned; NULL = empty */
} orch_msg;

const char *orch_msg_name(int type);
/* Sends m (text included) to rank dest of c. */
SCL_NODISCARD scl_err orch_msg_send(const dist_comm *c, int dest, const orch_msg *m);
/* Receives one message from `source` (DIST_ANY_SOURCE for any); *from is the sender's rank.
 * m->text is allocated: orch_msg_clear. A malformed message is SCL_ERR_FORMAT. */
SCL_NODISCARD scl_err orch_msg_recv(const dist_comm *c, int source, orch_msg *m, int *from);
/* Broadcasts the root's m to the group (collective over c). */
SCL_NODISCARD scl_err orch_msg_bcast(const dist_comm *c, int root, orch_msg *m);
void orch_msg_clear(orch_msg *m);
SCL_NODISCARD scl_err orch_msg_set_text(orch_msg *m, const char *text);

/* ---------------------------------------------------------------------------------------- */
/* Run directory (rundir.c)                                                                    */

typedef struct orch_rundir {
  char path[4096];
  char job_id[256];
  int64_t restart; /* SLURM_RESTART_COUNT, 0 without SLURM */
  int lock_fd;
} orch_rundir;

/* Creates RUN_DIR and RUN_DIR/trials, takes the run directory's lock (one sweep at a time) and
 * names this job's ledger. Fails naming the holder when another sweep has the lock. */
SCL_NODISCARD scl_err orch_rundir_open(const char *path, orch_rundir *rd);
void orch_rundir_close(orch_rundir *rd);
/* RUN_DIR/trials/<id> into buf. */
void orch_rundir_trial(const char *run_dir, const char *id, char *buf, size_t cap);
/* 1 if RUN_DIR/trials/<id>/trial.h5 exists (it is published by rename: existing = complete). */
int orch_rundir_finished(const char *run_dir, const char *id);
/* The trial directories under RUN_DIR/trials (names of 32 characters, sorted), read with one
 * readdir so that checking 10^6 planned trials stats only the directories that exist. */
typedef struct orch_trial_dirs {
  char (*id)[33];
  int64_t n;
} orch_trial_dirs;
/* Lists RUN_DIR/trials into *d (empty when it does not exist); free with orch_trial_dirs_free. */
SCL_NODISCARD scl_err orch_trial_dirs_list(const char *run_dir, orch_trial_dirs *d);
void orch_trial_dirs_free(orch_trial_dirs *d);
/* orch_rundir_finished, answered 0 without a stat when the trial has no listed directory. */
int orch_trial_dirs_finished(const orch_trial_dirs *d, const char *run_dir, const char *id);
/* Reads final/avg/val accuracy and seconds from a finished trial's trial.h5. */
SCL_NODISCARD scl_err orch_rundir_read_result(const char *run_dir, const char *id,
                                              double *final_acc, double *avg_acc, double *val_acc,
                                              double *seconds);

/* How often a lock holder refreshes the lock file's mtime (src/orch/rundir.c). */
#define ORCH_HEARTBEAT_SECONDS 30

/* Whether the job recorded in RUN_DIR/lock is alive, read-only (src/orch/rundir.c). */
typedef struct orch_liveness {
  int present;      /* RUN_DIR/lock exists */
  char holder[512]; /* its holder line: "train ...", "sweep job ..." */
  char host[256];   /* the holder's host, "" if not recorded */
  long pid;         /* the holder's pid, 0 if not recorded */
  int interval;     /* its heartbeat interval in seconds, 0 if not recorded */
  double heartbeat; /* the lock file's mtime (Unix seconds): the last heartbeat */
  char ended[32];   /* when the holder released it ("2026-12-01T20:10:00Z"), "" if it did not */
  int held;         /* the kernel's answer to F_GETLK: 1 held, 0 free, -1 no locks here */
  int same_host;    /* the holder ran on this host */
  int pid_alive;    /* on the same host: kill(pid, 0) found it (1) or not (0); else -1 */
  int alive;        /* the verdict: held lock (and live pid), else live pid, else fresh heartbeat */
} orch_liveness;
void orch_run_liveness(const char *run_dir, orch_liveness *lv);
/* "running (pid 1234 on host, heartbeat 5 s ago)", "ended 2026-...Z" or "dead (last heartbeat
 * 12 min ago; pid 1234 gone)" (src/orch/status.c). */
void orch_liveness_text(const orch_liveness *lv, double now, char *buf, size_t cap);
/* Seconds as "42 s", "12 min" or "3.5 h"; "?" for a negative or non-finite value. */
void orch_duration_text(double s, char *buf, size_t cap);
/* `safecl status` on a `safecl train` run directory (src/orch/status_train.c). */
SCL_NODISCARD scl_err orch_status_train_print(const char *run_dir, const orch_liveness *lv,
                                              FILE *out);

/* ---------------------------------------------------------------------------------------- */
/* Signals (signals.c): SIGUSR1, SIGTERM and SIGINT set a flag.                              */

void orch_signals_reset(void);

/* ---------------------------------------------------------------------------------------- */
/* The roles (coordinator.c, worker.c)                                                        */

typedef struct orch_coord_opts {
  const orch_sweep *sweep;
  int groups, group_size; /* group g's leader is world rank 1 + g * group_size */
} orch_coord_opts;

/* The coordinator on world rank 0: plan, reconcile, dispatch until every group has exited.
 * *exit_code = 0 (complete), ORCH_EXIT_TRIALS_FAILED (complete, some trials failed),
 * ORCH_EXIT_REQUEUE (stopped) or 1. Errors are MPI failures (the
 * groups may be waiting): the caller aborts. */
SCL_NODISCARD scl_err orch_coordinator_run(const dist_comm *world, const orch_coord_opts *o,
                                           int *exit_code);
/* `safecl sweep --plan`: records the plan in RUN_DIR (ledger PLAN records, sweep.cfg,
 * index.h5) without running anything, so that status and reports see array-job sweeps. */
SCL_NODISCARD scl_err orch_sweep_record_plan(const orch_sweep *s);
/* A worker group: group rank 0 talks to world rank 0; all ranks run the trials. */
SCL_NODISCARD scl_err orch_worker_run(const dist_comm *world, const dist_comm *group, int group_id,
                                      int *exit_code);

/* What the next job of sweep s does with a trial that is not finished, given its state in the
 * run directory (NULL: never seen) (state.c); coord_setup.c acts on it and `sweep --list,
 * --summary` print it, so that both agree. */
typedef enum {
  ORCH_NEXT_RUN,     /* runs it */
  ORCH_NEXT_RETRY,   /* failed on a fault of the machine within sweep.max_retries jobs: runs it */
  ORCH_NEXT_FAILED,  /* failed for good (without sweep.retry_failed): leaves it */
  ORCH_NEXT_CRASHED, /* its processes crashed sweep.max_crashes times: fails it without running */
} orch_next;
orch_next orch_state_next(const orch_trial_state *ts, const orch_sweep *s);

/* Files over records, in memory only: a trial is finished iff trials/<id>/trial.h5 exists;
 * numbers the ledger lacks are read from that file (index.c). */
SCL_NODISCARD scl_err orch_state_reconcile_files(orch_state *s, const char *run_dir);
/* The index of a run (index.c): rebuilt from the plan or the ledgers and the trial files. */
SCL_NODISCARD scl_err orch_index_write(const char *run_dir, const char *name,
                                       const orch_state *state);

/* Trial notes (trial_notes.c): RUN_DIR/trials/<id>/trial.cfg when an attempt starts (and an
 * earlier failed.txt removed), failed.txt with the message when the trial fails for good. Best
 * effort: a file that cannot be written is a warning. */
void orch_trial_note_started(const orch_sweep *s, const orch_trial *t, const char *run_dir);
void orch_trial_note_failed(const orch_sweep *s, const orch_trial *t, const char *run_dir,
                            const char *message);
/* 1 if RUN_DIR/trials/<id>/failed.txt exists. */
int orch_trial_note_has_failed(const char *run_dir, const char *id);
/* RUN_DIR/trials.tsv rebuilt from the state (trials_tsv.c), published by write-then-rename. */
SCL_NODISCARD scl_err orch_trials_tsv_write(const char *run_dir, const orch_state *state);

#endif /* SAFECL_ORCH_INTERNAL_H */
