/* test_coda_prompt.c: CODA-Prompt's numeric pieces (src/learn/coda_prompt_internal.h,
 * docs/methods.md i): the composition of a layer's prompt and its backward, and the
 * orthogonality penalty, against central finite differences of independent double forwards
 * written here; the Gram-Schmidt re-initialisation and the learning-rate schedule against the
 * test vectors of the specification (o.4).
 *
 * Tolerances (test_learn_grad.c's argument): the double differences are exact to ~1e-9 relative,
 * so what is measured is the fp32 kernel's rounding, a few ulp times the length of its sums
 * (<= 32 terms here, accumulated in double where they are long), ~1e-6 of the largest element;
 * 2e-5 of it leaves a 10x margin and is ~1e4 below any formula error. Rows a kernel must leave
 * alone (detached, unused) are checked to be exactly zero. */
#include "learn_test.h"

#include "../../src/learn/coda_prompt_internal.h"

#define H 1e-6
#define RTOL 2e-5

/* ---- composition -------------------------------------------------------------------------- */

typedef struct comp_ctx {
  double *q, *P, *K, *A, *gk, *gv; /* gk, gv: the weights of the objective sum(gk pk + gv pv) */
  int64_t B, M, f, D, Lp;
} comp_ctx;

/* pk, pv of every image in double: alpha = normalize(q * A_k) . normalize(K_k). */
static void comp_d(const comp_ctx *c, double *pk, double *pv) {
  const int64_t E = c->Lp * c->D, half = E / 2;
  for (int64_t b = 0; b < c->B; b++) {
    for (int64_t j = 0; j < half; j++) pk[b * half + j] = pv[b * half + j] = 0.0;
    for (int64_t k = 0; k < c->f; k++) {
      double na = 0.0, nk = 0.0, dot = 0.0;
      for (int64_t d = 0; d < c->D; d++) {
        double a = c->q[b * c->D + d] * c->A[k * c->D + d];
        na += a * a, nk += c->K[k * c->D + d] * c->K[k * c->D + d];
      }
      na = fmax(sqrt(na), 1e-12), nk = fmax(sqrt(nk), 1e-12);
      for (int64_t d = 0; d < c->D; d++)
        dot += (c->q[b * c->D + d] * c->A[k * c->D + d] / na) * (c->K[k * c->D + d] / nk);
      for (int64_t j = 0; j < half; j++) {
        pk[b * half + j] += dot * c->P[k * E + j];
        pv[b * half + j] += dot * c->P[k * E + half + j];
      }
    }
  }
}

static double comp_obj(void *p) {
  comp_ctx *c = p;
  const int64_t n = c->B * c->Lp / 2 * c->D;
  double *pk = talloc((size_t)n, sizeof(double)), *pv = talloc((size_t)n, sizeof(double)), j = 0;
  comp_d(c, pk, pv);
  for (int64_t i = 0; i < n; i++) j += c->gk[i] * pk[i] + c->gv[i] * pv[i];
  free(pk), free(pv);
  return j;
}

/* Rows [s, f) of got (rows x w) against the finite differences, the rest exactly zero. */
static void compare_rows(const char *name, const float *got, const double *fd, int64_t rows,
                         int64_t w, int64_t s, int64_t f) {
  compare(name, got + s * w, fd + s * w, (f - s) * w, RTOL, 0.0);
  int64_t nonzero = 0;
  for (int64_t i = 0; i < rows * w; i++)
    if ((i < s * w || i >= f * w) && got[i] != 0.0f) nonzero++;
  CHECK(nonzero == 0, "%s: %lld gradient elements outside the training rows [%lld, %lld)", name,
        (long long)nonzero, (long long)s, (long long)f);
}

