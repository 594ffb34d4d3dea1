/* slca_align.c: SLCA's class statistics, Gaussian samples and classifier alignment (slca.h,
 * docs/methods.md k.3-k.4).
 *
 * Statistics are exact two-pass moments in double: the class sums are summed over the group
 * first, then each class's centred scatter matrix (one dsyrk per chunk of rows) is summed over
 * the group; they are stored as float32, as the reference stores them, in one block sized for
 * every class of the benchmark. Samples are drawn in double through a Cholesky factor that is
 * computed again for every class and CA epoch (a D x D factor costs about what the class's 256
 * samples cost; keeping the factors would double the statistics' memory). Which rank draws a
 * class changes nothing: every sample is a function of its key, so the alignment, which every
 * rank runs whole on the gathered samples (it is K mini-batches of a linear head, no ViT work),
 * gives the same head everywhere and at any group size. The logit-normalised CE is computed per
 * row in double, its gradient taken through the block norms as autograd does. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/learn.h"
#include "safecl/linalg.h"
#include "safecl/method.h"
#include "safecl/slca.h"

/* Rows of centred features converted to double per dsyrk call. */
#define STATS_CHUNK 256

scl_err learn_slca_stats_create(learn_slca_stats *s, int64_t C, int64_t D) {
  memset(s, 0, sizeof *s);
  SCL_CHECK(C > 0 && D > 0, SCL_ERR_ARG, "SLCA statistics of %lld classes of width %lld",
            (long long)C, (long long)D);
  s->C = C;
  s->D = D;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err,
                scl_calloc((size_t)(C * D) * sizeof(float), "SLCA class means", (void **)&s->mean),
                fail);
  SCL_CALL_GOTO(
      err,
      scl_calloc((size_t)(C * D * D) * sizeof(float), "SLCA class covariances", (void **)&s->cov),
      fail);
  SCL_CALL_GOTO(err,
                scl_alloc((size_t)C * sizeof(int64_t), "SLCA class sessions", (void **)&s->session),
                fail);
  for (int64_t c = 0; c < C; c++) s->session[c] = -1;
  return SCL_OK;
fail:
  learn_slca_stats_free(s);
  return err;
}

void learn_slca_stats_free(learn_slca_stats *s) {
  scl_free(s->mean);
  scl_free(s->cov);
  scl_free(s->session);
  memset(s, 0, sizeof *s);
}

/* S (D, D, lower triangle) = the scatter of this rank's rows of class c around mu. */
static void class_scatter(double *S, double *chunk, const float *feat, const int32_t *labels,
                          int64_t n, int64_t c, const double *mu, int64_t D) {
  memset(S, 0, (size_t)(D * D) * sizeof(double));
  int64_t rows = 0;
  for (int64_t i = 0; i <= n; i++) {
    if (i < n && labels[i] == c) {
      for (int64_t k = 0; k < D; k++) chunk[rows * D + k] = (double)feat[i * D + k] - mu[k];
      rows++;
    }
    if (rows > 0 && (rows == STATS_CHUNK || i == n)) {
      cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, (int)D, (int)rows, 1.0, chunk, (int)D, 1.0,
                  S, (int)D);
      rows = 0;
    }
  }
}

