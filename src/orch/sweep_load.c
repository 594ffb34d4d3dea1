/* sweep_load.c: a sweep file plus command-line overrides into a validated orch_sweep, and its
 * release. The file itself is walked in sweep_file.c; here the command line is split into sweep
 * settings (sweep.*, run.dir, sweep.seeds=1,2,3) and trial keys for every trial, each scalar is
 * checked alone so that an error names its file:line or "command line", and a seeds axis may not
 * be contradicted by a seed=... setting anywhere else. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "orch_internal.h"

static void scope_free(orch_scope *sc) {
  orch_settings_free(&sc->overrides);
  for (int i = 0; i < sc->n_grid; i++) {
    free(sc->grid[i].key);
    orch_settings_free(&sc->grid[i].values);
  }
  free(sc->grid);
  for (int i = 0; i < sc->n_points; i++) orch_settings_free(&sc->points[i]);
  free(sc->points);
  memset(sc, 0, sizeof *sc);
}

static void entries_free(orch_entry *e, int n) {
  for (int i = 0; i < n; i++) {
    entries_free(e[i].methods, e[i].n_methods);
    for (int b = 0; b < e[i].n_base; b++) free(e[i].base[b]);
    free(e[i].base);
    free(e[i].file);
    free(e[i].where);
    scope_free(&e[i].scope);
  }
  free(e);
}

void orch_sweep_destroy(orch_sweep **s) {
  if (!s || !*s) return;
  orch_sweep *w = *s;
  cfg_free(&orch_sweep_schema, w);
  free(w->path);
  for (int i = 0; i < w->n_base; i++) free(w->base[i]);
  free(w->base);
  entries_free(w->datasets, w->n_datasets);
  entries_free(w->methods, w->n_methods);
  free(w->seeds);
  scope_free(&w->scope);
  orch_settings_free(&w->cmdline);
  free(w);
  *s = NULL;
}

/* sweep.seeds=1,2,3 on the command line. */
static scl_err cmdline_seeds(orch_sweep *s, const char *list) {
  int64_t v[4096];
  int n = 0;
  for (const char *p = list; *p;) {
    char *end = NULL;
    errno = 0;
    long long x = strtoll(p, &end, 10);
    SCL_CHECK(end != p && !errno && n != 4096, SCL_ERR_ARG,
              "command line: sweep.seeds=%s is not a comma-separated list "
              "of at most 4096 integers",
              list);
    v[n++] = x;
    p = *end == ',' ? end + 1 : end;
    if (*end && *end != ',')
      return SCL_ERROR(SCL_ERR_ARG, "command line: sweep.seeds=%s: unexpected '%c'", list, *end);
  }
  SCL_CALL(orch_seeds_set(s, v, n, "command line"));
  return SCL_OK;
}

static scl_err parse_cmdline(orch_sweep *s, orch_settings *scalars, int n, char *const *overrides) {
  for (int i = 0; i < n; i++) {
    const char *o = overrides[i], *eq = strchr(o, '=');
    SCL_CHECK(eq, SCL_ERR_ARG, "command line: '%s' is not of the form key=value", o);
    if (!strncmp(o, "sweep.seeds=", 12)) {
      SCL_CALL(cmdline_seeds(s, eq + 1));
    } else if (!strncmp(o, "sweep.", 6) || !strncmp(o, "run.", 4)) {
      int known = 0;
      for (int k = 0; k < orch_sweep_schema.n_keys; k++)
        known |= strlen(orch_sweep_schema.keys[k].name) == (size_t)(eq - o) &&
                 !strncmp(orch_sweep_schema.keys[k].name, o, (size_t)(eq - o));
      SCL_CHECK(known, SCL_ERR_ARG, "command line: unknown key '%.*s' (see safecl sweep --help)",
                (int)(eq - o), o);
      SCL_CALL(orch_settings_add(scalars, o, "command line"));
    } else {
      SCL_CALL(orch_check_trial_setting(o, "command line"));
      SCL_CALL(orch_settings_add(&s->cmdline, o, "command line"));
    }
  }
  return SCL_OK;
}

/* Each scalar checked alone (so an error names its file:line), then all applied in order. */
static scl_err apply_scalars(orch_sweep *s, const orch_settings *scalars) {
  char **texts = calloc((size_t)scalars->n + 1, sizeof(char *));
  SCL_CHECK(texts, SCL_ERR_NOMEM, "sweep settings");
  scl_err err = SCL_OK;
  for (int i = 0; i < scalars->n && !err; i++) {
    orch_sweep scratch = {0};
    texts[i] = scalars->v[i].text;
    err = cfg_load_files(&orch_sweep_schema, NULL, 0, 1, &texts[i], &scratch);
    cfg_free(&orch_sweep_schema, &scratch);
    if (err) err = orch_rewhere(err, scalars->v[i].where);
  }
  if (!err) err = cfg_load_files(&orch_sweep_schema, NULL, 0, scalars->n, texts, s);
  free(texts);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

static scl_err settings_set_seed(const orch_settings *l) {
  for (int i = 0; l && i < l->n; i++)
    SCL_CHECK(strncmp(l->v[i].text, "seed=", 5) != 0, SCL_ERR_ARG,
              "%s: '%s' conflicts with sweep.seeds; remove one", l->v[i].where, l->v[i].text);
  return SCL_OK;
}

static scl_err scope_sets_seed(const orch_scope *sc) {
  SCL_CALL(settings_set_seed(&sc->overrides));
  for (int g = 0; g < sc->n_grid; g++) SCL_CALL(settings_set_seed(&sc->grid[g].values));
  for (int q = 0; q < sc->n_points; q++) SCL_CALL(settings_set_seed(&sc->points[q]));
  return SCL_OK;
}

/* With a seeds axis, no other setting may set the seed. */
static scl_err check_seed_conflict(const orch_sweep *s) {
  if (s->n_seeds == 0) return SCL_OK;
  SCL_CALL(scope_sets_seed(&s->scope));
  SCL_CALL(settings_set_seed(&s->cmdline));
  for (int d = 0; d < s->n_datasets; d++) {
    SCL_CALL(scope_sets_seed(&s->datasets[d].scope));
    for (int m = 0; m < s->datasets[d].n_methods; m++)
      SCL_CALL(scope_sets_seed(&s->datasets[d].methods[m].scope));
  }
  for (int m = 0; m < s->n_methods; m++) SCL_CALL(scope_sets_seed(&s->methods[m].scope));
  return SCL_OK;
}

scl_err orch_sweep_load(const char *path, int n_overrides, char *const *overrides,
                        orch_sweep **out) {
  *out = NULL;
  orch_settings scalars = {0};
  orch_sweep *s = calloc(1, sizeof *s);
  SCL_CHECK(s, SCL_ERR_NOMEM, "sweep");
  s->path = strdup(path);
  scl_err err = s->path ? SCL_OK : SCL_ERROR(SCL_ERR_NOMEM, "sweep path");
  if (!err) err = orch_sweep_parse_file(s, &scalars, path);
  if (!err) err = parse_cmdline(s, &scalars, n_overrides, overrides);
  if (!err) err = apply_scalars(s, &scalars);
  if (!err) err = check_seed_conflict(s);
  orch_settings_free(&scalars);
  if (err) {
    orch_sweep_destroy(&s);
    return SCL_TRACE(err);
  }
  *out = s;
  return SCL_OK;
}
