/* sweep_file.c: sweep files (libconfig) and command-line overrides into an orch_sweep.
 *
 * The sweep's scalar settings (name, group size, retry bounds, run.dir) are one key table,
 * orch_sweep_schema, applied through the config module like any command's keys; the lists a
 * table cannot express (base files, datasets, methods, seeds, grid, points, overrides) are
 * walked here. Every trial setting met on the way ("key=value") is checked against the trial's
 * key table at once, so a misspelt key or a bad value is reported with its file:line before a
 * single trial is planned. This file reads libconfig directly because the config module
 * deliberately keeps no lists of groups (see src/config/config.c). Command-line overrides and
 * the final validation are in sweep_load.c.
 *
 * Every path a sweep file holds is relative to the sweep file's directory: the config files it
 * names, run.dir, and the values of dataset.root and backbone.weights in its settings, which are
 * made absolute here, before anything is hashed. A trial's identity holds backbone.weights as
 * text, so a project moved elsewhere gives new ids to trials whose weights the sweep names
 * relatively; dataset.root is outside the identity (the dataset's manifest hash stands for it).
 * Paths inside the config files keep `safecl train`'s meaning (relative to the current
 * directory), so one config file means the same in a sweep and alone. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orch_internal.h"
#include "safecl/trial.h"

#define K(name, type, field, lo, hi, def, help) \
  CFG_KEY(orch_sweep, name, type, field, lo, hi, def, NULL, help)
static const cfg_key sweep_keys[] = {
    K("sweep.name", CFG_STRING, name, 0, 0, "sweep", "name shown by status and reports"),
    K("sweep.group_size", CFG_INT, group_size, 1, 4096, "1",
      "ranks per worker group: each trial runs data-parallel on its group's ranks"),
    K("sweep.max_retries", CFG_INT, max_retries, 0, 1000, "2",
      "extra attempts of a trial after a transient failure (I/O, memory, MPI); also the later "
      "jobs that run a trial failed by a full disk or I/O error again"),
    K("sweep.max_requeues", CFG_INT, max_requeues, 0, 100000, "20",
      "SLURM requeues after a stop; beyond SLURM_RESTART_COUNT = this the job ends with 1"),
    K("sweep.max_crashes", CFG_INT, max_crashes, 1, 100000, "3",
      "fatal signals (SIGSEGV, SIGBUS, ...) a trial's own processes may die of before it "
      "fails; a job killed from outside is never counted"),
    K("sweep.retry_failed", CFG_BOOL, retry_failed, 0, 1, "false",
      "run trials that failed for good in an earlier job again"),
    K("sweep.dry_run", CFG_BOOL, dry_run, 0, 1, "false",
      "testing aid: groups answer every trial at once without running it (measures overheads)"),
    K("sweep.max_trials", CFG_INT, max_trials, 1, 1e12, "100000",
      "the most trials the sweep may expand to (datasets x methods x grid x points x seeds), "
      "checked before planning; raise it for a larger sweep"),
    K("run.dir", CFG_STRING, run_dir, 0, 0, "", "run directory (ledger, trials/, index.h5)"),
};
#undef K
const cfg_schema orch_sweep_schema = {"sweep", sweep_keys,
                                      (int)(sizeof sweep_keys / sizeof sweep_keys[0]), NULL, 0};

typedef struct parse_ctx {
  orch_sweep *s;
  char dir[4096];        /* the sweep file's directory */
  orch_settings scalars; /* sweep-table settings in the order met */
} parse_ctx;

static void where_of(const config_setting_t *c, const char *fallback, char *buf, size_t cap) {
  const char *file = config_setting_source_file(c);
  int line = (int)config_setting_source_line(c);
  if (line > 0)
    snprintf(buf, cap, "%s:%d", file ? file : fallback, line);
  else
    snprintf(buf, cap, "%s", fallback);
}

/* Re-raises the current error (from a key=value check) with `where` in front of it. */
scl_err orch_rewhere(scl_err err, const char *where) {
  char msg[SCL_ERROR_MESSAGE_MAX];
  scl_error_take(msg, sizeof msg);
  const char *m = strncmp(msg, "command line: ", 14) ? msg : msg + 14;
  return SCL_ERROR(err, "%s: %s", where, m);
}

