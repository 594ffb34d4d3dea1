/* plan.c: a sweep expanded into identified trials (datasets x methods x grid x points x seeds).
 *
 * The expansion's size is known before anything is loaded (a product of list lengths), so a
 * sweep beyond sweep.max_trials is refused at once with its size instead of planning for hours.
 * Each grid/point combination is turned into the exact arguments `safecl train` would get
 * (config files, then key=value overrides) and loaded once with the trial's key table; each seed
 * then sets `seed` on that config, and the seeds are named by their content hashes from one
 * canonical dump (run_plan_identities; dataset manifests and weight hashes are cached per
 * process). The price of a trial is arithmetic over its dataset's cached facts (cost.c). Two
 * combinations that name the same trial run once. A combination whose config does not load is
 * an error of the sweep (the author's typo); one whose inputs cannot be read (a missing dataset
 * root, a damaged pack, unreadable weights) becomes a trial that fails with that message, so the
 * rest of the sweep still runs. The plan keeps only what varies per trial; the shared layering
 * is rebuilt from the sweep when a trial is dispatched. */
#include <stdlib.h>
#include <string.h>

#include "orch_internal.h"

typedef struct combo {
  const orch_sweep *s;
  int d, m;                   /* entry indices, -1 = none */
  const orch_scope *scope[3]; /* sweep, dataset, method */
  const orch_axis *axes[256];
  int n_axes;
  int n_pts[3]; /* points per scope, at least 1 (the empty point) */
} combo;

static const orch_scope *entry_scope(const orch_entry *e, int n, int i) {
  return i >= 0 && i < n ? &e[i].scope : NULL;
}

int orch_plan_n_files(const orch_sweep *s, int d, int m) {
  return s->n_base + (d >= 0 ? 1 + s->datasets[d].n_base : 0) + (m >= 0);
}

/* The methods dataset d runs: its own list if it has one, else the sweep's (d < 0: the sweep's). */
static const orch_entry *methods_of(const orch_sweep *s, int d, int *n) {
  if (d >= 0 && d < s->n_datasets && s->datasets[d].n_methods) {
    *n = s->datasets[d].n_methods;
    return s->datasets[d].methods;
  }
  *n = s->n_methods;
  return s->methods;
}

/* Sets up the combinations of dataset d and method m; *count = grid x points of them, or -1
 * when that overflows int64 (the sweep's cap refuses it before anything is expanded). */
static scl_err combo_init(const orch_sweep *s, int d, int m, combo *c, int64_t *count) {
  memset(c, 0, sizeof *c);
  c->s = s;
  c->d = d;
  c->m = m;
  c->scope[0] = &s->scope;
  c->scope[1] = entry_scope(s->datasets, s->n_datasets, d);
  int nm = 0;
  const orch_entry *methods = methods_of(s, d, &nm);
  c->scope[2] = entry_scope(methods, nm, m);
  *count = 1;
  for (int k = 0; k < 3; k++) {
    const orch_scope *sc = c->scope[k];
    c->n_pts[k] = sc && sc->n_points ? sc->n_points : 1;
    if (*count >= 0 && __builtin_mul_overflow(*count, (int64_t)c->n_pts[k], count)) *count = -1;
    for (int a = 0; sc && a < sc->n_grid; a++) {
      SCL_CHECK(c->n_axes != 256, SCL_ERR_ARG, "%s: more than 256 grid axes", s->path);
      c->axes[c->n_axes++] = &sc->grid[a];
      if (*count >= 0 && __builtin_mul_overflow(*count, (int64_t)sc->grid[a].values.n, count))
        *count = -1;
    }
  }
  return SCL_OK;
}

