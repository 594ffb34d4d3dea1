/* coordinator.c: world rank 0's dispatch loop: block for the next message from any group,
 * answer it, write what happened to the ledger.
 *
 * Replies go out before the ledger records that describe them (the in-memory state is updated
 * first, since it decides the reply), so a group waits for the coordinator's decision only, never
 * for a ledger fsync (the one file written before a TRIAL reply is the trial's trial.cfg, once
 * per trial: trial_notes.c). This is safe because the ledger is history:
 * a FINISHED record lost in a crash is reconstructed from trials/<id>/trial.h5 on the next start,
 * a lost START means nothing, and a lost FAILED only costs running that trial again. A transient
 * failure (I/O, memory, HDF5, MPI inside the trial) is retried up to sweep.max_retries times; a
 * NaN (SCL_ERR_NUMERIC), bad input or a bug fails the trial at once, deterministically. When the
 * retries are spent on a fault of the machine (SCL_ERR_RESOURCE: disk full, I/O error;
 * SCL_ERR_NOMEM) the FAILED record says so (count 1) and the next job runs the trial again. A signal
 * turns every later reply into HALT (running trials checkpoint at their next boundary) or EXIT. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coordinator.h"

orch_trial_state *coord_state(coord *c, int64_t plan_index) {
  return &c->state->trials[c->state_of[plan_index]];
}

void coord_apply(coord *c, orch_record *r) {
  if (r->time == 0) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r->time = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
  }
  if (orch_state_apply(c->state, r) != SCL_OK) { /* out of memory: the ledger is the truth */
    scl_log_error_traceback();
    scl_error_take(NULL, 0);
  }
}

void coord_append(coord *c, const orch_record *r, int sync) {
  if (c->failure) return;
  scl_err err = orch_ledger_append(c->ledger, r, sync);
  if (!err) return;
  scl_log_error_traceback();
  SCL_WARN("the ledger cannot be written: stopping the sweep (trials checkpoint and stop)");
  scl_error_take(NULL, 0);
  c->failure = err;
  c->stopping = 1;
}

void coord_record(coord *c, const orch_record *r, int sync) {
  orch_record copy = *r;
  coord_apply(c, &copy);
  coord_append(c, &copy, sync);
}

/* trials.tsv is rewritten whole (O(trials)), so not at every record: status changes come at
 * most a few per trial, and the table may lag them by this much. */
#define ORCH_TSV_INTERVAL_S 2.0

void coord_trials_tsv(coord *c, int force) {
  double now = scl_now();
  if (!force && (!c->tsv_dirty || now - c->tsv_written < ORCH_TSV_INTERVAL_S)) return;
  c->tsv_dirty = 0;
  c->tsv_written = now;
  if (orch_trials_tsv_write(c->rd.path, c->state) == SCL_OK) return;
  scl_log_error_traceback(); /* derived: the next write, or `safecl status DIR --reindex` */
  scl_error_take(NULL, 0);
}

static void check_signals(coord *c) {
  int sig = orch_signals_caught();
  if (!sig || c->stopping) return;
  c->stopping = 1;
  SCL_WARN(
      "signal %d: stopping the sweep: running trials checkpoint at their next boundary, idle "
      "groups exit",
      sig);
  orch_record r = {.type = ORCH_REC_STOP, .group = -1};
  snprintf(r.text, sizeof r.text, "signal %d", sig);
  coord_record(c, &r, 1);
}

/* The next trial to run, or -1. */
static int64_t pick(coord *c) {
  if (c->stopping) return -1;
  if (c->retry_head < c->n_retry) return c->retry[c->retry_head++ % c->plan->n];
  while (c->next < c->n_queue) {
    int64_t t = c->queue[c->next++];
    if (coord_state(c, t)->status == ORCH_TRIAL_PENDING) return t;
  }
  return -1;
}

static scl_err layering_text(coord *c, int64_t t, char **text) {
  const orch_trial *tr = &c->plan->trials[t];
  int argc = 0;
  char **argv = NULL;
  SCL_CALL(orch_plan_args(c->sweep, tr, c->rd.path, &argc, &argv));
  int n_files = orch_plan_n_files(c->sweep, tr->dataset, tr->method);
  size_t len = 1;
  for (int i = 0; i < argc; i++) len += strlen(argv[i]) + 3;
  *text = malloc(len);
  for (int i = 0, pos = 0; *text && i < argc; i++)
    pos += snprintf(*text + pos, len - (size_t)pos, "%c %s\n", i < n_files ? 'F' : 'O', argv[i]);
  orch_args_free(argc, argv);
  SCL_CHECK(*text, SCL_ERR_NOMEM, "trial layering");
  return SCL_OK;
}

