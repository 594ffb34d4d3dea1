/* ridge_driver.c: runs linalg's Gram accumulation, ridge search and solve on raw little-endian
 * inputs written by ridge_ref.py, and writes raw outputs for it to compare with NumPy.
 *   ridge_driver DIR N M C N_FIT N_SESSIONS LO_EXP HI_EXP
 * DIR/H.f32 (N x M), DIR/labels.i32 (N). Writes DIR/mse.f64, DIR/best.txt, the float32 search's
 * DIR/mse32.f64 and DIR/best32.txt, DIR/G.f64 (upper
 * triangle valid), DIR/Q.f64, DIR/W.f32 (C x M, solved with the best lambda on G, Q). G and Q
 * are accumulated over N_SESSIONS equal slices, as sessions do. */
#include <stdio.h>
#include <stdlib.h>

#include "safecl/linalg.h"
#include "../common/driver_io.h"

int main(int argc, char **argv) {
  if (argc != 9) {
    fprintf(stderr, "usage: ridge_driver DIR N M C N_FIT N_SESSIONS LO_EXP HI_EXP\n");
    return 2;
  }
  const char *dir = argv[1];
  int64_t n = atoll(argv[2]), m = atoll(argv[3]), c = atoll(argv[4]), n_fit = atoll(argv[5]);
  int sessions = atoi(argv[6]);
  double lambdas[LINALG_MAX_LAMBDAS], mse[LINALG_MAX_LAMBDAS], mse32[LINALG_MAX_LAMBDAS];
  int nl = linalg_lambda_grid(atoi(argv[7]), atoi(argv[8]), lambdas), best = -1, best32 = -1;
  float *H = malloc((size_t)(n * m) * sizeof(float)), *W = malloc((size_t)(c * m) * 4);
  int32_t *y = malloc((size_t)n * sizeof(int32_t));
  double *G = calloc((size_t)(m * m), sizeof(double)), *Q = calloc((size_t)(m * c), 8);
  if (!H || !W || !y || !G || !Q) return 1;
  if (driver_read_in(dir, "H.f32", H, (size_t)(n * m) * 4) ||
      driver_read_in(dir, "labels.i32", y, n * 4)) {
    fprintf(stderr, "ridge_driver: cannot read inputs in %s\n", dir);
    return 1;
  }
  scl_err err = linalg_ridge_search(H, y, n, m, c, n_fit, lambdas, nl, mse, &best);
  if (!err) err = linalg_ridge_search_f32(H, y, n, m, c, n_fit, lambdas, nl, mse32, &best32);
  int64_t per = n / sessions;
  for (int s = 0; !err && s < sessions; s++) {
    int64_t r0 = s * per, rows = s == sessions - 1 ? n - r0 : per;
    err = linalg_gram_accumulate(G, Q, H + r0 * m, y + r0, rows, m, c);
  }
  if (!err) err = linalg_ridge_solve(G, Q, m, c, c, lambdas[best], W);
  if (err) {
    scl_log_error_traceback();
    return 1;
  }
  FILE *f;
  char path[1024];
  snprintf(path, sizeof path, "%s/best.txt", dir);
  if (!(f = fopen(path, "w"))) return 1;
  fprintf(f, "%d %.17g\n", best, lambdas[best]);
  fclose(f);
  snprintf(path, sizeof path, "%s/best32.txt", dir);
  if (!(f = fopen(path, "w"))) return 1;
  fprintf(f, "%d %.17g\n", best32, lambdas[best32]);
  fclose(f);
  if (driver_write(dir, "mse.f64", mse, (size_t)nl * 8) ||
      driver_write(dir, "mse32.f64", mse32, (size_t)nl * 8) ||
      driver_write(dir, "G.f64", G, (size_t)(m * m) * 8) ||
      driver_write(dir, "Q.f64", Q, (size_t)(m * c) * 8) ||
      driver_write(dir, "W.f32", W, (size_t)(c * m) * 4))
    return 1;
  free(H);
  free(W);
  free(y);
  free(G);
  free(Q);
  return 0;
}