/* The settings of combination `idx` (mixed radix: axes first, then points), '\n'-joined. */
static scl_err combo_settings(const combo *c, int64_t idx, char **out) {
  size_t len = 1;
  const orch_setting *pick[256 + 3 * 64];
  int n = 0;
  for (int a = c->n_axes - 1; a >= 0; a--) {
    pick[a] = &c->axes[a]->values.v[idx % c->axes[a]->values.n];
    idx /= c->axes[a]->values.n;
  }
  n = c->n_axes;
  for (int k = 0; k < 3; k++) {
    int q = (int)(idx % c->n_pts[k]);
    idx /= c->n_pts[k];
    const orch_scope *sc = c->scope[k];
    if (!sc || !sc->n_points) continue;
    for (int i = 0; i < sc->points[q].n && n < 256 + 3 * 64; i++) pick[n++] = &sc->points[q].v[i];
  }
  for (int i = 0; i < n; i++) len += strlen(pick[i]->text) + 1;
  char *text = malloc(len);
  SCL_CHECK(text, SCL_ERR_NOMEM, "trial settings");
  text[0] = '\0';
  for (int i = 0, pos = 0; i < n; i++)
    pos += snprintf(text + pos, len - (size_t)pos, "%s%s", i ? "\n" : "", pick[i]->text);
  *out = text;
  return SCL_OK;
}

static scl_err push(char ***v, int *n, int *cap, const char *s) {
  if (*n + 2 > *cap) {
    *cap = *cap ? 2 * *cap : 16;
    char **g = realloc(*v, (size_t)*cap * sizeof **v);
    SCL_CHECK(g, SCL_ERR_NOMEM, "trial arguments");
    *v = g;
  }
  (*v)[*n] = strdup(s);
  if (!(*v)[*n]) return SCL_ERROR(SCL_ERR_NOMEM, "trial arguments");
  (*v)[++*n] = NULL;
  return SCL_OK;
}

void orch_args_free(int argc, char **argv) {
  for (int i = 0; argv && i < argc; i++) free(argv[i]);
  free(argv);
}

static scl_err push_list(char ***v, int *n, int *cap, const orch_settings *l) {
  for (int i = 0; i < l->n; i++) SCL_CALL(push(v, n, cap, l->v[i].text));
  return SCL_OK;
}

/* Files first, then overrides: sweep, command line, dataset, method, grid and points, seed. */
static scl_err build_args(const orch_sweep *s, int d, int m, const char *settings, int has_seed,
                          int64_t seed, const char *run_dir, const char *id, char ***argv,
                          int *argc) {
  int cap = 0, nm = 0;
  const orch_entry *methods = methods_of(s, d, &nm);
  for (int i = 0; i < s->n_base; i++) SCL_CALL(push(argv, argc, &cap, s->base[i]));
  for (int i = 0; d >= 0 && i < s->datasets[d].n_base; i++)
    SCL_CALL(push(argv, argc, &cap, s->datasets[d].base[i]));
  if (d >= 0) SCL_CALL(push(argv, argc, &cap, s->datasets[d].file));
  if (m >= 0) SCL_CALL(push(argv, argc, &cap, methods[m].file));
  SCL_CALL(push_list(argv, argc, &cap, &s->scope.overrides));
  SCL_CALL(push_list(argv, argc, &cap, &s->cmdline));
  if (d >= 0) SCL_CALL(push_list(argv, argc, &cap, &s->datasets[d].scope.overrides));
  if (m >= 0) SCL_CALL(push_list(argv, argc, &cap, &methods[m].scope.overrides));
  char buf[8192];
  for (const char *p = settings; p && *p;) {
    const char *nl = strchr(p, '\n');
    size_t k = nl ? (size_t)(nl - p) : strlen(p);
    snprintf(buf, sizeof buf, "%.*s", (int)k, p);
    SCL_CALL(push(argv, argc, &cap, buf));
    p += k + (nl ? 1 : 0);
  }
  if (has_seed) {
    snprintf(buf, sizeof buf, "seed=%lld", (long long)seed);
    SCL_CALL(push(argv, argc, &cap, buf));
  }
  if (run_dir) {
    char dir[4200];
    orch_rundir_trial(run_dir, id, dir, sizeof dir);
    snprintf(buf, sizeof buf, "run.dir=%s", dir);
    SCL_CALL(push(argv, argc, &cap, buf));
  }
  return SCL_OK;
}