static void test_composition(int64_t B, int64_t M, int64_t s, int64_t f, int64_t D, int64_t Lp,
                             int zero_query) {
  printf("composition B=%lld M=%lld [%lld, %lld) D=%lld Lp=%lld%s\n", (long long)B, (long long)M,
         (long long)s, (long long)f, (long long)D, (long long)Lp,
         zero_query ? " (image 0's query zero: its norm clamped)" : "");
  const int64_t E = Lp * D, half = E / 2, nq = B * D, np = M * E, nk = M * D, no = B * half;
  float *q = talloc(nq, 4), *P = talloc(np, 4), *K = talloc(nk, 4), *A = talloc(nk, 4);
  float *gk = talloc(no, 4), *gv = talloc(no, 4), *pk = talloc(no, 4), *pv = talloc(no, 4);
  float *dP = talloc(np, 4), *dK = talloc(nk, 4), *dA = talloc(nk, 4);
  float *cm = talloc(learn_coda_cache_floats(B, M, D), 4);
  float *scr = talloc(learn_coda_backward_scratch(B, M, D), 4);
  fill_uniform(q, nq, 3, 1, -1.5f, 1.5f);
  fill_uniform(P, np, 3, 2, -1.0f, 1.0f);
  fill_uniform(K, nk, 3, 3, -1.0f, 1.0f);
  fill_uniform(A, nk, 3, 4, -1.0f, 1.0f);
  fill_uniform(gk, no, 3, 5, -1.0f, 1.0f);
  fill_uniform(gv, no, 3, 6, -1.0f, 1.0f);
  if (zero_query) memset(q, 0, (size_t)D * sizeof(float));
  double *qd = talloc(nq, 8), *Pd = talloc(np, 8), *Kd = talloc(nk, 8), *Ad = talloc(nk, 8);
  double *gkd = talloc(no, 8), *gvd = talloc(no, 8), *pkd = talloc(no, 8), *pvd = talloc(no, 8);
  double *fP = talloc(np, 8), *fK = talloc(nk, 8), *fA = talloc(nk, 8);
  to_double(qd, q, nq), to_double(Pd, P, np), to_double(Kd, K, nk), to_double(Ad, A, nk);
  to_double(gkd, gk, no), to_double(gvd, gv, no);
  learn_coda_cache cache = learn_coda_cache_bind(cm, B, M, D);
  learn_coda_forward(pk, pv, &cache, q, P, K, A, B, f, D, Lp);
  learn_coda_backward(dP, dK, dA, scr, gk, gv, q, P, A, &cache, B, s, f, D, Lp);
  comp_ctx c = {qd, Pd, Kd, Ad, gkd, gvd, B, M, f, D, Lp};
  comp_d(&c, pkd, pvd);
  compare("prefix keys", pk, pkd, no, RTOL, 0.0);
  compare("prefix values", pv, pvd, no, RTOL, 0.0);
  fd_grad(fP, Pd, np, H, comp_obj, &c);
  fd_grad(fK, Kd, nk, H, comp_obj, &c);
  fd_grad(fA, Ad, nk, H, comp_obj, &c);
  compare_rows("dP", dP, fP, M, E, s, f);
  compare_rows("dK", dK, fK, M, D, s, f);
  compare_rows("dA", dA, fA, M, D, s, f);
  if (s > 0) { /* the detached rows do shape the output: their differences are not zero */
    double most = 0.0;
    for (int64_t i = 0; i < s * E; i++) most = fmax(most, fabs(fP[i]));
    CHECK(most > 1e-3, "rows [0, s) take part in the forward (largest difference %.3e)", most);
  }
  free(q), free(P), free(K), free(A), free(gk), free(gv), free(pk), free(pv), free(dP), free(dK);
  free(dA), free(cm), free(scr), free(qd), free(Pd), free(Kd), free(Ad), free(gkd), free(gvd);
  free(pkd), free(pvd), free(fP), free(fK), free(fA);
}

/* ---- orthogonality penalty ---------------------------------------------------------------- */

typedef struct pen_ctx {
  double *X;
  int64_t f, n;
} pen_ctx;

static double pen_obj(void *p) {
  pen_ctx *c = p;
  double total = 0.0;
  for (int64_t i = 0; i < c->f; i++)
    for (int64_t j = 0; j < c->f; j++) {
      double g = 0.0;
      for (int64_t d = 0; d < c->n; d++) g += c->X[i * c->n + d] * c->X[j * c->n + d];
      g -= i == j;
      total += g * g;
    }
  return total / (double)(c->f * c->f);
}

static void test_penalty(void) {
  printf("orthogonality penalty\n");
  const int64_t M = 7, f = 5, s = 2, n = 9;
  float *X = talloc(M * n, 4), *dX = talloc(M * n, 4);
  double *Xd = talloc(M * n, 8), *fX = talloc(M * n, 8), *gram = talloc(f * f, 8);
  fill_uniform(X, M * n, 4, 1, -0.6f, 0.6f);
  to_double(Xd, X, M * n);
  const double scale = 0.37;
  double v = learn_coda_ortho_penalty(dX, gram, X, s, f, n, scale);
  pen_ctx c = {Xd, f, n};
  compare_scalar("penalty value", v, pen_obj(&c), 1e-12);
  fd_grad(fX, Xd, f * n, H, pen_obj, &c);
  for (int64_t i = 0; i < f * n; i++) fX[i] *= scale;
  compare_rows("penalty dX (scaled)", dX, fX, M, n, s, f);
  free(X), free(dX), free(Xd), free(fX), free(gram);
}

/* ---- Gram-Schmidt test vector (o.4) ------------------------------------------------------- */

/* Rows [s, f) unit norm and orthogonal (|dot| < 1e-5) to each other and to rows [0, s), rows
 * [f, M) zero. */
