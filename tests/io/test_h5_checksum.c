/* test_h5_checksum.c: the XXH3-64 checksums of datasets and attributes (src/io/h5_checksum.c),
 * run under mpiexec at 2, 3 and 4 ranks.
 *
 * 1. Rank 0, a serial file: float32, float64, int32, int64 and string datasets and attributes
 *    read back; a float32 dataset read as float64 (converted by HDF5) still passes; one byte of
 *    each dataset's data flipped makes its read fail with "checksum mismatch" naming the file and
 *    the dataset, and h5_file_verify too; a byte of an attribute value flipped makes the open
 *    fail ("attribute checksum mismatch"); a file written with raw HDF5 (no checksums) is read.
 * 2. Every rank: a 29 x 19 block-cyclic matrix written by all ranks (grids 1x2, 1x3, 2x2 with
 *    blocks of 4 x 3) carries the same checksum as rank 0's serial copy of it, and passes
 *    h5_file_verify read by 1 rank (alone) and by all ranks; a byte of it flipped fails the
 *    verification with the same message on every rank, whatever the number of readers, and fails
 *    the whole-matrix (1x1) read.
 * Each damaged copy has its whole-file checksum record removed (io_test.h), which would refuse
 * it at open (tests/io/test_h5_whole.c), so that these checks reach the per-dataset checksums. */
#include <hdf5.h>
#include <mpi.h>

#include "io/io_test.h"
#include "safecl/dist_mpi.h"
#include "safecl/h5.h"

static int rank, size;
static dist_comm *world;
static char dir[256];

/* Flips (bitwise NOT) the byte at `offset` of dataset `name`'s contiguous storage. */
static void flip_data(const char *path, const char *name, int64_t offset) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, name, H5P_DEFAULT);
  haddr_t at = H5Dget_offset(d);
  H5Dclose(d);
  H5Fclose(f);
  CHECK(at != HADDR_UNDEF, "%s: %s has contiguous storage", path, name);
  FILE *fp = fopen(path, "r+b");
  CHECK(fp, "open %s", path);
  if (!fp || at == HADDR_UNDEF) return;
  fseek(fp, (long)at + offset, SEEK_SET);
  int c = fgetc(fp);
  fseek(fp, (long)at + offset, SEEK_SET);
  fputc(~c & 0xff, fp);
  fclose(fp);
  CHECK(strip_whole_record(path) == 0, "%s: whole-file record removed", path);
}

/* Flips the byte `skip` bytes after the first occurrence of `needle` in the file. */
static void flip_after(const char *path, const char *needle, long skip) {
  FILE *fp = fopen(path, "r+b");
  CHECK(fp, "open %s", path);
  if (!fp) return;
  static char buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf, fp), len = strlen(needle);
  long at = -1;
  for (size_t i = 0; i + len <= n && at < 0; i++)
    if (!memcmp(buf + i, needle, len)) at = (long)i;
  CHECK(at >= 0, "%s: '%s' found", path, needle);
  if (at >= 0) {
    fseek(fp, at + skip, SEEK_SET);
    fputc(~buf[at + skip] & 0xff, fp);
  }
  fclose(fp);
  CHECK(strip_whole_record(path) == 0, "%s: whole-file record removed", path);
}

static void write_serial(const char *path) {
  float f32[6] = {1, 2, 3, 4, 5, 6};
  double f64[5] = {0.5, -1, 2e300, 3, 4};
  int32_t i32[4] = {1, -2, 3, 1 << 30};
  int64_t i64[3] = {7, -8, (int64_t)1 << 60};
  const char *strs[3] = {"alpha", "", "gamma delta"};
  h5_file *f = NULL;
  CHECK_OK(h5_file_create_atomic(path, &f));
  CHECK_OK(h5_write_f32_2d(f, "a/f32", f32, 2, 3, 0));
  CHECK_OK(h5_write_f64_1d(f, "a/f64", f64, 5));
  CHECK_OK(h5_write_i32_1d(f, "i32", i32, 4));
  CHECK_OK(h5_write_i64_1d(f, "i64", i64, 3));
  CHECK_OK(h5_write_strings(f, "names", strs, 3));
  CHECK_OK(h5_attr_write_i64(f, NULL, "sessions_done", 123456789));
  CHECK_OK(h5_attr_write_str(f, "a", "note", "attribute of a group"));
  CHECK_OK(h5_file_commit(&f));
}

/* Reads dataset `name` of the file at path with the right reader; the status. */
static scl_err read_one(const char *path, const char *name) {
  h5_file *f = NULL;
  scl_err err = h5_file_open_read(path, &f);
  if (err) return err;
  float f32[6];
  double f64[5];
  int32_t i32[4];
  int64_t i64[3], n = 0;
  char **strs = NULL;
  if (!strcmp(name, "a/f32")) err = h5_read_f32_2d(f, name, f32, 2, 3);
  if (!strcmp(name, "a/f64")) err = h5_read_f64_1d(f, name, f64, 5);
  if (!strcmp(name, "i32")) err = h5_read_i32_1d(f, name, i32, 4);
  if (!strcmp(name, "i64")) err = h5_read_i64_1d(f, name, i64, 3);
  if (!strcmp(name, "names")) err = h5_read_strings(f, name, &strs, &n);
  h5_strings_free(strs, n);
  scl_err close_err = h5_file_close(&f);
  (void)close_err;
  return err;
}

