/* trial_output.c: trial identity and the trial.h5 results file (schema RUN_TRIAL_SCHEMA_VERSION).
 *
 * trial.h5 layout (documented in the README):
 *   attributes  provenance (h5_write_provenance), kind = "trial", trial_id, status, config,
 *               identity_config (config without the keys that cannot change results),
 *               method, method_category, dataset, protocol, [domains], n_sessions, n_classes,
 *               seed, backbone_random (1: no backbone.weights), final_acc, avg_acc, forgetting, val_acc, seconds_total, input hashes
 *   /class_order (n_classes int64), /session_start (T+1 int64; class-incremental only),
 *   /n_test (T int64), /n_val (int64 attribute)
 *   /predictors/<name>/{acc_matrix (T x T float64, NaN where undefined), acc (T),
 *                       correct (T int64), val_acc (T)}   predictor 0 is THE prediction
 *   /timings/{train, fit, eval} (T float64 seconds)
 *   /diagnostics/authors_protocol_acc (T; SAFE only, attributes note, authors_protocol_final,
 *            authors_protocol_avg): the released code's test-selected figure, NOT an accuracy
 *   /losses (records x 9 float64: session, epoch, step, mean loss terms over the record's steps;
 *            absent for methods that never train), /loss_terms (T strings: session t's term
 *            names, comma-separated; empty for a session without training)
 *   /ridge_search/{session, search (R int64), lambda, val_mse (R x L float64, NaN past the
 *            search's candidates), chosen (R float64), best (R int64)}: one entry per ridge
 *            search of each session's classifier fit (search: its index in the session, in the
 *            order the method ran them); absent for methods that never search
 * Every string is fixed-length (h5_file_fixed_strings, schema 3), so that the file has no HDF5
 * global heap, whose damage can crash HDF5 1.10's reader before any checksum is checked; h5py
 * reads them as bytes. It is written whole and published by rename: a reader never sees a
 * partial file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safecl/h5.h"
#include "safecl/linalg_group.h"
#include "trial_internal.h"

scl_err trial_identity_of(const run_trial_cfg *cfg, const char *weights_hash,
                          const char *train_manifest, const char *test_manifest, char id[33]) {
  char *ident = NULL;
  SCL_CALL(cfg_dump_identity(&run_trial_schema, cfg, &ident));
  scl_hasher *h = NULL;
  scl_err err = scl_hasher_create(&h);
  if (!err) {
    scl_hasher_update(h, ident, strlen(ident));
    scl_hasher_update(h, weights_hash, 32);
    scl_hasher_update(h, train_manifest, 32);
    scl_hasher_update(h, test_manifest, 32);
    scl_hash_hex(scl_hasher_digest(h), id);
  }
  scl_hasher_destroy(&h);
  free(ident);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

#define WEIGHTS_CACHE 16
static struct {
  char path[1024];
  char hex[33];
} weights_cache[WEIGHTS_CACHE];
static int weights_cached;

scl_err trial_weights_hash(const char *path, char out[33]) {
  if (!path[0]) {
    memset(out, 0, 33); /* hashed as 32 bytes: "random" and zeros */
    memcpy(out, "random", 6);
    return SCL_OK;
  }
  for (int i = 0; i < weights_cached; i++)
    if (!strcmp(weights_cache[i].path, path)) {
      memcpy(out, weights_cache[i].hex, 33);
      return SCL_OK;
    }
  scl_hash wh;
  SCL_CALL(scl_hash_file(path, "backbone.weights", &wh));
  scl_hash_hex(wh, out);
  int slot = weights_cached < WEIGHTS_CACHE ? weights_cached++ : 0;
  snprintf(weights_cache[slot].path, sizeof weights_cache[slot].path, "%s", path);
  memcpy(weights_cache[slot].hex, out, 33);
  return SCL_OK;
}

scl_err trial_identity(trial_state *st) {
  SCL_CALL(trial_weights_hash(st->cfg->weights, st->weights_hash));
  scl_hash_hex(data_dataset_manifest_hash(st->train), st->train_manifest);
  scl_hash_hex(data_dataset_manifest_hash(st->test), st->test_manifest);
  SCL_CALL(
      trial_identity_of(st->cfg, st->weights_hash, st->train_manifest, st->test_manifest, st->id));
  return SCL_OK;
}

static void results_path(const trial_state *st, char *buf, size_t cap) {
  snprintf(buf, cap, "%s/trial.h5", st->cfg->run_dir);
}

