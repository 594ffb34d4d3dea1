/* coda_prompt.c: CODA-Prompt (Smith et al., CVPR 2023; PILOT models/coda_prompt.py,
 * docs/methods.md i). At each of e_layers blocks from g_layers on (blocks 0-4), an image's key and
 * value prefixes are a weighted sum of M learned prompt components, the weight of component k
 * being the cosine between the frozen model's class token, re-weighted element-wise by the
 * component's attention vector, and the component's key. Session t of T trains its own
 * floor(M / T) components (Gram-Schmidt re-initialised against all earlier ones at the session
 * start) and the head rows of its classes, with CE over its classes only and Adam; earlier
 * components keep contributing to every forward with their frozen values.
 *
 * The composition, its backward, the initialisations, the orthogonality penalty and the schedule
 * are plain loops here (a step composes 5 x B x M x Lp x D multiply-adds, ~0.1 % of the ViT's
 * work); the query, the head's storage, Adam and the per-image prompt buffers are the shared
 * prompt machinery (prompt.h). A training step runs its rows in chunks of at most CODA_CHUNK
 * images (query, composition, prompted forward, head, backward per chunk): the CE gradient of an
 * image depends on that image alone, so the chunked step is the whole-batch step, and the
 * activations the backward keeps are bounded by the chunk instead of the batch of 128. The method
 * has no classifier statistics: its only network is the prompted model's logits, read by
 * predict alone; evaluation is per image, so PILOT's protocol has no separate diagnostic here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/learn.h"
#include "safecl/prompt.h"

#include "coda_prompt_internal.h"

static const double kPi = 3.14159265358979323846;
/* ---------------------------------------------------------------------------------------- */
/* Composition of one layer's prompt (docs/methods.md i.2)                                   */

size_t learn_coda_cache_floats(int64_t B, int64_t M, int64_t D) {
  return (size_t)(scl_pad_floats(B * M) * 2 + scl_pad_floats(M * D) * 2 + scl_pad_floats(M));
}

learn_coda_cache learn_coda_cache_bind(float *mem, int64_t B, int64_t M, int64_t D) {
  learn_coda_cache c;
  c.alpha = mem;
  c.anorm = c.alpha + scl_pad_floats(B * M);
  c.khat = c.anorm + scl_pad_floats(B * M);
  c.ak = c.khat + scl_pad_floats(M * D);
  c.knorm = c.ak + scl_pad_floats(M * D);
  return c;
}

size_t learn_coda_backward_scratch(int64_t B, int64_t M, int64_t D) {
  return (size_t)(scl_pad_floats(B) * 2 + scl_pad_floats(D) * 2 + scl_pad_floats(M * D));
}

void learn_coda_forward(float *pk, float *pv, const learn_coda_cache *c, const float *q,
                        const float *P, const float *K, const float *A, int64_t B, int64_t f,
                        int64_t D, int64_t Lp) {
  const int64_t E = Lp * D, half = E / 2;
  learn_l2norm_forward(c->khat, c->knorm, K, f, D);
  for (int64_t i = 0; i < f * D; i++) c->ak[i] = A[i] * c->khat[i];
  for (int64_t b = 0; b < B; b++) {
    const float *qb = q + b * D;
    float *pkb = pk + b * half, *pvb = pv + b * half;
    memset(pkb, 0, (size_t)half * sizeof(float));
    memset(pvb, 0, (size_t)half * sizeof(float));
    for (int64_t k = 0; k < f; k++) {
      const float *ak = c->ak + k * D, *Ak = A + k * D;
      double num = 0.0, ss = 0.0;
      for (int64_t d = 0; d < D; d++) {
        const double a = (double)qb[d] * Ak[d];
        num += (double)qb[d] * ak[d];
        ss += a * a;
      }
      const double norm = sqrt(ss);
      const float alpha = (float)(num / fmax(norm, LEARN_NORMALIZE_EPS));
      c->anorm[b * f + k] = (float)norm;
      c->alpha[b * f + k] = alpha;
      const float *Pk = P + k * E;
      for (int64_t j = 0; j < half; j++) pkb[j] += alpha * Pk[j];
      for (int64_t j = 0; j < half; j++) pvb[j] += alpha * Pk[half + j];
    }
  }
}