scl_err learn_slca_stats_fit(learn_slca_stats *s, const dist_comm *comm, const float *feat,
                             const int32_t *labels, int64_t n, int64_t lo, int64_t hi, int t) {
  const int64_t D = s->D, nc = hi - lo;
  SCL_CHECK(lo >= 0 && hi <= s->C && lo < hi, SCL_ERR_ARG,
            "SLCA statistics of classes [%lld, %lld) of %lld", (long long)lo, (long long)hi,
            (long long)s->C);
  double *sums = NULL, *S = NULL, *chunk = NULL;
  scl_err err = SCL_OK;
  for (int64_t i = 0; i < n; i++)
    SCL_CHECK_GOTO(err, agree, labels[i] >= lo && labels[i] < hi, SCL_ERR_ARG,
                   "SLCA statistics: label %d of row %lld is outside the session's classes "
                   "[%lld, %lld)",
                   (int)labels[i], (long long)i, (long long)lo, (long long)hi);
  /* sums (nc, D + 1): the count, then the feature sum of each class */
  SCL_CALL_GOTO(
      err, scl_calloc((size_t)(nc * (D + 1)) * sizeof(double), "SLCA class sums", (void **)&sums),
      agree);
  SCL_CALL_GOTO(err, scl_alloc((size_t)(D * D) * sizeof(double), "SLCA scatter", (void **)&S),
                agree);
  SCL_CALL_GOTO(
      err,
      scl_alloc((size_t)(STATS_CHUNK * D) * sizeof(double), "SLCA centred rows", (void **)&chunk),
      agree);
agree: /* a rank's failure above is every rank's, before the first collective */
  err = dist_agree(comm, err);
  if (err) goto done;
  for (int64_t i = 0; i < n; i++) {
    double *r = sums + (labels[i] - lo) * (D + 1);
    r[0] += 1.0;
    for (int64_t k = 0; k < D; k++) r[1 + k] += (double)feat[i * D + k];
  }
  if (dist_comm_size(comm) > 1)
    SCL_CALL_GOTO(err, dist_allreduce_f64(comm, sums, nc * (D + 1), DIST_SUM), done);
  for (int64_t j = 0; j < nc; j++) {
    double *r = sums + j * (D + 1);
    const double count = r[0];
    SCL_CHECK_GOTO(err, done, count >= 2.0, SCL_ERR_ARG,
                   "SLCA statistics: class %lld has %.0f training images; its covariance needs two",
                   (long long)(lo + j), count);
    for (int64_t k = 0; k < D; k++) r[1 + k] /= count; /* the mean, in place */
    class_scatter(S, chunk, feat, labels, n, lo + j, r + 1, D);
    if (dist_comm_size(comm) > 1)
      SCL_CALL_GOTO(err, dist_allreduce_f64(comm, S, D * D, DIST_SUM), done);
    float *cov = s->cov + (lo + j) * D * D, *mean = s->mean + (lo + j) * D;
    for (int64_t a = 0; a < D; a++) {
      mean[a] = (float)r[1 + a];
      for (int64_t b = 0; b <= a; b++) {
        const double v = S[a * D + b] / (count - 1.0) + (a == b ? LEARN_SLCA_COV_RIDGE : 0.0);
        cov[a * D + b] = cov[b * D + a] = (float)v;
      }
    }
    s->session[lo + j] = t;
  }
done:
  scl_free(sums);
  scl_free(S);
  scl_free(chunk);
  return err;
}

double learn_slca_shrink(int64_t t_c, int64_t t) {
  return 0.9 + (double)(t_c + 1) / (double)(t + 1) * 0.1;
}

scl_err learn_slca_sample(float *x, double *work, const learn_slca_stats *s, int64_t c,
                          double shrink, int64_t n, uint64_t seed, uint32_t key) {
  const int64_t D = s->D;
  SCL_CHECK(c >= 0 && c < s->C && s->session[c] >= 0, SCL_ERR_ARG,
            "SLCA samples of class %lld, which has no statistics", (long long)c);
  SCL_CHECK((c + 1) * n < ((int64_t)1 << 32), SCL_ERR_ARG,
            "SLCA samples: class %lld x %lld samples exceeds the stream index range", (long long)c,
            (long long)n);
  double *L = work, *E = work + D * D;
  const float *cov = s->cov + c * D * D, *mean = s->mean + c * D;
  for (int64_t i = 0; i < D * D; i++) L[i] = (double)cov[i];
  if (linalg_cholesky_f64(L, D)) { /* re-raised with the class it concerns */
    char msg[SCL_ERROR_MESSAGE_MAX];
    const scl_err code = scl_error_take(msg, sizeof msg);
    return SCL_ERROR(code, "SLCA samples: the covariance of class %lld: %s", (long long)c, msg);
  }
  for (int64_t i = 0; i < n; i++) {
    scl_rng rng;
    scl_rng_init(&rng, seed, SCL_STREAM_GAUSSIAN, key, (uint32_t)(1 + c * n + i));
    for (int64_t k = 0; k < D; k++) E[i * D + k] = scl_rng_normal(&rng);
  }
  /* E <- E L^T: row i becomes L e_i */
  cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, (int)n, (int)D, 1.0,
              L, (int)D, E, (int)D);
  for (int64_t i = 0; i < n; i++)
    for (int64_t k = 0; k < D; k++) x[i * D + k] = (float)(shrink * (double)mean[k] + E[i * D + k]);
  return SCL_OK;
}

