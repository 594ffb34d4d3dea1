/* test_h5_whole.c: the whole-file checksum in the user block of published HDF5 files
 * (src/io/h5_whole.c), checked before HDF5 parses the file.
 *
 * 1. A file written by h5_file_create_atomic carries the record ("SAFECLWF" at 0 and at 504 of
 *    its 512-byte user block) and opens; h5py reads it (user block 512 bytes, same values).
 * 2. One byte flipped after the user block (the HDF5 signature, every 97th byte, the last byte)
 *    is refused at open: SCL_ERR_FORMAT naming the file and "whole-file checksum mismatch:
 *    damaged", and no HDF5 message (H5Fopen was not reached). The signature flip would otherwise
 *    be HDF5's "file signature not found".
 * 3. Every one of the 512 bytes of the user block flipped is refused the same way (the record's
 *    own hash covers the block; either copy of the magic marks the file as one of ours).
 * 4. The file cut by one byte, or grown by one, is refused (its length is in the record).
 * 5. The same file with its user block zeroed (as a file written before the record) and a file
 *    of plain HDF5 without a user block both open as before.
 * 6. A settled file (last changed over 2 s ago), which the process remembers once it has found
 *    it intact so that it is not read whole at every open, is still refused once a byte of it is
 *    changed in place: the write gives it a new mtime and ctime. */
#include <fcntl.h>
#include <unistd.h>
#include <hdf5.h>

#include "io/io_test.h"
#include "safecl/h5.h"

#ifndef SAFECL_TEST_PYTHON
#define SAFECL_TEST_PYTHON ""
#endif

static const double vals[5] = {1.5, -2.0, 0.25, 1e300, -1e-300};

static void write_file(const char *path) {
  h5_file *f = NULL;
  CHECK_OK(h5_file_create_atomic(path, &f));
  if (!f) return;
  CHECK_OK(h5_write_f64_1d(f, "state/vec", vals, 5));
  CHECK_OK(h5_attr_write_i64(f, "/", "sessions_done", 3));
  CHECK_OK(h5_attr_write_str(f, "/", "trial_id", "whole-file test"));
  CHECK_OK(h5_file_commit(&f));
}

static unsigned char *load(const char *path, size_t *len) {
  return (unsigned char *)read_raw(path, len);
}

static void expect_refused(const char *path, const char *label) {
  h5_file *f = NULL;
  const char *needles[] = {path, "whole-file checksum mismatch: damaged", NULL};
  scl_err err = h5_file_open_read(path, &f);
  expect_error(label, err, SCL_ERR_FORMAT, needles);
  CHECK(!strstr(scl_error_message(), "H5F"), "%s: refused before HDF5 (%s)", label,
        scl_error_message());
  if (!err) CHECK_OK(h5_file_close(&f));
}

static void expect_reads(const char *path, const char *label) {
  h5_file *f = NULL;
  scl_err err = h5_file_open_read(path, &f);
  CHECK(!err, "%s: opens: %s", label, scl_error_message());
  if (err) return;
  double back[5] = {0};
  CHECK_OK(h5_read_f64_1d(f, "state/vec", back, 5));
  CHECK(!memcmp(back, vals, sizeof vals), "%s: state/vec reads back", label);
  CHECK_OK(h5_file_close(&f));
}

