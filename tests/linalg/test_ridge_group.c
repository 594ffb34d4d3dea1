/* test_ridge_group.c: the group ridge solver (linalg_group.h) against the one-rank LAPACK
 * functions of linalg.h computed on the union of the rows, on every rank. ctest runs it at 1, 2
 * and 4 ranks with the solver forced to LAPACK and to ScaLAPACK (argv[1]).
 *
 * Rows are spread unevenly (rank r gets a share growing with r; the last of several ranks gets
 * none) and accumulated in several calls of different sizes. Checks, per case (M = 150 and 200:
 * not multiples of the block size 64; M = 1000): every element of G held in the local views
 * against the reference G (1e-12 relative; the view layout of the solver), Q (replicated), W
 * (float: the reference's rounding, within 2 ulp of max|W|), the search's mse within 1e-8
 * relative and the same best index. Errors: an indefinite G + lambda I and a label out of range
 * on one rank fail on every rank with the same message (no hang). At one rank the group without
 * a communicator (no MPI) runs the same checks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/scl_check.h"
#include "safecl/linalg.h"
#include "safecl/dist_mpi.h"
#include "safecl/linalg_group.h"

typedef struct ridge_case {
  int64_t m, n, c;
} ridge_case;

static int me, nranks;

/* Rows [lo, hi) of n for rank r: shares proportional to r + 1, the last rank none (P > 1). */
static void uneven_share(int64_t n, int r, int p, int64_t *lo, int64_t *hi) {
  int q = p > 1 ? p - 1 : 1;
  int64_t tot = (int64_t)q * (q + 1) / 2, acc = 0;
  for (int k = 0; k < r && k < q; k++) acc += k + 1;
  *lo = n * acc / tot;
  *hi = r < q ? n * (acc + r + 1) / tot : n;
  if (r >= q) *lo = n;
}

static void make_data(const ridge_case *rc, float *H, int32_t *y, uint8_t *fit) {
  scl_rng rng;
  scl_rng_init(&rng, 1234, SCL_STREAM_SYNTHETIC, (uint32_t)rc->m, 0);
  for (int64_t i = 0; i < rc->n * rc->m; i++) {
    double v = scl_rng_normal(&rng);
    H[i] = (float)(v > 0 ? v : 0.1 * v);
  }
  /* Labels that the features predict, with noise, so that the best lambda is not an end. */
  double *u = malloc((size_t)(rc->c * rc->m) * sizeof(double));
  for (int64_t i = 0; i < rc->c * rc->m; i++) u[i] = scl_rng_normal(&rng);
  for (int64_t i = 0; i < rc->n; i++) {
    double best = -INFINITY;
    for (int64_t k = 0; k < rc->c; k++) {
      double s = 4.0 * sqrt((double)rc->m) * scl_rng_normal(&rng);
      for (int64_t j = 0; j < rc->m; j++) s += u[k * rc->m + j] * H[i * rc->m + j];
      if (s > best) best = s, y[i] = (int32_t)k;
    }
    fit[i] = scl_rng_uniform(&rng) < 0.8;
  }
  free(u);
}

static uint64_t text_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

/* Every rank has the same message: max and min of its hash agree. */
static int same_everywhere(linalg_group *g, const char *msg) {
  int64_t v[2] = {(int64_t)(text_hash(msg) >> 1), -(int64_t)(text_hash(msg) >> 1)};
  if (linalg_group_max_i64(g, v, 2) != SCL_OK) return 0;
  return v[0] == -v[1];
}

static void check_view(linalg_stats *st, const double *Gref, int64_t m, int scalapack) {
  linalg_local_view v = linalg_stats_gram_view(st);
  if (scalapack) {
    CHECK(v.holds && v.mb == 64 && v.nprow * v.npcol == nranks, "ScaLAPACK view: holds %d mb %lld",
          v.holds, (long long)v.mb);
  } else {
    CHECK(v.holds == (me == 0) && v.nprow == 1 && v.npcol == 1, "LAPACK view holds %d", v.holds);
    CHECK(!v.holds || (v.mb == m && v.nb == m && v.locr == m && v.lld == m), "LAPACK view 1x1");
  }
  double worst = 0, scale = 0;
  for (int64_t i = 0; i < m * m; i++) scale = fmax(scale, fabs(Gref[i]));
  for (int64_t lj = 0; v.holds && lj < v.locc; lj++) {
    int64_t gj = (lj / v.nb) * v.nb * v.npcol + v.mycol * v.nb + lj % v.nb;
    for (int64_t li = 0; li < v.locr; li++) {
      int64_t gi = (li / v.mb) * v.mb * v.nprow + v.myrow * v.mb + li % v.mb;
      if (gi > gj) continue;
      worst = fmax(worst, fabs(v.data[li + lj * v.lld] - Gref[gi * m + gj]));
    }
  }
  CHECK(worst <= 1e-12 * scale, "G view: worst %.3g of %.3g", worst, scale);
}

