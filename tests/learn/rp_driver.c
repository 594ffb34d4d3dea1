/* rp_driver.c: runs the random-projection ridge classifier over sessions on raw inputs written
 * by rp_ref.py, dumping what NumPy needs to recompute it independently.
 *   rp_driver DIR N D M C SESSIONS LO_EXP HI_EXP SEED
 * Inputs: DIR/x.f32 (N x D), DIR/y.i32 (N, class-incremental: session t holds the classes
 * [t C/S, (t+1) C/S)). Outputs: DIR/w_rand.f32 (D x M), DIR/order_<t>.i64, DIR/lambda.f64
 * (per session), DIR/logits_<t>.f32 (N x seen after session t, for all N rows). */
#include <stdio.h>
#include <stdlib.h>

#include "safecl/rp.h"

static int io(const char *dir, const char *name, void *buf, size_t bytes, int write) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, write ? "wb" : "rb");
  size_t k = f ? (write ? fwrite(buf, 1, bytes, f) : fread(buf, 1, bytes, f)) : 0;
  if (f) fclose(f);
  return k == bytes ? 0 : -1;
}

int main(int argc, char **argv) {
  if (argc != 10) return 2;
  const char *dir = argv[1];
  int64_t n = atoll(argv[2]), d = atoll(argv[3]), m = atoll(argv[4]), c = atoll(argv[5]);
  int S = atoi(argv[6]), lo = atoi(argv[7]), hi = atoi(argv[8]);
  uint64_t seed = strtoull(argv[9], NULL, 10);
  float *x = malloc((size_t)(n * d) * 4), *xs = malloc((size_t)(n * d) * 4);
  float *logits = malloc((size_t)(n * c) * 4);
  int32_t *y = malloc((size_t)n * 4), *ys = malloc((size_t)n * 4);
  int64_t *order = malloc((size_t)n * 8);
  uint8_t *fit = malloc((size_t)n);
  double lambdas[64];
  learn_rp *rp = NULL;
  if (!x || !xs || !logits || !y || !ys || !order || !fit) return 1;
  if (io(dir, "x.f32", x, (size_t)(n * d) * 4, 0) || io(dir, "y.i32", y, (size_t)n * 4, 0))
    return 1;
  scl_err err = learn_rp_create(NULL, d, m, c, seed, 0, &rp);
  if (!err) err = io(dir, "w_rand.f32", rp->w_rand, (size_t)(d * m) * 4, 1) ? SCL_ERR_IO : 0;
  for (int t = 0; t < S && !err; t++) {
    int64_t k = 0, lo_c = t * c / S, hi_c = (t + 1) * c / S;
    for (int64_t i = 0; i < n; i++) {
      if (y[i] < lo_c || y[i] >= hi_c) continue;
      for (int64_t j = 0; j < d; j++) xs[k * d + j] = x[i * d + j];
      ys[k++] = y[i];
    }
    err = scl_rng_permutation(seed, SCL_STREAM_SPLIT, (uint32_t)t, k, order);
    if (!err) err = learn_rp_fit_rows(seed, (uint32_t)t, k, 0.8, NULL, k, fit);
    if (!err) err = learn_rp_accumulate(rp, xs, ys, k);
    if (!err) err = learn_rp_search(rp, xs, ys, fit, k, lo, hi, &lambdas[t], NULL);
    if (!err) err = learn_rp_solve(rp, lambdas[t], hi_c);
    if (!err) err = learn_rp_logits(rp, x, n, logits);
    char name[64];
    snprintf(name, sizeof name, "order_%d.i64", t);
    if (!err && io(dir, name, order, (size_t)k * 8, 1)) err = SCL_ERR_IO;
    snprintf(name, sizeof name, "logits_%d.f32", t);
    if (!err && io(dir, name, logits, (size_t)(n * hi_c) * 4, 1)) err = SCL_ERR_IO;
  }
  if (!err && io(dir, "lambda.f64", lambdas, (size_t)S * 8, 1)) err = SCL_ERR_IO;
  if (err) {
    scl_log_error_traceback();
    return 1;
  }
  learn_rp_destroy(&rp);
  free(x);
  free(xs);
  free(logits);
  free(y);
  free(ys);
  free(order);
  free(fit);
  return 0;
}
