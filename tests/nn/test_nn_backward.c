/* test_nn_backward.c: every backward kernel and PET operation of nn.h, two ways
 * (docs/conventions.md 12a-b): central finite differences of a weighted sum of the forward's output
 * against the analytic gradients, on small shapes; and each fast (BLAS) kernel against its
 * naive `_ref`, on larger and odd shapes. Prints one line per tensor with its worst element;
 * the exit status is the number of failures (capped). */
#include "common/nn_harness.h"
#include "safecl/nn.h"

#define EPS 1e-2
#define FD_TOL 2e-3

/* ---------------------------------------------------------------------------------------- */
/* Finite differences                                                                        */

typedef struct lin_ctx {
  float *x, *w, *b, *y, *wy;
  int64_t rows, din, dout;
} lin_ctx;

static double lin_loss(void *p) {
  lin_ctx *c = p;
  nn_linear_forward(c->y, c->x, c->w, c->b, c->rows, c->din, c->dout);
  return weighted_sum(c->wy, c->y, c->rows * c->dout);
}

static void fd_linear(void) {
  lin_ctx c = {rand_buf(5 * 7, -1, 1, 1),
               rand_buf(4 * 7, -1, 1, 2),
               rand_buf(4, -1, 1, 3),
               buf(5 * 4),
               rand_buf(5 * 4, -1, 1, 4),
               5,
               7,
               4};
  float *dx = buf(35), *dw = buf(28), *db = buf(4);
  nn_linear_backward(dx, dw, db, c.wy, c.x, c.w, 5, 7, 4);
  fd_check("fd linear dx", c.x, dx, 35, lin_loss, &c, EPS, FD_TOL);
  fd_check("fd linear dw", c.w, dw, 28, lin_loss, &c, EPS, FD_TOL);
  fd_check("fd linear db", c.b, db, 4, lin_loss, &c, EPS, FD_TOL);
}

/* Patch embedding of 2 images 3 x 8 x 12 with patch 4 (6 patches each), width 5, output rows
 * 7 apart (one row left free, as for the class token). */
typedef struct pe_ctx {
  float *img, *w, *b, *y, *wy, *cols;
  nn_patch_dims d;
} pe_ctx;

static double pe_loss(void *p) {
  pe_ctx *c = p;
  nn_patch_embed_forward(c->y, c->cols, c->img, c->w, c->b, 2, c->d, 7 * 5);
  return weighted_sum(c->wy, c->y, 2 * 7 * 5);
}

static void fd_patch_embed(void) {
  const nn_patch_dims d = {3, 8, 12, 4, 5};
  pe_ctx c = {rand_buf(2 * 3 * 8 * 12, 0, 1, 91),
              rand_buf(5 * 48, -1, 1, 92),
              rand_buf(5, -1, 1, 93),
              buf(2 * 7 * 5),
              rand_buf(2 * 7 * 5, -1, 1, 94),
              buf(6 * 48),
              d};
  float *dw = buf(5 * 48), *db = buf(5);
  nn_patch_embed_backward(dw, db, c.cols, c.wy, c.img, 2, d, 7 * 5);
  fd_check("fd patch_embed dw", c.w, dw, 5 * 48, pe_loss, &c, EPS, FD_TOL);
  fd_check("fd patch_embed db", c.b, db, 5, pe_loss, &c, EPS, FD_TOL);
}

typedef struct ln_ctx {
  float *x, *g, *b, *y, *wy, *mean, *rstd;
  int64_t rows, D;
} ln_ctx;

static double ln_loss(void *p) {
  ln_ctx *c = p;
  nn_layernorm_forward(c->y, c->mean, c->rstd, c->x, c->g, c->b, c->rows, c->D, 1e-6f);
  return weighted_sum(c->wy, c->y, c->rows * c->D);
}

static void fd_layernorm(void) {
  const int64_t rows = 4, D = 19;
  ln_ctx c = {rand_buf(rows * D, -2, 2, 5),
              rand_buf(D, 0.5f, 1.5f, 6),
              rand_buf(D, -1, 1, 7),
              buf(rows * D),
              rand_buf(rows * D, -1, 1, 8),
              buf(rows),
              buf(rows),
              rows,
              D};
  float *dx = buf(rows * D), *dg = buf(D), *dbeta = buf(D), *y2 = buf(rows * D);
  ln_loss(&c);
  nn_layernorm_backward(dx, dg, dbeta, c.wy, c.x, c.g, c.mean, c.rstd, rows, D);
  fd_check("fd layernorm dx", c.x, dx, rows * D, ln_loss, &c, EPS, FD_TOL);
  fd_check("fd layernorm dgamma", c.g, dg, D, ln_loss, &c, EPS, FD_TOL);
  fd_check("fd layernorm dbeta", c.b, dbeta, D, ln_loss, &c, EPS, FD_TOL);
  ln_loss(&c);
  nn_layernorm_recompute(y2, c.x, c.mean, c.rstd, c.g, c.b, rows, D);
  check("layernorm_recompute = forward", y2, c.y, rows * D, 1e-6, 1e-6);
}

