/* test_h5_blob.c: the checksum of byte blobs (src/io/h5_blob.c).
 *
 * A blob of 200,001 bytes (four 64 KiB blocks and a short one) written in pieces out of order
 * commits with its checksum and locates; h5_file_verify passes. One byte of it flipped, in the
 * first block, in the short last one and in a middle one, makes h5_blob_locate and
 * h5_file_verify fail with "checksum mismatch" naming the file and the blob. A blob written
 * without a checksum (raw HDF5, as files before blob checksums) still locates. Each damaged
 * copy has its whole-file checksum record removed (io_test.h), so the blob's own check is hit. */
#include <hdf5.h>

#include "io/io_test.h"
#include "safecl/h5.h"

#define N 200001

static unsigned char bytes[N];

static void write_blob(const char *path) {
  h5_file *f = NULL;
  scl_err err = h5_file_create_atomic(path, &f);
  if (!err) err = h5_blob_create(f, "split/blob", N);
  /* pieces in reverse order, of odd sizes, so the checksum cannot rest on the order of writes */
  for (int64_t end = N; !err && end > 0; end -= 9973) {
    int64_t start = end > 9973 ? end - 9973 : 0;
    err = h5_blob_write(f, "split/blob", start, bytes + start, end - start);
  }
  if (!err) err = h5_file_commit(&f);
  h5_file_abort(&f);
  CHECK(!err, "write %s: %s", path, scl_error_message());
}

static void flip_blob(const char *path, int64_t at) {
  h5_file *f = NULL;
  int64_t off = 0, n = 0;
  scl_err err = h5_file_open_read(path, &f);
  if (!err) err = h5_blob_locate(f, "split/blob", &off, &n);
  scl_err close_err = h5_file_close(&f);
  CHECK(!err && !close_err && n == N, "locate the intact blob of %s: %s", path,
        scl_error_message());
  FILE *fp = fopen(path, "r+b");
  CHECK(fp, "open %s", path);
  if (!fp) return;
  fseek(fp, (long)(off + at), SEEK_SET);
  int c = fgetc(fp);
  fseek(fp, (long)(off + at), SEEK_SET);
  fputc(~c & 0xff, fp);
  fclose(fp);
  CHECK(strip_whole_record(path) == 0, "%s: whole-file record removed", path);
}

static void expect_damaged(const char *path, const char *label) {
  h5_file *f = NULL;
  int64_t off = 0, n = 0;
  scl_err err = h5_file_open_read(path, &f);
  CHECK(!err, "%s: open: %s", label, scl_error_message());
  if (err) return;
  const char *needles[] = {path, "split/blob", "checksum mismatch", NULL};
  expect_error(label, h5_blob_locate(f, "split/blob", &off, &n), SCL_ERR_FORMAT, needles);
  expect_error("  and h5_file_verify", h5_file_verify(f, NULL), SCL_ERR_FORMAT, needles);
  CHECK(h5_file_close(&f) == SCL_OK, "close");
}

int main(void) {
  for (int i = 0; i < N; i++) bytes[i] = (unsigned char)(i * 131 + (i >> 9));
  const char *dir = scratch_dir("h5blob_");
  char path[512];
  snprintf(path, sizeof path, "%s/pack.h5", dir);

  write_blob(path);
  h5_file *f = NULL;
  int64_t off = 0, n = 0;
  scl_err err = h5_file_open_read(path, &f);
  if (!err) err = h5_blob_locate(f, "split/blob", &off, &n);
  if (!err) err = h5_file_verify(f, NULL);
  CHECK(!err && n == N, "intact blob locates and verifies: %s", scl_error_message());
  CHECK(h5_file_close(&f) == SCL_OK, "close");
  FILE *fp = fopen(path, "rb");
  unsigned char back[N];
  CHECK(fp && fseek(fp, (long)off, SEEK_SET) == 0 && fread(back, 1, N, fp) == N &&
            !memcmp(back, bytes, N),
        "the located bytes are the ones written");
  if (fp) fclose(fp);

  const int64_t at[] = {0, 3 * 65536 + 17, N - 1};
  for (int k = 0; k < 3; k++) {
    write_blob(path);
    flip_blob(path, at[k]);
    char label[64];
    snprintf(label, sizeof label, "blob byte %lld flipped", (long long)at[k]);
    expect_damaged(path, label);
  }

  /* Written without a checksum (raw HDF5): read unverified. */
  snprintf(path, sizeof path, "%s/raw.h5", dir);
  hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t dims[1] = {N};
  hid_t space = H5Screate_simple(1, dims, NULL);
  hid_t dset = H5Dcreate2(fid, "blob", H5T_STD_U8LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(dset, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes);
  H5Dclose(dset);
  H5Sclose(space);
  H5Fclose(fid);
  err = h5_file_open_read(path, &f);
  if (!err) err = h5_blob_locate(f, "blob", &off, &n);
  CHECK(!err && n == N, "a blob without a checksum locates: %s", scl_error_message());
  CHECK(h5_file_close(&f) == SCL_OK, "close");

  scratch_remove(dir);
  if (failures) {
    printf("FAILED: %d failure(s)\n", failures);
    return 1;
  }
  printf("test_h5_blob: all checks passed\n");
  return 0;
}
