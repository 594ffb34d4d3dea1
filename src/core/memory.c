/* memory.c: aligned allocation (scl_alloc, scl_calloc, scl_free, scl_alloc_grow).
 *
 * Every block is 64-byte aligned, so SIMD loads and BLAS calls never meet a split cache line, and
 * a failure names the buffer and its size. What this deliberately is not: a pool or an arena.
 * Activations and parameters are sized once at setup, each in one block that its owner (the
 * model, the trainer) carves into tensors, so the hot path never allocates (docs/conventions.md 7).
 * */
#include "safecl/core.h"

#include <stdlib.h>
#include <string.h>

scl_err scl_alloc(size_t bytes, const char *what, void **out) {
  *out = NULL;
  size_t rounded = ((bytes ? bytes : 1) + SCL_ALIGN - 1) / SCL_ALIGN * SCL_ALIGN;
  SCL_CHECK(rounded >= bytes, SCL_ERR_NOMEM, "%s: size %zu overflows", what, bytes);
  void *p = aligned_alloc(SCL_ALIGN, rounded);
  SCL_CHECK(p, SCL_ERR_NOMEM, "cannot allocate %.1f MiB for %s", (double)bytes / 1048576.0, what);
  *out = p;
  return SCL_OK;
}

scl_err scl_calloc(size_t bytes, const char *what, void **out) {
  SCL_CALL(scl_alloc(bytes, what, out));
  memset(*out, 0, bytes);
  return SCL_OK;
}

void scl_free(void *p) { free(p); }

scl_err scl_alloc_grow(void **buf, size_t *bytes, size_t need, const char *what) {
  if (need <= *bytes) return SCL_OK;
  scl_free(*buf);
  *buf = NULL;
  *bytes = 0;
  SCL_CALL(scl_alloc(need, what, buf));
  *bytes = need;
  return SCL_OK;
}