/* Rows with a large mean against their spread (mean 1000, std 0.3: uniform of half-width
 * 0.3 sqrt 3). A float mean is off by up to ulp(1000) / 2 = 3.1e-5, a 1e-4 error in xhat, so
 * kernels that each rounded the mean their own way would disagree by that much. The bound for
 * forward vs recompute is 0: both evaluate xhat = ((x - hi) - lo) * rstd in float from the same
 * stored hi and rstd and the same lo (one function, same operations on the same x), then the
 * same affine. The backward must match finite differences of that forward (in double, eps small
 * against the std so that truncation stays below the tolerance) and its double reference. */
static void layernorm_large_mean(void) {
  const int64_t rows = 3, D = 40;
  ln_ctx c = {rand_buf(rows * D, 1000.0f - 0.52f, 1000.0f + 0.52f, 90),
              rand_buf(D, 0.5f, 1.5f, 91),
              rand_buf(D, -1, 1, 92),
              buf(rows * D),
              rand_buf(rows * D, -1, 1, 93),
              buf(rows),
              buf(rows),
              rows,
              D};
  float *y2 = buf(rows * D), *dx = buf(rows * D), *dg = buf(D), *dbeta = buf(D);
  float *dx2 = buf(rows * D), *dg2 = buf(D), *db2 = buf(D);
  ln_loss(&c);
  nn_layernorm_recompute(y2, c.x, c.mean, c.rstd, c.g, c.b, rows, D);
  check("layernorm mean 1000 std 0.3: recompute = forward", y2, c.y, rows * D, 0, 0);
  nn_layernorm_backward(dx, dg, dbeta, c.wy, c.x, c.g, c.mean, c.rstd, rows, D);
  nn_layernorm_backward_ref(dx2, dg2, db2, c.wy, c.x, c.g, c.mean, c.rstd, rows, D);
  check("ref layernorm_backward dx, mean 1000", dx, dx2, rows * D, 1e-5, 1e-5);
  check("ref layernorm_backward dgamma, mean 1000", dg, dg2, D, 1e-5, 1e-5);
  fd_check("fd layernorm dx, mean 1000 std 0.3", c.x, dx, rows * D, ln_loss, &c, 2e-3, FD_TOL);
  fd_check("fd layernorm dgamma, mean 1000 std 0.3", c.g, dg, D, ln_loss, &c, EPS, FD_TOL);
  fd_check("fd layernorm dbeta, mean 1000 std 0.3", c.b, dbeta, D, ln_loss, &c, EPS, FD_TOL);
}

typedef struct act_ctx {
  float *x, *y, *wy;
  int64_t rows, cols;
  int kind; /* 0 softmax, 1 GELU */
} act_ctx;

static double act_loss(void *p) {
  act_ctx *c = p;
  if (c->kind == 0)
    nn_softmax_forward(c->y, c->x, c->rows, c->cols);
  else
    nn_gelu_forward(c->y, c->x, c->rows * c->cols);
  return weighted_sum(c->wy, c->y, c->rows * c->cols);
}

static void fd_activations(void) {
  act_ctx s = {rand_buf(3 * 11, -3, 3, 9), buf(33), rand_buf(33, -1, 1, 10), 3, 11, 0};
  float *dx = buf(33);
  act_loss(&s);
  nn_softmax_backward(dx, s.wy, s.y, 3, 11);
  fd_check("fd softmax dx", s.x, dx, 33, act_loss, &s, EPS, FD_TOL);
  act_ctx g = {rand_buf(64, -5, 5, 11), buf(64), rand_buf(64, -1, 1, 12), 1, 64, 1};
  float *dg = buf(64), *dg2 = copy_buf(g.wy, 64);
  nn_gelu_backward(dg, g.wy, g.x, 64);
  fd_check("fd gelu dx", g.x, dg, 64, act_loss, &g, EPS, FD_TOL);
  nn_gelu_backward_inplace(dg2, g.x, 64);
  check("gelu_backward_inplace = accumulating", dg2, dg, 64, 0, 0);
  float *a = buf(8), *b = buf(8), *dy = rand_buf(8, -1, 1, 13);
  nn_residual_backward(a, b, dy, 8);
  check("residual backward da", a, dy, 8, 0, 0);
  check("residual backward db", b, dy, 8, 0, 0);
}

typedef struct attn_ctx {
  float *qkv, *pk, *pv, *out, *probs, *wy;
  int64_t L, B, N, H, Dh, nq;
} attn_ctx;

static double attn_loss(void *p) {
  attn_ctx *c = p;
  const int64_t D = c->H * c->Dh;
  for (int64_t b = 0; b < c->B; b++)
    for (int64_t h = 0; h < c->H; h++)
      nn_attention_head_forward(c->out + b * c->nq * D, c->probs, c->qkv + b * c->N * 3 * D, c->pk,
                                c->pv, c->L, c->nq, c->N, c->H, c->Dh, h);
  return weighted_sum(c->wy, c->out, c->B * c->nq * D);
}

