/* sweep_dump.c: the effective sweep as a libconfig file (RUN_DIR/sweep.cfg, docs/architecture.md
 * section 6).
 *
 * Written with absolute paths and with the command line folded in (its trial overrides join the
 * sweep-wide overrides, which they follow in the layering anyway), so that
 * `safecl sweep RUN_DIR/sweep.cfg` plans exactly the same trials from any directory. Grid values
 * are written as strings: the trial's key table parses them back to the same values. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "orch_internal.h"

typedef struct sbuf {
  char *s;
  size_t n, cap;
  int failed;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) SCL_PRINTF(2, 3);

static void put(sbuf *b, const char *fmt, ...) {
  if (b->failed) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
    va_end(ap);
    if (k < 0) {
      b->failed = 1;
      return;
    }
    if (b->s && b->n + (size_t)k < b->cap) {
      b->n += (size_t)k;
      return;
    }
    size_t cap = 2 * (b->cap + (size_t)k + 256);
    char *g = realloc(b->s, cap);
    if (!g) {
      b->failed = 1;
      return;
    }
    b->s = g;
    b->cap = cap;
  }
}

/* A libconfig string literal. */
static void put_str(sbuf *b, const char *v) {
  put(b, "\"");
  for (const char *p = v; *p; p++) put(b, *p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
  put(b, "\"");
}

static void put_settings(sbuf *b, const orch_settings *l, const orch_settings *more) {
  put(b, "[");
  for (int i = 0; i < l->n; i++) {
    put(b, i ? ", " : "");
    put_str(b, l->v[i].text);
  }
  for (int i = 0; more && i < more->n; i++) {
    put(b, i || l->n ? ", " : "");
    put_str(b, more->v[i].text);
  }
  put(b, "]");
}

static void put_scope(sbuf *b, const orch_scope *sc, const orch_settings *more, const char *ind) {
  if (sc->overrides.n || (more && more->n)) {
    put(b, "%soverrides = ", ind);
    put_settings(b, &sc->overrides, more);
    put(b, ";\n");
  }
  if (sc->n_grid) {
    put(b, "%sgrid = (", ind);
    for (int a = 0; a < sc->n_grid; a++) {
      put(b, "%s{ key = ", a ? ", " : " ");
      put_str(b, sc->grid[a].key);
      put(b, "; values = [");
      size_t klen = strlen(sc->grid[a].key) + 1;
      for (int i = 0; i < sc->grid[a].values.n; i++) {
        put(b, i ? ", " : "");
        put_str(b, sc->grid[a].values.v[i].text + klen);
      }
      put(b, "]; }");
    }
    put(b, " );\n");
  }
  if (sc->n_points) {
    put(b, "%spoints = (", ind);
    for (int q = 0; q < sc->n_points; q++) {
      put(b, q ? ", " : " ");
      put_settings(b, &sc->points[q], NULL);
    }
    put(b, " );\n");
  }
}

/* ind: the indentation of the list's name; a dataset's own methods nest one level deeper. */
static void put_entries(sbuf *b, const char *name, const orch_entry *e, int n, const char *ind) {
  if (!n) return;
  char in2[64];
  snprintf(in2, sizeof in2, "%s    ", ind);
  put(b, "%s%s = (\n", ind, name);
  for (int i = 0; i < n; i++) {
    const orch_scope *sc = &e[i].scope;
    if (!sc->overrides.n && !sc->n_grid && !sc->n_points && !e[i].n_methods && !e[i].n_base) {
      put(b, "%s  ", ind);
      put_str(b, e[i].file);
    } else {
      put(b, "%s  {\n%sfile = ", ind, in2);
      put_str(b, e[i].file);
      put(b, ";\n");
      if (e[i].n_base) {
        put(b, "%sbase = [", in2);
        for (int k = 0; k < e[i].n_base; k++) {
          put(b, k ? ", " : "");
          put_str(b, e[i].base[k]);
        }
        put(b, "];\n");
      }
      put_scope(b, sc, NULL, in2);
      put_entries(b, "methods", e[i].methods, e[i].n_methods, in2);
      put(b, "%s  }", ind);
    }
    put(b, "%s\n", i + 1 < n ? "," : "");
  }
  put(b, "%s);\n", ind);
}

scl_err orch_sweep_dump(const orch_sweep *s, char **text) {
  sbuf b = {0};
  put(&b, "# The effective sweep, written by safecl sweep from %s.\nsweep = {\n  name = ", s->path);
  put_str(&b, s->name);
  put(&b, ";\n");
  if (s->n_base) {
    put(&b, "  base = [");
    for (int i = 0; i < s->n_base; i++) {
      put(&b, i ? ", " : "");
      put_str(&b, s->base[i]);
    }
    put(&b, "];\n");
  }
  put_entries(&b, "datasets", s->datasets, s->n_datasets, "  ");
  put_entries(&b, "methods", s->methods, s->n_methods, "  ");
  if (s->n_seeds) {
    put(&b, "  seeds = [");
    for (int i = 0; i < s->n_seeds; i++) put(&b, "%s%lld", i ? ", " : "", (long long)s->seeds[i]);
    put(&b, "];\n");
  }
  put_scope(&b, &s->scope, &s->cmdline, "  ");
  put(&b,
      "  group_size = %lld;\n  max_retries = %lld;\n  max_requeues = %lld;\n"
      "  max_crashes = %lld;\n  retry_failed = %s;\n",
      (long long)s->group_size, (long long)s->max_retries, (long long)s->max_requeues,
      (long long)s->max_crashes, s->retry_failed ? "true" : "false");
  put(&b, "  max_trials = %lld;\n", (long long)s->max_trials);
  if (s->dry_run) put(&b, "  dry_run = true;\n");
  char real[PATH_MAX];
  put(&b, "};\nrun = { dir = ");
  put_str(&b, realpath(s->run_dir, real) ? real : s->run_dir);
  put(&b, "; };\n");
  if (b.failed) {
    free(b.s);
    return SCL_ERROR(SCL_ERR_NOMEM, "effective sweep text");
  }
  *text = b.s;
  return SCL_OK;
}
