/* prompt.c: the pieces L2P, DualPrompt and CODA-Prompt share (prompt.h): the flat trainable
 * array with Adam, the linear head trained on a column range, the query forward, the
 * normalisation, similarity, top-k and vote of the key matching, PILOT's prefix reshape map and
 * the per-image prompt buffers of the trainer.
 *
 * Everything here is small next to the ViT forward (B x M similarities, B x K logits), so the
 * selection runs in plain loops with double accumulation and only the head's products go through
 * BLAS. Ties are broken towards the lower id everywhere, a deterministic rule where torch.topk
 * leaves the order unspecified (docs/methods.md g.2). Nothing here knows which method calls it:
 * pools, keys and their layouts are the methods' own. */
#include "safecl/prompt.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "safecl/tuning.h"

/* ---------------------------------------------------------------------------------------- */
/* Flat array                                                                                */

scl_err learn_prompt_params_create(learn_prompt_params *p, int64_t C, int64_t D, int n,
                                   const int64_t *numel, int64_t *offset) {
  memset(p, 0, sizeof *p);
  SCL_CHECK(n >= 0 && n <= LEARN_PROMPT_MAX_TENSORS && C > 0 && D > 0, SCL_ERR_ARG,
            "prompt parameters: %d tensors (at most %d), %lld classes, width %lld", n,
            LEARN_PROMPT_MAX_TENSORS, (long long)C, (long long)D);
  p->C = C;
  p->D = D;
  p->head_w = 0;
  p->head_b = scl_pad_floats(C * D);
  int64_t at = p->head_b + scl_pad_floats(C);
  p->method_offset = at;
  for (int i = 0; i < n; i++) {
    SCL_CHECK(numel[i] >= 0, SCL_ERR_ARG, "prompt tensor %d has %lld floats", i,
              (long long)numel[i]);
    offset[i] = at;
    at += scl_pad_floats(numel[i]);
  }
  p->count = at;
  float **arr[] = {&p->param, &p->grad, &p->m, &p->v};
  const char *what[] = {"prompt parameters", "prompt gradient", "Adam first moment",
                        "Adam second moment"};
  for (int i = 0; i < 4; i++) {
    scl_err err = scl_calloc((size_t)at * sizeof(float), what[i], (void **)arr[i]);
    if (err) {
      learn_prompt_params_free(p);
      return SCL_TRACE(err);
    }
  }
  return SCL_OK;
}

void learn_prompt_params_free(learn_prompt_params *p) {
  scl_free(p->param);
  scl_free(p->grad);
  scl_free(p->m);
  scl_free(p->v);
  p->param = p->grad = p->m = p->v = NULL;
}

void learn_prompt_head_init_rows(learn_prompt_params *p, learn_prompt_head_init kind, uint64_t seed,
                                 uint32_t tag) {
  const int64_t D = p->D;
  const double bound = 1.0 / sqrt((double)D);
  for (int64_t k = 0; k < p->C; k++) {
    scl_rng rng;
    scl_rng_init(&rng, seed, SCL_STREAM_INIT, tag, (uint32_t)k);
    float *w = p->param + p->head_w + k * D;
    if (kind == LEARN_PROMPT_HEAD_TIMM) {
      for (int64_t j = 0; j < D; j++) w[j] = (float)(0.02 * scl_rng_normal(&rng));
      p->param[p->head_b + k] = 0.0f;
    } else {
      for (int64_t j = 0; j < D; j++) w[j] = (float)(bound * (2.0 * scl_rng_uniform(&rng) - 1.0));
      p->param[p->head_b + k] = (float)(bound * (2.0 * scl_rng_uniform(&rng) - 1.0));
    }
  }
}