/* With a_bk = q_b * A_k, c_bk = max(||a_bk||, eps) and alpha = (a_bk . khat_k) / c_bk:
 *   d alpha / d a_bk = khat_k / c_bk - alpha a_bk / (c_bk ||a_bk||)  (second term 0 if clamped)
 *   d alpha / d khat_k = a_bk / c_bk,
 * so with u = dalpha / c and w = u alpha / ||a|| (0 where the norm is clamped), summed over b:
 *   dA_k += khat_k * U_k - A_k * W_k,  dkhat_k = A_k * U_k,  U_k = sum_b u q_b, W_k = sum_b w q_b^2,
 * and dK_k follows from dkhat_k through the key normalisation (learn_l2norm_backward). */
void learn_coda_backward(float *dP, float *dK, float *dA, float *scratch, const float *dpk,
                         const float *dpv, const float *q, const float *P, const float *A,
                         const learn_coda_cache *c, int64_t B, int64_t s, int64_t f, int64_t D,
                         int64_t Lp) {
  const int64_t E = Lp * D, half = E / 2;
  float *u = scratch, *w = u + scl_pad_floats(B), *U = w + scl_pad_floats(B);
  float *W = U + scl_pad_floats(D), *dkhat = W + scl_pad_floats(D);
  for (int64_t k = s; k < f; k++) {
    const float *Pk = P + k * E;
    for (int64_t b = 0; b < B; b++) {
      const float *gk = dpk + b * half, *gv = dpv + b * half;
      double da = 0.0;
      for (int64_t j = 0; j < half; j++) da += (double)gk[j] * Pk[j];
      for (int64_t j = 0; j < half; j++) da += (double)gv[j] * Pk[half + j];
      const float al = c->alpha[b * f + k], an = c->anorm[b * f + k];
      u[b] = (float)(da / fmax(an, LEARN_NORMALIZE_EPS));
      w[b] = an > LEARN_NORMALIZE_EPS ? u[b] * al / an : 0.0f;
      if (dP) {
        float *dPk = dP + k * E;
        for (int64_t j = 0; j < half; j++) dPk[j] += al * gk[j];
        for (int64_t j = 0; j < half; j++) dPk[half + j] += al * gv[j];
      }
    }
    if (!dA && !dK) continue;
    memset(U, 0, (size_t)D * sizeof(float));
    memset(W, 0, (size_t)D * sizeof(float));
    for (int64_t b = 0; b < B; b++) {
      const float *qb = q + b * D;
      for (int64_t d = 0; d < D; d++) U[d] += u[b] * qb[d];
      for (int64_t d = 0; d < D; d++) W[d] += w[b] * qb[d] * qb[d];
    }
    const float *Ak = A + k * D, *kh = c->khat + k * D;
    if (dA)
      for (int64_t d = 0; d < D; d++) dA[k * D + d] += kh[d] * U[d] - Ak[d] * W[d];
    for (int64_t d = 0; d < D; d++) dkhat[(k - s) * D + d] = Ak[d] * U[d];
  }
  if (dK && f > s)
    learn_l2norm_backward(dK + s * D, dkhat, c->khat + s * D, c->knorm + s, f - s, D);
}

/* ---------------------------------------------------------------------------------------- */
/* Initialisation and the orthogonality penalty (docs/methods.md i.3, i.4)                   */

/* v -= its projection on the unit (or zero) rows basis[0, k), twice: one pass of modified
 * Gram-Schmidt leaves a component of order eps * cond; the second removes it ("twice is
 * enough"). */