scl_err learn_slca_epoch_samples(float *x, int64_t *perm, double *work, const learn_slca_stats *s,
                                 int64_t K, int64_t n, int t, int64_t epoch, uint64_t seed,
                                 const dist_comm *comm) {
  const int64_t D = s->D;
  const int size = dist_comm_size(comm), rank = dist_comm_rank(comm);
  const uint32_t key = (uint32_t)t * 4096u + (uint32_t)epoch;
  int64_t lo, hi;
  learn_shard(K, size, rank, &lo, &hi);
  scl_err err = SCL_OK;
  for (int64_t c = lo; c < hi && !err; c++)
    err = learn_slca_sample(x + c * n * D, work, s, c, learn_slca_shrink(s->session[c], t), n, seed,
                            key);
  err = dist_agree(comm, err);
  if (err) return SCL_TRACE(err);
  if (size > 1) {
    int64_t counts[LEARN_MAX_GROUP];
    SCL_CHECK(size <= LEARN_MAX_GROUP, SCL_ERR_ARG, "a group of %d ranks (at most %d)", size,
              LEARN_MAX_GROUP);
    learn_shard_counts(K, size, counts);
    for (int r = 0; r < size; r++) counts[r] *= n;
    SCL_CALL(dist_allgather_rows_f32(comm, x + lo * n * D, counts, D, x));
  }
  SCL_CALL(scl_rng_permutation(seed, SCL_STREAM_GAUSSIAN, key, K * n, perm));
  return SCL_OK;
}

double learn_slca_lognorm_ce(float *dlogits, double *work, const float *logits, const int64_t *y,
                             int64_t B, int64_t K, const int64_t *bounds, int nb, double tau,
                             double scale) {
  if (tau <= 0.0) return learn_ce_loss(dlogits, logits, y, B, K, scale);
  double total = 0.0;
  double *u = work;
  for (int64_t r = 0; r < B; r++) {
    const float *z = logits + r * K;
    if (y[r] < 0 || y[r] >= K) return NAN;
    double nbar = 0.0;
    for (int i = 0; i < nb; i++) {
      double sq = 0.0;
      for (int64_t j = bounds[i]; j < bounds[i + 1]; j++) sq += (double)z[j] * z[j];
      nbar += sqrt(sq) + LEARN_SLCA_NORM_EPS;
    }
    nbar /= (double)nb;
    double m = -INFINITY;
    for (int64_t j = 0; j < K; j++) {
      u[j] = (double)z[j] / nbar / tau;
      m = u[j] > m ? u[j] : m;
    }
    double Z = 0.0;
    for (int64_t j = 0; j < K; j++) Z += exp(u[j] - m);
    total += m + log(Z) - u[y[r]];
    if (!dlogits) continue;
    /* g = dL/du; u = z / (nbar tau), so dL/dnbar = -sum g u / nbar */
    const double w = scale / (double)B;
    double dnbar = 0.0;
    for (int64_t j = 0; j < K; j++) {
      const double g = w * (exp(u[j] - m) / Z - (j == y[r] ? 1.0 : 0.0));
      dnbar -= g * u[j] / nbar;
      u[j] = g; /* u now holds g */
    }
    for (int i = 0; i < nb; i++) {
      double sq = 0.0;
      for (int64_t j = bounds[i]; j < bounds[i + 1]; j++) sq += (double)z[j] * z[j];
      const double norm = sqrt(sq), dn = norm > 0.0 ? dnbar / (double)nb / norm : 0.0;
      for (int64_t j = bounds[i]; j < bounds[i + 1]; j++)
        dlogits[r * K + j] += (float)(u[j] / (nbar * tau) + dn * (double)z[j]);
    }
  }
  return B > 0 ? total / (double)B : 0.0;
}

/* Buffers of one alignment. */
typedef struct align_buffers {
  float *x, *xb, *logits, *dlogits, *grad, *buf;
  double *work;
  int64_t *perm, *yb;
} align_buffers;

static void align_free(align_buffers *a) {
  float *f[] = {a->x, a->xb, a->logits, a->dlogits, a->grad, a->buf};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) scl_free(f[i]);
  scl_free(a->work);
  scl_free(a->perm);
  scl_free(a->yb);
}

