/* test_h5.c: the HDF5 wrappers (h5.h).
 *
 * 1. A features-like file (provenance, float32 matrix plain and gzip, int32/int64/float64
 *    vectors, UTF-8 strings in a group, attributes on root, group and dataset, an attribute
 *    overwritten) is created atomically: nothing at the destination before commit, the file
 *    after; read back exactly, and read by h5py (io_reference.py h5-check) when Python is there.
 * 2. Schema checks: right version accepted; newer, older and missing refused with their hints.
 * 3. Refusals, each printed: wrong shape, wrong type, missing dataset/attribute/object, writes
 *    to a read-only file, a duplicate dataset, a non-HDF5 file, a missing file (the last three
 *    are SCL_ERR_HDF5 carrying HDF5's own description).
 * 4. Atomicity: an aborted create and a child process that _exit()s before commit leave an
 *    existing destination intact and readable, and create nothing at a fresh destination. */
#include <sys/wait.h>

#include "io/io_test.h"
#include "safecl/h5.h"

#ifndef SAFECL_TEST_PYTHON
#define SAFECL_TEST_PYTHON ""
#endif

static char dir[256];

static void path_in(char *buf, size_t size, const char *name) {
  snprintf(buf, size, "%s/%s", dir, name);
}

static float feat(int64_t i) { return (float)i * 0.5f - 7.0f; }

static void write_features(h5_file *f) {
  float x[15], big[700];
  for (int i = 0; i < 15; i++) x[i] = feat(i);
  for (int i = 0; i < 700; i++) big[i] = (float)(i % 13) * 0.125f;
  const int32_t labels[5] = {0, 1, 2, 1, 0};
  const int64_t ids[3] = {(int64_t)1 << 40, -5, INT64_MAX};
  const double loss[4] = {2.5, 1.25, 0.1, -0.0};
  const char *classes[4] = {"cat", "caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac", ""};
  CHECK_OK(h5_write_provenance(f, 3));
  CHECK_OK(h5_write_f32_2d(f, "features", x, 5, 3, 0));
  CHECK_OK(h5_write_f32_2d(f, "features_gz", big, 100, 7, 4));
  CHECK_OK(h5_write_f32_2d(f, "empty", NULL, 0, 3, 0));
  CHECK_OK(h5_write_i32_1d(f, "labels", labels, 5));
  CHECK_OK(h5_write_i64_1d(f, "ids", ids, 3));
  CHECK_OK(h5_write_f64_1d(f, "curves/loss", loss, 4));
  CHECK_OK(h5_write_strings(f, "meta/classes", classes, 4));
  CHECK_OK(h5_group_create(f, "runs/0/session"));
  CHECK_OK(h5_group_create(f, "runs/0"));
  CHECK_OK(h5_attr_write_str(f, "meta", "dataset", "wrong"));
  CHECK_OK(h5_attr_write_str(f, "meta", "dataset", "synthetic"));
  CHECK_OK(h5_attr_write_str(f, NULL, "config", "model.depth = 12;\n"));
  CHECK_OK(h5_attr_write_f64(f, "features", "scale", 0.5));
  CHECK_OK(h5_attr_write_i64(f, "/features", "rows", 5));
}

static void check_provenance(h5_file *f) {
  const char *keys[7] = {"code_version",    "hdf5_version", "mpi_library_version",
                         "openblas_config", "hostname",     "created_utc",
                         "simd_isa"};
  for (int k = 0; k < 7; k++) {
    char *v = NULL;
    CHECK_OK(h5_attr_read_str(f, "/", keys[k], &v));
    CHECK(v && v[0], "provenance '%s' empty", keys[k]);
    printf("  %-20s %.70s%s\n", keys[k], v ? v : "(null)", v && strlen(v) > 70 ? "..." : "");
    if (v && k == 0) CHECK(strcmp(v, scl_version()) == 0, "code_version '%s'", v);
    if (v && k == 1) CHECK(strncmp(v, "1.", 2) == 0, "hdf5_version '%s'", v);
    if (v && k == 5) CHECK(strlen(v) == 20 && v[10] == 'T' && v[19] == 'Z', "created '%s'", v);
    if (v && k == 6) CHECK(strcmp(v, scl_simd_isa()) == 0, "simd_isa '%s'", v);
    free(v);
  }
  int64_t threads = 0, schema = 0;
  CHECK_OK(h5_attr_read_i64(f, NULL, "threads", &threads));
  CHECK_OK(h5_attr_read_i64(f, "", "schema_version", &schema));
  CHECK(threads >= 1 && schema == 3, "threads %lld schema %lld", (long long)threads,
        (long long)schema);
}