static void orthogonalise(double *v, const double *basis, int64_t k, int64_t n) {
  for (int pass = 0; pass < 2; pass++)
    for (int64_t j = 0; j < k; j++) {
      const double *u = basis + j * n;
      double uv = 0.0;
      for (int64_t i = 0; i < n; i++) uv += u[i] * v[i];
      for (int64_t i = 0; i < n; i++) v[i] -= uv * u[i];
    }
}

/* Returns ||v|| after scaling v to unit norm, or leaves a zero v (a row in the span of the
 * earlier ones spans nothing new). */
static double normalise(double *v, int64_t n) {
  double vv = 0.0;
  for (int64_t i = 0; i < n; i++) vv += v[i] * v[i];
  const double norm = sqrt(vv);
  for (int64_t i = 0; i < n; i++) v[i] = norm > 0.0 ? v[i] / norm : 0.0;
  return norm;
}

/* The released code subtracts from each draw its projections (v . u_j / u_j . u_j) u_j on the
 * earlier rows themselves, which makes it orthogonal to them only while they are mutually
 * orthogonal; trained rows no longer are. Here the draw is made orthogonal to the span of the
 * earlier rows: an orthonormal basis of rows [0, s) is built first (in scratch; the rows stay as
 * they are), then each new row is orthogonalised against the basis and the new rows before it. */
scl_err learn_coda_gram_schmidt(float *X, int64_t M, int64_t n, int64_t s, int64_t f, uint64_t seed,
                                uint32_t tag) {
  SCL_CHECK(0 <= s && s <= f && f <= M, SCL_ERR_ARG, "components [%lld, %lld) of %lld",
            (long long)s, (long long)f, (long long)M);
  SCL_CHECK(f <= n, SCL_ERR_ARG,
            "%lld CODA-Prompt components cannot be orthogonal in width %lld "
            "(method.prompt.pool must not exceed the backbone width)",
            (long long)f, (long long)n);
  double *basis = NULL;
  SCL_CALL(
      scl_alloc((size_t)((f ? f : 1) * n) * sizeof(double), "Gram-Schmidt basis", (void **)&basis));
  for (int64_t j = 0; j < s; j++) {
    double *u = basis + j * n;
    double before = 0.0;
    for (int64_t i = 0; i < n; i++) u[i] = X[j * n + i], before += u[i] * u[i];
    orthogonalise(u, basis, j, n);
    if (normalise(u, n) <= 1e-10 * sqrt(before)) memset(u, 0, (size_t)n * sizeof(double));
  }
  for (int64_t k = s; k < f; k++) {
    double *v = basis + k * n;
    scl_rng rng;
    scl_rng_init(&rng, seed, SCL_STREAM_INIT, tag, (uint32_t)k);
    for (int64_t i = 0; i < n; i++) v[i] = scl_rng_normal(&rng);
    orthogonalise(v, basis, k, n);
    normalise(v, n); /* a Gaussian draw is almost surely outside a span of k < n dimensions */
  }
  for (int64_t i = s * n; i < f * n; i++) X[i] = (float)basis[i];
  memset(X + f * n, 0, (size_t)((M - f) * n) * sizeof(float));
  scl_free(basis);
  return SCL_OK;
}

/* L = mean_{i,j < f} (G_ij - delta_ij)^2 with G = X X^T; dL/dx_r = 4 / f^2 sum_j (G_rj -
 * delta_rj) x_j. */
double learn_coda_ortho_penalty(float *dX, double *gram, const float *X, int64_t s, int64_t f,
                                int64_t n, double scale) {
  if (f == 0) return 0.0;
  double total = 0.0;
  for (int64_t i = 0; i < f; i++)
    for (int64_t j = 0; j <= i; j++) {
      double g = 0.0;
      for (int64_t d = 0; d < n; d++) g += (double)X[i * n + d] * X[j * n + d];
      gram[i * f + j] = gram[j * f + i] = g - (i == j);
      total += (i == j ? 1.0 : 2.0) * gram[i * f + j] * gram[i * f + j];
    }
  const double ff = (double)f * (double)f;
  if (dX)
    for (int64_t r = s; r < f; r++) {
      float *dr = dX + r * n;
      for (int64_t j = 0; j < f; j++) {
        const float g = (float)(4.0 * scale * gram[r * f + j] / ff);
        const float *xj = X + j * n;
        for (int64_t d = 0; d < n; d++) dr[d] += g * xj[d];
      }
    }
  return total / ff;
}

