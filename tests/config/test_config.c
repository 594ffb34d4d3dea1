/* test_config.c: the table-driven config parser: defaults, files with @include, overrides,
 * unknown keys with file:line and the nearest known keys, type, bound and choice errors, files
 * and overrides in any order (left to right), the libconfig dump that reads back to the same
 * values (shortest-exact floats), the frozen identity text, and a renamed key's old name
 * (accepted with one deprecation line on stderr, or refused naming the new one). */
#include <stddef.h>
#include <stdint.h>
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
  int64_t limit;
} demo_cfg;

static const cfg_key demo_keys[] = {
    {"train.batch", CFG_INT, offsetof(demo_cfg, batch), 1, 4096, "48", NULL, "batch size", 0, NULL,
     0},
    {"train.lr", CFG_FLOAT, offsetof(demo_cfg, lr), 0, 10, "0.01", NULL, "learning rate", 0, NULL,
     0},
    {"data.flip", CFG_BOOL, offsetof(demo_cfg, flip), 0, 1, "true", NULL, "flip", 0, NULL, 0},
    {"data.format", CFG_STRING, offsetof(demo_cfg, format), 0, 0, "synthetic",
     "folder|cifar100|synthetic", "reader", 0, NULL, 0},
    {"data.mean", CFG_FLOATS, offsetof(demo_cfg, mean), -10, 10, "[]", NULL, "mean", 0, NULL, 0},
    {"seed", CFG_INT, offsetof(demo_cfg, seed), 0, 4294967295.0, "1993", NULL, "seed", 0, NULL, 0},
    {"data.root", CFG_STRING, offsetof(demo_cfg, root), 0, 0, "", NULL, "root", 0, NULL, 0},
    CFG_KEY_ADDED(demo_cfg, "data.limit", CFG_INT, limit, 0, 1e12, "0", NULL, "per class"),
};
static const cfg_renamed demo_renamed[] = {
    {"data.reader", "data.format", 0, NULL},
    {"data.count", "data.limit", 1, "it counted images, data.limit counts per class"}};
static const cfg_schema demo = {"demo", demo_keys, 8, demo_renamed, 2};

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

/* Loads `args` (files and overrides mixed) into *c, capturing stderr into *log (caller frees). */
static scl_err load_args_logged(const char *dir, int n, char **args, demo_cfg *c, char **log) {
  char path[512];
  snprintf(path, sizeof path, "%s/stderr_args.txt", dir);
  fflush(stderr);
  int saved = dup(2);
  FILE *capture = freopen(path, "w", stderr);
  scl_error_clear();
  scl_err err = cfg_load_args(&demo, n, args, c);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  clearerr(stderr);
  CHECK(capture != NULL, "stderr captured");
  *log = calloc(1, 65536);
  FILE *f = fopen(path, "r");
  if (f && *log) {
    size_t got = fread(*log, 1, 65535, f);
    (*log)[got] = '\0';
  }
  if (f) fclose(f);
  unlink(path);
  return err;
}

/* Files and overrides apply left to right whatever their order: an override before a file is
 * set again by the file (with a warning naming the key, the file and the override), one after
 * it wins; two files: the later wins. */
static void test_any_order(const char *dir) {
  char a[512], b[512];
  snprintf(a, sizeof a, "%s/a.cfg", dir);
  snprintf(b, sizeof b, "%s/b.cfg", dir);
  write_file(a, "train = { lr = 0.5; batch = 7; };\n");
  write_file(b, "train = { lr = 0.25; };\n");
  char *log = NULL;
  demo_cfg c = {0};
  char *args1[] = {"train.lr=0.125", a, "seed=5"};
  CHECK(load_args_logged(dir, 3, args1, &c, &log) == SCL_OK, "load: %s", scl_error_message());
  CHECK(c.lr == 0.5 && c.batch == 7 && c.seed == 5, "file after override sets it: lr %g", c.lr);
  CHECK(log && strstr(log, "a.cfg:1: sets train.lr again after the override train.lr=0.125"),
        "warning names file, key and override: %s", log ? log : "");
  free(log);
  cfg_free(&demo, &c);
  char *args2[] = {a, "train.lr=0.125", b, "train.batch=3"};
  CHECK(load_args_logged(dir, 4, args2, &c, &log) == SCL_OK, "load: %s", scl_error_message());
  CHECK(c.lr == 0.25 && c.batch == 3, "left to right: lr %g batch %lld", c.lr, (long long)c.batch);
  free(log);
  cfg_free(&demo, &c);
  char *args3[] = {b, a};
  CHECK(load_args_logged(dir, 2, args3, &c, &log) == SCL_OK, "load: %s", scl_error_message());
  CHECK(c.lr == 0.5 && log && !strstr(log, "again"), "later file wins, no warning: lr %g", c.lr);
  free(log);
  cfg_free(&demo, &c);
  unlink(a);
  unlink(b);
}

/* An unknown key names the nearest known keys, from a file (a misspelt section too) and from an
 * override; a section given a value says it is one; a refused old name names the new one. */
