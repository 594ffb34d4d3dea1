/* fuzz_common.c: the private directory, file writing and error clearing every target shares.
 *
 * The directory is made once per process under $FUZZ_TMPDIR, else /dev/shm, else $TMPDIR or
 * /tmp, and removed at exit with everything in it. A process killed by a crash leaves it
 * behind; tests/fuzz/run.sh points FUZZ_TMPDIR into the build directory so that nothing
 * accumulates elsewhere. Logging is off, so libFuzzer's own output stays readable; with
 * FUZZ_VERBOSE set, each input's error message is printed (to check what a seed reaches). */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "safecl/core.h"

static char fuzz_dir[4096];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void remove_dir(void) {
  if (fuzz_dir[0]) nftw(fuzz_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int usable(const char *dir) {
  struct stat st;
  return dir && dir[0] && stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && access(dir, W_OK) == 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (fuzz_dir[0]) return 0;
  const char *base = getenv("FUZZ_TMPDIR");
  if (!usable(base)) base = "/dev/shm";
  if (!usable(base)) base = getenv("TMPDIR");
  if (!usable(base)) base = "/tmp";
  snprintf(fuzz_dir, sizeof fuzz_dir, "%s/safecl-fuzz.XXXXXX", base);
  if (!mkdtemp(fuzz_dir)) {
    fprintf(stderr, "fuzz: cannot create a directory under %s: %s\n", base, strerror(errno));
    exit(2); /* a test driver, not the library: docs/conventions.md 1 is about code below main */
  }
  atexit(remove_dir);
  scl_log_set_level(SCL_LOG_QUIET);
  return 0;
}

const char *fuzz_path(int slot, const char *name) {
  static char paths[FUZZ_SLOTS][4096 + 256];
  if (!fuzz_dir[0]) LLVMFuzzerInitialize(NULL, NULL);
  snprintf(paths[slot], sizeof paths[slot], "%s/%s", fuzz_dir, name);
  return paths[slot];
}

int fuzz_write(const char *path, const void *data, size_t size) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return -1;
  const char *p = data;
  while (size > 0) {
    ssize_t n = write(fd, p, size);
    if (n <= 0) {
      close(fd);
      return -1;
    }
    p += n;
    size -= (size_t)n;
  }
  return close(fd);
}

int fuzz_mkdir(const char *path) { return mkdir(path, 0700) == 0 || errno == EEXIST ? 0 : -1; }

void fuzz_clear(void) {
  static int verbose = -1;
  if (verbose < 0) verbose = getenv("FUZZ_VERBOSE") != NULL;
  const char *msg = scl_error_message();
  if (verbose && msg && msg[0]) fprintf(stderr, "fuzz: input refused: %s\n", msg);
  scl_error_clear();
}