static void check_gs(const char *name, const float *X, int64_t M, int64_t n, int64_t s, int64_t f) {
  double worst_norm = 0.0, worst_dot = 0.0;
  for (int64_t k = s; k < f; k++) {
    for (int64_t j = 0; j <= k; j++) {
      double dot = 0.0;
      for (int64_t d = 0; d < n; d++) dot += (double)X[k * n + d] * X[j * n + d];
      if (j == k)
        worst_norm = fmax(worst_norm, fabs(sqrt(dot) - 1.0));
      else
        worst_dot = fmax(worst_dot, fabs(dot));
    }
  }
  int64_t nonzero = 0;
  for (int64_t i = f * n; i < M * n; i++) nonzero += X[i] != 0.0f;
  printf("  %-34s rows [%lld, %lld): worst |norm - 1| %.2e, worst |dot| %.2e\n", name, (long long)s,
         (long long)f, worst_norm, worst_dot);
  /* fp32 storage of a unit vector: each element rounded by 2^-24 relative, so a norm or a dot
   * product with a vector of norm <= 2 moves by <= ~2 * 2^-24 sqrt-summed, far below 1e-6. */
  CHECK(worst_norm < 1e-6, "%s: a new row is not of unit norm (%.3e)", name, worst_norm);
  CHECK(worst_dot < 1e-5, "%s: new rows not orthogonal (|dot| %.3e)", name, worst_dot);
  CHECK(nonzero == 0, "%s: %lld nonzero elements in rows [%lld, %lld)", name, (long long)nonzero,
        (long long)f, (long long)M);
}

static void test_gram_schmidt(void) {
  printf("Gram-Schmidt re-initialisation (M = 100, T = 10: 10 components per session)\n");
  const int64_t M = 100, pt = 10;
  const int64_t widths[2] = {768, 6144}; /* K and A; P flattened (8 x 768) */
  for (int w = 0; w < 2; w++) {
    const int64_t n = widths[w];
    float *X = talloc(M * n, 4), *before = talloc(M * n, 4), *again = talloc(M * n, 4);
    fill_uniform(X, M * n, 5, 1, -1.0f, 1.0f); /* garbage everywhere: create must set it all */
    CHECK_OK(learn_coda_gram_schmidt(X, M, n, 0, pt, 9, 7));
    check_gs(w ? "P session 0" : "K session 0", X, M, n, 0, pt);
    for (int64_t t = 1; t < 10; t += 4) { /* sessions 1, 5, 9 after "training" the old rows */
      for (int64_t i = 0; i < t * pt * n; i++) X[i] += 0.05f * sinf((float)(i % 97));
      memcpy(before, X, (size_t)(M * n) * sizeof(float));
      CHECK_OK(learn_coda_gram_schmidt(X, M, n, t * pt, (t + 1) * pt, 9, 7));
      char name[64];
      snprintf(name, sizeof name, "%s session %lld", w ? "P" : "K", (long long)t);
      check_gs(name, X, M, n, t * pt, (t + 1) * pt);
      CHECK(!memcmp(X, before, (size_t)(t * pt * n) * sizeof(float)), "%s: the old rows changed",
            name);
      memcpy(again, before, (size_t)(M * n) * sizeof(float));
      CHECK_OK(learn_coda_gram_schmidt(again, M, n, t * pt, (t + 1) * pt, 9, 7));
      CHECK(!memcmp(X, again, (size_t)(M * n) * sizeof(float)),
            "%s: the draw is not a function of (seed, tag, row)", name);
    }
    free(X), free(before), free(again);
  }
  float *Y = talloc(100 * 768, 4);
  CHECK_OK(learn_coda_gram_schmidt(Y, 100, 768, 0, 100, 3, 1));
  check_gs("orthogonal init (all 100 rows)", Y, 100, 768, 0, 100);
  CHECK(learn_coda_gram_schmidt(Y, 100, 64, 0, 100, 3, 1) == SCL_ERR_ARG,
        "100 orthogonal rows of width 64 are refused");
  scl_error_clear();
  free(Y);
}

/* ---- schedule (o.4) ------------------------------------------------------------------------ */

static void test_schedule(void) {
  printf("schedule lr0 cos(99 pi e / (200 (E - 1)))\n");
  const double lr0 = 0.001;
  compare_scalar("E=20 lr(0) / lr0", learn_coda_lr(lr0, 20, 0) / lr0, 1.0, 1e-15);
  compare_scalar("E=20 lr(19) / lr0 = 0.015707", learn_coda_lr(lr0, 20, 19) / lr0, 0.015707, 3e-5);
  compare_scalar("E=20 lr(10) / lr0 = 0.6833", learn_coda_lr(lr0, 20, 10) / lr0, 0.6833, 1e-4);
  compare_scalar("E=20 lr(19) = cos(99 pi / 200)", learn_coda_lr(lr0, 20, 19) / lr0,
                 cos(99.0 * 3.14159265358979323846 / 200.0), 1e-13);
  compare_scalar("E=1: the one epoch at lr0", learn_coda_lr(lr0, 1, 0), lr0, 0.0);
  int negative = 0;
  for (int64_t E = 2; E <= 60; E++)
    for (int64_t e = 0; e < E; e++) negative += learn_coda_lr(lr0, E, e) <= 0.0;
  CHECK(!negative, "%d non-positive learning rates", negative);
}

int main(void) {
  test_composition(3, 6, 2, 5, 8, 4, 0);
  test_composition(4, 5, 0, 5, 6, 2, 1);
  test_composition(2, 4, 3, 4, 5, 6, 0);
  test_penalty();
  test_gram_schmidt();
  test_schedule();
  printf("test_coda_prompt: %d failure(s)\n", failures);
  return failures ? 1 : 0;
}