static void test_did_you_mean(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/typo.cfg", dir);
  write_file(path, "trian = {\n  lr = 0.1;\n};\n");
  expect_error(path, 0, NULL,
               "typo.cfg:2: unknown key 'trian.lr' for 'safecl demo' (did you mean "
               "'train.lr'?)");
  char *ov1[] = {"train.bacth=3"};
  expect_error(NULL, 1, ov1,
               "unknown key 'train.bacth' for 'safecl demo' (did you mean "
               "'train.batch'?)");
  char *ov2[] = {"flip=true"};
  expect_error(NULL, 1, ov2, "(did you mean 'data.flip'?)");
  char *ov3[] = {"train=3"};
  expect_error(NULL, 1, ov3, "'train' is a section");
  char *ov4[] = {"data.count=3"};
  expect_error(NULL, 1, ov4, "key 'data.count' was renamed to 'data.limit': it counted images");
  char *ov6[] = {"data.reeder=x"}; /* near the old name data.reader: the new name is offered */
  expect_error(NULL, 1, ov6, "(did you mean 'data.format'?)");
  char *ov5[] = {"zzzzzz=1"};
  expect_error(NULL, 1, ov5, "unknown key 'zzzzzz' for 'safecl demo'; see");
  unlink(path);
}

/* The dump is a libconfig file that reads back to the same values and the same text: awkward
 * floats, 64-bit integers, strings with quotes, backslashes and newlines. */
static void test_round_trip(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/dump.cfg", dir);
  demo_cfg c = {0};
  char *ov[] = {"train.lr=0.1", "seed=4294967295", "data.mean=[1e-300, -0.0, 0.30000000000000004]",
                "data.limit=1000000000000"};
  CHECK(cfg_load(&demo, NULL, 4, ov, &c) == SCL_OK, "load: %s", scl_error_message());
  free(c.root);
  c.root = strdup("a \"quoted\" \\ path\nwith a newline\tand a tab");
  c.lr = 1.0 / 3.0;
  char *text = NULL, *again = NULL;
  CHECK(cfg_dump(&demo, &c, &text) == SCL_OK, "dump");
  if (text) write_file(path, text);
  demo_cfg d = {0};
  CHECK(cfg_load(&demo, path, 0, NULL, &d) == SCL_OK, "dump reads back: %s\n%s",
        scl_error_message(), text);
  CHECK(d.lr == c.lr && d.seed == c.seed && d.limit == c.limit && d.mean.n == 3 &&
            d.mean.v[0] == 1e-300 && d.mean.v[2] == 0.30000000000000004 && d.root &&
            !strcmp(d.root, c.root),
        "values read back: lr %.17g seed %lld root '%s'", d.lr, (long long)d.seed,
        d.root ? d.root : "");
  CHECK(cfg_dump(&demo, &d, &again) == SCL_OK && text && again && !strcmp(text, again),
        "dump of the read-back config is the same text:\n%s\n---\n%s", text, again);
  CHECK(text && strstr(text, "seed = 4294967295L;") && strstr(text, "limit = 1000000000000L;"),
        "integers beyond 32 bits carry the L suffix:\n%s", text);
  free(text);
  free(again);
  cfg_free(&demo, &c);
  cfg_free(&demo, &d);
  unlink(path);
}

/* cfg_format_double: the shortest of %.15g..%.17g that parses back exactly, always a float. */
static void test_shortest_floats(void) {
  static const struct {
    double v;
    const char *want;
  } cases[] = {{0.1, "0.1"},    {0.01, "0.01"},     {5e-10, "5e-10"},
               {10, "10.0"},    {-0.0, "-0.0"},     {0.30000000000000004, "0.30000000000000004"},
               {1e22, "1e+22"}, {0.9999, "0.9999"}, {4294967295.0, "4294967295.0"}};
  char buf[64];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cfg_format_double(cases[i].v, buf, sizeof buf);
    CHECK(!strcmp(buf, cases[i].want), "%.17g printed as %s, want %s", cases[i].v, buf,
          cases[i].want);
  }
  /* every double of a sweep across magnitudes parses back to itself */
  uint64_t x = 88172645463325252ULL;
  int bad = 0;
  for (int i = 0; i < 100000; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    double v;
    uint64_t bits = x & 0x7fefffffffffffffULL; /* finite */
    memcpy(&v, &bits, sizeof v);
    cfg_format_double(v, buf, sizeof buf);
    bad += strtod(buf, NULL) != v;
  }
  CHECK(bad == 0, "%d of 100000 random doubles do not round-trip", bad);
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
      "train = {\n  batch = 16;\n  lr = 0.5;\n};\ndata = {\n  flip = false;\n"
      "  format = \"folder\";\n  mean = [0.5, 0.25, 1.0];\n  root = \"\";\n  limit = 0;\n};\n"
      "seed = 1993;\n";
  CHECK(text && !strcmp(text, want), "dump:\n%s", text);
  free(text);
  /* the identity text is the flat form of before, and an added key at its default is not in it */
  CHECK(cfg_dump_identity(&demo, &c, &text) == SCL_OK, "identity dump");
  const char *want_id =
      "train.batch = 16;\ntrain.lr = 0.5;\ndata.flip = false;\ndata.format = \"folder\";\n"
      "data.mean = [0.5, 0.25, 1];\nseed = 1993;\ndata.root = \"\";\n";
  CHECK(text && !strcmp(text, want_id), "identity dump:\n%s", text);
  free(text);
  c.limit = 5;
  CHECK(cfg_dump_identity(&demo, &c, &text) == SCL_OK, "identity dump");
  CHECK(text && strstr(text, "data.limit = 5;\n"),
        "an added key off its default is in the identity");
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
  test_any_order(dir);
  test_did_you_mean(dir);
  test_round_trip(dir);
  test_shortest_floats();
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