static void check_solve(linalg_stats *st, const double *Gref, const double *Qref,
                        const ridge_case *rc, double lambda) {
  int64_t m = rc->m, c = rc->c, nout = c - 1;
  float *W = malloc((size_t)(nout * m) * sizeof(float)), *Wr = malloc((size_t)(nout * m) * 4);
  CHECK_OK(linalg_stats_solve(st, lambda, nout, W));
  CHECK_OK(linalg_ridge_solve(Gref, Qref, m, c, nout, lambda, Wr));
  double worst = 0, scale = 0, qworst = 0, qscale = 0;
  for (int64_t i = 0; i < nout * m; i++) {
    worst = fmax(worst, fabs((double)W[i] - Wr[i]));
    scale = fmax(scale, fabs((double)Wr[i]));
  }
  const double *Q = linalg_stats_q(st);
  for (int64_t i = 0; i < m * c; i++) {
    qworst = fmax(qworst, fabs(Q[i] - Qref[i]));
    qscale = fmax(qscale, fabs(Qref[i]));
  }
  CHECK(worst <= 2.4e-7 * scale, "M=%lld W: worst %.3g of %.3g", (long long)m, worst, scale);
  CHECK(qworst <= 1e-12 * qscale, "M=%lld Q: worst %.3g", (long long)m, qworst);
  if (me == 0) printf("M=%lld solve: |W - W_ref| %.3g (max|W| %.3g)\n", (long long)m, worst, scale);
  free(W);
  free(Wr);
}

static void check_search(linalg_group *g, const float *H, const int32_t *y, const uint8_t *fit,
                         int64_t lo, int64_t hi, const ridge_case *rc) {
  int64_t m = rc->m, n = rc->n, nfit = 0;
  double lambdas[5] = {1.0, 10.0, 100.0, 1000.0, 10000.0}, mse[5], mref[5];
  int best = -1, bref = -2;
  float *Hs = malloc((size_t)(n * m) * sizeof(float));
  int32_t *ys = malloc((size_t)n * sizeof(int32_t));
  for (int pass = 0; pass < 2; pass++) /* fitting rows first, as the one-rank search wants */
    for (int64_t i = 0; i < n; i++)
      if ((fit[i] != 0) == (pass == 0)) {
        memcpy(Hs + nfit * m, H + i * m, (size_t)m * sizeof(float));
        ys[nfit++] = y[i];
      }
  nfit = 0;
  for (int64_t i = 0; i < n; i++) nfit += fit[i];
  CHECK_OK(linalg_ridge_search(Hs, ys, n, m, rc->c, nfit, lambdas, 5, mref, &bref));
  CHECK_OK(linalg_group_ridge_search(g, H + lo * m, y + lo, fit + lo, hi - lo, m, rc->c, lambdas, 5,
                                     mse, &best));
  double worst = 0;
  for (int k = 0; k < 5; k++) worst = fmax(worst, fabs(mse[k] - mref[k]) / fabs(mref[k]));
  CHECK(worst <= 1e-8, "M=%lld search mse relative error %.3g", (long long)m, worst);
  CHECK(best == bref, "best %d vs %d", best, bref);
  if (me == 0)
    printf("M=%lld search: mse relative error %.3g, best %d (ref %d)\n", (long long)m, worst, best,
           bref);
  free(Hs);
  free(ys);
}