scl_err orch_plan_args(const orch_sweep *s, const orch_trial *t, const char *run_dir, int *argc,
                       char ***argv) {
  *argc = 0;
  *argv = NULL;
  scl_err err = build_args(s, t->dataset, t->method, t->settings, t->has_seed, t->seed, run_dir,
                           t->id, argv, argc);
  if (err) {
    orch_args_free(*argc, *argv);
    *argc = 0;
    *argv = NULL;
    return SCL_TRACE(err);
  }
  return SCL_OK;
}

void orch_trial_label(const orch_trial *t, char *buf, size_t cap) {
  char seed[32] = "";
  if (t->has_seed) snprintf(seed, sizeof seed, " seed=%lld", (long long)t->seed);
  int n = snprintf(buf, cap, "%s/%s%s%s", t->dataset_name ? t->dataset_name : "?",
                   t->method_name ? t->method_name : "?", seed,
                   t->settings && t->settings[0] ? " " : "");
  for (const char *p = t->settings; p && *p && n >= 0 && (size_t)n + 1 < cap; p++)
    buf[n++] = *p == '\n' ? ' ' : *p;
  if (n >= 0 && (size_t)n < cap) buf[n] = '\0';
}

/* ---------------------------------------------------------------------------------------- */

typedef struct id_set { /* open addressing over plan indices + 1 */
  int64_t *slot;
  int64_t cap;
} id_set;

static uint64_t id_hash(const char *id) { return scl_hash_bytes(id, strnlen(id, 32)).lo; }

/* The index of the planned trial with this id, or -1 after inserting `index` for it. */
static scl_err id_set_insert(id_set *set, const orch_plan *p, int64_t index, int64_t *found) {
  *found = -1;
  if (2 * (index + 1) > set->cap) {
    int64_t cap = set->cap ? 2 * set->cap : 1024;
    int64_t *slot = calloc((size_t)cap, sizeof *slot);
    SCL_CHECK(slot, SCL_ERR_NOMEM, "trial id set of %lld slots", (long long)cap);
    for (int64_t i = 0; i < set->cap; i++) {
      if (!set->slot[i]) continue;
      int64_t j = (int64_t)(id_hash(p->trials[set->slot[i] - 1].id) & (uint64_t)(cap - 1));
      while (slot[j]) j = (j + 1) & (cap - 1);
      slot[j] = set->slot[i];
    }
    free(set->slot);
    set->slot = slot;
    set->cap = cap;
  }
  const char *id = p->trials[index].id;
  int64_t j = (int64_t)(id_hash(id) & (uint64_t)(set->cap - 1));
  for (; set->slot[j]; j = (j + 1) & (set->cap - 1))
    if (!strcmp(p->trials[set->slot[j] - 1].id, id)) {
      *found = set->slot[j] - 1;
      return SCL_OK;
    }
  set->slot[j] = index + 1;
  return SCL_OK;
}

static void trial_free(orch_trial *t) {
  free(t->settings);
  free(t->dataset_name);
  free(t->method_name);
  free(t->arch);
  free(t->error);
  memset(t, 0, sizeof *t);
}

