/* method.c: the registry of continual-learning methods, looked up by config name, and the
 * one-process learn_comm. */
#include <string.h>

#include "safecl/method.h"

extern const learn_method_ops learn_simplecil_ops;
extern const learn_method_ops learn_ranpac_ops;
extern const learn_method_ops learn_safe_ops;
extern const learn_method_ops learn_aper_ops;

static const learn_method_ops *const registry[] = {&learn_simplecil_ops, &learn_ranpac_ops,
                                                   &learn_aper_ops, &learn_safe_ops};

const learn_method_ops *learn_method_find(const char *name) {
  for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
    if (!strcmp(registry[i]->name, name)) return registry[i];
  return NULL;
}

const char *learn_method_names(void) { return "simplecil|ranpac|aper|safe"; }

/* The group of one process: gathers copy, sums do nothing. */
static scl_err self_gather_f32(void *ctx, const float *send, const int64_t *counts, int64_t cols,
                               float *recv) {
  (void)ctx;
  if (send != recv) memmove(recv, send, (size_t)(counts[0] * cols) * sizeof(float));
  return SCL_OK;
}
static scl_err self_gather_i32(void *ctx, const int32_t *send, const int64_t *counts, int64_t cols,
                               int32_t *recv) {
  (void)ctx;
  if (send != recv) memmove(recv, send, (size_t)(counts[0] * cols) * sizeof(int32_t));
  return SCL_OK;
}
static scl_err self_sum_f32(void *ctx, float *v, int64_t n) {
  return (void)ctx, (void)v, (void)n, SCL_OK;
}
static scl_err self_sum_f64(void *ctx, double *v, int64_t n) {
  return (void)ctx, (void)v, (void)n, SCL_OK;
}
static scl_err self_sum_i64(void *ctx, int64_t *v, int64_t n) {
  return (void)ctx, (void)v, (void)n, SCL_OK;
}

const learn_comm *learn_comm_self(void) {
  static const learn_comm self = {
      0, 1, NULL, self_gather_f32, self_gather_i32, self_sum_f32, self_sum_f64, self_sum_i64};
  return &self;
}