double learn_coda_lr(double lr0, int64_t E, int64_t e) {
  if (E <= 1) return lr0;
  return lr0 * cos(99.0 * kPi * (double)e / (200.0 * (double)(E - 1)));
}
/* ---------------------------------------------------------------------------------------- */
/* The method                                                                                */

#define CODA_CHUNK 16         /* images per trainer call (the trainer's max_batch) */
#define CODA_ORTHO_PAPER 1e-6 /* the paper-time code's extra factor on the penalty (i.4) */
#define TAG_HEAD 1301u
#define TAG_GS 1310u    /* + 3 l + tensor: per-session Gram-Schmidt draws */
#define TAG_ORTHO 1410u /* + 3 l + tensor: the orthogonal init at create */

enum { T_P, T_K, T_A, N_TENSORS };

typedef struct coda {
  learn_method base;
  learn_method_cfg cfg;
  vit_model *backbone; /* shared, not owned */
  const dist_comm *comm;
  uint64_t seed;
  int64_t C, D, M, Lp, E, L, first; /* classes, width, components, prompt length, Lp D, layers */
  int ortho_init;
  double penalty; /* weight of each layer's penalty terms (mu, times 1e-6 with init = ortho) */
  learn_prompt_params p;
  int64_t off[N_TENSORS]; /* P (L, M, E), K (L, M, D), A (L, M, D) in p */
  pet_config pc;
  vit_trainer *trainer;
  learn_prompt_io io;
  learn_coda_cache cache[PET_MAX_LAYERS];
  float *q, *feat, *dfeat, *logits, *cache_mem, *scratch;
  double *gram;
  int64_t ready;  /* sessions whose components are initialised (state) */
  int64_t epochs; /* epochs of the session being trained (the schedule's E) */
  int eval_t, eval_n;
} coda;

static int64_t tensor_width(const coda *c, int i) { return i == T_P ? c->E : c->D; }
static float *tensor_at(const coda *c, float *base, int i, int64_t l) {
  return base + c->off[i] + l * c->M * tensor_width(c, i);
}

/* Components per session: floor(M / T). */
static scl_err per_session(const coda *c, int n_sessions, int64_t *pt) {
  *pt = n_sessions > 0 ? c->M / n_sessions : 0;
  SCL_CHECK(*pt >= 1, SCL_ERR_ARG,
            "method.prompt.pool = %lld CODA-Prompt components cannot be shared by %d sessions",
            (long long)c->M, n_sessions);
  return SCL_OK;
}

/* Session t's components, once (docs/methods.md i.3): with init = gs rows [t pt, (t + 1) pt) of
 * every tensor are drawn and orthogonalised against the earlier rows; init = ortho drew all rows
 * at create. Idempotent through `ready`, so a resumed trial skips what its checkpoint holds. */
static scl_err ensure_session(coda *c, int t, int n_sessions) {
  if (c->ready > t) return SCL_OK;
  int64_t pt;
  SCL_CALL(per_session(c, n_sessions, &pt));
  if (!c->ortho_init)
    for (int64_t l = 0; l < c->L; l++)
      for (int i = 0; i < N_TENSORS; i++)
        SCL_CALL(learn_coda_gram_schmidt(tensor_at(c, c->p.param, i, l), c->M, tensor_width(c, i),
                                         t * pt, (t + 1) * pt, c->seed,
                                         TAG_GS + (uint32_t)(3 * l + i)));
  c->ready = t + 1;
  return SCL_OK;
}