static void test_serial(void) {
  char path[512], copy[512];
  snprintf(path, sizeof path, "%s/serial.h5", dir);
  write_serial(path);
  const char *names[] = {"a/f32", "a/f64", "i32", "i64", "names"};
  for (int k = 0; k < 5; k++) CHECK_OK(read_one(path, names[k]));
  h5_file *f = NULL;
  CHECK_OK(h5_file_open_read(path, &f));
  CHECK(h5_file_checksummed(f), "a committed file carries the attribute checksum");
  double conv[6];
  CHECK_OK(h5_read_f64_2d(f, "a/f32", conv, 2, 3)); /* float32 stored, converted on read */
  CHECK(conv[5] == 6.0, "converted value %g", conv[5]);
  int64_t v = 0;
  CHECK_OK(h5_attr_read_i64(f, NULL, "sessions_done", &v));
  CHECK(v == 123456789, "attribute value %lld", (long long)v);
  CHECK_OK(h5_file_verify(f, NULL));
  CHECK_OK(h5_file_close(&f));

  /* One byte of each dataset's data. Strings are variable-length: their bytes live in the global
   * heap, flipped by name. */
  for (int k = 0; k < 5; k++) {
    snprintf(copy, sizeof copy, "%s/flip%d.h5", dir, k);
    write_serial(copy);
    if (k < 4)
      flip_data(copy, names[k], 1);
    else
      flip_after(copy, "gamma delta", 2);
    const char *needles[] = {"checksum mismatch", copy, names[k], NULL};
    expect_error(names[k], read_one(copy, names[k]), SCL_ERR_FORMAT, needles);
    CHECK_OK(h5_file_open_read(copy, &f));
    const char *verify_needles[] = {"checksum mismatch", copy, NULL};
    expect_error("h5_file_verify", h5_file_verify(f, NULL), SCL_ERR_FORMAT, verify_needles);
    CHECK_OK(h5_file_close(&f));
  }
  /* An attribute's value: sessions_done's 8 bytes come after the name, its datatype and
   * dataspace; flip its lowest byte (0x15 of 123456789 = 0x075bcd15). */
  snprintf(copy, sizeof copy, "%s/attr.h5", dir);
  write_serial(copy);
  FILE *fp = fopen(copy, "r+b");
  static unsigned char buf[1 << 16];
  size_t n = fp ? fread(buf, 1, sizeof buf, fp) : 0;
  const unsigned char want[4] = {0x15, 0xcd, 0x5b, 0x07};
  long at = -1;
  for (size_t i = 0; i + 4 <= n && at < 0; i++)
    if (!memcmp(buf + i, want, 4)) at = (long)i;
  CHECK(at >= 0, "the value of sessions_done found");
  if (fp && at >= 0) {
    fseek(fp, at, SEEK_SET);
    fputc(0x16, fp);
  }
  if (fp) fclose(fp);
  CHECK(strip_whole_record(copy) == 0, "%s: whole-file record removed", copy);
  const char *needles[] = {"attribute checksum mismatch", copy, NULL};
  expect_error("attribute value", h5_file_open_read(copy, &f), SCL_ERR_FORMAT, needles);
  /* The name of the attribute checksum itself. */
  snprintf(copy, sizeof copy, "%s/attrname.h5", dir);
  write_serial(copy);
  flip_after(copy, "attrs_xxh3_64", 3);
  expect_error("attribute checksum's name", h5_file_open_read(copy, &f), SCL_ERR_FORMAT, needles);

  /* A file without checksums (raw HDF5) is read unverified. */
  snprintf(copy, sizeof copy, "%s/legacy.h5", dir);
  hid_t h = H5Fcreate(copy, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t dims[1] = {3};
  hid_t sp = H5Screate_simple(1, dims, NULL);
  hid_t d = H5Dcreate2(h, "i64", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  int64_t vals[3] = {7, -8, 9}, got[3] = {0};
  H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals);
  H5Dclose(d);
  H5Sclose(sp);
  H5Fclose(h);
  CHECK_OK(h5_file_open_read(copy, &f));
  CHECK(!h5_file_checksummed(f), "a raw HDF5 file has no attribute checksum");
  CHECK_OK(h5_read_i64_1d(f, "i64", got, 3));
  CHECK(got[2] == 9, "legacy value read");
  CHECK_OK(h5_file_verify(f, NULL));
  CHECK_OK(h5_file_close(&f));
}

static double val(int64_t i, int64_t j) { return (double)i * 1000.0 + (double)j + 0.125; }

static int64_t l2g(int64_t l, int64_t nb, int iproc, int nprocs) {
  return (l / nb * nprocs + iproc) * nb + l % nb;
}

static uint64_t stored_sum(const char *path, const char *name) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, name, H5P_DEFAULT);
  hid_t a = H5Aopen(d, "xxh3_64", H5P_DEFAULT);
  uint64_t v = 0;
  CHECK(a >= 0 && H5Aread(a, H5T_NATIVE_UINT64, &v) >= 0, "%s: %s has a checksum", path, name);
  H5Aclose(a);
  H5Dclose(d);
  H5Fclose(f);
  return v;
}