static const cfg_key *trial_key(const char *name, size_t len) {
  for (int i = 0; i < run_trial_schema.n_keys; i++)
    if (strlen(run_trial_schema.keys[i].name) == len &&
        !strncmp(run_trial_schema.keys[i].name, name, len))
      return &run_trial_schema.keys[i];
  return NULL;
}

scl_err orch_check_trial_setting(const char *text, const char *where) {
  const char *eq = strchr(text, '=');
  SCL_CHECK(eq && eq != text, SCL_ERR_ARG, "%s: '%s' is not of the form key=value", where, text);
  for (const char *p = text; *p; p++)
    SCL_CHECK((unsigned char)*p >= 0x20, SCL_ERR_ARG, "%s: '%s' holds a control character", where,
              text);
  SCL_CHECK(trial_key(text, (size_t)(eq - text)), SCL_ERR_ARG,
            "%s: unknown trial key '%.*s' (see safecl train --help)", where, (int)(eq - text),
            text);
  SCL_CHECK(strncmp(text, "run.dir=", 8) != 0, SCL_ERR_ARG,
            "%s: run.dir of a trial is set by the sweep "
            "(RUN_DIR/trials/<id>); remove '%s'",
            where, text);
  run_trial_cfg scratch = {0};
  char *one = (char *)text;
  scl_err err = cfg_load_files(&run_trial_schema, NULL, 0, 1, &one, &scratch);
  cfg_free(&run_trial_schema, &scratch);
  if (err) return orch_rewhere(err, where);
  return SCL_OK;
}

scl_err orch_settings_add(orch_settings *l, const char *text, const char *where) {
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 4;
    orch_setting *v = realloc(l->v, (size_t)cap * sizeof *v);
    SCL_CHECK(v, SCL_ERR_NOMEM, "sweep settings");
    l->v = v;
    l->cap = cap;
  }
  char *t = strdup(text), *w = strdup(where);
  if (!t || !w) {
    free(t);
    free(w);
    return SCL_ERROR(SCL_ERR_NOMEM, "sweep settings");
  }
  l->v[l->n++] = (orch_setting){t, w};
  return SCL_OK;
}

void orch_settings_free(orch_settings *l) {
  for (int i = 0; i < l->n; i++) {
    free(l->v[i].text);
    free(l->v[i].where);
  }
  free(l->v);
  memset(l, 0, sizeof *l);
}

/* A scalar setting as command-line text. */
static scl_err scalar_text(const config_setting_t *c, const char *where, char *buf, size_t cap) {
  switch (config_setting_type(c)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
      snprintf(buf, cap, "%lld", (long long)config_setting_get_int64(c));
      return SCL_OK;
    case CONFIG_TYPE_FLOAT: { /* the shortest text that reads back to the same double */
      double v = config_setting_get_float(c);
      for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, cap, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) break;
      }
      return SCL_OK;
    }
    case CONFIG_TYPE_BOOL:
      snprintf(buf, cap, "%s", config_setting_get_bool(c) ? "true" : "false");
      return SCL_OK;
    case CONFIG_TYPE_STRING:
      SCL_CHECK(strlen(config_setting_get_string(c)) < cap, SCL_ERR_ARG,
                "%s: string longer than %zu characters", where, cap - 1);
      snprintf(buf, cap, "%s", config_setting_get_string(c));
      return SCL_OK;
  }
  return SCL_ERROR(SCL_ERR_ARG, "%s: expected a number, boolean or string", where);
}

/* The keys of a trial that name a file or folder: a relative value written in a sweep file is
 * relative to the sweep file's directory (on the command line, to the current directory). */
static int path_key(const char *text) {
  return !strncmp(text, "dataset.root=", 13) || !strncmp(text, "backbone.weights=", 17);
}

/* text, or for a path key with a relative value, the same setting with the value made absolute
 * against dir (the sweep file's absolute directory) into buf. The path is joined, not resolved:
 * a dataset that does not exist yet fails its own trials when planned (sweep --list). */
static const char *resolved_setting(const char *dir, const char *text, char *buf, size_t cap) {
  const char *eq = strchr(text, '=');
  if (!eq || !path_key(text) || !eq[1] || eq[1] == '/' || !dir[0]) return text;
  const char *v = eq + 1;
  while (v[0] == '.' && v[1] == '/') v += 2; /* ./x: the sweep file's x */
  int n = snprintf(buf, cap, "%.*s%s/%s", (int)(eq + 1 - text), text, dir, v);
  return n > 0 && (size_t)n < cap ? buf : text;
}