/* Names a trial that cannot be identified by the hash of its arguments, keeping `why`. */
static scl_err name_failed(orch_trial *t, const orch_sweep *s, const char *why) {
  t->error = strdup(why);
  SCL_CHECK(t->error, SCL_ERR_NOMEM, "trial error message");
  int argc = 0;
  char **argv = NULL;
  scl_hasher *h = NULL;
  scl_err err = orch_plan_args(s, t, NULL, &argc, &argv);
  if (!err) err = scl_hasher_create(&h);
  for (int i = 0; !err && i < argc; i++) scl_hasher_update(h, argv[i], strlen(argv[i]) + 1);
  if (!err) scl_hash_hex(scl_hasher_digest(h), t->id);
  scl_hasher_destroy(&h);
  orch_args_free(argc, argv);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

/* Names and prices trial t of config cfg (its seed already set) with identity `id`; a trial
 * whose inputs cannot be read (`why`: its dataset, from the cached facts, or its weights) keeps
 * the message and is named by the hash of its arguments: it is planned and fails when its turn
 * comes. */
static scl_err identify(orch_trial *t, const orch_sweep *s, const run_trial_cfg *cfg,
                        const run_plan_facts *facts, const char *id, const char *why) {
  t->dataset_name = strdup(cfg->dataset_name);
  t->method_name = strdup(cfg->method.name);
  t->arch = strdup(cfg->arch);
  SCL_CHECK(t->dataset_name && t->method_name && t->arch, SCL_ERR_NOMEM, "trial names");
  t->backbone_random = !cfg->weights || !cfg->weights[0];
  if (why) {
    SCL_CALL(name_failed(t, s, why));
    return SCL_OK;
  }
  memcpy(t->id, id, sizeof t->id);
  t->cost = orch_cost_prior(cfg, facts);
  return SCL_OK;
}

/* Appends trial p->trials[p->n] unless it names an already planned trial (dropped, warned). */
static scl_err plan_one(orch_plan *p, int64_t *cap, id_set *set, const orch_sweep *s,
                        const combo *c, const char *settings, const run_trial_cfg *cfg,
                        const run_plan_facts *facts, const char *id, const char *why) {
  if (p->n == *cap) {
    *cap = *cap ? 2 * *cap : 64;
    orch_trial *g = realloc(p->trials, (size_t)*cap * sizeof *g);
    SCL_CHECK(g, SCL_ERR_NOMEM, "plan of %lld trials", (long long)*cap);
    p->trials = g;
  }
  orch_trial *t = &p->trials[p->n];
  *t = (orch_trial){.dataset = c->d, .method = c->m, .has_seed = s->n_seeds > 0, .seed = cfg->seed};
  t->settings = strdup(settings);
  scl_err err = t->settings ? SCL_OK : SCL_ERROR(SCL_ERR_NOMEM, "trial settings");
  if (!err) err = identify(t, s, cfg, facts, id, why);
  int64_t dup = -1;
  if (!err) err = id_set_insert(set, p, p->n, &dup);
  if (err || dup >= 0) {
    if (dup >= 0 && ++p->duplicates <= 5) {
      char a[512], b[512];
      orch_trial_label(t, a, sizeof a);
      orch_trial_label(&p->trials[dup], b, sizeof b);
      SCL_WARN("sweep: '%s' is the same trial as '%s' (%s); it runs once", a, b, t->id);
    }
    trial_free(t);
    if (err) return SCL_TRACE(err);
    return SCL_OK;
  }
  p->n++;
  return SCL_OK;
}

/* The trials of one grid/point combination: its config is loaded once (a config that does not
 * load is an error of the sweep), then each seed of the sweep sets `seed`, the last override,
 * exactly as its `seed=S` argument would (both accept [0, 4294967295]); the seeds' identities
 * come from one dump (run_plan_identities). */
static scl_err plan_point(orch_plan *p, int64_t *cap, id_set *set, const orch_sweep *s,
                          const combo *c, const char *settings) {
  orch_trial args = {.dataset = c->d, .method = c->m, .settings = (char *)settings};
  int argc = 0, n_files = orch_plan_n_files(s, c->d, c->m), n = s->n_seeds ? s->n_seeds : 1;
  char **argv = NULL, msg[SCL_ERROR_MESSAGE_MAX];
  char(*ids)[33] = calloc((size_t)n, sizeof *ids);
  run_trial_cfg cfg = {0};
  const run_plan_facts *facts = NULL;
  const char *why = NULL;
  scl_err err = ids ? SCL_OK : SCL_ERROR(SCL_ERR_NOMEM, "identities of %d seeds", n);
  if (!err) err = orch_plan_args(s, &args, NULL, &argc, &argv);
  if (!err)
    err = cfg_load_files(&run_trial_schema, (const char *const *)argv, n_files, argc - n_files,
                         argv + n_files, &cfg);
  if (!err) err = orch_cost_facts(&cfg, &facts, &why);
  if (!err && !why &&
      run_plan_identities(&cfg, n, s->n_seeds ? s->seeds : &cfg.seed, ids) != SCL_OK) {
    scl_error_take(msg, sizeof msg); /* its weights cannot be read: each seed fails with it */
    why = msg;
  }
  for (int k = 0; k < n && !err; k++) {
    if (s->n_seeds) cfg.seed = s->seeds[k];
    err = plan_one(p, cap, set, s, c, settings, &cfg, facts, ids[k], why);
  }
  cfg_free(&run_trial_schema, &cfg);
  orch_args_free(argc, argv);
  free(ids);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

static scl_err expand(orch_plan *p, const orch_sweep *s) {
  int64_t cap = 0;
  id_set set = {0};
  scl_err err = SCL_OK;
  int nd = s->n_datasets ? s->n_datasets : 1;
  for (int d = 0; d < nd && !err; d++) {
    int dd = s->n_datasets ? d : -1, n_methods = 0;
    methods_of(s, dd, &n_methods);
    for (int m = 0; m < (n_methods ? n_methods : 1) && !err; m++) {
      combo c;
      int64_t count = 0;
      err = combo_init(s, dd, n_methods ? m : -1, &c, &count);
      for (int64_t i = 0; i < count && !err; i++) {
        char *settings = NULL;
        err = combo_settings(&c, i, &settings);
        if (!err) err = plan_point(p, &cap, &set, s, &c, settings);
        free(settings);
      }
    }
  }
  free(set.slot);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

scl_err orch_plan_size(const orch_sweep *s, int64_t *n) {
  int nd = s->n_datasets ? s->n_datasets : 1;
  int64_t seeds = s->n_seeds ? s->n_seeds : 1;
  *n = 0;
  for (int d = 0; d < nd; d++) {
    int dd = s->n_datasets ? d : -1, n_methods = 0;
    methods_of(s, dd, &n_methods);
    for (int m = 0; m < (n_methods ? n_methods : 1); m++) {
      combo c;
      int64_t count = 0;
      SCL_CALL(combo_init(s, dd, n_methods ? m : -1, &c, &count));
      if (count < 0 || __builtin_mul_overflow(count, seeds, &count) ||
          __builtin_add_overflow(*n, count, n)) {
        *n = -1;
        return SCL_OK;
      }
    }
  }
  return SCL_OK;
}

scl_err orch_plan_create(const orch_sweep *s, orch_plan **out) {
  *out = NULL;
  int64_t size = 0;
  SCL_CALL(orch_plan_size(s, &size));
  if (size < 0 || size > s->max_trials) {
    char n[64];
    snprintf(n, sizeof n, size < 0 ? "more than 9.2e18" : "%lld", (long long)size);
    return SCL_ERROR(SCL_ERR_ARG,
                     "%s: the sweep expands to %s trials (datasets x methods x grid values x "
                     "points x seeds), more than sweep.max_trials = %lld: split the sweep, or "
                     "raise sweep.max_trials (in the file or sweep.max_trials=N on the command "
                     "line) if planning and running that many is meant",
                     s->path, n, (long long)s->max_trials);
  }
  orch_plan *p = calloc(1, sizeof *p);
  SCL_CHECK(p, SCL_ERR_NOMEM, "plan");
  scl_err err = expand(p, s);
  if (err) {
    orch_plan_destroy(&p);
    return SCL_TRACE(err);
  }
  if (p->duplicates > 5)
    SCL_WARN("sweep: %lld combinations named already planned trials in all",
             (long long)p->duplicates);
  *out = p;
  return SCL_OK;
}

void orch_plan_destroy(orch_plan **p) {
  if (!p || !*p) return;
  for (int64_t i = 0; i < (*p)->n; i++) trial_free(&(*p)->trials[i]);
  free((*p)->trials);
  free(*p);
  *p = NULL;
}
