/* state.c: a run directory's state replayed from its ledgers: every trial's status, retries,
 * crashes and latest numbers, and what the latest job's groups are doing.
 *
 * The same apply function serves three readers: the coordinator at start (then for each record
 * it appends, so its memory and the ledger cannot disagree), `safecl status`, and the index
 * rebuild. Trials are found through an open-addressing table keyed by the first 64 bits of the
 * id, so replaying 100,000 records is linear. An attempt that was started but has no outcome is
 * "open"; when a later JOB record shows that its job is gone, it is settled as interrupted,
 * which charges the trial nothing: a job killed from outside is not the trial's fault. Crashes
 * are the CRASHED records a dying worker wrote (crash.c), counted once per attempt; they arrive
 * in files of their own, merged after the ledger they belong to, so applying one changes
 * nothing but the count and the last crash's text. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "orch_internal.h"

const char *orch_trial_status_name(orch_trial_status s) {
  static const char *const names[] = {"pending", "running", "finished", "failed"};
  return s >= 0 && s <= ORCH_TRIAL_FAILED ? names[s] : "?";
}

scl_err orch_state_create(orch_state **out) {
  *out = calloc(1, sizeof **out);
  SCL_CHECK(*out, SCL_ERR_NOMEM, "run state");
  return SCL_OK;
}

void orch_state_destroy(orch_state **s) {
  if (!s || !*s) return;
  for (int64_t i = 0; i < (*s)->n; i++) {
    free((*s)->trials[i].plan_text);
    free((*s)->trials[i].message);
    free((*s)->trials[i].crash);
  }
  free((*s)->trials);
  free((*s)->table);
  free((*s)->job.group);
  free(*s);
  *s = NULL;
}

/* Ids are hashes already, but the table must not depend on that (a hand-written or test ledger
 * may use ids with long common prefixes), so all 32 characters are hashed again. */
static uint64_t id_hash(const char *id) { return scl_hash_bytes(id, strnlen(id, 32)).lo; }

static int64_t *slot_of(const orch_state *s, const char *id) {
  uint64_t mask = (uint64_t)s->table_cap - 1;
  for (uint64_t j = id_hash(id) & mask;; j = (j + 1) & mask) {
    int64_t v = s->table[j];
    if (!v || !strcmp(s->trials[v - 1].id, id)) return &s->table[j];
  }
}

orch_trial_state *orch_state_find(const orch_state *s, const char *id) {
  if (!s->table_cap) return NULL;
  int64_t v = *slot_of(s, id);
  return v ? &s->trials[v - 1] : NULL;
}

static scl_err grow(orch_state *s) {
  int64_t cap = s->table_cap ? 2 * s->table_cap : 1024;
  int64_t *old = s->table, old_cap = s->table_cap;
  int64_t *table = calloc((size_t)cap, sizeof *table);
  SCL_CHECK(table, SCL_ERR_NOMEM, "trial table of %lld slots", (long long)cap);
  s->table = table;
  s->table_cap = cap;
  for (int64_t i = 0; i < old_cap; i++)
    if (old[i]) *slot_of(s, s->trials[old[i] - 1].id) = old[i];
  free(old);
  if (s->n == s->cap) {
    int64_t tcap = s->cap ? 2 * s->cap : 512;
    orch_trial_state *t = realloc(s->trials, (size_t)tcap * sizeof *t);
    SCL_CHECK(t, SCL_ERR_NOMEM, "run state of %lld trials", (long long)tcap);
    s->trials = t;
    s->cap = tcap;
  }
  return SCL_OK;
}

static scl_err find_or_add(orch_state *s, const char *id, orch_trial_state **out) {
  *out = orch_state_find(s, id);
  if (*out) return SCL_OK;
  if (2 * (s->n + 1) > s->table_cap || s->n == s->cap) SCL_CALL(grow(s));
  orch_trial_state *t = &s->trials[s->n];
  *t = (orch_trial_state){.plan_index = -1, .group = -1, .backbone_random = -1};
  memcpy(t->id, id, 33);
  *slot_of(s, id) = ++s->n;
  *out = t;
  return SCL_OK;
}

static scl_err set_text(char **slot, const char *text) {
  free(*slot);
  *slot = strdup(text);
  if (!*slot) return SCL_ERROR(SCL_ERR_NOMEM, "ledger text");
  return SCL_OK;
}

void orch_state_settle(orch_state *s) {
  for (int64_t i = 0; i < s->n; i++) {
    orch_trial_state *t = &s->trials[i];
    if (!t->open) continue;
    t->open = 0;
    if (t->status == ORCH_TRIAL_RUNNING) t->status = ORCH_TRIAL_PENDING;
  }
  for (int g = 0; g < s->job.groups; g++) s->job.group[g].trial = -1;
}

static scl_err begin_job(orch_state *s, const orch_record *r) {
  orch_state_settle(s);
  free(s->job.group);
  memset(&s->job, 0, sizeof s->job);
  snprintf(s->job.job_id, sizeof s->job.job_id, "%.*s", (int)strcspn(r->text, " "), r->text);
  const char *name = strstr(r->text, " sweep=");
  if (name)
    snprintf(s->job.sweep, sizeof s->job.sweep, "%.*s", (int)strcspn(name + 7, " "), name + 7);
  s->job.start = r->time;
  s->job.restart = r->count;
  s->job.groups = r->group > 0 && r->group < 1000000 ? r->group : 0;
  s->job.group_size = r->attempt;
  s->job.group = malloc((size_t)(s->job.groups + 1) * sizeof *s->job.group);
  SCL_CHECK(s->job.group, SCL_ERR_NOMEM, "job groups");
  for (int g = 0; g < s->job.groups; g++)
    s->job.group[g] = (orch_group_state){.trial = -1, .since = r->time};
  s->n_jobs++;
  return SCL_OK;
}

