/* h5_full_disk_writer.c: one commit of an HDF5 file on a nearly full disk, for
 * test_h5_full_disk.py, which runs it on a small tmpfs at many sizes.
 *
 *   h5_full_disk_writer DIR FILL BYTES
 *
 * Publishes DIR/out.h5 holding "v" = {1, 2, 3} (a small file, written while the disk has room),
 * fills the disk with DIR/filler of up to FILL bytes (short where the disk is full), then
 * creates DIR/out.h5 again with a float32 dataset of BYTES bytes and a string attribute and
 * commits it, with h5_file_keep_previous keeping the old copy as DIR/out.prev.h5. Prints
 * "commit ok", or "<step> failed: <message>" where step is "write" (creating the file, writing
 * the dataset: HDF5 writes a dataset larger than its 64 KiB sieve buffer at once) or "commit"
 * (the data is in HDF5's buffers and reaches the disk at the close); after a failure, checks that DIR/out.h5 still reads
 * back as the first file (what was already written is not lost) and that no temporary is left.
 * Then MPI_Finalize runs HDF5's cleanup: an HDF5 id left open by a failed close makes it crash
 * (a signal, not an exit status), which is what the driver checks. Exits 0 after a commit that
 * succeeded, 1 after a clean failure, 2 when the file left behind is wrong. */
#include <dirent.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/h5.h"

static int first_file(const char *path) {
  h5_file *f = NULL;
  const int64_t v[3] = {1, 2, 3};
  scl_err err = h5_file_create_atomic(path, &f);
  if (!err) err = h5_write_i64_1d(f, "v", v, 3);
  if (!err) err = h5_file_commit(&f);
  h5_file_abort(&f);
  if (err) fprintf(stderr, "first file: %s\n", scl_error_message());
  return err != SCL_OK;
}

/* 1 if path reads back as first_file wrote it. */
static int intact(const char *path) {
  h5_file *f = NULL;
  int64_t v[3] = {0, 0, 0};
  scl_err err = h5_file_open_read(path, &f);
  if (!err) err = h5_read_i64_1d(f, "v", v, 3);
  scl_err close_err = h5_file_close(&f);
  if (err || close_err) {
    fprintf(stderr, "reading %s back: %s\n", path, scl_error_message());
    return 0;
  }
  return v[0] == 1 && v[1] == 2 && v[2] == 3;
}

static int temporaries(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));)
    if (strstr(e->d_name, ".tmp.")) {
      fprintf(stderr, "temporary left: %s\n", e->d_name);
      n++;
    }
  if (d) closedir(d);
  return n;
}

static void fill(const char *dir, long long bytes) {
  char path[1024];
  static char block[4096];
  snprintf(path, sizeof path, "%s/filler", dir);
  FILE *fp = fopen(path, "wb");
  for (long long n = 0; fp && n < bytes; n += (long long)sizeof block)
    if (fwrite(block, 1, bytes - n < (long long)sizeof block ? (size_t)(bytes - n) : sizeof block,
               fp) == 0)
      break;
  if (fp) fclose(fp); /* a short filler is what a full disk gives */
}

static int run(const char *dir, long long filler, long long bytes) {
  char path[1024], prev[1024];
  snprintf(path, sizeof path, "%s/out.h5", dir);
  snprintf(prev, sizeof prev, "%s/out.prev.h5", dir);
  if (first_file(path)) return 2;
  fill(dir, filler);
  int64_t cols = 64, rows = bytes / (cols * 4) > 0 ? bytes / (cols * 4) : 1;
  float *x = calloc((size_t)(rows * cols), sizeof *x);
  if (!x) return 2;
  for (int64_t i = 0; i < rows * cols; i++) x[i] = (float)i;
  h5_file *f = NULL;
  scl_err err = h5_file_create_atomic(path, &f);
  if (!err) err = h5_file_keep_previous(f, prev);
  if (!err) err = h5_attr_write_str(f, NULL, "kind", "full-disk test");
  if (!err) err = h5_write_f32_2d(f, "x", x, rows, cols, 0);
  const char *step = "write";
  if (!err) {
    step = "commit";
    err = h5_file_commit(&f);
  }
  h5_file_abort(&f);
  free(x);
  if (!err) {
    printf("commit ok (%lld bytes)\n", bytes);
    return 0;
  }
  printf("%s failed: %s\n", step, scl_error_message());
  scl_error_clear();
  int ok = intact(path) && !temporaries(dir);
  printf("%s\n", ok ? "previous file intact" : "previous file LOST or temporary left");
  return ok ? 1 : 2;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rc = 2;
  if (argc == 4)
    rc = run(argv[1], atoll(argv[2]), atoll(argv[3]));
  else
    fprintf(stderr, "usage: h5_full_disk_writer DIR FILL BYTES\n");
  fflush(stdout);
  MPI_Finalize();
  return rc;
}