/* Attention with a prefix of L (0: none), nq query rows per image (N or 1). */
static void fd_attention(int64_t L, int64_t nq) {
  const int64_t B = 2, N = 5, H = 2, Dh = 3, D = H * Dh;
  attn_ctx c = {rand_buf(B * N * 3 * D, -1, 1, 14),
                L ? rand_buf(L * D, -1, 1, 15) : NULL,
                L ? rand_buf(L * D, -1, 1, 16) : NULL,
                buf(B * N * D),
                buf(N * (N + L)),
                rand_buf(B * nq * D, -1, 1, 17),
                L,
                B,
                N,
                H,
                Dh,
                nq};
  float *dqkv = buf(B * N * 3 * D), *dpk = buf(L * D + 1), *dpv = buf(L * D + 1);
  float *scratch = buf(2 * N * (N + L));
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      nn_attention_head_backward(dqkv + b * N * 3 * D, L ? dpk : NULL, L ? dpv : NULL, scratch,
                                 c.wy + b * nq * D, c.qkv + b * N * 3 * D, c.pk, c.pv, L, nq, N, H,
                                 Dh, h);
  char what[64];
  snprintf(what, sizeof what, "fd attention dqkv (L=%lld, nq=%lld)", (long long)L, (long long)nq);
  fd_check(what, c.qkv, dqkv, B * N * 3 * D, attn_loss, &c, EPS, FD_TOL);
  if (L) {
    fd_check("fd attention dprefix_k", c.pk, dpk, L * D, attn_loss, &c, EPS, FD_TOL);
    fd_check("fd attention dprefix_v", c.pv, dpv, L * D, attn_loss, &c, EPS, FD_TOL);
  }
}

/* LAE's prefix (docs/methods.md l.2) in double, from the definition: key order [k_0..k_{pos-1},
 * ks pk, k_pos..], softmax, the prefix columns divided by max(their sum, 1e-12), values likewise
 * with vs pv. Its central differences (step 1e-5: truncation ~1e-10, rounding ~1e-11 relative)
 * are the reference for the float kernel's analytic gradients. */
typedef struct lae_ctx {
  double *qkv, *pk, *pv, *ks, *vs, *w; /* ks, vs: one element each */
  int64_t pos, L, B, N, H, Dh, nq;
  int comp;        /* the compensation on */
  int64_t floored; /* rows of the last evaluation whose prefix sum was below the floor */
} lae_ctx;

static double lae_loss(void *p) {
  lae_ctx *c = p;
  const int64_t D = c->H * c->Dh, Nk = c->L + c->N;
  double loss = 0.0, *a = malloc((size_t)Nk * sizeof(double));
  if (!a) exit(2);
  c->floored = 0;
  for (int64_t b = 0; b < c->B; b++)
    for (int64_t h = 0; h < c->H; h++)
      for (int64_t i = 0; i < c->nq; i++) {
        const double *x = c->qkv + b * c->N * 3 * D, *q = x + i * 3 * D + h * c->Dh;
        double m = -INFINITY, sum = 0.0, lam = 0.0;
        for (int64_t j = 0; j < Nk; j++) {
          const int pre = j >= c->pos && j < c->pos + c->L;
          const int64_t t = j < c->pos ? j : j - c->L;
          const double *k =
              pre ? c->pk + (j - c->pos) * D + h * c->Dh : x + t * 3 * D + D + h * c->Dh;
          double s = 0.0;
          for (int64_t d = 0; d < c->Dh; d++) s += q[d] * k[d] * (pre ? *c->ks : 1.0);
          a[j] = s / sqrt((double)c->Dh);
          m = a[j] > m ? a[j] : m;
        }
        for (int64_t j = 0; j < Nk; j++) sum += (a[j] = exp(a[j] - m));
        for (int64_t j = 0; j < Nk; j++) a[j] /= sum;
        for (int64_t j = c->pos; j < c->pos + c->L; j++) lam += a[j];
        c->floored += c->comp && lam <= 1e-12;
        lam = !c->comp ? 1.0 : lam > 1e-12 ? lam : 1e-12;
        for (int64_t j = c->pos; j < c->pos + c->L; j++) a[j] /= lam;
        for (int64_t d = 0; d < c->Dh; d++) {
          double o = 0.0;
          for (int64_t j = 0; j < Nk; j++) {
            const int pre = j >= c->pos && j < c->pos + c->L;
            const int64_t t = j < c->pos ? j : j - c->L;
            o += a[j] * (pre ? *c->vs * c->pv[(j - c->pos) * D + h * c->Dh + d]
                             : x[t * 3 * D + 2 * D + h * c->Dh + d]);
          }
          loss += c->w[(b * c->nq + i) * D + h * c->Dh + d] * o;
        }
      }
  free(a);
  return loss;
}