static void check_contents(h5_file *f) {
  float x[15], big[700];
  int32_t labels[5];
  int64_t ids[3];
  double loss[4], scale = 0;
  CHECK_OK(h5_read_f32_2d(f, "features", x, 5, 3));
  for (int i = 0; i < 15; i++) CHECK(x[i] == feat(i), "features[%d] = %g", i, x[i]);
  CHECK_OK(h5_read_f32_2d(f, "features_gz", big, 100, 7));
  for (int i = 0; i < 700; i++) CHECK(big[i] == (float)(i % 13) * 0.125f, "gz[%d]", i);
  CHECK_OK(h5_read_f32_2d(f, "empty", NULL, 0, 3));
  CHECK_OK(h5_read_i32_1d(f, "labels", labels, 5));
  CHECK(labels[0] == 0 && labels[2] == 2 && labels[4] == 0, "labels");
  CHECK_OK(h5_read_i64_1d(f, "ids", ids, 3));
  CHECK(ids[0] == (int64_t)1 << 40 && ids[1] == -5 && ids[2] == INT64_MAX, "ids");
  CHECK_OK(h5_read_f64_1d(f, "curves/loss", loss, 4));
  CHECK(loss[0] == 2.5 && loss[2] == 0.1, "loss");
  char **cls = NULL;
  int64_t n = 0;
  CHECK_OK(h5_read_strings(f, "meta/classes", &cls, &n));
  CHECK(n == 4 && cls && strcmp(cls[1], "caf\xc3\xa9") == 0 &&
            strcmp(cls[2], "\xe6\x97\xa5\xe6\x9c\xac") == 0 && cls[3][0] == '\0',
        "classes");
  h5_strings_free(cls, n);
  char *ds = NULL;
  CHECK_OK(h5_attr_read_str(f, "meta", "dataset", &ds));
  CHECK(ds && strcmp(ds, "synthetic") == 0, "meta@dataset '%s'", ds ? ds : "(null)");
  free(ds);
  CHECK_OK(h5_attr_read_f64(f, "features", "scale", &scale));
  CHECK(scale == 0.5, "scale");
  int ndim = 0, e1 = 0, e2 = 1, e3 = 1, a1 = 0;
  int64_t dims[H5_MAX_DIMS];
  CHECK_OK(h5_dataset_shape(f, "features_gz", &ndim, dims));
  CHECK(ndim == 2 && dims[0] == 100 && dims[1] == 7, "shape of features_gz");
  CHECK_OK(h5_exists(f, "runs/0/session", &e1));
  CHECK_OK(h5_exists(f, "nope", &e2));
  CHECK_OK(h5_exists(f, "nope/deeper", &e3));
  int e4 = 1;
  CHECK_OK(h5_exists(f, "features/below_a_dataset", &e4));
  CHECK(e4 == 0, "a path below a dataset exists");
  CHECK_OK(h5_attr_exists(f, "features", "rows", &a1));
  CHECK(e1 == 1 && e2 == 0 && e3 == 0 && a1 == 1, "exists %d %d %d %d", e1, e2, e3, a1);
}

static void check_refusals(h5_file *f, const char *path) {
  float x[20];
  int32_t i32[5];
  int64_t v;
  char *s = NULL;
  scl_error_clear();
  expect_error("read features with wrong shape", h5_read_f32_2d(f, "features", x, 5, 4),
               SCL_ERR_FORMAT, (const char *[]){path, "features", "(5, 3)", "(5, 4)", NULL});
  expect_error("read 1-D labels as a matrix", h5_read_f32_2d(f, "labels", x, 5, 1), SCL_ERR_FORMAT,
               (const char *[]){path, "labels", NULL});
  expect_error("read float64 data as int32", h5_read_i32_1d(f, "curves/loss", i32, 4),
               SCL_ERR_FORMAT, (const char *[]){path, "curves/loss", NULL});
  expect_error("read a missing dataset", h5_read_i32_1d(f, "no/such", i32, 5), SCL_ERR_FORMAT,
               (const char *[]){path, "no/such", NULL});
  char **strs = NULL;
  expect_error("read strings from a matrix", h5_read_strings(f, "features", &strs, &v),
               SCL_ERR_FORMAT, (const char *[]){path, "features", NULL});
  expect_error("read a missing attribute", h5_attr_read_i64(f, "meta", "nope", &v), SCL_ERR_FORMAT,
               (const char *[]){path, "meta", "nope", NULL});
  expect_error("read a string attribute as int", h5_attr_read_i64(f, "/", "hostname", &v),
               SCL_ERR_FORMAT, (const char *[]){path, "hostname", NULL});
  expect_error("attribute of a missing object", h5_attr_read_str(f, "ghost", "x", &s),
               SCL_ERR_FORMAT, (const char *[]){path, "ghost", NULL});
  expect_error("write into a read-only file", h5_write_i32_1d(f, "new", i32, 5), SCL_ERR_ARG,
               (const char *[]){path, "new", NULL});
}

