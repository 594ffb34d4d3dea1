/* progress.c: where a trial's training is and the time it still needs, for a person watching it
 * (docs/architecture.md section 6, "Log lines and progress").
 *
 * The training loop reports sessions, epochs and steps here; group rank 0 logs a progress line
 * every train.progress_seconds and at every epoch end: session s/T, epoch e/E, batch b/N, the
 * epoch's img/s so far, elapsed time of the epoch, the session's training and the trial (in
 * this process: a resumed trial counts from its restart), and the ETA of each. The epoch and
 * session ETAs are the images left at the epoch's measured rate. The trial's ETA is the work the
 * plan counts for the rest of the trial (plan.c: training, feature extraction, evaluation,
 * classifier; "plan") priced at the training rate measured now, or, when the plan cannot be
 * counted, the training of the remaining sessions at the measured rate ("measured", training
 * only). On a terminal the periodic line is a status line redrawn in place (scl_log_status)
 * and goes to the trial's log file only; the epoch-end lines are logged everywhere. */
#include "progress.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "safecl/plan.h"
#include "trial_internal.h"

#define PROGRESS_MAX_SESSIONS 64
#define PROGRESS_BAR_SECONDS 0.25 /* the status line's redraw interval */

struct run_progress {
  double interval, t_trial, t_session, t_epoch, last_line, last_bar;
  int tty, n_sessions, t, have_plan;
  int64_t epochs, steps, images, batch, e, k0, done, epochs_later;
  double work[PROGRESS_MAX_SESSIONS][4]; /* the plan's gflop per session and phase */
};

/* The plan's work of every session, from the trial's open datasets (no file is read). */
static scl_err count_work(const trial_state *st, run_progress *p) {
  run_plan_facts f;
  scl_err err = run_plan_facts_count(st->cfg, st->train, st->test, &f);
  if (err) return err;
  /* unit rates: the plan's forward seconds are then its gflop */
  run_plan_rates unit = {1.0, 1.0, 1.0, 0.0, ""};
  run_plan *plan = calloc(1, sizeof *plan);
  SCL_CHECK_GOTO(err, done, plan, SCL_ERR_NOMEM, "progress: plan");
  err = run_plan_count(st->cfg, &f, &unit, plan);
  if (!err && plan->n_sessions == st->n_sessions && st->n_sessions <= PROGRESS_MAX_SESSIONS) {
    for (int t = 0; t < plan->n_sessions; t++)
      for (int k = 0; k < 4; k++) p->work[t][k] = plan->s[t].gflop[k];
    p->have_plan = 1;
  }
  free(plan);
done:
  run_plan_facts_free(&f);
  return err;
}

scl_err run_progress_create(const trial_state *st, run_progress **out) {
  *out = NULL;
  if (!run_group_root(&st->group)) return SCL_OK;
  run_progress *p = calloc(1, sizeof *p);
  SCL_CHECK(p, SCL_ERR_NOMEM, "progress");
  p->interval = st->cfg->progress_seconds;
  p->t_trial = scl_now();
  p->tty = scl_log_tty();
  p->n_sessions = st->n_sessions;
  p->epochs_later = st->cfg->method.epochs_later;
  if (count_work(st, p)) { /* the ETA falls back to measured rates; the trial goes on */
    char msg[512];
    scl_error_take(msg, sizeof msg);
    SCL_DEBUG("progress: the plan's work is not counted (%s); ETAs from measured rates", msg);
  }
  *out = p;
  return SCL_OK;
}

void run_progress_destroy(run_progress **p) {
  if (!p || !*p) return;
  scl_log_status(NULL);
  free(*p);
  *p = NULL;
}

void run_progress_session(run_progress *p, int t, int64_t epochs, int64_t steps, int64_t images,
                          int64_t batch) {
  if (!p) return;
  p->t = t;
  p->epochs = epochs;
  p->steps = steps;
  p->images = images;
  p->batch = batch;
  p->t_session = scl_now();
  p->last_line = p->t_session;
  p->last_bar = -1e30; /* the status line appears at the session's first step */
}

void run_progress_epoch(run_progress *p, int64_t e, int64_t k0) {
  if (!p) return;
  p->e = e;
  p->k0 = p->done = k0;
  p->t_epoch = scl_now();
}

/* Images the first k steps of an epoch see. */
static int64_t images_of(const run_progress *p, int64_t k) {
  int64_t n = k * p->batch;
  return n < p->images ? n : p->images;
}

/* "1:02:03", "2d 01:02:03", or "?" for an unknown time. */
static void duration(double s, char *buf, size_t cap) {
  if (!isfinite(s) || s < 0 || s > 1e9) {
    snprintf(buf, cap, "?");
    return;
  }
  long long v = (long long)(s + 0.5), d = v / 86400, h = v / 3600 % 24, m = v / 60 % 60;
  if (d > 0)
    snprintf(buf, cap, "%lldd %02lld:%02lld:%02lld", d, h, m, v % 60);
  else
    snprintf(buf, cap, "%lld:%02lld:%02lld", h, m, v % 60);
}