static learn_train_plan coda_train_plan(learn_method *m, const learn_session *s) {
  coda *c = (coda *)m;
  learn_train_plan p = {.batch = c->cfg.batch, .n_terms = 1, .term_names = {"ce"}};
  p.epochs = s->t == 0 ? c->cfg.epochs_first : c->cfg.epochs_later;
  if (c->penalty > 0.0) {
    p.n_terms = 3;
    p.term_names[0] = "total", p.term_names[1] = "ce", p.term_names[2] = "ortho";
  }
  return p;
}

static scl_err coda_train_begin(learn_method *m, const learn_session *s, int64_t steps) {
  coda *c = (coda *)m;
  (void)steps;
  SCL_CALL(ensure_session(c, s->t, s->n_sessions));
  c->epochs = coda_train_plan(m, s).epochs;
  learn_prompt_adam_reset(&c->p); /* a fresh Adam every session (f.8) */
  return SCL_OK;
}

/* Composes the prefixes of images [0, n) of q into the io buffers, for components [0, f). */
static void compose(coda *c, int64_t n, int64_t f) {
  for (int64_t l = 0; l < c->L; l++) {
    const int64_t blk = c->first + l;
    learn_coda_forward(c->io.pk[blk], c->io.pv[blk], &c->cache[l], c->q,
                       tensor_at(c, c->p.param, T_P, l), tensor_at(c, c->p.param, T_K, l),
                       tensor_at(c, c->p.param, T_A, l), n, f, c->D, c->Lp);
  }
}

/* CE over the classes [lo, hi) of n feature rows, as a share n / B_global of the batch mean:
 * c->p.grad += the head gradient (rows [lo, hi) and their biases), c->dfeat = dCE/dfeat. Returns
 * the sum of the rows' CE. */
static double head_ce(coda *c, const int64_t *labels, int64_t n, int64_t B_global, int64_t lo,
                      int64_t hi) {
  memset(c->dfeat, 0, (size_t)(n * c->D) * sizeof(float));
  const double ce = learn_prompt_ce(&c->p, c->dfeat, c->logits, c->feat, labels, n, lo, hi,
                                    (double)n / (double)B_global);
  return ce * (double)n;
}

/* Query, composition, prompted forward, head and backward of n images. */
static scl_err train_chunk(coda *c, const float *images, const int64_t *labels, int64_t n,
                           int64_t B_global, int64_t lo, int64_t hi, int64_t s0, int64_t f,
                           double *ce_sum) {
  SCL_CALL(learn_prompt_query(c->backbone, images, n, c->q));
  compose(c, n, f);
  vit_prompt_io io = learn_prompt_io_view(&c->io, 0, 1);
  SCL_CALL(vit_trainer_forward_io(c->trainer, NULL, images, n, NULL, &io, c->feat));
  *ce_sum += head_ce(c, labels, n, B_global, lo, hi);
  learn_prompt_io_zero_grad(&c->io, n);
  SCL_CALL(vit_trainer_backward_io(c->trainer, NULL, c->dfeat, n, &io));
  for (int64_t l = 0; l < c->L; l++) {
    const int64_t blk = c->first + l;
    learn_coda_backward(tensor_at(c, c->p.grad, T_P, l), tensor_at(c, c->p.grad, T_K, l),
                        tensor_at(c, c->p.grad, T_A, l), c->scratch, c->io.dpk[blk], c->io.dpv[blk],
                        c->q, tensor_at(c, c->p.param, T_P, l), tensor_at(c, c->p.param, T_A, l),
                        &c->cache[l], n, s0, f, c->D, c->Lp);
  }
  return SCL_OK;
}