static void test_features_file(void) {
  char path[512];
  path_in(path, sizeof path, "features.h5");
  h5_file *f = NULL;
  CHECK_OK(h5_file_create_atomic(path, &f));
  if (!f) return;
  write_features(f);
  int32_t one = 1;
  scl_error_clear();
  expect_error("create an existing dataset", h5_write_i32_1d(f, "labels", &one, 1), SCL_ERR_HDF5,
               (const char *[]){path, "labels", "H5Dcreate2", NULL});
  CHECK(!file_exists(path), "destination exists before commit");
  CHECK_OK(h5_file_commit(&f));
  CHECK(f == NULL && file_exists(path), "commit did not publish");

  CHECK_OK(h5_file_open_read(path, &f));
  if (!f) return;
  CHECK_OK(h5_check_schema(f, 3, "features"));
  printf("features file provenance:\n");
  check_provenance(f);
  check_contents(f);
  check_refusals(f, path);
  scl_error_clear();
  expect_error("schema newer than the reader", h5_check_schema(f, 2, "features"), SCL_ERR_FORMAT,
               (const char *[]){path, "newer", "upgrade", NULL});
  expect_error("schema older than the reader", h5_check_schema(f, 4, "features"), SCL_ERR_FORMAT,
               (const char *[]){path, "older", NULL});
  CHECK_OK(h5_file_close(&f));
  CHECK_OK(h5_file_close(&f)); /* NULL is fine */
  if (SAFECL_TEST_PYTHON[0]) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' '%s' h5-check '%s'", SAFECL_TEST_PYTHON, SAFECL_TEST_SCRIPT,
             path);
    fflush(stdout);
    CHECK(system(cmd) == 0, "h5py could not read the file back: %s", cmd);
  }
}

static void test_foreign_files(void) {
  char path[512];
  h5_file *f = NULL;
  path_in(path, sizeof path, "plain.h5");
  CHECK_OK(h5_file_create_atomic(path, &f));
  CHECK_OK(h5_write_i32_1d(f, "x", (const int32_t[]){1}, 1));
  CHECK_OK(h5_file_commit(&f));
  CHECK_OK(h5_file_open_read(path, &f));
  scl_error_clear();
  if (f)
    expect_error("file without schema_version", h5_check_schema(f, 1, "trial results"),
                 SCL_ERR_FORMAT, (const char *[]){path, "not a safecl file", NULL});
  CHECK_OK(h5_file_close(&f));
  path_in(path, sizeof path, "text.h5");
  CHECK(write_raw(path, "this is not HDF5\n", 17) == 0, "write");
  expect_error("open a non-HDF5 file", h5_file_open_read(path, &f), SCL_ERR_HDF5,
               (const char *[]){path, "signature", NULL});
  path_in(path, sizeof path, "absent.h5");
  expect_error("open a missing file", h5_file_open_read(path, &f), SCL_ERR_HDF5,
               (const char *[]){path, NULL});
  path_in(path, sizeof path, "no_dir/x.h5");
  expect_error("create in a missing directory", h5_file_create_atomic(path, &f), SCL_ERR_HDF5,
               (const char *[]){path, NULL});
  CHECK(f == NULL, "handle set after failure");
}

/* The destination still holds the committed features file with its schema and data. */
static void check_intact(const char *path, const char *label) {
  h5_file *f = NULL;
  CHECK_OK(h5_file_open_read(path, &f));
  float x[15];
  if (f) {
    CHECK_OK(h5_check_schema(f, 3, "features"));
    CHECK_OK(h5_read_f32_2d(f, "features", x, 5, 3));
    CHECK(x[14] == feat(14), "%s: features changed", label);
  }
  CHECK_OK(h5_file_close(&f));
  printf("%s: existing file intact\n", label);
}

static void test_atomicity(void) {
  char path[512], fresh[512];
  path_in(path, sizeof path, "features.h5");
  path_in(fresh, sizeof fresh, "fresh.h5");
  const char *targets[2] = {path, fresh};
  for (int k = 0; k < 2; k++) {
    h5_file *f = NULL;
    CHECK_OK(h5_file_create_atomic(targets[k], &f));
    CHECK_OK(h5_write_f32_2d(f, "features", (const float[]){1, 2}, 1, 2, 0));
    h5_file_abort(&f);
    CHECK(f == NULL, "abort did not clear the handle");
    h5_file_abort(&f);
  }
  h5_file *g = NULL;
  CHECK_OK(h5_file_create_atomic(fresh, &g));
  scl_error_clear();
  expect_error("close instead of commit", h5_file_close(&g), SCL_ERR_ARG,
               (const char *[]){fresh, "h5_file_commit", NULL});
  CHECK(g == NULL, "close did not clear the handle");
  check_intact(path, "aborted create");
  CHECK(!file_exists(fresh), "aborted create made '%s'", fresh);

  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    for (int k = 0; k < 2; k++) {
      h5_file *f = NULL;
      if (h5_file_create_atomic(targets[k], &f) != SCL_OK) _exit(3);
      if (h5_write_f32_2d(f, "features", (const float[]){1, 2}, 1, 2, 0) != SCL_OK) _exit(4);
    }
    _exit(0); /* killed before commit: no close, no flush */
  }
  int status = 0;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/wait");
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
  check_intact(path, "child killed before commit");
  CHECK(!file_exists(fresh), "killed child made '%s'", fresh);
}

int main(void) {
  snprintf(dir, sizeof dir, "%s", scratch_dir("h5_"));
  test_features_file();
  test_foreign_files();
  test_atomicity();
  if (failures == 0) scratch_remove(dir);
  printf("%s: %d failure(s)\n", failures ? "FAILED" : "passed", failures);
  return failures ? 1 : 0;
}