/* Every rank: the check passes or fails alike on every rank. */
static void expect_everywhere(const char *what, scl_err err, scl_err want, const char *needle) {
  int mine[2] = {err, -err}, all[2];
  MPI_Allreduce(mine, all, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  CHECK(err == want, "%s: rank %d got %s (%s)", what, rank, scl_error_name(err),
        scl_error_message());
  CHECK(all[0] == -all[1], "%s: the ranks returned different statuses", what);
  if (needle) CHECK(strstr(scl_error_message(), needle), "%s: message names '%s'", what, needle);
  if (err && rank == 0)
    printf("%-34s -> [%s] %s\n", what, scl_error_name(err), scl_error_message());
  scl_error_clear();
}

static void test_cyclic(void) {
  const int64_t m = 29, n = 19, mb = 4, nb = 3;
  int nprow = size == 4 ? 2 : 1, npcol = size == 4 ? 2 : size;
  int pr = rank / npcol, pc = rank % npcol;
  int64_t mloc = h5_cyclic_numroc(m, mb, pr, nprow), nloc = h5_cyclic_numroc(n, nb, pc, npcol);
  int64_t lld = mloc > 1 ? mloc : 1;
  double *local = calloc((size_t)(lld * (nloc ? nloc : 1)), sizeof *local);
  for (int64_t jl = 0; jl < nloc; jl++)
    for (int64_t il = 0; il < mloc; il++)
      local[il + jl * lld] = val(l2g(il, mb, pr, nprow), l2g(jl, nb, pc, npcol));
  char path[512], serial[512];
  snprintf(path, sizeof path, "%s/group.h5", dir);
  snprintf(serial, sizeof serial, "%s/group_serial.h5", dir);
  h5_file *f = NULL;
  CHECK_OK(h5_file_create_atomic_group(path, world, &f));
  CHECK_OK(h5_write_f64_cyclic(f, "G", m, n, mb, nb, nprow, npcol, pr, pc, 1, local, lld));
  double rep[3] = {1, 2, 3};
  CHECK_OK(h5_write_f64_1d(f, "replicated", rep, 3));
  CHECK_OK(h5_file_commit(&f));
  double *whole = calloc((size_t)(m * n), sizeof *whole);
  if (rank == 0) {
    for (int64_t j = 0; j < n; j++)
      for (int64_t i = 0; i < m; i++) whole[i + j * m] = val(i, j);
    CHECK_OK(h5_file_create_atomic(serial, &f));
    CHECK_OK(h5_write_f64_cyclic(f, "G", m, n, m, n, 1, 1, 0, 0, 1, whole, m));
    CHECK_OK(h5_file_commit(&f));
    uint64_t a = stored_sum(path, "G"), b = stored_sum(serial, "G");
    CHECK(a == b, "checksum of G written by %d ranks %016llx == serial %016llx", size,
          (unsigned long long)a, (unsigned long long)b);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  CHECK_OK(h5_file_open_read(path, &f));
  expect_everywhere("verify, all ranks reading", h5_file_verify(f, world), SCL_OK, NULL);
  CHECK_OK(h5_file_verify(f, NULL)); /* one reader */
  CHECK_OK(h5_read_f64_cyclic(f, "G", m, n, mb, nb, 1, 1, 0, 0, 1, whole, m));
  CHECK_OK(h5_file_close(&f));
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) flip_data(path, "G", 8 * (m * n / 2) + 5);
  MPI_Barrier(MPI_COMM_WORLD);
  CHECK_OK(h5_file_open_read(path, &f));
  expect_everywhere("verify damaged G, all ranks", h5_file_verify(f, world), SCL_ERR_FORMAT,
                    "dataset 'G': checksum mismatch");
  expect_everywhere("verify damaged G, one reader", h5_file_verify(f, NULL), SCL_ERR_FORMAT,
                    "dataset 'G': checksum mismatch");
  expect_everywhere("read damaged G whole",
                    h5_read_f64_cyclic(f, "G", m, n, mb, nb, 1, 1, 0, 0, 1, whole, m),
                    SCL_ERR_FORMAT, "checksum mismatch");
  CHECK_OK(h5_file_close(&f));
  free(local);
  free(whole);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  CHECK_OK(dist_comm_create(MPI_COMM_WORLD, &world));
  scl_log_set_rank(rank);
  if (rank == 0) snprintf(dir, sizeof dir, "%s", scratch_dir("h5sum_"));
  MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
  if (rank == 0) test_serial();
  MPI_Barrier(MPI_COMM_WORLD);
  test_cyclic();
  int all = 0;
  MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    if (all == 0) scratch_remove(dir);
    printf("test_h5_checksum (%d ranks): %s\n", size, all ? "FAILED" : "ok");
  }
  dist_comm_destroy(&world);
  MPI_Finalize();
  return all != 0;
}