static double *to_double(const float *x, int64_t n) {
  double *d = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
  if (!d) exit(2);
  for (int64_t i = 0; i < n; i++) d[i] = x[i];
  return d;
}

/* Central differences in double of every element of x (n) against the float gradient g. */
static void lae_fd(const char *what, double *x, const float *g, int64_t n, lae_ctx *c) {
  double *fd = malloc((size_t)n * sizeof(double));
  if (!fd) exit(2);
  for (int64_t i = 0; i < n; i++) {
    const double save = x[i], h = 1e-5 * (fabs(save) > 1.0 ? fabs(save) : 1.0);
    x[i] = save + h;
    const double lp = lae_loss(c);
    x[i] = save - h;
    const double lm = lae_loss(c);
    x[i] = save;
    fd[i] = (lp - lm) / (2.0 * h);
  }
  /* the float kernel: every dot, softmax sum and GEMM here has at most Nk + Dh <= 16 terms, so
   * its relative error per term is below 16 u = 1e-6, and a score of size S (30 in the floored
   * case) is off by S u, which moves its exp by S u = 2e-6 relative; gradients sum such terms
   * with cancellation up to ~3x the tensor's largest element here, hence 1e-5 relative to that
   * element (the double differences contribute ~1e-9) */
  check_rel(what, g, fd, n, 1e-5);
  free(fd);
}

/* One LAE attention (prefix after `pos` keys, compensation, scales ks, vs) on B images with nq
 * query rows: the float kernel's forward against the double definition, and its gradients of
 * qkv, pk, pv, ks and vs against the double central differences. A nonzero prefix_shift sets
 * every query to 1 and the prefix keys to 0.1 U(-1, 1) + shift / Dh, so that the prefix scores
 * sit near shift / sqrt(Dh): at -51.5 the prefix sums of the rows land around 1e-13, below the
 * compensation's floor, where the compensated prefix still carries ~0.1 of a row (a visible
 * gradient) and the divisor is the constant 1e-12. */
static void fd_lae_attention(int64_t pos, int64_t nq, int comp, float ks, float vs,
                             float prefix_shift) {
  const int64_t B = 2, N = 5, H = 2, Dh = 3, L = 3, D = H * Dh, Nk = L + N;
  float *qkv = rand_buf(B * N * 3 * D, -1, 1, 70), *pk = rand_buf(L * D, -1, 1, 71);
  float *pv = rand_buf(L * D, -1, 1, 72), *w = rand_buf(B * nq * D, -1, 1, 73);
  if (prefix_shift != 0.0f) {
    for (int64_t b = 0; b < B; b++)
      for (int64_t i = 0; i < N; i++)
        for (int64_t d = 0; d < D; d++) qkv[(b * N + i) * 3 * D + d] = 1.0f;
    for (int64_t i = 0; i < L * D; i++) pk[i] = 0.1f * pk[i] + prefix_shift / (float)Dh;
  }
  const nn_prefix_mode mode = {pos, comp, ks, vs};
  float *out = buf(B * nq * D), *probs = buf(nq * Nk), *scratch = buf(2 * nq * Nk);
  float *dqkv = buf(B * N * 3 * D), *dpk = buf(L * D), *dpv = buf(L * D), *dks = buf(1),
        *dvs = buf(1);
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++) {
      nn_attention_head_forward_mode(out + b * nq * D, probs, qkv + b * N * 3 * D, pk, pv, L, &mode,
                                     nq, N, H, Dh, h);
      nn_attention_head_backward_mode(dqkv + b * N * 3 * D, dpk, dpv, dks, dvs, scratch,
                                      w + b * nq * D, qkv + b * N * 3 * D, pk, pv, L, &mode, nq, N,
                                      H, Dh, h);
    }
  const float ksv = ks, vsv = vs;
  lae_ctx c = {to_double(qkv, B * N * 3 * D),
               to_double(pk, L * D),
               to_double(pv, L * D),
               to_double(&ksv, 1),
               to_double(&vsv, 1),
               to_double(w, B * nq * D),
               pos,
               L,
               B,
               N,
               H,
               Dh,
               nq,
               comp,
               0};
  /* forward: loss of the kernel's output against the double definition */
  double lf = 0.0;
  for (int64_t i = 0; i < B * nq * D; i++) lf += (double)w[i] * out[i];
  const double lr = lae_loss(&c);
  const int fwd_ok =
      fabs(lf - lr) <= 1e-5 * (1.0 + fabs(lr)) && (prefix_shift == 0.0f || c.floored > 0);
  printf(
      "%s lae attention forward (pos %lld, nq %lld, compensate %d, shift %g): loss %.9g vs "
      "double %.9g; %lld of %lld rows floored\n",
      fwd_ok ? "PASS" : "FAIL", (long long)pos, (long long)nq, comp, (double)prefix_shift, lf, lr,
      (long long)c.floored, (long long)(B * H * nq));
  if (!fwd_ok) failures++;
  char what[96];
  snprintf(what, sizeof what, "fd lae dqkv (pos %lld nq %lld comp %d shift %g)", (long long)pos,
           (long long)nq, comp, (double)prefix_shift);
  lae_fd(what, c.qkv, dqkv, B * N * 3 * D, &c);
  lae_fd("fd lae dprefix_k", c.pk, dpk, L * D, &c);
  lae_fd("fd lae dprefix_v", c.pv, dpv, L * D, &c);
  lae_fd("fd lae dkey_scale", c.ks, dks, 1, &c);
  lae_fd("fd lae dvalue_scale", c.vs, dvs, 1, &c);
  free(c.qkv), free(c.pk), free(c.pv), free(c.ks), free(c.vs), free(c.w);
}