static scl_err align_alloc(align_buffers *a, int64_t C, int64_t D, int64_t K, int64_t n) {
  memset(a, 0, sizeof *a);
  const int64_t H = learn_slca_head_count(C, D);
  struct {
    float **p;
    int64_t count;
    const char *what;
  } f[] = {{&a->x, K * n * D, "SLCA alignment samples"},
           {&a->xb, n * D, "SLCA alignment batch"},
           {&a->logits, n * K, "SLCA alignment logits"},
           {&a->dlogits, n * K, "SLCA alignment logit gradient"},
           {&a->grad, H, "SLCA alignment head gradient"},
           {&a->buf, H, "SLCA alignment momentum"}};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
    SCL_CALL(scl_calloc((size_t)f[i].count * sizeof(float), f[i].what, (void **)f[i].p));
  const int64_t w = learn_slca_sample_work(n, D) > K ? learn_slca_sample_work(n, D) : K;
  SCL_CALL(scl_alloc((size_t)w * sizeof(double), "SLCA sampling work", (void **)&a->work));
  SCL_CALL(scl_alloc((size_t)(K * n) * sizeof(int64_t), "SLCA sample order", (void **)&a->perm));
  SCL_CALL(scl_alloc((size_t)n * sizeof(int64_t), "SLCA batch labels", (void **)&a->yb));
  return SCL_OK;
}

/* One mini-batch: the rows perm[0..n) of a->x, SGD step `step` at lr. Returns the CE. */
static double align_step(align_buffers *a, float *head, int64_t C, int64_t D, int64_t K, int64_t n,
                         const int64_t *perm, const int64_t *bounds, int nb,
                         const learn_slca_align_cfg *cfg, int64_t step, double lr) {
  const int64_t hb = learn_slca_head_b(C, D);
  for (int64_t i = 0; i < n; i++) {
    memcpy(a->xb + i * D, a->x + perm[i] * D, (size_t)D * sizeof(float));
    a->yb[i] = perm[i] / cfg->samples;
  }
  for (int64_t i = 0; i < n; i++) memcpy(a->logits + i * K, head + hb, (size_t)K * sizeof(float));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)K, (int)D, 1.0f, a->xb, (int)D,
              head, (int)D, 1.0f, a->logits, (int)K);
  memset(a->dlogits, 0, (size_t)(n * K) * sizeof(float));
  const double ce =
      learn_slca_lognorm_ce(a->dlogits, a->work, a->logits, a->yb, n, K, bounds, nb, cfg->tau, 1.0);
  memset(a->grad, 0, (size_t)learn_slca_head_count(C, D) * sizeof(float));
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)D, (int)n, 1.0f, a->dlogits,
              (int)K, a->xb, (int)D, 0.0f, a->grad, (int)D);
  for (int64_t k = 0; k < K; k++) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += a->dlogits[i * K + k];
    a->grad[hb + k] = (float)sum;
  }
  const learn_sgd_cfg sgd = {cfg->momentum, 0.0, 0};
  const learn_param_group groups[2] = {{0, K * D, 1.0, cfg->weight_decay},
                                       {hb, K, 1.0, cfg->weight_decay}};
  learn_sgd_step(head, a->buf, a->grad, step, lr, &sgd, groups, 2);
  return ce;
}

scl_err learn_slca_align(float *head, int64_t C, int64_t D, const learn_slca_stats *s,
                         const int64_t *bounds, int t, const learn_slca_align_cfg *cfg,
                         const dist_comm *comm, learn_slca_align_log *log) {
  const int64_t K = bounds[t + 1], n = cfg->samples;
  memset(log, 0, sizeof *log);
  SCL_CHECK(t >= 1 && K <= C && bounds[0] == 0, SCL_ERR_ARG,
            "SLCA alignment of session %d over %lld classes (of %lld)", t + 1, (long long)K,
            (long long)C);
  SCL_CHECK(K * n * D < ((int64_t)1 << 31), SCL_ERR_ARG,
            "SLCA alignment: %lld classes x %lld samples x %lld exceeds one gather", (long long)K,
            (long long)n, (long long)D);
  align_buffers a;
  scl_err err = dist_agree(comm, align_alloc(&a, C, D, K, n));
  int64_t step = 0;
  for (int64_t e = 0; e < cfg->epochs && !err; e++) {
    err = learn_slca_epoch_samples(a.x, a.perm, a.work, s, K, n, t, e, cfg->seed, comm);
    const double lr = learn_lr_cosine(cfg->lr, 0.0, cfg->epochs, e);
    double sum = 0.0;
    for (int64_t j = 0; j < K && !err; j++, step++) {
      sum += align_step(&a, head, C, D, K, n, a.perm + j * n, bounds, t + 1, cfg, step, lr);
      log->batches++;
    }
    if (e < 64) log->epoch_loss[e] = sum / (double)K;
  }
  align_free(&a);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}