static scl_err coda_train_step(learn_method *m, const learn_session *s, const learn_batch *b,
                               double *losses) {
  coda *c = (coda *)m;
  int64_t pt;
  SCL_CALL(per_session(c, s->n_sessions, &pt));
  const int64_t s0 = s->t * pt, f = s0 + pt;
  const int64_t per_image = 3 * c->backbone->cfg.img_size * c->backbone->cfg.img_size;
  learn_prompt_zero_grad(&c->p);
  double ce = 0.0;
  for (int64_t r = 0; r < b->B; r += CODA_CHUNK) {
    const int64_t n = b->B - r < CODA_CHUNK ? b->B - r : CODA_CHUNK;
    SCL_CALL(train_chunk(c, b->images + r * per_image, b->labels + r, n, b->B_global, s->class_lo,
                         s->class_hi, s0, f, &ce));
  }
  if (dist_comm_size(c->comm) > 1) {
    SCL_CALL(dist_allreduce_f64(c->comm, &ce, 1, DIST_SUM));
    SCL_CALL(dist_allreduce_f32(c->comm, c->p.grad, c->p.count, DIST_SUM));
  }
  ce /= (double)b->B_global;
  double pen = 0.0;
  if (c->penalty > 0.0) /* the same on every rank: added after the sum over the group */
    for (int64_t l = 0; l < c->L; l++)
      for (int i = 0; i < N_TENSORS; i++)
        pen += c->penalty * learn_coda_ortho_penalty(tensor_at(c, c->p.grad, i, l), c->gram,
                                                     tensor_at(c, c->p.param, i, l), s0, f,
                                                     tensor_width(c, i), c->penalty);
  learn_prompt_adam_step(&c->p, learn_coda_lr(c->cfg.lr, c->epochs, b->epoch), c->cfg.weight_decay);
  losses[0] = ce + pen;
  if (c->penalty > 0.0) losses[1] = ce, losses[2] = pen;
  return SCL_OK;
}

/* The predict-only network: logits (B, C) of the prompted model with the components of the
 * session being evaluated, image by image (in chunks that do not interact; the queries with the
 * backbone computing every image alone, learn_prompt_test_forward). */
static scl_err coda_logits(void *ctx, const float *images, int64_t B, int diag, float *out) {
  coda *c = ctx;
  (void)diag; /* CODA-Prompt has no diagnostic network */
  int64_t pt;
  SCL_CALL(ensure_session(c, c->eval_t, c->eval_n));
  SCL_CALL(per_session(c, c->eval_n, &pt));
  const int64_t per_image = 3 * c->backbone->cfg.img_size * c->backbone->cfg.img_size;
  for (int64_t r = 0; r < B; r += CODA_CHUNK) {
    const int64_t n = B - r < CODA_CHUNK ? B - r : CODA_CHUNK;
    const float *img = images + r * per_image;
    SCL_CALL(learn_prompt_query(c->backbone, img, n, c->q));
    compose(c, n, (c->eval_t + 1) * pt);
    vit_prompt_io io = learn_prompt_io_view(&c->io, 0, 0);
    SCL_CALL(vit_trainer_infer_io(c->trainer, NULL, img, n, &io, c->feat));
    learn_prompt_logits(out + r * c->C, &c->p, c->feat, n, 0, c->C);
  }
  return SCL_OK;
}

static scl_err coda_net_forward(void *ctx, const float *images, int64_t B, float *out) {
  return learn_prompt_test_forward(((coda *)ctx)->backbone, coda_logits, ctx, images, B, 0, out);
}

static int coda_networks(learn_method *m, const learn_session *s, learn_network *out) {
  coda *c = (coda *)m;
  c->eval_t = s->t;
  c->eval_n = s->n_sessions;
  return learn_prompt_networks(out, c, c->C, coda_net_forward, NULL, 0);
}

static scl_err coda_predict(learn_method *m, const learn_session *s, const float *const *features,
                            int64_t n, int32_t *pred) {
  learn_prompt_predict(pred, features, 1, n, ((coda *)m)->C, s->class_hi);
  return SCL_OK;
}

static int coda_predictors(const learn_method *m, const char **names) {
  (void)m;
  names[0] = "coda_prompt";
  return 1;
}

static int coda_state(learn_method *m, learn_state_entry *out) {
  coda *c = (coda *)m;
  int n = learn_prompt_state(&c->p, out);
  out[n++] = (learn_state_entry){"coda_ready", LEARN_I64, 1, {1, 0}, &c->ready};
  return n;
}