typedef struct ad_ctx {
  float *x, *wd, *bd, *wu, *bu, *y, *wy, *pre, *hid;
  const uint8_t *mask;
  int64_t rows, D, r;
} ad_ctx;

static double ad_loss(void *p) {
  ad_ctx *c = p;
  memset(c->y, 0, (size_t)(c->rows * c->D) * sizeof(float));
  nn_adapter_forward(c->y, c->pre, c->hid, c->x, c->mask, c->wd, c->bd, c->wu, c->bu, 0.1f, 0.25f,
                     c->rows, c->D, c->r);
  return weighted_sum(c->wy, c->y, c->rows * c->D);
}

static void fd_adapter(void) {
  const int64_t rows = 6, D = 9, r = 4;
  uint8_t mask[24];
  for (int i = 0; i < 24; i++) mask[i] = (uint8_t)(i % 5 != 2);
  /* inputs keep away from the ReLU kink at 0 so that +-eps does not cross it */
  ad_ctx c = {rand_buf(rows * D, -1, 1, 18),
              rand_buf(r * D, -1, 1, 19),
              rand_buf(r, -1, 1, 20),
              rand_buf(D * r, -1, 1, 21),
              rand_buf(D, -1, 1, 22),
              buf(rows * D),
              rand_buf(rows * D, -1, 1, 23),
              buf(rows * r),
              buf(rows * r),
              mask,
              rows,
              D,
              r};
  float *dx = buf(rows * D), *dwd = buf(r * D), *dbd = buf(r), *dwu = buf(D * r), *dbu = buf(D);
  float *scratch = buf(2 * rows * r);
  ad_loss(&c);
  for (int64_t i = 0; i < rows * r; i++)
    if (fabsf(c.pre[i]) < 0.05f) c.bd[i % r] += 0.1f; /* nudge off the kink */
  ad_loss(&c);
  nn_adapter_backward(dx, dwd, dbd, dwu, dbu, scratch, c.wy, c.x, c.pre, mask, c.wd, c.wu, 0.1f,
                      0.25f, rows, D, r);
  fd_check("fd adapter dx", c.x, dx, rows * D, ad_loss, &c, 1e-3, FD_TOL);
  fd_check("fd adapter d down.weight", c.wd, dwd, r * D, ad_loss, &c, 1e-3, FD_TOL);
  fd_check("fd adapter d down.bias", c.bd, dbd, r, ad_loss, &c, 1e-3, FD_TOL);
  fd_check("fd adapter d up.weight", c.wu, dwu, D * r, ad_loss, &c, 1e-3, FD_TOL);
  fd_check("fd adapter d up.bias", c.bu, dbu, D, ad_loss, &c, 1e-3, FD_TOL);
  /* dx aliasing dy: the residual-branch call */
  float *alias = copy_buf(c.wy, rows * D), *want = buf(rows * D);
  ad_loss(&c);
  nn_adapter_backward(alias, NULL, NULL, NULL, NULL, scratch, alias, c.x, c.pre, mask, c.wd, c.wu,
                      0.1f, 0.25f, rows, D, r);
  for (int64_t i = 0; i < rows * D; i++) want[i] = c.wy[i] + dx[i];
  check("adapter backward, dx aliasing dy", alias, want, rows * D, 1e-6, 1e-6);
}

typedef struct ssf_ctx {
  float *x, *g, *b, *y, *wy;
  int64_t rows, n;
} ssf_ctx;

static double ssf_loss(void *p) {
  ssf_ctx *c = p;
  nn_ssf_forward(c->y, c->x, c->g, c->b, c->rows, c->n);
  return weighted_sum(c->wy, c->y, c->rows * c->n);
}

