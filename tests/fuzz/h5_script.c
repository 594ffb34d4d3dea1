/* h5_script.c: builds an HDF5 file from the text script described in h5_script.h, through the
 * project's own writer (src/io), so the file is exactly what safecl would write.
 *
 * Parsing is forgiving by design: a line that does not parse is skipped rather than failing the
 * input, because the fuzzer's mutations of a valid script should mostly still build a file that
 * differs in one value, name or type. */
#include "h5_script.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/h5.h"

typedef struct script_values {
  char *words[H5_SCRIPT_MAX_VALUES];
  int n;
} script_values;

/* Unescapes s in place (\n \t \s \\; any other escaped character stands for itself). */
static void unescape(char *s) {
  char *o = s;
  for (char *p = s; *p; p++) {
    if (*p != '\\' || !p[1]) {
      *o++ = *p;
      continue;
    }
    p++;
    *o++ = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p == 's' ? ' ' : *p;
  }
  *o = '\0';
}

/* Splits line into words in place; returns the count (at most cap). */
static int split_words(char *line, char **words, int cap) {
  int n = 0;
  for (char *p = line; *p && n < cap;) {
    while (*p == ' ') p++;
    if (!*p) break;
    words[n++] = p;
    while (*p && *p != ' ') p++;
    if (*p) *p++ = '\0';
  }
  return n;
}

static scl_err write_numbers(h5_file *f, const char *kind, const char *path, char **v, int n) {
  scl_err err = SCL_OK;
  if (!strcmp(kind, "i32")) {
    int32_t *x = calloc((size_t)n + 1, sizeof *x);
    if (!x) return SCL_ERR_NOMEM;
    for (int i = 0; i < n; i++) x[i] = (int32_t)strtol(v[i], NULL, 0);
    err = h5_write_i32_1d(f, path, x, n);
    free(x);
  } else if (!strcmp(kind, "i64")) {
    int64_t *x = calloc((size_t)n + 1, sizeof *x);
    if (!x) return SCL_ERR_NOMEM;
    for (int i = 0; i < n; i++) x[i] = strtoll(v[i], NULL, 0);
    err = h5_write_i64_1d(f, path, x, n);
    free(x);
  } else {
    double *x = calloc((size_t)n + 1, sizeof *x);
    if (!x) return SCL_ERR_NOMEM;
    for (int i = 0; i < n; i++) x[i] = strtod(v[i], NULL);
    err = h5_write_f64_1d(f, path, x, n);
    free(x);
  }
  return err;
}

static scl_err write_matrix(h5_file *f, const char *path, char **v, int n) {
  if (n < 2) return SCL_OK;
  long rows = strtol(v[0], NULL, 0), cols = strtol(v[1], NULL, 0);
  if (rows < 0 || cols < 0 || rows * cols > n - 2) return SCL_OK;
  double *x = calloc((size_t)(rows * cols) + 1, sizeof *x);
  if (!x) return SCL_ERR_NOMEM;
  for (long i = 0; i < rows * cols; i++) x[i] = strtod(v[2 + i], NULL);
  scl_err err = h5_write_f64_2d(f, path, x, rows, cols);
  free(x);
  return err;
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static scl_err write_blob(h5_file *f, const char *path, const char *hex) {
  size_t n = strlen(hex) / 2;
  uint8_t *x = malloc(n + 1);
  if (!x) return SCL_ERR_NOMEM;
  for (size_t i = 0; i < n; i++) {
    int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
    x[i] = (uint8_t)(hi < 0 || lo < 0 ? 0 : hi * 16 + lo);
  }
  scl_err err = h5_blob_create(f, path, (int64_t)n);
  if (!err && n) err = h5_blob_write(f, path, 0, x, (int64_t)n);
  free(x);
  return err;
}

static scl_err write_attr(h5_file *f, char **w, int n, char *rest) {
  if (n < 4) return SCL_OK;
  const char *obj = w[1], *key = w[2], *type = w[3];
  int exists = 1;
  if (strcmp(obj, "/")) SCL_CALL(h5_exists(f, obj, &exists));
  if (!exists) SCL_CALL(h5_group_create(f, obj));
  if (!strcmp(type, "i64") && n >= 5) return h5_attr_write_i64(f, obj, key, strtoll(w[4], NULL, 0));
  if (!strcmp(type, "f64") && n >= 5) return h5_attr_write_f64(f, obj, key, strtod(w[4], NULL));
  if (!strcmp(type, "str")) {
    unescape(rest);
    return h5_attr_write_str(f, obj, key, rest);
  }
  return SCL_OK;
}

/* One line. A failure of the writer (a name HDF5 refuses, a dataset written twice) skips the
 * line, as a malformed line is skipped. */
static void run_line(h5_file *f, char *line, script_values *v) {
  /* "attr OBJ KEY str TEXT": TEXT is the raw rest of the line, taken before splitting. */
  char *rest = NULL;
  if (!strncmp(line, "attr ", 5)) {
    char *p = line;
    for (int k = 0; k < 4 && p; k++) p = strchr(p + 1, ' ');
    rest = strdup(p ? p + 1 : "");
    if (!rest) return;
  }
  v->n = split_words(line, v->words, H5_SCRIPT_MAX_VALUES);
  char **w = v->words;
  const int n = v->n;
  scl_err err = SCL_OK;
  if (n < 2) {
    free(rest);
    return;
  }
  if (!strcmp(w[0], "group")) {
    err = h5_group_create(f, w[1]);
  } else if (!strcmp(w[0], "attr")) {
    err = write_attr(f, w, n, rest);
  } else if (!strcmp(w[0], "i32") || !strcmp(w[0], "i64") || !strcmp(w[0], "f64")) {
    err = write_numbers(f, w[0], w[1], w + 2, n - 2);
  } else if (!strcmp(w[0], "f64x2")) {
    err = write_matrix(f, w[1], w + 2, n - 2);
  } else if (!strcmp(w[0], "str")) {
    for (int i = 2; i < n; i++) unescape(w[i]);
    err = h5_write_strings(f, w[1], (const char *const *)(w + 2), n - 2);
  } else if (!strcmp(w[0], "blob") && n >= 3) {
    err = write_blob(f, w[1], w[2]);
  }
  (void)err;
  scl_error_clear();
  free(rest);
}

int h5_script_build(const char *path, const char *script, size_t size) {
  static script_values v;
  char *text = malloc(size + 1);
  if (!text) return -1;
  memcpy(text, script, size);
  text[size] = '\0';
  h5_file *f = NULL;
  scl_err err = h5_file_create_atomic(path, &f);
  /* a NUL ends the script: what follows it is not text */
  for (char *line = text; !err && line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    run_line(f, line, &v);
    line = nl ? nl + 1 : NULL;
  }
  if (!err) err = h5_file_commit(&f);
  free(text);
  scl_error_clear();
  return err ? -1 : 0;
}