static scl_err read_result(h5_file *f, run_trial_result *r) {
  SCL_CALL(h5_attr_read_f64(f, NULL, "final_acc", &r->final_acc));
  SCL_CALL(h5_attr_read_f64(f, NULL, "avg_acc", &r->avg_acc));
  SCL_CALL(h5_attr_read_f64(f, NULL, "val_acc", &r->val_acc));
  SCL_CALL(h5_attr_read_f64(f, NULL, "seconds_total", &r->seconds));
  return SCL_OK;
}

scl_err trial_check_existing(trial_state *st, int *finished, run_trial_result *result) {
  char path[4096];
  results_path(st, path, sizeof path);
  *finished = 0;
  if (access(path, F_OK) != 0) return SCL_OK;
  h5_file *f = NULL;
  char *id = NULL, *status = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, h5_file_open_read(path, &f), done);
  SCL_CALL_GOTO(
      err,
      h5_check_schema_range(f, RUN_TRIAL_SCHEMA_OLDEST, RUN_TRIAL_SCHEMA_VERSION, "trial results"),
      done);
  SCL_CALL_GOTO(err, h5_attr_read_str(f, NULL, "trial_id", &id), done);
  SCL_CALL_GOTO(err, h5_attr_read_str(f, NULL, "status", &status), done);
  SCL_CHECK_GOTO(err, done, !strcmp(id, st->id), SCL_ERR_ARG,
                 "%s holds trial %s, not this trial (%s): choose another run.dir or move it", path,
                 id, st->id);
  *finished = !strcmp(status, "finished");
  if (*finished && result) SCL_CALL_GOTO(err, read_result(f, result), done);
done:
  free(id);
  free(status);
  if (f) {
    scl_err close_err = h5_file_close(&f);
    if (!err) err = close_err;
  }
  return err;
}

static scl_err write_predictor(h5_file *f, const run_metrics *m, int p) {
  char name[128];
  const int T = m->n_sessions;
  snprintf(name, sizeof name, "predictors/%s/acc_matrix", m->names[p]);
  SCL_CALL(h5_write_f64_2d(f, name, m->acc + (size_t)p * T * T, T, T));
  snprintf(name, sizeof name, "predictors/%s/acc", m->names[p]);
  SCL_CALL(h5_write_f64_1d(f, name, m->acc_total + (size_t)p * T, T));
  snprintf(name, sizeof name, "predictors/%s/correct", m->names[p]);
  SCL_CALL(h5_write_i64_1d(f, name, m->correct + (size_t)p * T, T));
  snprintf(name, sizeof name, "predictors/%s/val_acc", m->names[p]);
  SCL_CALL(h5_write_f64_1d(f, name, m->val_acc + (size_t)p * T, T));
  snprintf(name, sizeof name, "predictors/%s", m->names[p]);
  SCL_CALL(h5_attr_write_f64(f, name, "final_acc", run_metrics_final(m, p)));
  SCL_CALL(h5_attr_write_f64(f, name, "avg_acc", run_metrics_average(m, p)));
  SCL_CALL(h5_attr_write_f64(f, name, "forgetting", run_metrics_forgetting(m, p)));
  SCL_CALL(h5_attr_write_f64(f, name, "val_acc", run_metrics_val(m, p)));
  return SCL_OK;
}

/* /losses and /loss_terms: the term names are per session (SAFE's session 1 trains other terms
 * than its later sessions), so the columns attribute names the terms by position only. */
static scl_err write_losses(h5_file *f, const trial_state *st) {
  if (!st->n_loss) return SCL_OK;
  SCL_CALL(h5_write_f64_2d(f, "losses", st->loss_log, st->n_loss, TRIAL_LOSS_COLS));
  char cols[512];
  size_t o = (size_t)snprintf(cols, sizeof cols, "session,epoch,step");
  for (int j = 0; j < LEARN_MAX_LOSS_TERMS; j++)
    o += (size_t)snprintf(cols + o, sizeof cols - o, ",term%d", j);
  SCL_CALL(h5_attr_write_str(f, "losses", "columns", cols));
  const char *names[1024];
  SCL_CHECK(st->n_sessions <= 1024, SCL_ERR_ARG, "%d sessions (at most 1024)", st->n_sessions);
  for (int t = 0; t < st->n_sessions; t++) names[t] = st->loss_terms[t];
  SCL_CALL(h5_write_strings(f, "loss_terms", names, st->n_sessions));
  return SCL_OK;
}

/* /ridge_search: the records of every session's searches as rows (session, search), the
 * candidates and their validation errors padded with NaN to the longest grid. */