/* ["key=value", ...] into out, each checked; dir: see resolved_setting. */
static scl_err parse_settings(const config_setting_t *c, const char *what, const char *dir,
                              orch_settings *out) {
  char where[4200];
  where_of(c, "sweep", where, sizeof where);
  if (!config_setting_is_array(c) && !config_setting_is_list(c))
    return SCL_ERROR(SCL_ERR_ARG, "%s: %s must be a list of \"key=value\" strings", where, what);
  for (int i = 0; i < config_setting_length(c); i++) {
    const config_setting_t *e = config_setting_get_elem(c, (unsigned)i);
    const char *text = config_setting_get_string(e);
    SCL_CHECK(text, SCL_ERR_ARG, "%s: %s[%d] is not a \"key=value\" string", where, what, i);
    char buf[8192];
    text = resolved_setting(dir, text, buf, sizeof buf);
    SCL_CALL(orch_check_trial_setting(text, where));
    SCL_CALL(orch_settings_add(out, text, where));
  }
  return SCL_OK;
}

static scl_err parse_axis(const config_setting_t *g, const char *dir, orch_axis *axis) {
  char where[4200], buf[4096], text[8192], full[8192];
  where_of(g, "sweep", where, sizeof where);
  SCL_CHECK(config_setting_is_group(g), SCL_ERR_ARG,
            "%s: a grid axis is a group { key = \"...\"; values = [...]; }", where);
  const config_setting_t *vals = NULL;
  for (int i = 0; i < config_setting_length(g); i++) {
    const config_setting_t *c = config_setting_get_elem(g, (unsigned)i);
    const char *name = config_setting_name(c);
    if (!strcmp(name, "key") && config_setting_get_string(c)) {
      axis->key = strdup(config_setting_get_string(c));
      SCL_CHECK(axis->key, SCL_ERR_NOMEM, "grid key");
    } else if (!strcmp(name, "values") && config_setting_is_aggregate(c)) {
      vals = c;
    } else {
      where_of(c, "sweep", where, sizeof where);
      return SCL_ERROR(SCL_ERR_ARG,
                       "%s: unknown or mistyped grid key '%s' (a grid axis has a "
                       "string key and a list of values)",
                       where, name);
    }
  }
  SCL_CHECK(axis->key && vals && config_setting_length(vals) != 0, SCL_ERR_ARG,
            "%s: a grid axis needs key = \"...\" and a non-empty values", where);
  where_of(vals, "sweep", where, sizeof where);
  for (int i = 0; i < config_setting_length(vals); i++) {
    SCL_CALL(scalar_text(config_setting_get_elem(vals, (unsigned)i), where, buf, sizeof buf));
    snprintf(text, sizeof text, "%s=%s", axis->key, buf);
    const char *t = resolved_setting(dir, text, full, sizeof full);
    SCL_CALL(orch_check_trial_setting(t, where));
    SCL_CALL(orch_settings_add(&axis->values, t, where));
  }
  return SCL_OK;
}

static scl_err parse_grid(const config_setting_t *c, const char *dir, orch_scope *scope) {
  char where[4200];
  where_of(c, "sweep", where, sizeof where);
  SCL_CHECK(config_setting_is_list(c), SCL_ERR_ARG,
            "%s: grid must be a list of groups: ( { key = ...; values = "
            "[...]; }, ... )",
            where);
  int n = config_setting_length(c);
  scope->grid = calloc((size_t)(n ? n : 1), sizeof(orch_axis));
  SCL_CHECK(scope->grid, SCL_ERR_NOMEM, "grid");
  for (int i = 0; i < n; i++) {
    scope->n_grid = i + 1;
    SCL_CALL(parse_axis(config_setting_get_elem(c, (unsigned)i), dir, &scope->grid[i]));
  }
  return SCL_OK;
}

static scl_err parse_points(const config_setting_t *c, const char *dir, orch_scope *scope) {
  char where[4200];
  where_of(c, "sweep", where, sizeof where);
  SCL_CHECK(config_setting_is_list(c), SCL_ERR_ARG,
            "%s: points must be a list of lists: ( [\"k=v\", ...], ... )", where);
  int n = config_setting_length(c);
  scope->points = calloc((size_t)(n ? n : 1), sizeof(orch_settings));
  SCL_CHECK(scope->points, SCL_ERR_NOMEM, "points");
  for (int i = 0; i < n; i++) {
    scope->n_points = i + 1;
    SCL_CALL(
        parse_settings(config_setting_get_elem(c, (unsigned)i), "a point", dir, &scope->points[i]));
  }
  return SCL_OK;
}