static void fd_ssf_vpt(void) {
  const int64_t rows = 5, n = 13;
  ssf_ctx c = {rand_buf(rows * n, -1, 1, 24),
               rand_buf(n, 0.5f, 1.5f, 25),
               rand_buf(n, -1, 1, 26),
               buf(rows * n),
               rand_buf(rows * n, -1, 1, 27),
               rows,
               n};
  float *dx = buf(rows * n), *dg = buf(n), *db = buf(n);
  nn_ssf_backward(dx, dg, db, c.wy, c.x, c.g, rows, n);
  fd_check("fd ssf dx", c.x, dx, rows * n, ssf_loss, &c, EPS, FD_TOL);
  fd_check("fd ssf dgamma", c.g, dg, n, ssf_loss, &c, EPS, FD_TOL);
  fd_check("fd ssf dbeta", c.b, db, n, ssf_loss, &c, EPS, FD_TOL);
  float *inpl = copy_buf(c.wy, rows * n), *dg2 = buf(n), *db2 = buf(n);
  nn_ssf_backward_inplace(inpl, dg2, db2, c.x, c.g, rows, n);
  check("ssf_backward_inplace dx", inpl, dx, rows * n, 0, 0);
  check("ssf_backward_inplace dgamma", dg2, dg, n, 0, 0);
  float *y2 = rand_buf(rows * n, -1, 1, 28), *y3 = copy_buf(y2, rows * n);
  nn_ssf_add_forward(y2, c.x, c.g, c.b, rows, n);
  nn_ssf_forward(c.y, c.x, c.g, c.b, rows, n);
  for (int64_t i = 0; i < rows * n; i++) y3[i] += c.y[i];
  check("ssf_add_forward = y + ssf(x)", y2, y3, rows * n, 1e-7, 1e-7);
  /* VPT: L = sum w * x after the prompts are written, so dL/dprompts = sum_b w[prompt rows] */
  const int64_t B = 3, N = 4, T = 2, D = 5;
  float *x = buf(B * (N + T) * D), *pr = rand_buf(T * D, -1, 1, 29),
        *w = rand_buf(B * (N + T) * D, -1, 1, 30);
  float *dp = buf(T * D), *dpr = buf(T * D);
  nn_vpt_forward(x, pr, B, N, T, D);
  for (int64_t b = 0; b < B; b++)
    check("vpt_forward rows", x + (b * (N + T) + N) * D, pr, T * D, 0, 0);
  nn_vpt_backward(dp, w, B, N, T, D);
  nn_vpt_backward_ref(dpr, w, B, N, T, D);
  check("vpt_backward vs _ref", dp, dpr, T * D, 1e-6, 1e-6);
}

/* ---------------------------------------------------------------------------------------- */
/* Fast kernels against their references                                                     */

static void ref_linear(int64_t rows, int64_t din, int64_t dout) {
  float *x = rand_buf(rows * din, -1, 1, 31), *w = rand_buf(dout * din, -0.1f, 0.1f, 32);
  float *dy = rand_buf(rows * dout, -1, 1, 33);
  float *dx = rand_buf(rows * din, -1, 1, 34), *dw = rand_buf(dout * din, -1, 1, 35);
  float *db = rand_buf(dout, -1, 1, 36);
  float *dx2 = copy_buf(dx, rows * din), *dw2 = copy_buf(dw, dout * din), *db2 = copy_buf(db, dout);
  nn_linear_backward(dx, dw, db, dy, x, w, rows, din, dout);
  nn_linear_backward_ref(dx2, dw2, db2, dy, x, w, rows, din, dout);
  char what[96];
  snprintf(what, sizeof what, "ref linear_backward dx %lldx%lld->%lld", (long long)rows,
           (long long)din, (long long)dout);
  check(what, dx, dx2, rows * din, 1e-5, 1e-5);
  check("ref linear_backward dw", dw, dw2, dout * din, 1e-4, 1e-5);
  check("ref linear_backward db", db, db2, dout, 1e-4, 1e-5);
  nn_linear_backward(dx, NULL, NULL, dy, NULL, w, rows, din, dout); /* frozen: dx only */
  nn_linear_backward_ref(dx2, NULL, NULL, dy, NULL, w, rows, din, dout);
  check("ref linear_backward dx only (frozen)", dx, dx2, rows * din, 1e-5, 1e-5);
}

/* 3 images 3 x 32 x 48, patch 16 (6 patches), width 40, output rows 7 apart; accumulating
 * into nonzero gradients. Each element sums 18 products and its start value, all in [-1, 1]: a
 * float sum's error is below 19 x 2^-24 x 19 = 2.2e-5 whatever the order. */
static void ref_patch_embed(void) {
  const nn_patch_dims d = {3, 32, 48, 16, 40};
  const int64_t K = 3 * 16 * 16, stride = 7 * 40;
  float *img = rand_buf(3 * 3 * 32 * 48, 0, 1, 95), *dy = rand_buf(3 * stride, -1, 1, 96);
  float *dw = rand_buf(40 * K, -1, 1, 97), *db = rand_buf(40, -1, 1, 98), *cols = buf(6 * K);
  float *dw2 = copy_buf(dw, 40 * K), *db2 = copy_buf(db, 40);
  nn_patch_embed_backward(dw, db, cols, dy, img, 3, d, stride);
  nn_patch_embed_backward_ref(dw2, db2, dy, img, 3, d, stride);
  check("ref patch_embed_backward dw", dw, dw2, 40 * K, 2.2e-5, 0);
  check("ref patch_embed_backward db", db, db2, 40, 2.2e-5, 0);
}