static void check_errors(linalg_group *g, linalg_stats *st, int32_t *y, int64_t lo, int64_t hi,
                         const float *H, int64_t m) {
  float *W = malloc((size_t)m * sizeof(float));
  scl_error_clear();
  scl_err e = linalg_stats_solve(st, -1e9, 1, W);
  CHECK(e == SCL_ERR_LAPACK && strstr(scl_error_message(), "not positive definite") &&
            strstr(scl_error_message(), "lambda = -1e+09"),
        "indefinite system: %s", scl_error_message());
  CHECK(same_everywhere(g, scl_error_message()), "same message everywhere: %s",
        scl_error_message());
  scl_error_clear();
  /* A bad label on the first rank only: every rank fails, none hangs. */
  int32_t saved = hi > lo ? y[lo] : 0;
  if (me == 0 && hi > lo) y[lo] = 1 << 20;
  e = linalg_stats_accumulate(st, H + lo * m, y + lo, hi - lo);
  CHECK(e == SCL_ERR_ARG, "bad label on rank 0 fails everywhere: %d %s", e, scl_error_message());
  if (hi > lo) y[lo] = saved;
  scl_error_clear();
  free(W);
}

static void run_case(const dist_comm *world, linalg_solver solver, const ridge_case *rc) {
  int64_t m = rc->m, n = rc->n, c = rc->c, lo, hi;
  float *H = malloc((size_t)(n * m) * sizeof(float));
  int32_t *y = malloc((size_t)n * sizeof(int32_t));
  uint8_t *fit = malloc((size_t)n);
  double *Gref = calloc((size_t)(m * m), sizeof(double)), *Qref = calloc((size_t)(m * c), 8);
  make_data(rc, H, y, fit);
  uneven_share(n, me, nranks, &lo, &hi);
  CHECK_OK(linalg_gram_accumulate(Gref, Qref, H, y, n, m, c));
  for (int i = 0; i < m; i++)
    for (int j = 0; j < i; j++) Gref[i * m + j] = Gref[j * m + i];
  linalg_group *g = NULL;
  linalg_stats *st = NULL;
  CHECK_OK(linalg_group_create(world, solver, 1, &g));
  if (!g) return;
  int scalapack = linalg_group_uses_scalapack(g, m);
  CHECK(scalapack == (world && solver == LINALG_SOLVER_SCALAPACK), "solver choice");
  CHECK_OK(linalg_stats_create(g, m, c, &st));
  /* Three calls of different sizes on each rank (the middle one may be empty). */
  int64_t cut1 = lo + (hi - lo) / 3, cut2 = lo + (hi - lo) / 3 + (hi - lo) / 5;
  CHECK_OK(linalg_stats_accumulate(st, H + lo * m, y + lo, cut1 - lo));
  CHECK_OK(linalg_stats_accumulate(st, H + cut1 * m, y + cut1, cut2 - cut1));
  CHECK_OK(linalg_stats_accumulate(st, H + cut2 * m, y + cut2, hi - cut2));
  check_solve(st, Gref, Qref, rc, 10.0);
  check_view(st, Gref, m, scalapack);
  check_search(g, H, y, fit, lo, hi, rc);
  check_errors(g, st, y, lo, hi, H, m);
  linalg_stats_destroy(&st);
  linalg_group_destroy(&g);
  free(H);
  free(y);
  free(fit);
  free(Gref);
  free(Qref);
}

int main(int argc, char **argv) {
  if (dist_init(&argc, &argv) != SCL_OK) return 1;
  dist_comm *world = NULL;
  CHECK_OK(dist_comm_create(MPI_COMM_WORLD, &world));
  me = dist_comm_rank(world);
  nranks = dist_comm_size(world);
  linalg_solver solver = argc > 1 && strcmp(argv[1], "scalapack") == 0 ? LINALG_SOLVER_SCALAPACK
                                                                       : LINALG_SOLVER_LAPACK;
  const ridge_case cases[] = {{150, 700, 7}, {200, 500, 5}, {1000, 2000, 10}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    run_case(world, solver, &cases[k]);
    if (nranks == 1 && k < 2) run_case(NULL, solver, &cases[k]);
  }
  int64_t f = failures;
  if (dist_allreduce_i64(world, &f, 1, DIST_MAX) != SCL_OK) f = 1;
  if (me == 0)
    printf("test_ridge_group (%s, %d ranks): %s\n", argc > 1 ? argv[1] : "lapack", nranks,
           f ? "FAILED" : "all checks passed");
  dist_comm_destroy(&world);
  if (dist_finalize() != SCL_OK) return 1;
  return f ? 1 : 0;
}