void learn_prompt_uniform(float *x, int64_t rows, int64_t cols, float lo, float hi, uint64_t seed,
                          uint32_t tag) {
  for (int64_t r = 0; r < rows; r++) {
    scl_rng rng;
    scl_rng_init(&rng, seed, SCL_STREAM_INIT, tag, (uint32_t)r);
    for (int64_t j = 0; j < cols; j++)
      x[r * cols + j] = (float)((double)lo + ((double)hi - lo) * scl_rng_uniform(&rng));
  }
}

void learn_prompt_zero_grad(learn_prompt_params *p) {
  memset(p->grad, 0, (size_t)p->count * sizeof(float));
}

void learn_prompt_adam_reset(learn_prompt_params *p) {
  memset(p->m, 0, (size_t)p->count * sizeof(float));
  memset(p->v, 0, (size_t)p->count * sizeof(float));
  p->adam_step = 0;
}

void learn_prompt_adam_step(learn_prompt_params *p, double lr, double wd) {
  const learn_adam_cfg cfg = {0.9, 0.999, 1e-8, 0};
  const learn_param_group all = {0, p->count, 1.0, wd};
  p->adam_step++;
  learn_adam_step(p->param, p->m, p->v, p->grad, p->adam_step, lr, &cfg, &all, 1);
}

scl_err learn_prompt_sync(const dist_comm *comm, learn_prompt_params *p) {
  const int64_t n = p->count - p->method_offset;
  if (dist_comm_size(comm) == 1 || n == 0) return SCL_OK;
  SCL_CALL(dist_allreduce_f32(comm, p->grad + p->method_offset, n, DIST_SUM));
  return SCL_OK;
}

int learn_prompt_state(learn_prompt_params *p, learn_state_entry *out) {
  const int64_t n = p->count;
  out[0] = (learn_state_entry){"prompt_params", LEARN_F32, 1, {n, 0}, p->param};
  out[1] = (learn_state_entry){"prompt_adam_m", LEARN_F32, 1, {n, 0}, p->m};
  out[2] = (learn_state_entry){"prompt_adam_v", LEARN_F32, 1, {n, 0}, p->v};
  out[3] = (learn_state_entry){"prompt_adam_step", LEARN_I64, 1, {1, 0}, &p->adam_step};
  return 4;
}

/* ---------------------------------------------------------------------------------------- */
/* Head                                                                                      */

void learn_prompt_logits(float *logits, const learn_prompt_params *p, const float *feat, int64_t B,
                         int64_t k_lo, int64_t k_hi) {
  const int64_t K = k_hi - k_lo, D = p->D;
  if (B == 0 || K == 0) return;
  const float *b = p->param + p->head_b + k_lo;
  for (int64_t i = 0; i < B; i++) memcpy(logits + i * K, b, (size_t)K * sizeof(float));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)K, (int)D, 1.0f, feat, (int)D,
              p->param + p->head_w + k_lo * D, (int)D, 1.0f, logits, (int)K);
}

double learn_prompt_ce(learn_prompt_params *p, float *dfeat, float *scratch, const float *feat,
                       const int64_t *labels, int64_t B, int64_t k_old, int64_t k_seen,
                       double scale) {
  const int64_t K = k_seen - k_old, D = p->D;
  if (B == 0) return 0.0;
  float *logits = scratch, *dlogits = scratch + B * K;
  learn_prompt_logits(logits, p, feat, B, k_old, k_seen);
  memset(dlogits, 0, (size_t)(B * K) * sizeof(float));
  const double ce = learn_ce_loss_range(dlogits, logits, labels, k_old, B, K, scale);
  if (isnan(ce)) return ce;
  /* dW[k_old:k_seen] += dlogits^T feat; db += column sums; dfeat += dlogits W[k_old:k_seen] */
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)D, (int)B, 1.0f, dlogits,
              (int)K, feat, (int)D, 1.0f, p->grad + p->head_w + k_old * D, (int)D);
  for (int64_t k = 0; k < K; k++) {
    double s = 0.0;
    for (int64_t r = 0; r < B; r++) s += dlogits[r * K + k];
    p->grad[p->head_b + k_old + k] += (float)s;
  }
  if (dfeat)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)D, (int)K, 1.0f, dlogits,
                (int)K, p->param + p->head_w + k_old * D, (int)D, 1.0f, dfeat, (int)D);
  return ce;
}