static void ref_rowwise(void) {
  const int64_t rows = 13, D = 77;
  float *x = rand_buf(rows * D, -3, 5, 40), *g = rand_buf(D, 0.5f, 1.5f, 41),
        *b = rand_buf(D, -1, 1, 42);
  float *y = buf(rows * D), *mean = buf(rows), *rstd = buf(rows),
        *dy = rand_buf(rows * D, -1, 1, 43);
  nn_layernorm_forward(y, mean, rstd, x, g, b, rows, D, 1e-6f);
  float *dx = buf(rows * D), *dg = buf(D), *dbb = buf(D), *dx2 = buf(rows * D), *dg2 = buf(D),
        *db2 = buf(D);
  nn_layernorm_backward(dx, dg, dbb, dy, x, g, mean, rstd, rows, D);
  nn_layernorm_backward_ref(dx2, dg2, db2, dy, x, g, mean, rstd, rows, D);
  check("ref layernorm_backward dx", dx, dx2, rows * D, 1e-5, 1e-5);
  check("ref layernorm_backward dgamma", dg, dg2, D, 1e-5, 1e-5);
  check("ref layernorm_backward dbeta", dbb, db2, D, 1e-5, 1e-5);
  float *p = buf(9 * 197), *sx = rand_buf(9 * 197, -4, 4, 44), *sdy = rand_buf(9 * 197, -1, 1, 45);
  float *sdx = buf(9 * 197), *sdx2 = buf(9 * 197);
  nn_softmax_forward(p, sx, 9, 197);
  nn_softmax_backward(sdx, sdy, p, 9, 197);
  nn_softmax_backward_ref(sdx2, sdy, p, 9, 197);
  check("ref softmax_backward 9x197", sdx, sdx2, 9 * 197, 1e-7, 1e-5);
  const int64_t n = 5000;
  float *gx = rand_buf(n, -8, 8, 46), *gdy = rand_buf(n, -1, 1, 47), *gdx = buf(n), *gdx2 = buf(n);
  nn_gelu_backward(gdx, gdy, gx, n);
  nn_gelu_backward_ref(gdx2, gdy, gx, n);
  check("ref gelu_backward 5000 in [-8, 8]", gdx, gdx2, n, 2e-6, 1e-5);
  float *ra = buf(n), *rb = buf(n), *ra2 = buf(n), *rb2 = buf(n);
  nn_residual_backward(ra, rb, gdy, n);
  nn_residual_backward_ref(ra2, rb2, gdy, n);
  check("ref residual_backward", ra, ra2, n, 0, 0);
}

static void ref_attention(int64_t B, int64_t N, int64_t H, int64_t Dh, int64_t L) {
  const int64_t D = H * Dh, Nk = L + N;
  float *qkv = rand_buf(B * N * 3 * D, -1, 1, 50), *pk = rand_buf(L * D + 1, -1, 1, 51);
  float *pv = rand_buf(L * D + 1, -1, 1, 52), *dout = rand_buf(B * N * D, -1, 1, 53);
  float *out = buf(B * N * D), *out2 = buf(B * N * D), *probs = buf(B * H * N * Nk);
  float *probs2 = buf(B * H * N * Nk), *scratch = buf(2 * N * Nk);
  char what[96];
  snprintf(what, sizeof what, "ref attention_forward B%lld N%lld H%lld Dh%lld L%lld", (long long)B,
           (long long)N, (long long)H, (long long)Dh, (long long)L);
  nn_attention_forward(out, probs, qkv, pk, pv, L, B, N, H, Dh);
  nn_attention_forward_ref(out2, probs2, qkv, pk, pv, L, B, N, H, Dh);
  check(what, out, out2, B * N * D, 1e-5, 1e-4);
  check("ref attention probabilities", probs, probs2, B * H * N * Nk, 1e-6, 1e-4);
  /* the (image, head) units the threaded drivers hand out give the batch kernel's numbers */
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      nn_attention_head_forward(out2 + b * N * D, probs2, qkv + b * N * 3 * D, pk, pv, L, N, N, H,
                                Dh, h);
  check("attention_head_forward = attention_forward", out, out2, B * N * D, 0, 0);
  float *dqkv = buf(B * N * 3 * D), *dqkv2 = buf(B * N * 3 * D);
  float *dpk = buf(L * D + 1), *dpv = buf(L * D + 1), *dpk2 = buf(L * D + 1),
        *dpv2 = buf(L * D + 1);
  nn_attention_backward(dqkv, dpk, dpv, scratch, dout, qkv, pk, pv, L, B, N, H, Dh);
  nn_attention_backward_ref(dqkv2, dpk2, dpv2, dout, qkv, pk, pv, L, B, N, H, Dh);
  check("ref attention_backward dqkv", dqkv, dqkv2, B * N * 3 * D, 1e-5, 1e-4);
  if (L) {
    check("ref attention_backward dprefix_k", dpk, dpk2, L * D, 1e-5, 1e-4);
    check("ref attention_backward dprefix_v", dpv, dpv2, L * D, 1e-5, 1e-4);
  }
}