typedef struct progress_view {
  double rate; /* img/s of the epoch so far (0: none measured yet) */
  char el_epoch[32], el_session[32], el_trial[32], eta_epoch[32], eta_session[32], eta_trial[32];
  const char *source; /* of the trial's ETA: "plan" or "measured" */
} progress_view;

static void view(const run_progress *p, progress_view *v) {
  double now = scl_now(), e_sec = now - p->t_epoch;
  int64_t seen = images_of(p, p->done) - images_of(p, p->k0);
  v->rate = seen > 0 && e_sec > 0 ? (double)seen / e_sec : 0.0;
  double r = v->rate > 0 ? v->rate : NAN;
  double left_epoch = (double)(p->images - images_of(p, p->done));
  double left_session = left_epoch + (double)((p->epochs - p->e - 1) * p->images);
  double eta_trial;
  if (p->have_plan && p->epochs > 0 && p->images > 0 && p->work[p->t][0] > 0) {
    double per_image = p->work[p->t][0] / (double)(p->epochs * p->images); /* gflop */
    double work = left_session * per_image;
    for (int k = 1; k < 4; k++) work += p->work[p->t][k];
    for (int u = p->t + 1; u < p->n_sessions; u++)
      for (int k = 0; k < 4; k++) work += p->work[u][k];
    eta_trial = work / (r * per_image);
    v->source = "plan";
  } else {
    double later = (double)(p->n_sessions - p->t - 1) * (double)(p->epochs_later * p->images);
    eta_trial = (left_session + later) / r;
    v->source = "measured";
  }
  duration(e_sec, v->el_epoch, sizeof v->el_epoch);
  duration(now - p->t_session, v->el_session, sizeof v->el_session);
  duration(now - p->t_trial, v->el_trial, sizeof v->el_trial);
  duration(left_epoch / r, v->eta_epoch, sizeof v->eta_epoch);
  duration(left_session / r, v->eta_session, sizeof v->eta_session);
  duration(eta_trial, v->eta_trial, sizeof v->eta_trial);
}

/* The progress line; to_file_only: the trial's log file only (a terminal shows the bar). */
static void line(const run_progress *p, int epoch_end, int to_file_only) {
  progress_view v;
  view(p, &v);
  void (*out)(scl_log_level, const char *, ...) = to_file_only ? scl_log_file : scl_log;
  out(SCL_LOG_INFO,
      "progress: session %d/%d, epoch %lld/%lld%s, batch %lld/%lld, %.2f img/s; elapsed %s "
      "epoch, %s session, %s trial; ETA %s epoch, %s session, %s trial (%s)",
      p->t + 1, p->n_sessions, (long long)p->e + 1, (long long)p->epochs, epoch_end ? " done" : "",
      (long long)p->done, (long long)p->steps, v.rate, v.el_epoch, v.el_session, v.el_trial,
      v.eta_epoch, v.eta_session, v.eta_trial, v.source);
}

/* The status line: "S 1/3 E 2/5 [#####.....] 7/20 45.2 img/s | epoch 0:00:03<0:00:05 | ...". */
static void bar(const run_progress *p) {
  progress_view v;
  view(p, &v);
  char cells[21];
  int filled = p->steps > 0 ? (int)(20 * p->done / p->steps) : 0;
  for (int i = 0; i < 20; i++) cells[i] = i < filled ? '#' : '.';
  cells[20] = '\0';
  char text[400];
  snprintf(text, sizeof text,
           "S %d/%d E %lld/%lld [%s] %lld/%lld %.2f img/s | epoch %s<%s | session %s<%s | "
           "trial %s<%s (%s)",
           p->t + 1, p->n_sessions, (long long)p->e + 1, (long long)p->epochs, cells,
           (long long)p->done, (long long)p->steps, v.rate, v.el_epoch, v.eta_epoch, v.el_session,
           v.eta_session, v.el_trial, v.eta_trial, v.source);
  scl_log_status(text);
}

void run_progress_step(run_progress *p, int64_t done) {
  if (!p) return;
  p->done = done;
  double now = scl_now();
  /* the epoch's last step: run_progress_epoch_end logs its line */
  if (p->interval > 0 && now - p->last_line >= p->interval && done < p->steps) {
    p->last_line = now;
    line(p, 0, p->tty);
  }
  if (p->tty && now - p->last_bar >= PROGRESS_BAR_SECONDS) {
    p->last_bar = now;
    bar(p);
  }
}

void run_progress_epoch_end(run_progress *p) {
  if (!p) return;
  p->done = p->steps;
  line(p, 1, 0);
  p->last_line = scl_now();
}

void run_progress_session_end(run_progress *p) {
  if (!p) return;
  scl_log_status(NULL);
}