scl_err learn_prompt_head_step(const dist_comm *comm, learn_prompt_params *p, const learn_batch *b,
                               float *feat, float *dfeat, float *scratch, int64_t k_old,
                               int64_t k_seen, double *ce) {
  SCL_CALL(learn_tune_gather(comm, b, feat, p->D));
  memset(dfeat, 0, (size_t)(b->B_global * p->D) * sizeof(float));
  *ce = learn_prompt_ce(p, dfeat, scratch, feat, b->labels_all, b->B_global, k_old, k_seen, 1.0);
  return SCL_OK;
}

void learn_prompt_argmax(int32_t *pred, const float *logits, int64_t n, int64_t dim, int64_t K) {
  for (int64_t i = 0; i < n; i++) {
    const float *l = logits + i * dim;
    int64_t best = 0;
    for (int64_t k = 1; k < K; k++)
      if (l[k] > l[best]) best = k;
    pred[i] = (int32_t)best;
  }
}

/* ---------------------------------------------------------------------------------------- */
/* Query and selection                                                                       */

scl_err learn_prompt_no_epoch_end(learn_method *m, const learn_session *s, int64_t epoch) {
  (void)m, (void)s, (void)epoch;
  return SCL_OK;
}

scl_err learn_prompt_no_train_end(learn_method *m, const learn_session *s) {
  (void)m, (void)s;
  return SCL_OK;
}

scl_err learn_prompt_no_fit(learn_method *m, const learn_session *s, const float *const *features,
                            const int32_t *labels, const int64_t *pos, int64_t n) {
  (void)m, (void)s, (void)features, (void)labels, (void)pos, (void)n;
  return SCL_OK;
}

int learn_prompt_networks(learn_network *out, void *ctx, int64_t C,
                          scl_err (*forward)(void *, const float *, int64_t, float *),
                          scl_err (*forward_diag)(void *, const float *, int64_t, float *),
                          int64_t test_batch) {
  out[0] = (learn_network){
      .name = "prompted", .dim = C, .forward = forward, .ctx = ctx, .predict_only = 1};
  if (!forward_diag) return 1;
  out[1] = (learn_network){.name = "pilot_diag",
                           .dim = C,
                           .forward = forward_diag,
                           .ctx = ctx,
                           .predict_only = 1,
                           .test_batch = test_batch};
  return 2;
}

void learn_prompt_predict(int32_t *pred, const float *const *features, int nets, int64_t n,
                          int64_t C, int64_t K) {
  for (int k = 0; k < nets; k++) learn_prompt_argmax(pred + k * n, features[k], n, C, K);
}

scl_err learn_prompt_test_forward(vit_model *backbone, learn_prompt_logits_fn fn, void *method,
                                  const float *images, int64_t B, int diag, float *out) {
  const int was = backbone->per_image;
  backbone->per_image = 1;
  scl_err err = fn(method, images, B, diag, out);
  backbone->per_image = was;
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

scl_err learn_prompt_query(vit_model *backbone, const float *images, int64_t B, float *q) {
  const int64_t chunk = backbone->max_batch, D = backbone->cfg.width;
  const int64_t per = 3 * backbone->cfg.img_size * backbone->cfg.img_size;
  for (int64_t i = 0; i < B; i += chunk) {
    int64_t n = B - i < chunk ? B - i : chunk;
    SCL_CALL(vit_model_forward(backbone, images + i * per, n, q + i * D));
  }
  return SCL_OK;
}

void learn_prompt_l2norm_forward(float *xn, float *sq, const float *x, int64_t rows, int64_t D) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * D;
    double s = 0.0;
    for (int64_t j = 0; j < D; j++) s += (double)xr[j] * xr[j];
    sq[r] = (float)s;
    const double inv = 1.0 / sqrt(s > LEARN_PROMPT_NORM_EPS ? s : LEARN_PROMPT_NORM_EPS);
    for (int64_t j = 0; j < D; j++) xn[r * D + j] = (float)(xr[j] * inv);
  }
}