/* overrides / grid / points of any scope; *handled = 0 for other names. */
static scl_err parse_scope_key(const config_setting_t *c, const char *dir, orch_scope *scope,
                               int *handled) {
  const char *name = config_setting_name(c);
  *handled = 1;
  if (!strcmp(name, "overrides"))
    SCL_CALL(parse_settings(c, "overrides", dir, &scope->overrides));
  else if (!strcmp(name, "grid") && !scope->grid)
    SCL_CALL(parse_grid(c, dir, scope));
  else if (!strcmp(name, "points") && !scope->points)
    SCL_CALL(parse_points(c, dir, scope));
  else
    *handled = 0;
  return SCL_OK;
}

/* A file named relative to the sweep file, which must be readable. */
static scl_err resolve_file(const parse_ctx *p, const char *rel, const char *where, char **out) {
  char path[PATH_MAX + 4096], real[PATH_MAX];
  if (rel[0] == '/' || !p->dir[0])
    snprintf(path, sizeof path, "%s", rel);
  else
    snprintf(path, sizeof path, "%s/%s", p->dir, rel);
  SCL_CHECK(access(path, R_OK) == 0 && realpath(path, real), SCL_ERR_ARG,
            "%s: cannot read '%s' (%s): %s", where, rel, path, strerror(errno));
  *out = strdup(real);
  if (!*out) return SCL_ERROR(SCL_ERR_NOMEM, "path");
  return SCL_OK;
}

static scl_err parse_entries(const parse_ctx *p, const config_setting_t *c, int nested,
                             orch_entry **out, int *n);
static scl_err parse_base(const parse_ctx *p, const config_setting_t *c, char ***out, int *n);

/* A dataset or method entry; a dataset entry (nested = 1) may carry its own methods list and
 * base files. */
static scl_err parse_entry(const parse_ctx *p, const config_setting_t *e, int nested,
                           orch_entry *out) {
  char where[4200];
  where_of(e, "sweep", where, sizeof where);
  out->where = strdup(where);
  SCL_CHECK(out->where, SCL_ERR_NOMEM, "sweep entry");
  if (config_setting_get_string(e)) {
    SCL_CALL(resolve_file(p, config_setting_get_string(e), where, &out->file));
    return SCL_OK;
  }
  SCL_CHECK(config_setting_is_group(e), SCL_ERR_ARG,
            "%s: an entry is a file name or { file = \"...\"; overrides; "
            "grid; points; }",
            where);
  for (int i = 0; i < config_setting_length(e); i++) {
    const config_setting_t *c = config_setting_get_elem(e, (unsigned)i);
    int handled = 0;
    SCL_CALL(parse_scope_key(c, p->dir, &out->scope, &handled));
    if (handled) continue;
    char w[4200];
    where_of(c, "sweep", w, sizeof w);
    if (nested && !strcmp(config_setting_name(c), "methods")) {
      SCL_CALL(parse_entries(p, c, 0, &out->methods, &out->n_methods));
      SCL_CHECK(out->n_methods > 0, SCL_ERR_ARG, "%s: a dataset's methods list is empty", w);
      continue;
    }
    if (nested && !strcmp(config_setting_name(c), "base") && !out->base) {
      SCL_CALL(parse_base(p, c, &out->base, &out->n_base));
      continue;
    }
    SCL_CHECK(!strcmp(config_setting_name(c), "file") && config_setting_get_string(c) && !out->file,
              SCL_ERR_ARG, "%s: unknown key '%s' in an entry (file, overrides, grid, points%s)", w,
              config_setting_name(c), nested ? ", base, methods" : "");
    SCL_CALL(resolve_file(p, config_setting_get_string(c), w, &out->file));
  }
  SCL_CHECK(out->file, SCL_ERR_ARG, "%s: entry without file = \"...\"", where);
  return SCL_OK;
}

