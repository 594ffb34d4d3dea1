/* test_learn_grad.c: central finite differences in double for every learn kernel and loss.
 *
 * Each fp32 kernel's analytic gradient is compared with a central difference (h = 1e-6) of an
 * independent double-precision forward written here, evaluated on the same inputs (the fp32
 * inputs widened exactly). In double the difference is accurate to ~1e-9 relative (truncation
 * h^2 |f'''| ~ 1e-12, rounding 1e-16 |f| / h ~ 1e-10), so what is measured is the fp32 kernel's
 * own error: a few ulp of fp32 times a small condition number, ~1e-6 of the tensor's largest
 * element. The tolerance, 2e-5 of that element, leaves a 10x margin over fp32 noise and is still
 * ~1e4 times smaller than any formula error would produce. Losses are called with a scale
 * other than 1 to check that it is applied. Every input keeps its norms far from the 1e-12 /
 * 1e-8 clamps, where the functions are not differentiable; the clamp behaviour is checked
 * against torch in learn_ref.py. */
#include "learn_test.h"

#define H 1e-6
#define RTOL 2e-5

/* ---- double references ---------------------------------------------------------------- */

static void nrm_d(double *out, const double *v, int64_t D, double eps) {
  double ss = 0.0;
  for (int64_t i = 0; i < D; i++) ss += v[i] * v[i];
  double c = fmax(sqrt(ss), eps);
  for (int64_t i = 0; i < D; i++) out[i] = v[i] / c;
}

/* logits (R, K) of a cosine head in double. */
static void cosine_d(double *logits, const double *x, const double *w, double sigma, int64_t R,
                     int64_t K, int64_t D) {
  double *a = talloc((size_t)D, sizeof(double)), *b = talloc((size_t)D, sizeof(double));
  for (int64_t r = 0; r < R; r++) {
    nrm_d(a, x + r * D, D, 1e-12);
    for (int64_t k = 0; k < K; k++) {
      nrm_d(b, w + k * D, D, 1e-12);
      double c = 0.0;
      for (int64_t i = 0; i < D; i++) c += a[i] * b[i];
      logits[r * K + k] = sigma * c;
    }
  }
  free(a);
  free(b);
}

/* Mean CE over R rows; row r < nid has label r, others y[r - nid]. */
static double ce_d(const double *logits, int64_t nid, const int64_t *y, int64_t R, int64_t K) {
  double total = 0.0;
  for (int64_t r = 0; r < R; r++) {
    const double *l = logits + r * K;
    double m = l[0], z = 0.0;
    for (int64_t k = 1; k < K; k++) m = fmax(m, l[k]);
    for (int64_t k = 0; k < K; k++) z += exp(l[k] - m);
    total += m + log(z) - l[r < nid ? r : y[r - nid]];
  }
  return total / (double)R;
}

/* ---- l2norm and cosine head ----------------------------------------------------------- */

typedef struct head_ctx {
  double *x, *w, sigma, *dl;
  int64_t B, K, D;
} head_ctx;

static double head_obj(void *p) {
  head_ctx *c = p;
  double *lg = talloc((size_t)(c->B * c->K), sizeof(double)), j = 0.0;
  cosine_d(lg, c->x, c->w, c->sigma, c->B, c->K, c->D);
  for (int64_t i = 0; i < c->B * c->K; i++) j += c->dl[i] * lg[i];
  free(lg);
  return j;
}

static double l2norm_obj(void *p) { /* sum dl . normalize(x) over rows, dl (B, D) */
  head_ctx *c = p;
  double *n = talloc((size_t)c->D, sizeof(double)), j = 0.0;
  for (int64_t r = 0; r < c->B; r++) {
    nrm_d(n, c->x + r * c->D, c->D, 1e-12);
    for (int64_t i = 0; i < c->D; i++) j += c->dl[r * c->D + i] * n[i];
  }
  free(n);
  return j;
}

static void test_l2norm(void) {
  const int64_t R = 4, D = 9;
  float *x = talloc(R * D, 4), *g = talloc(R * D, 4), *xn = talloc(R * D, 4), *nm = talloc(R, 4);
  float *dx = talloc(R * D, 4);
  double *xd = talloc(R * D, 8), *gd = talloc(R * D, 8), *fd = talloc(R * D, 8);
  fill_uniform(x, R * D, 1, 1, -2.0f, 2.0f);
  fill_uniform(g, R * D, 1, 2, -1.0f, 1.0f);
  to_double(xd, x, R * D);
  to_double(gd, g, R * D);
  learn_l2norm_forward(xn, nm, x, R, D);
  learn_l2norm_backward(dx, g, xn, nm, R, D);
  head_ctx c = {xd, NULL, 0.0, gd, R, 0, D};
  fd_grad(fd, xd, R * D, H, l2norm_obj, &c);
  compare("l2norm dx", dx, fd, R * D, RTOL, 0.0);
  free(x), free(g), free(xn), free(nm), free(dx), free(xd), free(gd), free(fd);
}

