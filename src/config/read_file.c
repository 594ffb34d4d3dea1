/* read_file.c: reads a libconfig file with its integers as written, never wrapped to 32 bits.
 *
 * libconfig 1.5 (Debian 12) parses an integer literal without the L suffix into an int and wraps
 * it silently: `seed = 4294969289;` reads as 1993. This reader therefore copies the file's text
 * with an L appended to every integer literal outside names, strings and comments, and has
 * libconfig parse the copy, so every integer arrives as a 64-bit value that the caller range-checks
 * against its key. Only L characters are inserted, so line numbers stay those of the file, and the
 * settings are labelled with the file's path. A literal that does not fit in 64 bits is an error
 * naming file:line. A file pulled in by libconfig's own @include is parsed by libconfig as it
 * is, so it is scanned first and an integer in it that does not fit in 32 bits without an L is
 * refused with its file:line. */
#include <errno.h>
#include <libconfig.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "safecl/config.h"

typedef struct text_buf {
  char *p;
  size_t n, cap;
} text_buf;

static scl_err put(text_buf *b, const char *s, size_t n) {
  if (!b) return SCL_OK;
  if (b->n + n + 1 > b->cap) {
    size_t cap = 2 * (b->n + n + 1);
    char *g = realloc(b->p, cap);
    SCL_CHECK(g, SCL_ERR_NOMEM, "config text of %zu bytes", cap);
    b->p = g;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
  return SCL_OK;
}

static int is_name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '*';
}
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Reads a whole file; a directory or an unreadable file is an error naming it. */
static scl_err slurp(const char *path, char **out) {
  struct stat st;
  SCL_CHECK(stat(path, &st) == 0, SCL_ERR_IO, "%s: cannot read config file: %s", path,
            strerror(errno));
  SCL_CHECK(!S_ISDIR(st.st_mode), SCL_ERR_ARG, "%s: is a directory, not a config file", path);
  FILE *f = NULL;
  SCL_CALL(scl_fopen_regular(path, "config file", &f));
  text_buf b = {0};
  char chunk[65536];
  size_t got;
  scl_err err = put(&b, "", 0);
  while (!err && (got = fread(chunk, 1, sizeof chunk, f)) > 0) err = put(&b, chunk, got);
  if (!err && ferror(f)) err = SCL_ERROR(SCL_ERR_IO, "%s: reading config file failed", path);
  fclose(f);
  if (!err && strlen(b.p) != b.n)
    err = SCL_ERROR(SCL_ERR_ARG, "%s: holds a NUL byte; a config file is text", path);
  if (err) {
    free(b.p);
    return SCL_TRACE(err);
  }
  *out = b.p;
  return SCL_OK;
}

static scl_err scan(const char *path, const char *dir, const char *text, text_buf *out, int depth);