static orch_group_state *group_of(orch_state *s, const orch_record *r) {
  return r->group >= 0 && r->group < s->job.groups ? &s->job.group[r->group] : NULL;
}

/* An attempt's outcome: the trial leaves its group. */
static void close_attempt(orch_state *s, orch_trial_state *t, const orch_record *r,
                          orch_trial_status status) {
  t->open = 0;
  t->status = status;
  orch_group_state *g = group_of(s, r);
  if (g) *g = (orch_group_state){.trial = -1, .since = r->time};
}

static scl_err apply_trial(orch_state *s, const orch_record *r) {
  orch_trial_state *t = NULL;
  SCL_CALL(find_or_add(s, r->id, &t));
  orch_group_state *g = group_of(s, r);
  switch (r->type) {
    case ORCH_REC_PLAN:
      t->plan_index = r->count;
      t->cost = r->seconds;
      t->backbone_random = r->attempt == 1 ? 1 : r->attempt == 2 ? 0 : -1;
      SCL_CALL(set_text(&t->plan_text, r->text));
      break;
    case ORCH_REC_START:
      t->open = 1;
      t->status = ORCH_TRIAL_RUNNING;
      t->group = r->group;
      t->started = r->time;
      s->job.dispatched++;
      if (g) *g = (orch_group_state){.trial = t - s->trials, .since = r->time, .sessions = 0};
      break;
    case ORCH_REC_PROGRESS:
      t->sessions = r->sessions;
      if (g) g->sessions = r->sessions;
      break;
    case ORCH_REC_FINISHED:
      t->seconds = r->seconds;
      t->final_acc = r->final_acc;
      t->avg_acc = r->avg_acc;
      t->val_acc = r->val_acc;
      t->measured = r->text[0] == '\0';
      s->job.finished++;
      close_attempt(s, t, r, ORCH_TRIAL_FINISHED);
      break;
    case ORCH_REC_RETRY:
      t->retries++;
      SCL_CALL(set_text(&t->message, r->text));
      close_attempt(s, t, r, ORCH_TRIAL_PENDING);
      break;
    case ORCH_REC_FAILED:
      SCL_CALL(set_text(&t->message, r->text));
      t->retryable = r->count == 1;
      t->machine_failures += t->retryable;
      s->job.failed++;
      close_attempt(s, t, r, ORCH_TRIAL_FAILED);
      break;
    case ORCH_REC_CRASHED:
      if (t->crashes == 0 || r->seconds != t->crash_stamp) t->crashes++;
      t->crash_stamp = r->seconds;
      SCL_CALL(set_text(&t->crash, r->text));
      break;
    case ORCH_REC_STOPPED:
      t->sessions = r->sessions;
      s->job.stopped++;
      close_attempt(s, t, r, ORCH_TRIAL_PENDING);
      break;
    default:
      break;
  }
  return SCL_OK;
}

scl_err orch_state_apply(orch_state *s, const orch_record *r) {
  s->n_records++;
  if (r->time > s->job.last) s->job.last = r->time;
  switch (r->type) {
    case ORCH_REC_JOB:
      SCL_CALL(begin_job(s, r));
      return SCL_OK;
    case ORCH_REC_END:
      s->job.ended = 1;
      snprintf(s->job.end, sizeof s->job.end, "%.63s", r->text);
      orch_state_settle(s);
      return SCL_OK;
    case ORCH_REC_STOP:
      snprintf(s->job.end, sizeof s->job.end, "stopping (%.50s)", r->text);
      return SCL_OK;
    default:
      if (!r->id[0]) return SCL_OK;
      SCL_CALL(apply_trial(s, r));
      return SCL_OK;
  }
}

orch_next orch_state_next(const orch_trial_state *ts, const orch_sweep *s) {
  if (!ts) return ORCH_NEXT_RUN;
  if (ts->status == ORCH_TRIAL_FAILED) {
    if (s->retry_failed) return ORCH_NEXT_RUN; /* its retries and crashes start again from 0 */
    if (!ts->retryable || ts->machine_failures > s->max_retries) return ORCH_NEXT_FAILED;
  }
  if (ts->crashes >= s->max_crashes) return ORCH_NEXT_CRASHED;
  return ts->status == ORCH_TRIAL_FAILED ? ORCH_NEXT_RETRY : ORCH_NEXT_RUN;
}

static scl_err apply_cb(void *ctx, const orch_record *r, const char *path) {
  (void)path;
  SCL_CALL(orch_state_apply(ctx, r));
  return SCL_OK;
}

scl_err orch_state_load(const char *run_dir, orch_state **out) {
  double t0 = scl_now();
  SCL_CALL(orch_state_create(out));
  orch_state *s = *out;
  char **paths = NULL;
  int n = 0;
  scl_err err = orch_ledger_list(run_dir, &paths, &n);
  for (int i = 0; i < n && !err; i++) {
    int64_t records = 0, damaged = 0, tail = 0;
    err = orch_ledger_read_file(paths[i], apply_cb, s, &records, &damaged, &tail);
    struct stat st;
    if (!err && stat(paths[i], &st) == 0 && st.st_size > tail) s->torn_bytes += st.st_size - tail;
    s->n_damaged += damaged;
  }
  s->n_files = n;
  orch_ledger_paths_free(paths, n);
  s->replay_seconds = scl_now() - t0;
  if (err) {
    orch_state_destroy(out);
    return SCL_TRACE(err);
  }
  return SCL_OK;
}