static void coda_destroy(learn_method **m) {
  if (!m || !*m) return;
  coda *c = (coda *)*m;
  vit_trainer_destroy(&c->trainer);
  learn_prompt_io_free(&c->io);
  learn_prompt_params_free(&c->p);
  float *all[] = {c->q, c->feat, c->dfeat, c->logits, c->cache_mem, c->scratch};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) scl_free(all[i]);
  scl_free(c->gram);
  free(c);
  *m = NULL;
}

/* Per training image and epoch: the query forward (1 F), the prompted forward (1 F) and its
 * backward through frozen weights (1.05 F, docs/methods.md f.9); per test image 2 F; no pass of
 * the training images for a classifier. */
static learn_cost coda_cost(const learn_method_cfg *cfg, int t) {
  const int64_t epochs = t == 0 ? cfg->epochs_first : cfg->epochs_later;
  return (learn_cost){.train_passes = 3.05 * (double)epochs, .test_nets = 2};
}

static scl_err coda_create(const learn_context *ctx, learn_method **out);

const learn_method_ops learn_coda_prompt_ops = {
    .name = "coda_prompt",
    .label = "CODA-Prompt",
    .category = "prompt",
    .cost_factor = 60.0,
    .create = coda_create,
    .cost = coda_cost,
    .train_plan = coda_train_plan,
    .train_begin = coda_train_begin,
    .train_step = coda_train_step,
    .train_epoch_end = learn_prompt_no_epoch_end,
    .train_end = learn_prompt_no_train_end,
    .networks = coda_networks,
    .fit = learn_prompt_no_fit,
    .predict = coda_predict,
    .predictors = coda_predictors,
    .state = coda_state,
    .destroy = coda_destroy,
};

/* The configuration errors CODA-Prompt can have. */
static scl_err check_cfg(const learn_method_cfg *cfg, const vit_config *vc) {
  SCL_CHECK(
      !strcmp(cfg->prompt_protocol, "honest"), SCL_ERR_ARG,
      "method.prompt.protocol = \"%s\": CODA-Prompt composes every image's prompt from that "
      "image alone (no batch vote, no prefix reshape), so PILOT's evaluation of it is already "
      "per image and has no diagnostic variant (docs/methods.md i.7); use \"honest\"",
      cfg->prompt_protocol);
  SCL_CHECK(!strcmp(cfg->optimizer, "adam"), SCL_ERR_ARG,
            "train.optimizer = \"%s\": CODA-Prompt trains with Adam", cfg->optimizer);
  SCL_CHECK(cfg->prompt_length % 2 == 0, SCL_ERR_ARG,
            "method.prompt.length = %lld: CODA-Prompt splits each prompt into key and value halves",
            (long long)cfg->prompt_length);
  SCL_CHECK(cfg->prompt_e_layers >= 1 && cfg->prompt_g_layers + cfg->prompt_e_layers <= vc->depth,
            SCL_ERR_ARG,
            "method.prompt.g_layers + e_layers = %lld + %lld: blocks outside the %lld "
            "of the backbone",
            (long long)cfg->prompt_g_layers, (long long)cfg->prompt_e_layers, (long long)vc->depth);
  SCL_CHECK(cfg->prompt_pool <= vc->width, SCL_ERR_ARG,
            "method.prompt.pool = %lld: more CODA-Prompt components than the width %lld, so they "
            "cannot be orthogonal",
            (long long)cfg->prompt_pool, (long long)vc->width);
  return SCL_OK;
}

static scl_err alloc_floats(float **p, int64_t n, const char *what) {
  SCL_CALL(scl_calloc((size_t)(n > 0 ? n : 1) * sizeof(float), what, (void **)p));
  return SCL_OK;
}

