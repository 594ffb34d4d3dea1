/* test_safetensors_py.c: interoperability with an independent Python/numpy implementation
 * (io_reference.py), run with the system interpreter (/usr/bin/python3, which has numpy).
 *
 * 1. Python writes F32, F16 (all 65536 bit patterns plus chosen values) and BF16 (rounded from
 *    float32 in numpy) tensors with unsorted keys and trailing metadata, and a reference file of
 *    the exact fp32 values numpy computes; every converted value must match bit for bit (NaNs:
 *    both NaN), with identical shapes, dtypes and metadata.
 * 2. safecl writes a file; Python checks its layout (space padding to 8 bytes, names sorted,
 *    contiguous offsets, F32) and every value.
 * Skipped (exit 77) when no Python interpreter was found at configure time. */
#include <math.h>

#include "io/io_test.h"
#include "safecl/safetensors.h"

#ifndef SAFECL_TEST_PYTHON
#define SAFECL_TEST_PYTHON ""
#endif

static int run_python(const char *mode, const char *arg) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "'%s' '%s' %s '%s'", SAFECL_TEST_PYTHON, SAFECL_TEST_SCRIPT, mode, arg);
  printf("$ %s\n", cmd);
  fflush(stdout);
  int rc = system(cmd);
  return rc;
}

static uint32_t bits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

static void compare_tensor(const io_safetensors *mixed, const io_safetensors *ref,
                           const io_tensor_info *t) {
  const io_tensor_info *r = io_safetensors_find(ref, t->name);
  CHECK(r != NULL, "tensor '%s' missing from the reference", t->name);
  if (!r) return;
  CHECK(t->ndim == r->ndim && t->numel == r->numel, "'%s': shape differs", t->name);
  for (int d = 0; d < t->ndim && d < r->ndim; d++)
    CHECK(t->shape[d] == r->shape[d], "'%s': shape[%d] differs", t->name, d);
  if (t->numel != r->numel) return;
  float *got = malloc((size_t)t->numel * sizeof *got);
  float *want = malloc((size_t)t->numel * sizeof *want);
  CHECK_OK(io_safetensors_read_f32(mixed, t, got, t->numel));
  CHECK_OK(io_safetensors_read_f32(ref, r, want, r->numel));
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < t->numel; i++) {
    int same = (isnan(got[i]) && isnan(want[i])) || bits_of(got[i]) == bits_of(want[i]);
    if (!same && first < 0) first = i;
    bad += !same;
  }
  CHECK(bad == 0, "'%s': %lld values differ, first at %lld: %a vs %a", t->name, (long long)bad,
        (long long)first, first >= 0 ? got[first] : 0.0f, first >= 0 ? want[first] : 0.0f);
  printf("  %-9s %-4s %7lld values: %s\n", t->name,
         t->dtype == IO_DTYPE_F32   ? "F32"
         : t->dtype == IO_DTYPE_F16 ? "F16"
                                    : "BF16",
         (long long)t->numel, bad ? "DIFFER" : "bit-identical");
  free(got);
  free(want);
}

static void test_read_python(const char *dir) {
  CHECK(run_python("st-gen", dir) == 0, "io_reference.py st-gen failed");
  char pm[512], pr[512];
  snprintf(pm, sizeof pm, "%s/py_mixed.safetensors", dir);
  snprintf(pr, sizeof pr, "%s/py_reference.safetensors", dir);
  io_safetensors *mixed = NULL, *ref = NULL;
  CHECK_OK(io_safetensors_open(pm, &mixed));
  CHECK_OK(io_safetensors_open(pr, &ref));
  if (mixed && ref) {
    CHECK(io_safetensors_count(mixed) == 4, "count %d", io_safetensors_count(mixed));
    const char *dt[4][2] = {{"bf16.w", "B"}, {"f32.w", "3"}, {"f16.all", "1"}, {"f16.vals", "1"}};
    for (int k = 0; k < 4; k++) {
      const io_tensor_info *t = io_safetensors_find(mixed, dt[k][0]);
      io_dtype want = dt[k][1][0] == 'B'   ? IO_DTYPE_BF16
                      : dt[k][1][0] == '3' ? IO_DTYPE_F32
                                           : IO_DTYPE_F16;
      CHECK(t && t->dtype == want, "'%s': missing or wrong dtype", dt[k][0]);
    }
    for (int i = 0; i < io_safetensors_count(mixed); i++)
      compare_tensor(mixed, ref, io_safetensors_at(mixed, i));
    const char *fmt = io_safetensors_metadata(mixed, "format");
    const char *src = io_safetensors_metadata(mixed, "source");
    CHECK(fmt && src && strcmp(fmt, "pt") == 0 && strcmp(src, "numpy") == 0, "metadata");
  }
  io_safetensors_close(&mixed);
  io_safetensors_close(&ref);
}

static void test_python_reads_ours(const char *dir) {
  /* Values k + i/8 - 3 for tensor k in sorted order, as io_reference.py st_pattern expects. */
  static float data[3][24];
  const char *names[3] = {"blocks.0.w", "blocks.1.w", "head"};
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < 24; i++) data[k][i] = (float)k + (float)i / 8.0f - 3.0f;
  io_st_entry e[3] = {{names[2], 1, {5}, data[2]},
                      {names[0], 2, {4, 6}, data[0]},
                      {names[1], 3, {2, 3, 1}, data[1]}};
  const char *mk[2] = {"writer", "kind"}, *mv[2] = {"safecl", "check"};
  char path[512];
  snprintf(path, sizeof path, "%s/c_written.safetensors", dir);
  CHECK_OK(io_safetensors_write(path, e, 3, mk, mv, 2));
  CHECK(run_python("st-check", path) == 0, "io_reference.py st-check refused our file");
}

int main(void) {
  if (!SAFECL_TEST_PYTHON[0]) {
    printf("no Python interpreter configured: skipped\n");
    return 77;
  }
  const char *dir = scratch_dir("safetensors_py_");
  test_read_python(dir);
  test_python_reads_ours(dir);
  if (failures == 0) scratch_remove(dir);
  printf("%s: %d failure(s)\n", failures ? "FAILED" : "passed", failures);
  return failures ? 1 : 0;
}