/* Replies to group g (world rank `from`) with its next trial or EXIT; *t = the trial or -1.
 * The START record is the caller's, after any record of what the group just reported. */
static scl_err reply_next(coord *c, int g, int from, int64_t *t) {
  *t = pick(c);
  orch_msg out = {.type = *t < 0 ? ORCH_MSG_EXIT : ORCH_MSG_TRIAL, .group = g, .trial = *t};
  c->group_trial[g] = *t;
  if (*t < 0) {
    out.exit_code = c->failure ? 1 : c->stopping ? ORCH_EXIT_REQUEUE : 0;
    c->active--;
    SCL_CALL(orch_msg_send(c->world, from, &out));
    return SCL_OK;
  }
  orch_trial_state *st = coord_state(c, *t);
  /* before the reply: from then on the trial's directory is its group's (stale temporaries in
   * it are removed) */
  if (!c->sweep->dry_run) orch_trial_note_started(c->sweep, &c->plan->trials[*t], c->rd.path);
  memcpy(out.id, st->id, sizeof out.id);
  out.attempt = st->retries + 1;
  out.flags = c->sweep->dry_run ? ORCH_FLAG_DRY_RUN : 0;
  SCL_CALL(layering_text(c, *t, &out.text));
  scl_err err = orch_msg_send(c->world, from, &out);
  orch_msg_clear(&out);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

static void record_start(coord *c, int g, int64_t t) {
  if (t < 0) return;
  orch_trial_state *st = coord_state(c, t);
  orch_record r = {.type = ORCH_REC_START, .group = g, .attempt = st->retries + 1};
  memcpy(r.id, st->id, sizeof r.id);
  coord_record(c, &r, 0);
  c->tsv_dirty = 1;
}

static int machine_fault(scl_err e) { return e == SCL_ERR_RESOURCE || e == SCL_ERR_NOMEM; }

static int transient(scl_err e) {
  return e == SCL_ERR_IO || e == SCL_ERR_HDF5 || e == SCL_ERR_MPI || machine_fault(e);
}

/* The ledger record for a trial's outcome; requeues a transient failure within its budget. */
static void outcome(coord *c, const orch_msg *in, orch_record *r) {
  orch_trial_state *st = coord_state(c, in->trial);
  *r = (orch_record){.group = in->group, .attempt = in->attempt, .sessions = in->sessions};
  memcpy(r->id, st->id, sizeof r->id);
  const char *msg = in->text ? in->text : "";
  if (in->status == SCL_OK) {
    r->type = ORCH_REC_FINISHED;
    r->seconds = in->seconds;
    r->final_acc = in->final_acc;
    r->avg_acc = in->avg_acc;
    r->val_acc = in->val_acc;
    snprintf(r->text, sizeof r->text, "%s",
             c->sweep->dry_run ? "dry-run"
             : in->skipped     ? "skipped"
                               : "");
  } else if (in->status == SCL_ERR_STOP) {
    r->type = ORCH_REC_STOPPED;
  } else if (transient(in->status) && st->retries < c->sweep->max_retries && !c->stopping) {
    r->type = ORCH_REC_RETRY;
    snprintf(r->text, sizeof r->text, "%s: %s", scl_error_name(in->status), msg);
    c->retry[c->n_retry++ % c->plan->n] = in->trial; /* at most once in the ring */
    SCL_WARN("trial %s failed (attempt %d of %lld, will retry): %s", st->id, in->attempt,
             (long long)c->sweep->max_retries + 1, msg);
  } else if (transient(in->status) && c->stopping) {
    r->type = ORCH_REC_STOPPED; /* not its fault: the job is ending; it runs again next time */
  } else {
    r->type = ORCH_REC_FAILED;
    r->count = machine_fault(in->status); /* 1: the next job runs it again */
    snprintf(r->text, sizeof r->text, "%s%s: %s", transient(in->status) ? "gave up: " : "",
             scl_error_name(in->status), msg);
    SCL_WARN("trial %s FAILED (%s%s): %s", st->id, scl_error_name(in->status),
             r->count ? "; the next job of the sweep runs it again" : "", msg);
  }
}

static scl_err on_result(coord *c, const orch_msg *in, int from) {
  SCL_CHECK(in->trial == c->group_trial[in->group], SCL_ERR_INTERNAL,
            "group %d reported trial %lld but runs %lld", in->group, (long long)in->trial,
            (long long)c->group_trial[in->group]);
  orch_record r;
  int64_t next = -1;
  outcome(c, in, &r);
  coord_apply(c, &r); /* the state decides the reply (a retry's attempt number) */
  SCL_CALL(reply_next(c, in->group, from, &next));
  coord_append(c, &r, 1);
  if (r.type == ORCH_REC_FAILED)
    orch_trial_note_failed(c->sweep, &c->plan->trials[in->trial], c->rd.path, r.text);
  c->tsv_dirty = 1;
  record_start(c, in->group, next);
  return SCL_OK;
}

/* Groups ask at their first boundary and then about once a second; the ledger keeps the first
 * report of an attempt (it marks the attempt as having got going) and then one per
 * ORCH_PROGRESS_RECORD_S per group, so that a long trial does not fill the ledger. */
#define ORCH_PROGRESS_RECORD_S 30.0

static scl_err on_progress(coord *c, const orch_msg *in, int from) {
  orch_msg out = {.type = c->stopping ? ORCH_MSG_HALT : ORCH_MSG_CONTINUE,
                  .group = in->group,
                  .trial = in->trial};
  SCL_CALL(orch_msg_send(c->world, from, &out));
  double now = scl_now();
  if (in->sessions > 1 && now - c->group_recorded[in->group] < ORCH_PROGRESS_RECORD_S)
    return SCL_OK;
  c->group_recorded[in->group] = now;
  orch_record r = {.type = ORCH_REC_PROGRESS,
                   .group = in->group,
                   .attempt = in->attempt,
                   .sessions = in->sessions};
  memcpy(r.id, coord_state(c, in->trial)->id, sizeof r.id);
  coord_record(c, &r, 0);
  return SCL_OK;
}

static scl_err handle(coord *c, const orch_msg *in, int from) {
  int g = in->group;
  SCL_CHECK(g >= 0 && g < c->groups && from == 1 + g * c->group_size, SCL_ERR_INTERNAL,
            "message %s from rank %d claims group %d", orch_msg_name(in->type), from, g);
  if (in->latency > 0) {
    c->stats.rtt_n++;
    c->stats.rtt_sum += in->latency;
    if (in->latency > c->stats.rtt_max) c->stats.rtt_max = in->latency;
  }
  switch (in->type) {
    case ORCH_MSG_HELLO: {
      int64_t next = -1;
      SCL_CALL(reply_next(c, g, from, &next));
      record_start(c, g, next);
      return SCL_OK;
    }
    case ORCH_MSG_PROGRESS:
      SCL_CALL(on_progress(c, in, from));
      return SCL_OK;
    case ORCH_MSG_RESULT:
      SCL_CALL(on_result(c, in, from));
      return SCL_OK;
  }
  return SCL_ERROR(SCL_ERR_INTERNAL, "unexpected %s from rank %d", orch_msg_name(in->type), from);
}

/* After a failed setup there is no plan or state to dispatch from: answer each group's first
 * message with EXIT 1, so that every rank ends cleanly with the job's exit status. */
static scl_err dismiss_groups(coord *c) {
  orch_msg in = {0};
  scl_err err = SCL_OK;
  for (int left = c->groups; left > 0 && !err; left--) {
    int from = -1;
    err = orch_msg_recv(c->world, DIST_ANY_SOURCE, &in, &from);
    orch_msg out = {.type = ORCH_MSG_EXIT, .group = in.group, .trial = -1, .exit_code = 1};
    if (!err) err = orch_msg_send(c->world, from, &out);
    orch_msg_clear(&in);
  }
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

scl_err orch_coordinator_run(const dist_comm *world, const orch_coord_opts *o, int *exit_code) {
  coord c = {.world = world,
             .sweep = o->sweep,
             .groups = o->groups,
             .group_size = o->group_size,
             .active = o->groups,
             .t_start = scl_now()};
  c.rd.lock_fd = -1;
  *exit_code = 1;
  scl_err err = coord_setup(&c);
  if (err) {
    scl_log_error_traceback();
    scl_error_take(NULL, 0);
    err = dismiss_groups(&c);
    coord_destroy(&c);
    return err;
  }
  orch_msg in = {0};
  while (c.active > 0) {
    int from = -1;
    SCL_CALL_GOTO(err, orch_msg_recv(world, DIST_ANY_SOURCE, &in, &from), done);
    double t0 = scl_now();
    check_signals(&c);
    SCL_CALL_GOTO(err, handle(&c, &in, from), done);
    coord_trials_tsv(&c, 0);
    double dt = scl_now() - t0;
    c.stats.requests++;
    c.stats.handle_sum += dt;
    if (dt > c.stats.handle_max) c.stats.handle_max = dt;
    orch_msg_clear(&in);
  }
  *exit_code = coord_finish(&c);
done:
  orch_msg_clear(&in);
  coord_destroy(&c);
  return err;
}
