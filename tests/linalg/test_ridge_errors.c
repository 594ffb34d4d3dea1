/* test_ridge_errors.c: linalg refuses bad input with a message instead of computing garbage:
 * a label out of range, no validation rows, and a ridge system that is not positive definite. */
#include <stdio.h>
#include <string.h>

#include "safecl/linalg.h"

static int failures;

static void expect(scl_err got, scl_err want, const char *needle, const char *what) {
  int ok = got == want && strstr(scl_error_message(), needle) != NULL;
  printf("%s %s: %s\n", ok ? "ok  " : "FAIL", what, scl_error_message());
  failures += !ok;
  scl_error_clear();
}

int main(void) {
  float H[4 * 3] = {1, 0, 2, 0, 1, 1, 3, 1, 0, 1, 1, 1};
  int32_t y[4] = {0, 1, 5, 1};
  double lambdas[2] = {1.0, 10.0}, mse[2];
  int best;
  expect(linalg_ridge_search(H, y, 4, 3, 2, 3, lambdas, 2, mse, &best), SCL_ERR_ARG,
         "label 5 of row 2", "label out of range");
  y[2] = 0;
  expect(linalg_ridge_search(H, y, 4, 3, 2, 4, lambdas, 2, mse, &best), SCL_ERR_ARG,
         "validation rows", "no validation rows");
  double G[9] = {1, 2, 0, 0, 1, 0, 0, 0, 1}; /* upper triangle of an indefinite matrix */
  double Q[6] = {1, 0, 0, 1, 1, 1};
  float W[6];
  expect(linalg_ridge_solve(G, Q, 3, 2, 2, 0.0, W), SCL_ERR_LAPACK, "not positive definite",
         "indefinite ridge system");
  if (failures) return 1;
  printf("test_ridge_errors: all checks passed\n");
  return 0;
}
