/* test_regular_files.c: files read whole from user input are regular files (docs/architecture.md
 * 7). A FIFO, a character device (/dev/zero) and a directory given where safecl reads a file must
 * each fail at once with a message naming what the file was for, its path and what it is: the
 * core helper itself, the weights hash (backbone.weights), safetensors, HDF5, config files and
 * their includes (layered and @include), sweep files, and the ledgers `safecl status` and replay
 * read (a FIFO named ledger.*.log is skipped with a warning; read directly it is refused).
 * Nothing writes to the FIFOs, so before the regular-file rule an open blocked for ever: the test
 * runs under alarm(), which ends it as a failure instead of a hang. Exits non-zero on any failure. */
#define _XOPEN_SOURCE 700 /* nftw, mkfifo */
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/scl_check.h"
#include "safecl/config.h"
#include "safecl/h5.h"
#include "safecl/ledger.h"
#include "safecl/orch.h"
#include "safecl/safetensors.h"
#include "safecl/trial.h"

static char tmpdir[256];

static const char *at(const char *rel) {
  static char path[4][1024];
  static int k;
  k = (k + 1) % 4;
  snprintf(path[k], sizeof path[k], "%s/%s", tmpdir, rel);
  return path[k];
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  CHECK(f && fputs(text, f) >= 0, "cannot write %s", path);
  if (f) fclose(f);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

/* The three kinds of non-regular file every reader meets, with the words the message uses. */
static const struct {
  const char *rel, *kind;
} kinds[] = {{"fifo", "a FIFO"}, {"/dev/zero", "a character device"}, {"dir", "a directory"}};

static const char *kind_path(int i) {
  return kinds[i].rel[0] == '/' ? kinds[i].rel : at(kinds[i].rel);
}

static void test_open_regular(void) {
  for (int i = 0; i < 3; i++) {
    int fd = -1;
    scl_err e = scl_open_regular(kind_path(i), "test.key", &fd);
    check_refused(e, kinds[i].rel, "test.key", kind_path(i), kinds[i].kind);
    CHECK(fd == -1, "%s: a descriptor is returned on failure", kinds[i].rel);
    if (fd >= 0) close(fd);
  }
  int fd = -1;
  check_refused(scl_open_regular(at("missing"), "test.key", &fd), "missing file",
                "cannot open test.key", at("missing"), "No such file");
  write_text(at("plain.txt"), "hello\n");
  CHECK_OK(scl_open_regular(at("plain.txt"), "test.key", &fd));
  if (fd >= 0) {
    char buf[8] = {0};
    CHECK(read(fd, buf, sizeof buf) == 6 && !strcmp(buf, "hello\n"), "regular file reads back");
    CHECK(!(fcntl(fd, F_GETFL) & O_NONBLOCK), "the descriptor handed out is blocking");
    close(fd);
  }
  /* A symlink to a regular file is a regular file; to a FIFO it is a FIFO. */
  CHECK(symlink("plain.txt", at("link.txt")) == 0 && symlink("fifo", at("link.fifo")) == 0,
        "symlinks");
  CHECK_OK(scl_open_regular(at("link.txt"), "test.key", &fd));
  if (fd >= 0) close(fd);
  fd = -1;
  check_refused(scl_open_regular(at("link.fifo"), "test.key", &fd), "symlink to a FIFO", "a FIFO",
                NULL, NULL);
  FILE *f = NULL;
  check_refused(scl_fopen_regular(at("fifo"), "stream", &f), "stream on a FIFO", "stream", "a FIFO",
                NULL);
  CHECK(!f, "no stream on failure");
}

/* The weights hash runs before anything else of a trial reads the weights. */
static void test_weights_and_files(void) {
  scl_hash h;
  for (int i = 0; i < 3; i++) {
    char what[64];
    snprintf(what, sizeof what, "weights hash of %s", kinds[i].rel);
    check_refused(scl_hash_file(kind_path(i), "backbone.weights", &h), what, "backbone.weights",
                  kind_path(i), kinds[i].kind);
    io_safetensors *st = NULL;
    snprintf(what, sizeof what, "safetensors %s", kinds[i].rel);
    check_refused(io_safetensors_open(kind_path(i), &st), what, "safetensors file", kind_path(i),
                  kinds[i].kind);
    CHECK(!st, "no safetensors handle on failure");
    h5_file *hf = NULL;
    snprintf(what, sizeof what, "HDF5 %s", kinds[i].rel);
    check_refused(h5_file_open_read(kind_path(i), &hf), what, "HDF5 file", kind_path(i),
                  kinds[i].kind);
    CHECK(!hf, "no HDF5 handle on failure");
  }
  write_text(at("plain.txt"), "hello\n");
  CHECK_OK(scl_hash_file(at("plain.txt"), "backbone.weights", &h));
}

static void test_configs(void) {
  run_trial_cfg cfg;
  for (int i = 0; i < 3; i++) {
    memset(&cfg, 0, sizeof cfg);
    char what[64];
    snprintf(what, sizeof what, "config file %s", kinds[i].rel);
    check_refused(cfg_load(&run_trial_schema, kind_path(i), 0, NULL, &cfg), what, "config file",
                  kind_path(i), kinds[i].kind);
    cfg_free(&run_trial_schema, &cfg);
  }
  write_text(at("layered.cfg"), "include = \"fifo\";\ntrain = { lr = 0.5; };\n");
  memset(&cfg, 0, sizeof cfg);
  check_refused(cfg_load(&run_trial_schema, at("layered.cfg"), 0, NULL, &cfg), "include = FIFO",
                "config file", at("fifo"), "a FIFO");
  cfg_free(&run_trial_schema, &cfg);
  write_text(at("textual.cfg"), "@include \"fifo\"\ntrain = { lr = 0.5; };\n");
  memset(&cfg, 0, sizeof cfg);
  check_refused(cfg_load(&run_trial_schema, at("textual.cfg"), 0, NULL, &cfg), "@include FIFO",
                "config file", at("fifo"), "a FIFO");
  cfg_free(&run_trial_schema, &cfg);
  for (int i = 0; i < 3; i++) {
    orch_sweep *s = NULL;
    char what[64];
    snprintf(what, sizeof what, "sweep file %s", kinds[i].rel);
    check_refused(orch_sweep_load(kind_path(i), 0, NULL, &s), what, "sweep file", kind_path(i),
                  kinds[i].kind);
    orch_sweep_destroy(&s);
  }
}

/* A run directory whose ledger.b.log is a FIFO: the listing keeps the real ledger only. */
static void test_ledgers(void) {
  CHECK(mkdir(at("run"), 0755) == 0, "mkdir run");
  write_text(at("run/ledger.a.log"), "");
  CHECK(mkfifo(at("run/ledger.b.log"), 0644) == 0, "mkfifo ledger");
  CHECK(mkdir(at("run/ledger.c.log"), 0755) == 0, "mkdir ledger");
  CHECK(symlink("/dev/zero", at("run/ledger.d.log")) == 0, "symlink ledger");
  char **paths = NULL;
  int n = -1;
  CHECK_OK(orch_ledger_list(at("run"), &paths, &n));
  printf("  ledger listing with a FIFO, a directory and /dev/zero beside one ledger: %d listed\n",
         n);
  CHECK(n == 1 && paths && strstr(paths[0], "ledger.a.log"),
        "only the regular ledger is listed (got %d)", n);
  orch_ledger_paths_free(paths, n > 0 ? n : 0);
  int64_t records = -1;
  CHECK_OK(orch_ledger_read_file(at("run/ledger.a.log"), NULL, NULL, &records, NULL, NULL));
  CHECK(records == 0, "empty ledger: %lld records", (long long)records);
  check_refused(orch_ledger_read_file(at("run/ledger.b.log"), NULL, NULL, &records, NULL, NULL),
                "replay of a FIFO ledger", "ledger", at("run/ledger.b.log"), "a FIFO");
  check_refused(orch_ledger_read_file(at("run/ledger.d.log"), NULL, NULL, &records, NULL, NULL),
                "replay of /dev/zero as a ledger", "ledger", "a character device", NULL);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "%s", "regular_files_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  alarm(120); /* a blocked open ends the test as a failure (SIGALRM), not a hang */
  scl_log_set_level(SCL_LOG_WARN); /* shows the skipped ledgers */
  CHECK(mkfifo(at("fifo"), 0644) == 0, "mkfifo");
  CHECK(mkdir(at("dir"), 0755) == 0, "mkdir");
  test_open_regular();
  test_weights_and_files();
  test_configs();
  test_ledgers();
  nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  printf(failures ? "%d check(s) FAILED\n" : "all regular-file checks passed\n", failures);
  return failures ? 1 : 0;
}