static void test_cosine_head(void) {
  const int64_t B = 5, K = 4, D = 7;
  float *x = talloc(B * D, 4), *w = talloc(K * D, 4), *dl = talloc(B * K, 4), sigma = 3.7f;
  float *lg = talloc(B * K, 4), *dx = talloc(B * D, 4), *dw = talloc(K * D, 4), ds = 0.0f;
  float *cm = talloc(learn_cosine_cache_floats(B, K, D), 4);
  float *scr = talloc(learn_cosine_backward_scratch(B, K, D), 4);
  double *xd = talloc(B * D, 8), *wd = talloc(K * D, 8), *dld = talloc(B * K, 8);
  double *fx = talloc(B * D, 8), *fw = talloc(K * D, 8), fs;
  fill_uniform(x, B * D, 2, 1, -1.5f, 1.5f);
  fill_uniform(w, K * D, 2, 2, -0.4f, 0.4f);
  fill_uniform(dl, B * K, 2, 3, -1.0f, 1.0f);
  to_double(xd, x, B * D), to_double(wd, w, K * D), to_double(dld, dl, B * K);
  learn_cosine_cache cache = learn_cosine_cache_bind(cm, B, K, D);
  learn_cosine_forward(lg, &cache, x, w, &sigma, B, K, D);
  learn_cosine_backward(dx, dw, &ds, scr, dl, x, w, &sigma, &cache, B, K, D);
  head_ctx c = {xd, wd, sigma, dld, B, K, D};
  fd_grad(fx, xd, B * D, H, head_obj, &c);
  fd_grad(fw, wd, K * D, H, head_obj, &c);
  fd_grad(&fs, &c.sigma, 1, H, head_obj, &c);
  compare("cosine head dx", dx, fx, B * D, RTOL, 0.0);
  compare("cosine head dW", dw, fw, K * D, RTOL, 0.0);
  compare("cosine head dsigma", &ds, &fs, 1, RTOL, 0.0);
  free(x), free(w), free(dl), free(lg), free(dx), free(dw), free(cm), free(scr);
  free(xd), free(wd), free(dld), free(fx), free(fw);
}

/* ---- losses ----------------------------------------------------------------------------- */

typedef struct loss_ctx {
  double *a, *b; /* CE: logits; transfer: feat, ptm; align: f, s */
  const int64_t *y;
  int64_t B, K, D;
  double l1, l2; /* transfer lambdas */
} loss_ctx;

static double ce_obj(void *p) {
  loss_ctx *c = p;
  return ce_d(c->a, 0, c->y, c->B, c->K);
}

static double transfer_obj(void *p) {
  loss_ctx *c = p;
  const int64_t B = c->B, D = c->D;
  double *s = talloc(B * D, 8), *q = talloc(B * D, 8), on = 0.0, off = 0.0;
  for (int64_t b = 0; b < B; b++) nrm_d(s + b * D, c->a + b * D, D, 1e-12);
  for (int64_t b = 0; b < B; b++) nrm_d(q + b * D, c->b + b * D, D, 1e-12);
  for (int64_t i = 0; i < D; i++)
    for (int64_t j = 0; j < D; j++) {
      double v = 0.0;
      for (int64_t b = 0; b < B; b++) v += s[b * D + i] * q[b * D + j];
      v /= (double)B;
      if (i == j)
        on += (v - 1.0) * (v - 1.0);
      else
        off += v * v;
    }
  free(s), free(q);
  return c->l1 * on + c->l2 * off;
}

static double align_obj(void *p) {
  loss_ctx *c = p;
  double *u = talloc(c->D, 8), *v = talloc(c->D, 8), total = 0.0;
  for (int64_t b = 0; b < c->B; b++) {
    nrm_d(u, c->a + b * c->D, c->D, 1e-8);
    nrm_d(v, c->b + b * c->D, c->D, 1e-8);
    double cs = 0.0;
    for (int64_t i = 0; i < c->D; i++) cs += u[i] * v[i];
    total += 1.0 - cs;
  }
  free(u), free(v);
  return total;
}

static void scale_d(double *a, int64_t n, double s) {
  for (int64_t i = 0; i < n; i++) a[i] *= s;
}