static scl_err parse_entries(const parse_ctx *p, const config_setting_t *c, int nested,
                             orch_entry **out, int *n) {
  char where[4200];
  where_of(c, "sweep", where, sizeof where);
  if (!config_setting_is_array(c) && !config_setting_is_list(c))
    return SCL_ERROR(SCL_ERR_ARG, "%s: %s must be a list of files or entries", where,
                     config_setting_name(c));
  int len = config_setting_length(c);
  if (*out) return SCL_ERROR(SCL_ERR_ARG, "%s: %s given twice", where, config_setting_name(c));
  *out = calloc((size_t)(len ? len : 1), sizeof **out);
  SCL_CHECK(*out, SCL_ERR_NOMEM, "sweep entries");
  for (int i = 0; i < len; i++) {
    *n = i + 1;
    SCL_CALL(parse_entry(p, config_setting_get_elem(c, (unsigned)i), nested, &(*out)[i]));
  }
  return SCL_OK;
}

static scl_err parse_base(const parse_ctx *p, const config_setting_t *c, char ***out, int *n) {
  char where[4200];
  where_of(c, "sweep", where, sizeof where);
  int len = config_setting_get_string(c) ? 1 : config_setting_length(c);
  if (!config_setting_get_string(c) && !config_setting_is_array(c))
    return SCL_ERROR(SCL_ERR_ARG, "%s: base must be a file name or a list of file names", where);
  *out = calloc((size_t)(len ? len : 1), sizeof(char *));
  SCL_CHECK(*out, SCL_ERR_NOMEM, "base files");
  for (int i = 0; i < len; i++) {
    const config_setting_t *e =
        config_setting_get_string(c) ? c : config_setting_get_elem(c, (unsigned)i);
    SCL_CHECK(config_setting_get_string(e), SCL_ERR_ARG, "%s: base[%d] is not a file name", where,
              i);
    *n = i + 1;
    SCL_CALL(resolve_file(p, config_setting_get_string(e), where, &(*out)[i]));
  }
  return SCL_OK;
}

scl_err orch_seeds_set(orch_sweep *s, const int64_t *v, int n, const char *where) {
  free(s->seeds);
  s->seeds = NULL;
  s->n_seeds = 0;
  if (n == 0) return SCL_OK;
  s->seeds = malloc((size_t)n * sizeof *s->seeds);
  SCL_CHECK(s->seeds, SCL_ERR_NOMEM, "seeds");
  for (int i = 0; i < n; i++) {
    SCL_CHECK(v[i] >= 0 && v[i] <= 4294967295LL, SCL_ERR_ARG,
              "%s: seed %lld is outside [0, 4294967295]", where, (long long)v[i]);
    for (int j = 0; j < i; j++)
      SCL_CHECK(v[j] != v[i], SCL_ERR_ARG, "%s: seed %lld is listed twice", where, (long long)v[i]);
    s->seeds[i] = v[i];
  }
  s->n_seeds = n;
  return SCL_OK;
}

static scl_err parse_seeds(orch_sweep *s, const config_setting_t *c) {
  char where[4200];
  where_of(c, "sweep", where, sizeof where);
  int n = config_setting_length(c);
  if (!config_setting_is_array(c) && !config_setting_is_list(c))
    return SCL_ERROR(SCL_ERR_ARG, "%s: seeds must be a list of integers", where);
  int64_t *v = malloc((size_t)(n ? n : 1) * sizeof *v);
  SCL_CHECK(v, SCL_ERR_NOMEM, "seeds");
  scl_err err = SCL_OK;
  for (int i = 0; i < n && !err; i++) {
    const config_setting_t *e = config_setting_get_elem(c, (unsigned)i);
    int t = config_setting_type(e);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
      err = SCL_ERROR(SCL_ERR_ARG, "%s: seeds[%d] is not an integer", where, i);
    else
      v[i] = config_setting_get_int64(e);
  }
  if (!err) err = orch_seeds_set(s, v, n, where);
  free(v);
  return err;
}