static scl_err create_buffers(coda *c) {
  const int64_t B = CODA_CHUNK, K = c->C, cache = (int64_t)learn_coda_cache_floats(B, c->M, c->D);
  uint32_t layers = 0;
  for (int64_t l = 0; l < c->L; l++) layers |= 1u << (c->first + l);
  c->pc = (pet_config){
      .kinds = PET_SAMPLE_PREFIX, .sample_prefix_len = c->Lp / 2, .sample_prefix_layers = layers};
  SCL_CALL(vit_trainer_create_lending(c->backbone, &c->pc, B, 0,
                                      &c->trainer)); /* the query runs in its working set (pet.h) */
  SCL_CALL(learn_prompt_io_create(&c->io, B, c->D, 0, c->Lp / 2, layers));
  SCL_CALL(alloc_floats(&c->q, B * c->D, "CODA-Prompt queries"));
  SCL_CALL(alloc_floats(&c->feat, B * c->D, "CODA-Prompt features"));
  SCL_CALL(alloc_floats(&c->dfeat, B * c->D, "CODA-Prompt feature gradients"));
  SCL_CALL(alloc_floats(&c->logits, 2 * B * K, "CODA-Prompt logits and their gradients"));
  SCL_CALL(alloc_floats(&c->cache_mem, c->L * cache, "CODA-Prompt composition caches"));
  SCL_CALL(alloc_floats(&c->scratch, (int64_t)learn_coda_backward_scratch(B, c->M, c->D),
                        "CODA-Prompt backward scratch"));
  for (int64_t l = 0; l < c->L; l++)
    c->cache[l] = learn_coda_cache_bind(c->cache_mem + l * cache, B, c->M, c->D);
  if (c->penalty > 0.0)
    SCL_CALL(scl_alloc((size_t)(c->M * c->M) * sizeof(double), "CODA-Prompt Gram matrix",
                       (void **)&c->gram));
  return SCL_OK;
}

static scl_err coda_create(const learn_context *ctx, learn_method **out) {
  const learn_method_cfg *cfg = ctx->cfg;
  SCL_CALL(check_cfg(cfg, &ctx->backbone->cfg));
  coda *c = calloc(1, sizeof *c);
  SCL_CHECK(c, SCL_ERR_NOMEM, "coda_prompt");
  c->base.ops = &learn_coda_prompt_ops;
  c->cfg = *cfg;
  c->backbone = ctx->backbone;
  c->comm = ctx->comm ? ctx->comm : dist_comm_self();
  c->seed = ctx->seed;
  c->C = ctx->n_classes;
  c->D = ctx->backbone->cfg.width;
  c->M = cfg->prompt_pool;
  c->Lp = cfg->prompt_length;
  c->E = c->Lp * c->D;
  c->L = cfg->prompt_e_layers;
  c->first = cfg->prompt_g_layers;
  c->ortho_init = !strcmp(cfg->coda_init, "ortho");
  c->penalty = cfg->coda_ortho * (c->ortho_init ? CODA_ORTHO_PAPER : 1.0);
  learn_method *m = &c->base;
  const int64_t numel[N_TENSORS] = {c->L * c->M * c->E, c->L * c->M * c->D, c->L * c->M * c->D};
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, learn_prompt_params_create(&c->p, c->C, c->D, N_TENSORS, numel, c->off), fail);
  learn_prompt_head_init_rows(&c->p, LEARN_PROMPT_HEAD_TORCH, c->seed, TAG_HEAD);
  if (c->ortho_init) /* nn.init.orthogonal_ of every tensor: orthonormal rows (i.3) */
    for (int64_t l = 0; l < c->L; l++)
      for (int i = 0; i < N_TENSORS; i++)
        SCL_CALL_GOTO(
            err,
            learn_coda_gram_schmidt(tensor_at(c, c->p.param, i, l), c->M, tensor_width(c, i), 0,
                                    c->M, c->seed, TAG_ORTHO + (uint32_t)(3 * l + i)),
            fail);
  SCL_CALL_GOTO(err, create_buffers(c), fail);
  *out = m;
  return SCL_OK;
fail:
  coda_destroy(&m);
  return SCL_TRACE(err);
}