static void test_ce(void) {
  const int64_t B = 6, K = 5;
  const int64_t y[6] = {0, 4, 2, 2, 1, 3};
  const double scale = 0.8;
  float *lg = talloc(B * K, 4), *dl = talloc(B * K, 4);
  double *lgd = talloc(B * K, 8), *fd = talloc(B * K, 8);
  fill_uniform(lg, B * K, 3, 1, -6.0f, 6.0f);
  lg[7] = 80.0f; /* stability: a logit whose exp overflows fp32 without the max shift */
  to_double(lgd, lg, B * K);
  double loss = learn_ce_loss(dl, lg, y, B, K, scale);
  loss_ctx c = {lgd, NULL, y, B, K, 0, 0, 0};
  compare_scalar("CE loss", loss, ce_obj(&c), 1e-12);
  fd_grad(fd, lgd, B * K, H, ce_obj, &c);
  scale_d(fd, B * K, scale);
  compare("CE dlogits", dl, fd, B * K, RTOL, 0.0);
  const int64_t bad[6] = {0, 5, 0, 0, 0, 0};
  CHECK(isnan(learn_ce_loss(NULL, lg, bad, B, K, 1.0)), "CE accepted label 5 of 5 classes");
  free(lg), free(dl), free(lgd), free(fd);
}

static void test_transfer(double ldiag, double lrdn) {
  const int64_t B = 5, D = 6;
  const double scale = 1.3;
  float *f = talloc(B * D, 4), *p = talloc(B * D, 4), *df = talloc(B * D, 4);
  float *dfr = talloc(B * D, 4), *scr = talloc(learn_transfer_scratch(B, D), 4);
  double *fdd = talloc(B * D, 8), *pd = talloc(B * D, 8), *fd = talloc(B * D, 8);
  fill_uniform(f, B * D, 4, 1, -1.0f, 1.0f);
  fill_uniform(p, B * D, 4, 2, -1.0f, 1.0f);
  to_double(fdd, f, B * D), to_double(pd, p, B * D);
  double loss = learn_transfer_loss(df, scr, f, p, B, D, ldiag, lrdn, scale);
  double lref = learn_transfer_loss_ref(dfr, scr, f, p, B, D, ldiag, lrdn, scale);
  loss_ctx c = {fdd, pd, NULL, B, 0, D, ldiag, lrdn};
  char name[96];
  snprintf(name, sizeof name, "transfer loss (%g, %g)", ldiag, lrdn);
  compare_scalar(name, loss, transfer_obj(&c), 1e-6);
  compare_scalar("transfer loss _ref", lref, transfer_obj(&c), 1e-6);
  fd_grad(fd, fdd, B * D, H, transfer_obj, &c);
  scale_d(fd, B * D, scale);
  compare("transfer dfeat", df, fd, B * D, RTOL, 0.0);
  compare("transfer dfeat _ref", dfr, fd, B * D, RTOL, 0.0);
  free(f), free(p), free(df), free(dfr), free(scr), free(fdd), free(pd), free(fd);
}

static void test_align(void) {
  const int64_t B = 4, D = 6;
  const double scale = 0.5;
  float *f = talloc(B * D, 4), *s = talloc(B * D, 4), *df = talloc(B * D, 4);
  double *fdd = talloc(B * D, 8), *sd = talloc(B * D, 8), *fd = talloc(B * D, 8);
  fill_uniform(f, B * D, 5, 1, -1.0f, 1.0f);
  fill_uniform(s, B * D, 5, 2, -1.0f, 1.0f);
  to_double(fdd, f, B * D), to_double(sd, s, B * D);
  double loss = learn_align_loss(df, f, s, B, D, scale);
  loss_ctx c = {fdd, sd, NULL, B, 0, D, 0, 0};
  compare_scalar("L_cos loss", loss, align_obj(&c), 1e-12);
  fd_grad(fd, fdd, B * D, H, align_obj, &c);
  scale_d(fd, B * D, scale);
  compare("L_cos df", df, fd, B * D, RTOL, 0.0);
  free(f), free(s), free(df), free(fdd), free(sd), free(fd);
}

/* ---- cross-classification --------------------------------------------------------------- */

typedef struct cc_ctx {
  double *wf, sf, *ws, ss, *pf, *ps;
  const int64_t *y;
  int64_t K, Kt, B, D;
} cc_ctx;

static double cc_half_d(const double *protos, const double *feats, const double *w, double sigma,
                        const cc_ctx *c) {
  const int64_t R = c->K + c->B, D = c->D;
  double *x = talloc(R * D, 8), *lg = talloc(R * c->Kt, 8);
  memcpy(x, protos, (size_t)(c->K * D) * 8);
  memcpy(x + c->K * D, feats, (size_t)(c->B * D) * 8);
  cosine_d(lg, x, w, sigma, R, c->Kt, D);
  double l = ce_d(lg, c->K, c->y, R, c->Kt);
  free(x), free(lg);
  return l;
}

static double cc_obj(void *p) {
  cc_ctx *c = p;
  return cc_half_d(c->ws, c->ps, c->wf, c->sf, c) + cc_half_d(c->wf, c->pf, c->ws, c->ss, c);
}