static scl_err parse_sweep_group(parse_ctx *p, const config_setting_t *g) {
  char where[4200], buf[4096], text[4400];
  for (int i = 0; i < config_setting_length(g); i++) {
    const config_setting_t *c = config_setting_get_elem(g, (unsigned)i);
    const char *name = config_setting_name(c);
    int handled = 0;
    where_of(c, "sweep", where, sizeof where);
    SCL_CALL(parse_scope_key(c, p->dir, &p->s->scope, &handled));
    if (handled) continue;
    if (!strcmp(name, "base")) {
      SCL_CALL(parse_base(p, c, &p->s->base, &p->s->n_base));
    } else if (!strcmp(name, "datasets")) {
      SCL_CALL(parse_entries(p, c, 1, &p->s->datasets, &p->s->n_datasets));
    } else if (!strcmp(name, "methods")) {
      SCL_CALL(parse_entries(p, c, 0, &p->s->methods, &p->s->n_methods));
    } else if (!strcmp(name, "seeds")) {
      SCL_CALL(parse_seeds(p->s, c));
    } else {
      snprintf(text, sizeof text, "sweep.%s", name);
      int known = 0;
      for (int k = 0; k < orch_sweep_schema.n_keys; k++)
        known |= !strcmp(orch_sweep_schema.keys[k].name, text);
      SCL_CHECK(known, SCL_ERR_ARG, "%s: unknown key 'sweep.%s' (see safecl sweep --help)", where,
                name);
      SCL_CALL(scalar_text(c, where, buf, sizeof buf));
      snprintf(text, sizeof text, "sweep.%s=%s", name, buf);
      SCL_CALL(orch_settings_add(&p->scalars, text, where));
    }
  }
  return SCL_OK;
}

static scl_err parse_root(parse_ctx *p, const config_setting_t *root) {
  char where[4200], buf[4096], text[8300];
  for (int i = 0; i < config_setting_length(root); i++) {
    const config_setting_t *c = config_setting_get_elem(root, (unsigned)i);
    const char *name = config_setting_name(c);
    where_of(c, "sweep", where, sizeof where);
    if (!strcmp(name, "sweep") && config_setting_is_group(c)) {
      SCL_CALL(parse_sweep_group(p, c));
      continue;
    }
    const config_setting_t *dir = config_setting_get_member(c, "dir");
    SCL_CHECK(
        !strcmp(name, "run") && config_setting_is_group(c) && config_setting_length(c) == 1 && dir,
        SCL_ERR_ARG,
        "%s: unknown key '%s': a sweep file holds sweep = { ... } "
        "and optionally run = { dir = \"...\"; }",
        where, name);
    where_of(dir, "sweep", where, sizeof where);
    SCL_CALL(scalar_text(dir, where, buf, sizeof buf));
    if (buf[0] && buf[0] != '/' && p->dir[0]) /* relative to the sweep file, as every path in it */
      snprintf(text, sizeof text, "run.dir=%s/%s", p->dir, buf);
    else
      snprintf(text, sizeof text, "run.dir=%s", buf);
    SCL_CALL(orch_settings_add(&p->scalars, text, where));
  }
  return SCL_OK;
}

scl_err orch_sweep_parse_file(orch_sweep *s, orch_settings *scalars, const char *path) {
  int fd = -1; /* libconfig's open would block on a FIFO: regular files only */
  SCL_CALL(scl_open_regular(path, "sweep file", &fd));
  close(fd);
  parse_ctx ctx = {.s = s}, *p = &ctx;
  snprintf(p->dir, sizeof p->dir, "%s", path);
  char *slash = strrchr(p->dir, '/'), real[PATH_MAX];
  if (slash)
    *slash = '\0';
  else
    snprintf(p->dir, sizeof p->dir, ".");
  /* absolute, so that the paths made from it mean the same from any directory (a job's) */
  if (realpath(p->dir, real)) snprintf(p->dir, sizeof p->dir, "%s", real);
  config_t lc;
  config_init(&lc);
  if (p->dir[0]) config_set_include_dir(&lc, p->dir);
  scl_err err = SCL_OK;
  if (!config_read_file(&lc, path)) {
    const char *f = config_error_file(&lc);
    if (config_error_type(&lc) == CONFIG_ERR_FILE_IO && !f)
      err = SCL_ERROR(SCL_ERR_IO, "%s: cannot read sweep file: %s", path, strerror(errno));
    else
      err = SCL_ERROR(SCL_ERR_ARG, "%s:%d: %s", f ? f : path, config_error_line(&lc),
                      config_error_text(&lc));
  } else {
    err = parse_root(p, config_root_setting(&lc));
    if (err) SCL_TRACE(err);
  }
  config_destroy(&lc);
  *scalars = ctx.scalars; /* the caller frees them, also on error */
  return err;
}