void learn_prompt_l2norm_backward(float *dx, const float *dxn, const float *xn, const float *sq,
                                  int64_t rows, int64_t D) {
  for (int64_t r = 0; r < rows; r++) {
    const float *g = dxn + r * D, *n = xn + r * D;
    const int clamped = !((double)sq[r] > LEARN_PROMPT_NORM_EPS);
    const double inv = 1.0 / sqrt(clamped ? LEARN_PROMPT_NORM_EPS : (double)sq[r]);
    double dot = 0.0;
    if (!clamped)
      for (int64_t j = 0; j < D; j++) dot += (double)n[j] * g[j];
    for (int64_t j = 0; j < D; j++) dx[r * D + j] += (float)(inv * (g[j] - dot * n[j]));
  }
}

void learn_prompt_similarity(float *s, const float *qn, const float *kn, int64_t B, int64_t M,
                             int64_t D) {
  for (int64_t b = 0; b < B; b++)
    for (int64_t m = 0; m < M; m++) {
      double acc = 0.0;
      for (int64_t j = 0; j < D; j++) acc += (double)qn[b * D + j] * kn[m * D + j];
      s[b * M + m] = (float)acc;
    }
}

/* 1 if id a (value va) ranks before id b (value vb): larger value, then lower id. */
static int before(double va, int64_t a, double vb, int64_t b) {
  return va > vb || (va == vb && a < b);
}

/* The k best of n (value, id) pairs by `before`, by selection (k and n are small). */
static void best_k(int64_t *out, const float *fv, const int64_t *iv, int64_t n, int64_t k) {
  for (int64_t j = 0; j < k; j++) {
    int64_t pick = -1;
    for (int64_t m = 0; m < n; m++) {
      int taken = 0;
      for (int64_t i = 0; i < j && !taken; i++) taken = out[i] == m;
      if (taken) continue;
      double vm = fv ? (double)fv[m] : (double)iv[m];
      double vp = pick < 0 ? 0.0 : fv ? (double)fv[pick] : (double)iv[pick];
      if (pick < 0 || before(vm, m, vp, pick)) pick = m;
    }
    out[j] = pick;
  }
}

void learn_prompt_topk(int64_t *idx, const float *s, int64_t B, int64_t M, int64_t k) {
  for (int64_t b = 0; b < B; b++) best_k(idx + b * k, s + b * M, NULL, M, k);
}

void learn_prompt_count(int64_t *counts, const int64_t *idx, int64_t n, int64_t M) {
  for (int64_t i = 0; i < n; i++)
    if (idx[i] >= 0 && idx[i] < M) counts[idx[i]]++;
}

void learn_prompt_vote(int64_t *sel, const int64_t *counts, int64_t M, int64_t k) {
  best_k(sel, NULL, counts, M, k);
}

scl_err learn_prompt_vote_group(const dist_comm *comm, int64_t *idx, int64_t B, int64_t k,
                                int64_t M, int64_t *counts) {
  memset(counts, 0, (size_t)M * sizeof(int64_t));
  learn_prompt_count(counts, idx, B * k, M);
  if (dist_comm_size(comm) > 1) SCL_CALL(dist_allreduce_i64(comm, counts, M, DIST_SUM));
  int64_t sel[4096];
  SCL_CHECK(k <= 4096, SCL_ERR_ARG, "a vote of %lld ids (at most 4096)", (long long)k);
  learn_prompt_vote(sel, counts, M, k);
  for (int64_t b = 0; b < B; b++) memcpy(idx + b * k, sel, (size_t)k * sizeof(int64_t));
  return SCL_OK;
}