static void test_crossclass(void) {
  const int64_t K = 3, Kt = 5, B = 4, D = 6;
  const int64_t y[4] = {3, 4, 4, 0};
  const double scale = 0.9;
  float *wf = talloc(Kt * D, 4), *ws = talloc(Kt * D, 4), *pf = talloc(B * D, 4);
  float *ps = talloc(B * D, 4), sf = 6.5f, ss = 8.0f, dsf = 0.0f;
  float *dwf = talloc(Kt * D, 4), *dpf = talloc(B * D, 4);
  float *scr = talloc(learn_crossclass_scratch(K, Kt, B, D), 4);
  double *wfd = talloc(Kt * D, 8), *wsd = talloc(Kt * D, 8), *pfd = talloc(B * D, 8);
  double *psd = talloc(B * D, 8), *fw = talloc(Kt * D, 8), *fp = talloc(B * D, 8), fs, parts[2];
  fill_uniform(wf, Kt * D, 6, 1, -0.5f, 0.5f);
  fill_uniform(ws, Kt * D, 6, 2, -0.5f, 0.5f);
  fill_uniform(pf, B * D, 6, 3, -1.0f, 1.0f);
  fill_uniform(ps, B * D, 6, 4, -1.0f, 1.0f);
  to_double(wfd, wf, Kt * D), to_double(wsd, ws, Kt * D);
  to_double(pfd, pf, B * D), to_double(psd, ps, B * D);
  double loss = learn_crossclass_loss(dwf, &dsf, dpf, scr, parts, wf, &sf, ws, &ss, pf, ps, y, K,
                                      Kt, B, D, scale);
  cc_ctx c = {wfd, sf, wsd, ss, pfd, psd, y, K, Kt, B, D};
  compare_scalar("cross-class loss", loss, cc_obj(&c), 1e-6);
  compare_scalar("cross-class l1 + l2", parts[0] + parts[1], loss, 1e-15);
  fd_grad(fw, wfd, Kt * D, H, cc_obj, &c);
  fd_grad(&fs, &c.sf, 1, H, cc_obj, &c);
  fd_grad(fp, pfd, B * D, H, cc_obj, &c);
  scale_d(fw, Kt * D, scale), scale_d(&fs, 1, scale), scale_d(fp, B * D, scale);
  compare("cross-class dW_F", dwf, fw, Kt * D, RTOL, 0.0);
  compare("cross-class dsigma_F", &dsf, &fs, 1, RTOL, 0.0);
  compare("cross-class dphi_F", dpf, fp, B * D, RTOL, 0.0);
  free(wf), free(ws), free(pf), free(ps), free(dwf), free(dpf), free(scr);
  free(wfd), free(wsd), free(pfd), free(psd), free(fw), free(fp);
}

/* ---- dropout: linear, so the check is exact ---------------------------------------------- */

static void test_dropout(void) {
  const int64_t B = 3, n = 50;
  const float p = 0.1f;
  const int64_t idx[3] = {7, 2, 11};
  float *x = talloc(B * n, 4), *y = talloc(B * n, 4), *dy = talloc(B * n, 4);
  float *dx = talloc(B * n, 4);
  uint8_t *m = talloc(B * n, 1);
  double *ref = talloc(B * n, 8);
  fill_uniform(x, B * n, 7, 1, -1.0f, 1.0f);
  fill_uniform(dy, B * n, 7, 2, -1.0f, 1.0f);
  learn_dropout_forward(y, m, x, idx, B, n, p, 99, 3, 0);
  learn_dropout_backward(dx, dy, m, B, n, p);
  /* y = x * mask / (1 - p) elementwise, so dJ/dx of J = sum dy * y is dy * mask / (1 - p) */
  for (int64_t i = 0; i < B * n; i++) ref[i] = m[i] ? (double)dy[i] / (1.0 - p) : 0.0;
  compare("dropout dx", dx, ref, B * n, 1e-6, 0.0);
  for (int64_t i = 0; i < B * n; i++) ref[i] = m[i] ? (double)x[i] / (1.0 - p) : 0.0;
  compare("dropout y", y, ref, B * n, 1e-6, 0.0);
  free(x), free(y), free(dy), free(dx), free(m), free(ref);
}

int main(void) {
  printf("finite differences (h = %g, tolerance %g of max|ref|)\n", H, RTOL);
  test_l2norm();
  test_cosine_head();
  test_ce();
  test_transfer(0.01, 10.0);
  test_transfer(5e-10, 5e-9);
  test_transfer(0.7, 1.3);
  test_align();
  test_crossclass();
  test_dropout();
  if (failures)
    fprintf(stderr, "%d check(s) failed\n", failures);
  else
    printf("all gradient checks passed\n");
  return failures ? 1 : 0;
}
