/* test_config.c: the table-driven config parser: defaults, files with @include, overrides,
 * unknown keys with file:line, type, bound and choice errors, the canonical dump, and a renamed
 * key's old name (accepted, with one deprecation line on stderr). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safecl/config.h"

typedef struct demo_cfg {
  int64_t batch;
  double lr;
  int flip;
  char *format;
  cfg_floats mean;
  int64_t seed;
  char *root;
} demo_cfg;

static const cfg_key demo_keys[] = {
    {"train.batch", CFG_INT, offsetof(demo_cfg, batch), 1, 4096, "48", NULL, "batch size", 0, NULL},
    {"train.lr", CFG_FLOAT, offsetof(demo_cfg, lr), 0, 10, "0.01", NULL, "learning rate", 0, NULL},
    {"data.flip", CFG_BOOL, offsetof(demo_cfg, flip), 0, 1, "true", NULL, "flip", 0, NULL},
    {"data.format", CFG_STRING, offsetof(demo_cfg, format), 0, 0, "synthetic",
     "folder|cifar100|synthetic", "reader", 0, NULL},
    {"data.mean", CFG_FLOATS, offsetof(demo_cfg, mean), -10, 10, "[]", NULL, "mean", 0, NULL},
    {"seed", CFG_INT, offsetof(demo_cfg, seed), 0, 4294967295.0, "1993", NULL, "seed", 0, NULL},
    {"data.root", CFG_STRING, offsetof(demo_cfg, root), 0, 0, "", NULL, "root", 0, NULL},
};
static const cfg_renamed demo_renamed[] = {{"data.reader", "data.format"}};
static const cfg_schema demo = {"demo", demo_keys, 7, demo_renamed, 1};

#include "../common/scl_check.h"

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
}

/* Loads and expects failure with a message containing `needle`. */
static void expect_error(const char *path, int n, char **ov, const char *needle) {
  demo_cfg c = {0};
  scl_error_clear();
  scl_err err = cfg_load(&demo, path, n, ov, &c);
  CHECK(err == SCL_ERR_ARG, "expected SCL_ERR_ARG for %s, got %d", needle, err);
  CHECK(strstr(scl_error_message(), needle) != NULL, "message '%s' lacks '%s'", scl_error_message(),
        needle);
  printf("refused as expected: %s\n", scl_error_message());
  cfg_free(&demo, &c);
  scl_error_clear();
}

/* The old name of a renamed key sets the new one, from a file and from an override, and each use
 * logs exactly one line naming both names. */
static void test_renamed(const char *dir) {
  char path[512], log[512];
  snprintf(path, sizeof path, "%s/renamed.cfg", dir);
  snprintf(log, sizeof log, "%s/stderr.txt", dir);
  write_file(path, "data = { reader = \"cifar100\"; };\n");
  fflush(stderr);
  int saved = dup(2);
  FILE *capture = freopen(log, "w", stderr);
  demo_cfg c = {0};
  char *ov[] = {"data.reader=folder"};
  scl_err err = cfg_load(&demo, path, 0, NULL, &c);
  int from_file = !err && !strcmp(c.format, "cifar100");
  if (!err) err = cfg_load(&demo, NULL, 1, ov, &c);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  clearerr(stderr);
  CHECK(capture != NULL, "stderr captured");
  CHECK(err == SCL_OK && from_file && !strcmp(c.format, "folder"), "old name sets the new key");
  cfg_free(&demo, &c);
  FILE *f = fopen(log, "r");
  char line[512];
  int lines = 0, named = 0;
  while (f && fgets(line, sizeof line, f)) {
    lines++;
    named += strstr(line, "'data.reader' is deprecated; use 'data.format'") != NULL;
  }
  if (f) fclose(f);
  CHECK(lines == 2 && named == 2, "one deprecation line per use: %d lines, %d naming both", lines,
        named);
  unlink(path);
  unlink(log);
}

/* Integers in a file are read as written, never wrapped to 32 bits (libconfig 1.5 wraps a literal
 * without an L), and range-checked with the file:line and key; names, strings, comments and
 * floats holding digits are left alone. */
static void test_big_integers(const char *dir) {
  char path[512], inc[512], where[600];
  snprintf(path, sizeof path, "%s/big.cfg", dir);
  snprintf(inc, sizeof inc, "%s/inc.cfg", dir);
  write_file(path,
             "# 99999999999999999999 in a comment\nseed = 4294967295;\n"
             "data = { root = \"/d/4294969289\"; mean = [1.5e0, -.5, 2.]; };\n"
             "/* 10000000000 */ train = { lr = 1E-3; batch = 0x10; };\n");
  demo_cfg c = {0};
  scl_error_clear();
  CHECK(cfg_load(&demo, path, 0, NULL, &c) == SCL_OK, "load: %s", scl_error_message());
  CHECK(c.seed == 4294967295LL && !strcmp(c.root, "/d/4294969289") && c.batch == 16 &&
            c.lr == 1e-3 && c.mean.n == 3 && c.mean.v[0] == 1.5 && c.mean.v[1] == -0.5,
        "values as written: seed %lld batch %lld", (long long)c.seed, (long long)c.batch);
  cfg_free(&demo, &c);
  write_file(path, "train = { batch = 8; };\nseed = 4294969289;\n");
  snprintf(where, sizeof where, "big.cfg:2: seed = 4294969289 is out of range [0, 4294967295]");
  expect_error(path, 0, NULL, where);
  write_file(path, "seed = 10000000000;\n");
  expect_error(path, 0, NULL, "big.cfg:1: seed = 10000000000 is out of range");
  write_file(path, "train = { batch = -4294967280; };\n");
  expect_error(path, 0, NULL, "big.cfg:1: train.batch = -4294967280 is out of range");
  write_file(path, "\nseed = 99999999999999999999;\n");
  expect_error(path, 0, NULL, "big.cfg:2: integer 99999999999999999999 does not fit in 64 bits");
  write_file(inc, "seed = 4294969289;\n");
  write_file(path, "@include \"inc.cfg\"\n");
  expect_error(path, 0, NULL, "inc.cfg:1: integer 4294969289 does not fit in 32 bits");
  unlink(inc);
  unlink(path);
}