static scl_err write_ridge_search(h5_file *f, const trial_state *st) {
  int64_t R = 0, L = 0;
  for (int t = 0; t < st->n_sessions; t++) {
    R += st->n_ridge[t];
    for (int k = 0; k < st->n_ridge[t]; k++) {
      int64_t nl = st->ridge[t * LINALG_SEARCH_LOG + k].n_lambdas;
      L = nl > L ? nl : L;
    }
  }
  if (!R) return SCL_OK;
  int64_t *session = NULL, *search = NULL, *best = NULL;
  double *lambda = NULL, *mse = NULL, *chosen = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, scl_alloc((size_t)R * 8, "ridge search sessions", (void **)&session), done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)R * 8, "ridge search indices", (void **)&search), done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)R * 8, "ridge search choices", (void **)&best), done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)R * 8, "ridge search lambdas", (void **)&chosen), done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)(R * L) * 8, "ridge candidates", (void **)&lambda), done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)(R * L) * 8, "ridge validation errors", (void **)&mse),
                done);
  int64_t r = 0;
  for (int t = 0; t < st->n_sessions; t++)
    for (int k = 0; k < st->n_ridge[t]; k++, r++) {
      const linalg_search_record *rec = &st->ridge[t * LINALG_SEARCH_LOG + k];
      session[r] = t;
      search[r] = k;
      best[r] = rec->best;
      chosen[r] = rec->lambda[rec->best];
      for (int64_t j = 0; j < L; j++) {
        lambda[r * L + j] = j < rec->n_lambdas ? rec->lambda[j] : NAN;
        mse[r * L + j] = j < rec->n_lambdas ? rec->mse[j] : NAN;
      }
    }
  SCL_CALL_GOTO(err, h5_write_i64_1d(f, "ridge_search/session", session, R), done);
  SCL_CALL_GOTO(err, h5_write_i64_1d(f, "ridge_search/search", search, R), done);
  SCL_CALL_GOTO(err, h5_write_f64_2d(f, "ridge_search/lambda", lambda, R, L), done);
  SCL_CALL_GOTO(err, h5_write_f64_2d(f, "ridge_search/val_mse", mse, R, L), done);
  SCL_CALL_GOTO(err, h5_write_f64_1d(f, "ridge_search/chosen", chosen, R), done);
  SCL_CALL_GOTO(err, h5_write_i64_1d(f, "ridge_search/best", best, R), done);
done:
  scl_free(session);
  scl_free(search);
  scl_free(best);
  scl_free(chosen);
  scl_free(lambda);
  scl_free(mse);
  return err;
}

/* The released SAFE code reports, after every session but the first, the better of the fast
 * learner's and the aggregated model's TEST accuracy (docs/methods.md d.2): a choice made with test
 * labels. It is kept only as this separately named diagnostic, never as the accuracy. */
