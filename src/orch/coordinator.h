/* coordinator.h: the coordinator's state, shared by coord_setup.c (planning, reconciling with the
 * run directory, the end of a job) and coordinator.c (the dispatch loop). Private to src/orch/. */
#ifndef SAFECL_ORCH_COORDINATOR_H
#define SAFECL_ORCH_COORDINATOR_H

#include "orch_internal.h"

typedef struct coord_stats {
  int64_t requests;              /* messages handled */
  double handle_sum, handle_max; /* seconds from a message's arrival to its reply */
  int64_t rtt_n;                 /* round trips reported by groups */
  double rtt_sum, rtt_max;       /* seconds */
} coord_stats;

typedef struct coord {
  const dist_comm *world;
  const orch_sweep *sweep;
  int groups, group_size, active; /* active: groups not yet sent EXIT */
  orch_rundir rd;
  orch_ledger *ledger;
  orch_state *state;
  orch_plan *plan;
  int64_t *state_of; /* plan index -> index into state->trials */
  int64_t *queue;    /* plan indices to run, longest expected first */
  int64_t n_queue, next;
  int64_t *retry; /* ring of plan->n: plan indices to run again, before the queue */
  int64_t n_retry, retry_head;
  int64_t *group_trial;   /* plan index per group, -1 = idle */
  double *group_recorded; /* when a PROGRESS record was last written per group */
  int stopping;           /* a signal arrived: HALT running trials, EXIT idle groups */
  scl_err failure;        /* the ledger could not be written: stop, exit 1 */
  coord_stats stats;
  double t_start;
  int tsv_dirty;      /* a trial's status changed since trials.tsv was written */
  double tsv_written; /* when trials.tsv was last written */
} coord;

/* The trial's state entry. */
orch_trial_state *coord_state(coord *c, int64_t plan_index);
/* Applies a record to the state (stamping its time if 0). */
void coord_apply(coord *c, orch_record *r);
/* Appends it to the ledger (unless the ledger has failed: then the sweep stops). */
void coord_append(coord *c, const orch_record *r, int sync);
/* Both. */
void coord_record(coord *c, const orch_record *r, int sync);
/* Rewrites RUN_DIR/trials.tsv when a status changed, at most once per ORCH_TSV_INTERVAL_S
 * (force: now, changed or not). A failure is a warning: the table is derived. */
void coord_trials_tsv(coord *c, int force);
/* Plans, opens the run directory and ledger, reconciles with trials/ and fills the queue. */
SCL_NODISCARD scl_err coord_setup(coord *c);
/* Ends the job: END record, index.h5, summary; returns the exit code. */
int coord_finish(coord *c);
void coord_destroy(coord *c);

#endif /* SAFECL_ORCH_COORDINATOR_H */