/* A mistyped include and an include of a directory are refused, naming the file. */
static void test_bad_includes(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/inc_bad.cfg", dir);
  write_file(path, "train = { batch = 8; };\ninclude = 5;\n");
  expect_error(path, 0, NULL, "inc_bad.cfg:2: include must be a string or a list of strings");
  write_file(path, "include = \".\";\n");
  expect_error(path, 0, NULL, "is a directory");
  unlink(path);
}

/* A quoted override of any length is taken whole. */
static void test_long_override(void) {
  size_t n = 5000;
  char *ov = malloc(n + 16);
  CHECK(ov != NULL, "malloc");
  if (!ov) return;
  strcpy(ov, "data.root=\"");
  memset(ov + 11, 'r', n);
  strcpy(ov + 11 + n, "\"");
  demo_cfg c = {0};
  CHECK(cfg_load(&demo, NULL, 1, &ov, &c) == SCL_OK, "load: %s", scl_error_message());
  CHECK(c.root && strlen(c.root) == n && c.root[n - 1] == 'r',
        "override of %zu characters kept: %zu", n, c.root ? strlen(c.root) : 0);
  cfg_free(&demo, &c);
  free(ov);
}

int main(void) {
  char dir[] = "/tmp/safecl_cfg_XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char base[512], main_cfg[512], bad[512];
  snprintf(base, sizeof base, "%s/base.cfg", dir);
  snprintf(main_cfg, sizeof main_cfg, "%s/main.cfg", dir);
  snprintf(bad, sizeof bad, "%s/bad.cfg", dir);
  write_file(base, "train = { lr = 0.5; batch = 99; };\n");
  write_file(
      main_cfg,
      "include = \"base.cfg\";\ntrain: { batch = 16; };\ndata = { mean = [0.5, 0.25, 1.0]; };\n");

  demo_cfg c = {0};
  char *ov[] = {"data.format=folder", "data.flip=false"};
  CHECK(cfg_load(&demo, main_cfg, 2, ov, &c) == SCL_OK, "load: %s", scl_error_message());
  CHECK(c.batch == 16 && c.lr == 0.5 && c.flip == 0, "values %lld %g %d", (long long)c.batch, c.lr,
        c.flip);
  CHECK(!strcmp(c.format, "folder") && c.mean.n == 3 && c.mean.v[1] == 0.25, "string/floats");
  char *text = NULL;
  CHECK(cfg_dump(&demo, &c, &text) == SCL_OK, "dump");
  const char *want =
      "train.batch = 16;\ntrain.lr = 0.5;\ndata.flip = false;\ndata.format = \"folder\";\n"
      "data.mean = [0.5, 0.25, 1];\nseed = 1993;\ndata.root = \"\";\n";
  CHECK(text && !strcmp(text, want), "dump:\n%s", text);
  free(text);
  cfg_free(&demo, &c);

  write_file(bad, "train = {\n  batch = 8;\n  momentum = 0.9;\n};\n");
  expect_error(bad, 0, NULL, "bad.cfg:3: unknown key 'train.momentum'");
  write_file(bad, "train = { batch = 0; };\n");
  expect_error(bad, 0, NULL, "out of range");
  write_file(bad, "train = { batch = \"x\"; };\n");
  expect_error(bad, 0, NULL, "must be of type integer");
  write_file(bad, "train = { batch = 8;\n");
  expect_error(bad, 0, NULL, "bad.cfg:2:");
  char *ov_bad[] = {"data.format=jpeg"};
  expect_error(NULL, 1, ov_bad, "not one of folder|cifar100|synthetic");
  char *ov_unknown[] = {"train.epochs=3"};
  expect_error(NULL, 1, ov_unknown, "unknown key 'train.epochs'");
  char *ov_num[] = {"train.lr=fast"};
  expect_error(NULL, 1, ov_num, "is not a number");
  {
    demo_cfg d = {0};
    scl_error_clear();
    CHECK(cfg_load(&demo, "/nonexistent/x.cfg", 0, NULL, &d) == SCL_ERR_IO, "missing file");
    printf("refused as expected: %s\n", scl_error_message());
    cfg_free(&demo, &d);
  }
  test_renamed(dir);
  test_big_integers(dir);
  test_bad_includes(dir);
  test_long_override();
  unlink(base);
  unlink(main_cfg);
  unlink(bad);
  rmdir(dir);
  if (failures) {
    fprintf(stderr, "test_config: %d failure(s)\n", failures);
    return 1;
  }
  printf("test_config: all checks passed\n");
  return 0;
}