static void ref_pet(void) {
  const int64_t rows = 37, D = 48, r = 8;
  uint8_t *mask = malloc((size_t)(rows * r));
  for (int64_t i = 0; i < rows * r; i++) mask[i] = (uint8_t)((i * 7) % 10 != 3);
  float *x = rand_buf(rows * D, -1, 1, 60), *wd = rand_buf(r * D, -0.2f, 0.2f, 61);
  float *bd = rand_buf(r, -0.1f, 0.1f, 62), *wu = rand_buf(D * r, -0.3f, 0.3f, 63);
  float *bu = rand_buf(D, -0.1f, 0.1f, 64), *y0 = rand_buf(rows * D, -1, 1, 65);
  float *y = copy_buf(y0, rows * D), *y2 = copy_buf(y0, rows * D);
  float *pre = buf(rows * r), *pre2 = buf(rows * r), *hid = buf(rows * r), *hid2 = buf(rows * r);
  nn_adapter_forward(y, pre, hid, x, mask, wd, bd, wu, bu, 0.1f, 0.1f, rows, D, r);
  nn_adapter_forward_ref(y2, pre2, hid2, x, mask, wd, bd, wu, bu, 0.1f, 0.1f, rows, D, r);
  check("ref adapter_forward (dropout)", y, y2, rows * D, 1e-6, 1e-5);
  float *dy = rand_buf(rows * D, -1, 1, 66), *scratch = buf(2 * rows * r);
  float *g[5], *g2[5];
  const int64_t sz[5] = {rows * D, r * D, r, D * r, D};
  for (int k = 0; k < 5; k++) g[k] = buf(sz[k]), g2[k] = buf(sz[k]);
  nn_adapter_backward(g[0], g[1], g[2], g[3], g[4], scratch, dy, x, pre, mask, wd, wu, 0.1f, 0.1f,
                      rows, D, r);
  nn_adapter_backward_ref(g2[0], g2[1], g2[2], g2[3], g2[4], dy, x, pre, mask, wd, wu, 0.1f, 0.1f,
                          rows, D, r);
  static const char *names[5] = {"dx", "d down.weight", "d down.bias", "d up.weight", "d up.bias"};
  for (int k = 0; k < 5; k++) {
    char what[64];
    snprintf(what, sizeof what, "ref adapter_backward %s", names[k]);
    check(what, g[k], g2[k], sz[k], 1e-6, 1e-5);
  }
  float *s = rand_buf(D, 0.5f, 1.5f, 67), *sb = rand_buf(D, -1, 1, 68);
  nn_ssf_forward(y, x, s, sb, rows, D);
  nn_ssf_forward_ref(y2, x, s, sb, rows, D);
  check("ref ssf_forward", y, y2, rows * D, 1e-7, 1e-6);
  float *dx = buf(rows * D), *dx2 = buf(rows * D), *ds = buf(D), *ds2 = buf(D), *dsb = buf(D),
        *dsb2 = buf(D);
  nn_ssf_backward(dx, ds, dsb, dy, x, s, rows, D);
  nn_ssf_backward_ref(dx2, ds2, dsb2, dy, x, s, rows, D);
  check("ref ssf_backward dx", dx, dx2, rows * D, 1e-7, 1e-6);
  check("ref ssf_backward dgamma", ds, ds2, D, 1e-5, 1e-5);
  check("ref ssf_backward dbeta", dsb, dsb2, D, 1e-5, 1e-5);
  free(mask);
}

int main(void) {
  fd_linear();
  fd_patch_embed();
  fd_layernorm();
  layernorm_large_mean();
  fd_activations();
  fd_attention(0, 5);
  fd_attention(0, 1);
  fd_attention(3, 5);
  fd_attention(3, 1);
  fd_lae_attention(1, 5, 1, 0.8f, 1.3f, 0.0f);
  fd_lae_attention(1, 1, 1, 0.8f, 1.3f, 0.0f);
  fd_lae_attention(0, 5, 1, 1.1f, 0.7f, 0.0f);
  fd_lae_attention(1, 5, 0, 0.8f, 1.3f, 0.0f);   /* scales and position without compensation */
  fd_lae_attention(1, 5, 1, 1.0f, 1.0f, -51.5f); /* the floor binds in some rows */
  fd_adapter();
  fd_ssf_vpt();
  ref_linear(37, 50, 29);
  ref_linear(1, 768, 64);
  ref_linear(197, 64, 96);
  ref_patch_embed();
  ref_rowwise();
  ref_attention(2, 17, 3, 8, 0);
  ref_attention(2, 17, 3, 8, 4);
  ref_attention(1, 197, 2, 64, 0);
  ref_pet();
  release_buffers();
  printf("%s: %d failure(s)\n", failures ? "FAILED" : "all checks passed", failures);
  return failures > 100 ? 100 : failures;
}