/* `@include "name"` at p (after the @): scans the named file for 32-bit overflow. */
static scl_err scan_include(const char *path, const char *dir, const char *p, int line, int depth) {
  p += strlen("include");
  while (*p == ' ' || *p == '\t') p++;
  if (*p != '"') return SCL_OK; /* libconfig reports the malformed directive */
  const char *end = strchr(p + 1, '"');
  if (!end) return SCL_OK;
  SCL_CHECK(depth < 16, SCL_ERR_ARG, "%s:%d: @include nested more than 16 deep (a cycle?)", path,
            line);
  char *name = strndup(p + 1, (size_t)(end - p - 1));
  SCL_CHECK(name, SCL_ERR_NOMEM, "@include name");
  size_t cap = strlen(dir) + strlen(name) + 2;
  char *full = malloc(cap);
  if (!full) {
    free(name);
    return SCL_ERROR(SCL_ERR_NOMEM, "@include path");
  }
  if (name[0] == '/' || !dir[0])
    snprintf(full, cap, "%s", name);
  else
    snprintf(full, cap, "%s/%s", dir, name);
  free(name);
  char *inc = NULL;
  scl_err err = slurp(full, &inc);
  if (!err) err = scan(full, dir, inc, NULL, depth + 1);
  free(inc);
  free(full);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

/* One integer literal at *pp (sign included); copies it to out with an L, or, with out NULL
 * (an @include'd file), refuses it if it does not fit in 32 bits without one. */
static scl_err integer(const char *path, int line, const char **pp, text_buf *out) {
  const char *p = *pp, *start = p;
  int neg = 0;
  if (*p == '+' || *p == '-') neg = *p++ == '-';
  int hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
  const char *digits = p + (hex ? 2 : 0);
  p = digits;
  while (hex ? is_hex(*p) : is_digit(*p)) p++;
  const char *stop = p;
  int suffix = 0;
  while (*p == 'L' && suffix < 2) p++, suffix++;
  int len = (int)(stop - start);
  errno = 0;
  unsigned long long mag = strtoull(digits, NULL, hex ? 16 : 10);
  int fits64 = errno != ERANGE && mag <= (neg ? (unsigned long long)INT64_MAX + 1 : INT64_MAX);
  SCL_CHECK(fits64, SCL_ERR_ARG, "%s:%d: integer %.*s does not fit in 64 bits", path, line, len,
            start);
  if (!out) {
    int fits32 = suffix || mag <= (neg ? 2147483648ULL : 2147483647ULL);
    SCL_CHECK(fits32, SCL_ERR_ARG,
              "%s:%d: integer %.*s does not fit in 32 bits in an @include'd file; write %.*sL",
              path, line, len, start, len, start);
  } else {
    SCL_CALL(put(out, start, (size_t)(p - start)));
    if (!suffix) SCL_CALL(put(out, "L", 1));
  }
  *pp = p;
  return SCL_OK;
}

/* Copies text to out (when given) with integer literals widened; see the top of this file. */
static scl_err scan(const char *path, const char *dir, const char *text, text_buf *out, int depth) {
  int line = 1;
  const char *p = text;
  while (*p) {
    const char *from = p;
    if (*p == '"') { /* string with escapes */
      for (p++; *p && *p != '"'; p++) {
        if (*p == '\\' && p[1]) p++;
        if (*p == '\n') line++;
      }
      if (*p) p++;
    } else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
      while (*p && *p != '\n') p++;
    } else if (p[0] == '/' && p[1] == '*') {
      for (p += 2; *p && !(p[0] == '*' && p[1] == '/'); p++) line += *p == '\n';
      if (*p) p += 2;
    } else if (*p == '@' && !strncmp(p + 1, "include", 7)) {
      SCL_CALL(scan_include(path, dir, p + 1, line, depth));
      while (*p && *p != '\n') p++;
    } else if (is_name_char(*p) && !is_digit(*p) && *p != '-') { /* a name, true, false */
      while (is_name_char(*p)) p++;
    } else if (is_digit(*p) || ((*p == '+' || *p == '-') && is_digit(p[1]))) {
      const char *q = p + (*p == '+' || *p == '-');
      int hex = q[0] == '0' && (q[1] == 'x' || q[1] == 'X');
      if (!hex)
        while (is_digit(*q)) q++;
      if (hex || (*q != '.' && *q != 'e' && *q != 'E')) {
        SCL_CALL(integer(path, line, &p, out));
        continue;
      }
      while (is_digit(*p) || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-') p++;
    } else if (*p == '.' && is_digit(p[1])) { /* a float such as .5e3 */
      while (is_digit(*p) || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-') p++;
    } else {
      line += *p == '\n';
      p++;
    }
    SCL_CALL(put(out, from, (size_t)(p - from)));
  }
  return SCL_OK;
}

static void label(config_setting_t *s, const char *path) {
  if (!s->file) s->file = path;
  if (!config_setting_is_aggregate(s)) return;
  for (int i = 0; i < config_setting_length(s); i++)
    label(config_setting_get_elem(s, (unsigned)i), path);
}

scl_err cfg_read_libconfig(struct config_t *lc, const char *path) {
  const char *dir = config_get_include_dir(lc) ? config_get_include_dir(lc) : "";
  char *text = NULL;
  SCL_CALL(slurp(path, &text));
  text_buf wide = {0};
  scl_err err = put(&wide, "", 0);
  if (!err) err = scan(path, dir, text, &wide, 0);
  free(text);
  if (!err && !config_read_string(lc, wide.p)) {
    const char *f = config_error_file(lc);
    err = SCL_ERROR(SCL_ERR_ARG, "%s:%d: %s", f ? f : path, config_error_line(lc),
                    config_error_text(lc));
  }
  free(wide.p);
  if (err) return SCL_TRACE(err);
  label(config_root_setting(lc), path);
  return SCL_OK;
}
