/* loss_feature.c: the losses SAFE puts on features: the slow learner's transfer loss (slow_cm)
 * and the fast learner's alignment loss L_cos.
 *
 * The transfer loss follows the released code, not the paper (docs/methods.md c.1): features are
 * L2-normalised per sample, C = s^T p / B is D x D, and the diagonal and off-diagonal terms are
 * plain sums (no 1/d). C is formed with one cblas_sgemm in fp32 and divided by B afterwards as
 * torch does (c.div_(B)); the loss is then summed in double. The backward is a second GEMM,
 * ds = p dC^T, followed by F.normalize's backward through its clamp. The D x D matrix is the only
 * large piece of scratch (2.4 MB at D = 768). L_cos follows torch 1.13's F.cosine_similarity,
 * which divides each vector by its own norm clamped at 1e-8 and differentiates through the
 * clamped norm (checked numerically against torch: a zero f gets sh / 1e-8). No BLAS there. */
#include "safecl/learn.h"

#include <cblas.h>
#include <math.h>

#include "safecl/core.h"

typedef struct tr_scratch {
  float *s, *snorm, *p, *pnorm, *c, *ds;
} tr_scratch;

static tr_scratch tr_bind(float *mem, int64_t B, int64_t D) {
  tr_scratch t;
  t.s = mem;
  t.snorm = t.s + scl_pad_floats(B * D);
  t.p = t.snorm + scl_pad_floats(B);
  t.pnorm = t.p + scl_pad_floats(B * D);
  t.c = t.pnorm + scl_pad_floats(B);
  t.ds = t.c + scl_pad_floats(D * D);
  return t;
}

size_t learn_transfer_scratch(int64_t B, int64_t D) {
  return 3 * scl_pad_floats(B * D) + 2 * scl_pad_floats(B) + scl_pad_floats(D * D);
}

/* Loss from C (D, D) in double; C is overwritten by scale * dL/dC / B (the 1/B of ds = p dC^T / B
 * folded in) when grad is set. */
static double tr_loss_and_dc(float *c, int64_t B, int64_t D, double lambda_diag, double lambda_rdn,
                             double scale, int grad) {
  double on = 0.0, off = 0.0;
  const double gd = 2.0 * lambda_diag * scale / (double)B,
               gr = 2.0 * lambda_rdn * scale / (double)B;
  for (int64_t i = 0; i < D; i++)
    for (int64_t j = 0; j < D; j++) {
      double v = c[i * D + j];
      if (i == j) {
        on += (v - 1.0) * (v - 1.0);
        if (grad) c[i * D + j] = (float)(gd * (v - 1.0));
      } else {
        off += v * v;
        if (grad) c[i * D + j] = (float)(gr * v);
      }
    }
  return lambda_diag * on + lambda_rdn * off;
}

double learn_transfer_loss(float *dfeat, float *scratch, const float *feat, const float *ptm,
                           int64_t B, int64_t D, double lambda_diag, double lambda_rdn,
                           double scale) {
  if (B <= 0) return 0.0;
  tr_scratch t = tr_bind(scratch, B, D);
  learn_l2norm_forward(t.s, t.snorm, feat, B, D);
  learn_l2norm_forward(t.p, t.pnorm, ptm, B, D);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)D, (int)D, (int)B, 1.0f, t.s, (int)D,
              t.p, (int)D, 0.0f, t.c, (int)D);
  const float fb = (float)B;
  for (int64_t i = 0; i < D * D; i++) t.c[i] /= fb;
  double loss = tr_loss_and_dc(t.c, B, D, lambda_diag, lambda_rdn, scale, dfeat != NULL);
  if (!dfeat) return loss;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)D, (int)D, 1.0f, t.p, (int)D,
              t.c, (int)D, 0.0f, t.ds, (int)D);
  learn_l2norm_backward(dfeat, t.ds, t.s, t.snorm, B, D);
  return loss;
}

double learn_transfer_loss_ref(float *dfeat, float *scratch, const float *feat, const float *ptm,
                               int64_t B, int64_t D, double lambda_diag, double lambda_rdn,
                               double scale) {
  if (B <= 0) return 0.0;
  tr_scratch t = tr_bind(scratch, B, D);
  learn_l2norm_forward(t.s, t.snorm, feat, B, D);
  learn_l2norm_forward(t.p, t.pnorm, ptm, B, D);
  for (int64_t i = 0; i < D; i++)
    for (int64_t j = 0; j < D; j++) {
      double acc = 0.0;
      for (int64_t b = 0; b < B; b++) acc += (double)t.s[b * D + i] * (double)t.p[b * D + j];
      t.c[i * D + j] = (float)(acc / (double)B);
    }
  double loss = tr_loss_and_dc(t.c, B, D, lambda_diag, lambda_rdn, scale, dfeat != NULL);
  if (!dfeat) return loss;
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < D; i++) {
      double acc = 0.0;
      for (int64_t j = 0; j < D; j++) acc += (double)t.c[i * D + j] * (double)t.p[b * D + j];
      t.ds[b * D + i] = (float)acc;
    }
  learn_l2norm_backward(dfeat, t.ds, t.s, t.snorm, B, D);
  return loss;
}

/* ||v|| clamped at eps as torch's cosine_similarity does, compared in fp32. */
static double clamped_norm(const float *v, int64_t D, float eps) {
  double ss = 0.0;
  for (int64_t i = 0; i < D; i++) ss += (double)v[i] * (double)v[i];
  double n = sqrt(ss);
  return (float)n >= eps ? n : (double)eps;
}

double learn_align_loss(float *df, const float *f, const float *s, int64_t B, int64_t D,
                        double scale) {
  double total = 0.0;
  for (int64_t b = 0; b < B; b++) {
    const float *fb = f + b * D, *sb = s + b * D;
    const double cf = clamped_norm(fb, D, LEARN_COSSIM_EPS);
    const double cs = clamped_norm(sb, D, LEARN_COSSIM_EPS);
    double cosv = 0.0;
    for (int64_t i = 0; i < D; i++) cosv += ((double)fb[i] / cf) * ((double)sb[i] / cs);
    total += 1.0 - cosv;
    if (!df) continue;
    for (int64_t i = 0; i < D; i++) {
      double g = ((double)sb[i] / cs - cosv * (double)fb[i] / cf) / cf;
      df[b * D + i] += (float)(-scale * g);
    }
  }
  return total;
}