static scl_err write_authors_protocol(h5_file *f, const trial_state *st) {
  const run_metrics *m = st->metrics;
  int fast = -1;
  for (int p = 0; p < m->n_predictors; p++)
    if (!strcmp(m->names[p], "fast")) fast = p;
  if (fast < 0 || !st->cfg->method.authors_protocol) return SCL_OK;
  const int T = m->n_sessions;
  double *acc = NULL, sum = 0.0;
  SCL_CALL(scl_alloc((size_t)T * sizeof *acc, "authors' protocol curve", (void **)&acc));
  for (int t = 0; t < T; t++) {
    double agg = m->acc_total[t], fa = m->acc_total[fast * T + t];
    acc[t] = t == 0 ? agg : (fa > agg ? fa : agg);
    sum += acc[t];
  }
  scl_err err = h5_write_f64_1d(f, "diagnostics/authors_protocol_acc", acc, T);
  if (!err)
    err = h5_attr_write_str(f, "diagnostics", "note",
                            "max(fast, aggregated) test accuracy per session as the released "
                            "code reports it: selected with test labels, not a valid accuracy");
  if (!err) err = h5_attr_write_f64(f, "diagnostics", "authors_protocol_final", acc[T - 1]);
  if (!err) err = h5_attr_write_f64(f, "diagnostics", "authors_protocol_avg", sum / T);
  scl_free(acc);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

static scl_err write_timings(h5_file *f, const run_metrics *m) {
  static const char *const phases[RUN_PHASE_COUNT] = {"train", "fit", "eval"};
  double col[1024];
  const int T = m->n_sessions < 1024 ? m->n_sessions : 1024;
  for (int ph = 0; ph < RUN_PHASE_COUNT; ph++) {
    for (int t = 0; t < T; t++) col[t] = m->seconds[t * RUN_PHASE_COUNT + ph];
    char name[64];
    snprintf(name, sizeof name, "timings/%s", phases[ph]);
    SCL_CALL(h5_write_f64_1d(f, name, col, T));
  }
  return SCL_OK;
}

static scl_err write_attributes(h5_file *f, const trial_state *st) {
  const run_trial_cfg *c = st->cfg;
  const run_metrics *m = st->metrics;
  SCL_CALL(h5_write_provenance(f, RUN_TRIAL_SCHEMA_VERSION));
  SCL_CALL(h5_attr_write_str(f, NULL, "kind", "trial"));
  SCL_CALL(h5_attr_write_str(f, NULL, "trial_id", st->id));
  SCL_CALL(h5_attr_write_str(f, NULL, "status", "finished"));
  SCL_CALL(h5_attr_write_str(f, NULL, "config", st->config_text));
  char *ident = NULL; /* the keys that define the trial (what the identity hashes) */
  SCL_CALL(cfg_dump_identity(&run_trial_schema, st->cfg, &ident));
  scl_err err = h5_attr_write_str(f, NULL, "identity_config", ident);
  free(ident);
  SCL_CALL(err);
  SCL_CALL(h5_attr_write_str(f, NULL, "method", c->method.name));
  SCL_CALL(h5_attr_write_str(f, NULL, "method_category", st->method->ops->category));
  SCL_CALL(h5_attr_write_str(f, NULL, "dataset", c->dataset_name));
  SCL_CALL(
      h5_attr_write_str(f, NULL, "protocol", st->dil ? "domain-incremental" : "class-incremental"));
  if (st->dil) SCL_CALL(h5_attr_write_str(f, NULL, "domains", c->domains));
  SCL_CALL(h5_attr_write_str(f, NULL, "backbone_weights_xxh3", st->weights_hash));
  SCL_CALL(h5_attr_write_i64(f, NULL, "backbone_random", c->weights[0] == '\0'));
  SCL_CALL(h5_attr_write_str(f, NULL, "train_manifest_xxh3", st->train_manifest));
  SCL_CALL(h5_attr_write_str(f, NULL, "test_manifest_xxh3", st->test_manifest));
  SCL_CALL(h5_attr_write_i64(f, NULL, "n_sessions", m->n_sessions));
  SCL_CALL(h5_attr_write_i64(f, NULL, "n_classes", st->plan->n_classes));
  SCL_CALL(h5_attr_write_i64(f, NULL, "seed", c->seed));
  SCL_CALL(h5_attr_write_i64(f, NULL, "threads", st->backbone->threads));
  SCL_CALL(h5_attr_write_i64(f, NULL, "ranks", st->group.size));
  SCL_CALL(h5_attr_write_str(f, NULL, "ridge_solver",
                             linalg_group_solver_name(st->linalg, c->method.rp_dim)));
  SCL_CALL(h5_attr_write_str(f, NULL, "primary_predictor", m->names[0]));
  SCL_CALL(h5_attr_write_f64(f, NULL, "final_acc", run_metrics_final(m, 0)));
  SCL_CALL(h5_attr_write_f64(f, NULL, "avg_acc", run_metrics_average(m, 0)));
  SCL_CALL(h5_attr_write_f64(f, NULL, "forgetting", run_metrics_forgetting(m, 0)));
  SCL_CALL(h5_attr_write_f64(f, NULL, "val_acc", run_metrics_val(m, 0)));
  SCL_CALL(h5_attr_write_i64(f, NULL, "n_val", st->n_val));
  SCL_CALL(h5_attr_write_f64(f, NULL, "seconds_total", st->seconds_total));
  return SCL_OK;
}

scl_err trial_write_results(trial_state *st) {
  char path[4096];
  results_path(st, path, sizeof path);
  h5_file *f = NULL;
  scl_err err = SCL_OK;
  const run_metrics *m = st->metrics;
  SCL_CALL_GOTO(err, h5_file_create_atomic(path, &f), done);
  SCL_CALL_GOTO(err, h5_file_fixed_strings(f), done); /* no global heap: h5.h */
  SCL_CALL_GOTO(err, write_attributes(f, st), done);
  SCL_CALL_GOTO(err, h5_write_i64_1d(f, "class_order", st->plan->order, st->plan->n_classes), done);
  if (!st->dil)
    SCL_CALL_GOTO(err, h5_write_i64_1d(f, "session_start", st->plan->start, m->n_sessions + 1),
                  done);
  SCL_CALL_GOTO(err, h5_write_i64_1d(f, "n_test", m->n_test, m->n_sessions), done);
  for (int p = 0; p < m->n_predictors; p++) SCL_CALL_GOTO(err, write_predictor(f, m, p), done);
  SCL_CALL_GOTO(err, write_timings(f, m), done);
  SCL_CALL_GOTO(err, write_losses(f, st), done);
  SCL_CALL_GOTO(err, write_ridge_search(f, st), done);
  SCL_CALL_GOTO(err, write_authors_protocol(f, st), done);
  SCL_CALL_GOTO(err, h5_file_commit(&f), done);
done:
  h5_file_abort(&f);
  return err;
}