void learn_prompt_pilot_reshape(int64_t B, int64_t b, int r, int64_t *src_image, int *src_role) {
  const int64_t pos = 2 * b + r;
  *src_role = (int)(pos / B);
  *src_image = pos % B;
}

/* ---------------------------------------------------------------------------------------- */
/* Per-image trainer inputs                                                                  */

scl_err learn_prompt_io_create(learn_prompt_io *io, int64_t B, int64_t D, int64_t tokens,
                               int64_t prefix_len, uint32_t layers) {
  memset(io, 0, sizeof *io);
  io->B = B;
  io->D = D;
  io->tokens = tokens;
  io->prefix_len = prefix_len;
  io->layers = layers;
  scl_err err = SCL_OK;
  const size_t tok = (size_t)(B * tokens * D) * sizeof(float);
  const size_t pre = (size_t)(B * prefix_len * D) * sizeof(float);
  if (tokens > 0) {
    SCL_CALL_GOTO(err, scl_calloc(tok, "prompt tokens", (void **)&io->tok), fail);
    SCL_CALL_GOTO(err, scl_calloc(tok, "prompt token gradient", (void **)&io->dtok), fail);
  }
  for (int l = 0; l < PET_MAX_LAYERS && prefix_len > 0; l++) {
    if (!(layers >> l & 1u)) continue;
    SCL_CALL_GOTO(err, scl_calloc(pre, "prefix keys", (void **)&io->pk[l]), fail);
    SCL_CALL_GOTO(err, scl_calloc(pre, "prefix values", (void **)&io->pv[l]), fail);
    SCL_CALL_GOTO(err, scl_calloc(pre, "prefix key gradient", (void **)&io->dpk[l]), fail);
    SCL_CALL_GOTO(err, scl_calloc(pre, "prefix value gradient", (void **)&io->dpv[l]), fail);
  }
  return SCL_OK;
fail:
  learn_prompt_io_free(io);
  return err;
}

void learn_prompt_io_free(learn_prompt_io *io) {
  scl_free(io->tok);
  scl_free(io->dtok);
  for (int l = 0; l < PET_MAX_LAYERS; l++) {
    scl_free(io->pk[l]);
    scl_free(io->pv[l]);
    scl_free(io->dpk[l]);
    scl_free(io->dpv[l]);
  }
  memset(io, 0, sizeof *io);
}

vit_prompt_io learn_prompt_io_view(const learn_prompt_io *io, int64_t row, int with_grad) {
  vit_prompt_io v;
  memset(&v, 0, sizeof v);
  const int64_t t = row * io->tokens * io->D, x = row * io->prefix_len * io->D;
  if (io->tok) {
    v.tokens = io->tok + t;
    v.dtokens = with_grad ? io->dtok + t : NULL;
  }
  for (int l = 0; l < PET_MAX_LAYERS; l++) {
    if (!io->pk[l]) continue;
    v.pk[l] = io->pk[l] + x;
    v.pv[l] = io->pv[l] + x;
    v.dpk[l] = with_grad ? io->dpk[l] + x : NULL;
    v.dpv[l] = with_grad ? io->dpv[l] + x : NULL;
  }
  return v;
}

void learn_prompt_io_zero_grad(learn_prompt_io *io, int64_t B) {
  if (io->dtok) memset(io->dtok, 0, (size_t)(B * io->tokens * io->D) * sizeof(float));
  const size_t pre = (size_t)(B * io->prefix_len * io->D) * sizeof(float);
  for (int l = 0; l < PET_MAX_LAYERS; l++) {
    if (io->dpk[l]) memset(io->dpk[l], 0, pre);
    if (io->dpv[l]) memset(io->dpv[l], 0, pre);
  }
}