int main(void) {
  const char *dir = scratch_dir("h5whole_");
  char path[512], copy[600];
  snprintf(path, sizeof path, "%s/good.h5", dir);
  snprintf(copy, sizeof copy, "%s/copy.h5", dir);
  write_file(path);
  size_t len = 0;
  unsigned char *good = load(path, &len);
  CHECK(good && len > 1024, "the written file is read back raw (%zu bytes)", len);
  if (!good) return 1;
  CHECK(!memcmp(good, "SAFECLWF", 8) && !memcmp(good + 504, "SAFECLWF", 8),
        "the user block carries the record's magic at 0 and 504");
  CHECK(!memcmp(good + 512, "\x89HDF\r\n\x1a\n", 8), "HDF5's superblock starts at 512");
  expect_reads(path, "the intact file");

  if (SAFECL_TEST_PYTHON[0]) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "'%s' -c 'import sys, h5py; f = h5py.File(sys.argv[1], \"r\"); "
             "assert f.userblock_size == 512, f.userblock_size; "
             "assert list(f[\"state/vec\"][...]) == [1.5, -2.0, 0.25, 1e300, -1e-300]; "
             "assert int(f.attrs[\"sessions_done\"]) == 3' '%s'",
             SAFECL_TEST_PYTHON, path);
    CHECK(system(cmd) == 0, "h5py reads the file with its user block: %s", cmd);
  }

  /* 2. After the user block. */
  for (size_t at = 512; at < len; at = at == 512 ? 513 : at + 97) {
    good[at] ^= 0xff;
    CHECK(write_raw(copy, good, len) == 0, "write %s", copy);
    good[at] ^= 0xff;
    char label[64];
    snprintf(label, sizeof label, "byte %zu flipped", at);
    expect_refused(copy, label);
  }
  good[len - 1] ^= 0xff;
  CHECK(write_raw(copy, good, len) == 0, "write %s", copy);
  good[len - 1] ^= 0xff;
  expect_refused(copy, "the last byte flipped");

  /* 3. Inside the user block: every byte. */
  int refused = 0;
  for (size_t at = 0; at < 512; at++) {
    good[at] ^= 0xff;
    CHECK(write_raw(copy, good, len) == 0, "write %s", copy);
    good[at] ^= 0xff;
    h5_file *f = NULL;
    scl_err err = h5_file_open_read(copy, &f);
    if (err == SCL_ERR_FORMAT && strstr(scl_error_message(), "whole-file checksum mismatch"))
      refused++;
    else
      CHECK(0, "user block byte %zu flipped: not refused (%s)", at, scl_error_message());
    if (!err) CHECK_OK(h5_file_close(&f));
    scl_error_clear();
  }
  CHECK(refused == 512, "%d of the 512 user block flips refused", refused);
  printf("user block: %d of 512 single-byte flips refused\n", refused);

  /* 4. Length. */
  CHECK(write_raw(copy, good, len - 1) == 0, "write %s", copy);
  expect_refused(copy, "the file cut by one byte");
  unsigned char *longer = malloc(len + 1);
  CHECK(longer, "buffer");
  if (longer) {
    memcpy(longer, good, len);
    longer[len] = 0;
    CHECK(write_raw(copy, longer, len + 1) == 0, "write %s", copy);
    expect_refused(copy, "the file grown by one byte");
    free(longer);
  }

  /* 5. Without the record. */
  CHECK(write_raw(copy, good, len) == 0, "write %s", copy);
  CHECK(strip_whole_record(copy) == 0, "zero the user block of %s", copy);
  expect_reads(copy, "the file with its user block zeroed");
  snprintf(copy, sizeof copy, "%s/plain.h5", dir);
  hid_t fid = H5Fcreate(copy, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t dims[1] = {5};
  hid_t space = H5Screate_simple(1, dims, NULL);
  hid_t g = H5Gcreate2(fid, "state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  hid_t dset = H5Dcreate2(g, "vec", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals);
  H5Dclose(dset);
  H5Gclose(g);
  H5Sclose(space);
  H5Fclose(fid);
  expect_reads(copy, "a plain HDF5 file without a user block");

  /* 6. Remembered, then damaged in place. */
  snprintf(copy, sizeof copy, "%s/settled.h5", dir);
  write_file(copy);
  sleep(3); /* past the settling time, so that the check below is remembered */
  expect_reads(copy, "a settled file, first open");
  expect_reads(copy, "a settled file, second open (remembered)");
  int fd = open(copy, O_RDWR);
  unsigned char byte = 0;
  CHECK(fd >= 0 && pread(fd, &byte, 1, (off_t)(len / 2)) == 1, "read a byte of %s", copy);
  byte ^= 0xff;
  CHECK(fd >= 0 && pwrite(fd, &byte, 1, (off_t)(len / 2)) == 1, "flip a byte of %s in place", copy);
  if (fd >= 0) close(fd);
  expect_refused(copy, "a remembered file damaged in place");

  free(good);
  scratch_remove(dir);
  if (failures) {
    fprintf(stderr, "test_h5_whole: %d check(s) failed\n", failures);
    return 1;
  }
  printf("test_h5_whole: all checks passed\n");
  return 0;
}
