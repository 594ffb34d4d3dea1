/* io_test.h: small helpers shared by the io tests: a CHECK that counts failures, a scratch
 * directory under the test's working directory, raw file writing, the removal of an HDF5 file's
 * whole-file checksum record, and an expectation that a call failed with a given code and a
 * message naming given strings (which it prints). */
#ifndef SAFECL_TESTS_IO_TEST_H
#define SAFECL_TESTS_IO_TEST_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safecl/core.h"

#include "../common/scl_check.h"

/* Checks that `err` is `code` and that the current error message contains each of the
 * NULL-terminated strings in `needles`; prints the message either way. */
static inline void expect_error(const char *label, scl_err err, scl_err code,
                                const char *const *needles) {
  const char *msg = scl_error_message();
  printf("%-34s -> [%s] %s\n", label, scl_error_name(err), msg);
  if (err != code) {
    failures++;
    fprintf(stderr, "FAIL %s: expected %s, got %s\n", label, scl_error_name(code),
            scl_error_name(err));
  }
  for (int i = 0; needles && needles[i]; i++)
    if (!strstr(msg, needles[i])) {
      failures++;
      fprintf(stderr, "FAIL %s: message does not name '%s'\n", label, needles[i]);
    }
  scl_error_clear();
}

/* Creates a fresh scratch directory ./<prefix>XXXXXX; returns its path (static storage). */
static inline const char *scratch_dir(const char *prefix) {
  static char dir[256];
  snprintf(dir, sizeof dir, "%sXXXXXX", prefix);
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    exit(1);
  }
  return dir;
}

/* Removes the files directly inside dir, then dir itself. */
static inline void scratch_remove(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char path[1024];
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

static inline int file_exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

static inline int write_raw(const char *path, const void *data, size_t len) {
  FILE *fp = fopen(path, "wb");
  if (!fp) return -1;
  size_t n = fwrite(data, 1, len, fp);
  return (fclose(fp) == 0 && n == len) ? 0 : -1;
}

/* Zeroes the 512-byte user block of an HDF5 file safecl published, which removes its whole-file
 * checksum record (src/io/h5_whole.c): the file then reads like one written before the record,
 * so that a test can damage it past that check and reach the per-dataset checksums. */
static inline int strip_whole_record(const char *path) {
  static const char zeros[512];
  FILE *fp = fopen(path, "r+b");
  if (!fp) return -1;
  size_t n = fwrite(zeros, 1, sizeof zeros, fp);
  return (fclose(fp) == 0 && n == sizeof zeros) ? 0 : -1;
}

/* Reads a whole small file into a malloc'd buffer (NUL-terminated); NULL on failure. */
static inline char *read_raw(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  fseek(fp, 0, SEEK_END);
  long size = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  char *buf = size >= 0 ? malloc((size_t)size + 1) : NULL;
  if (buf && fread(buf, 1, (size_t)size, fp) != (size_t)size) {
    free(buf);
    buf = NULL;
  }
  fclose(fp);
  if (buf) {
    buf[size] = '\0';
    if (len) *len = (size_t)size;
  }
  return buf;
}

#endif /* SAFECL_TESTS_IO_TEST_H */
