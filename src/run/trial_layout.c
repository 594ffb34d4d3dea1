/* trial_layout.c: a benchmark as the trial's config lays it out: opening a split with the
 * dataset.* keys, the sessions (the class order and increments, or one session per domain for
 * DomainNet), the classes each session introduces, the domain filter of a domain-incremental
 * session, and the layout in words for the log. Both the trial runner and the planner
 * (plan_count.c, identity.c) read a benchmark through these, so a plan counts the sessions a run
 * trains. Nothing here reads images or trains: the splits are opened as lists of samples. */
#include <stdio.h>
#include <string.h>

#include "trial_phases.h"

scl_err trial_open_split(const run_trial_cfg *cfg, const char *split, data_dataset **out) {
  int train = !strcmp(split, "train"), dil = !strcmp(cfg->format, "domainnet");
  data_source src = {.format = cfg->format,
                     .root = cfg->root,
                     .split = split,
                     .domains = cfg->domains,
                     .n_classes = dil ? cfg->classes : cfg->syn_classes,
                     .per_class = train ? cfg->syn_train_per_class : cfg->syn_test_per_class,
                     .image_size = (int)cfg->syn_size,
                     .seed = (uint64_t)cfg->syn_seed,
                     .difficulty = cfg->syn_difficulty,
                     .max_image_pixels = cfg->max_image_pixels,
                     .limit = cfg->limit};
  if (strcmp(cfg->format, "synthetic") && !cfg->root[0])
    return SCL_ERROR(SCL_ERR_ARG, "dataset.root is empty; dataset.format = \"%s\" needs it",
                     cfg->format);
  SCL_CALL(data_dataset_open(&src, out));
  return SCL_OK;
}

/* The sessions of a benchmark of nc classes: one per domain (domain-incremental), or the class
 * order and increments of the config. */
scl_err trial_sessions_layout(const run_trial_cfg *cfg, int64_t nc, data_sessions **plan,
                              int *n_sessions, int *dil) {
  *dil = !strcmp(cfg->format, "domainnet");
  if (*dil) {
    /* Every session holds every class in the original label order (docs/methods.md a.1). */
    SCL_CALL(data_sessions_create(nc, nc, nc, 0, 0, plan));
    *n_sessions = 1;
    for (const char *c = cfg->domains; *c; c++) *n_sessions += *c == ',';
  } else {
    /* The class order follows the trial seed unless dataset.order_seed pins it (docs/methods.md
     * a.2); both are in the canonical config, so the identity follows the order. */
    int64_t order_seed = cfg->order_seed >= 0 ? cfg->order_seed : cfg->seed;
    SCL_CALL(data_sessions_create(nc, cfg->init_cls, cfg->increment, cfg->shuffle,
                                  (uint32_t)order_seed, plan));
    *n_sessions = (*plan)->n_sessions;
  }
  return SCL_OK;
}

/* Domain t of the comma-separated list (DomainNet's session order), into buf. */
const char *trial_domain_name(const char *domains, int t, char *buf, size_t cap) {
  const char *p = domains;
  for (int i = 0; i < t && p; i++) {
    p = strchr(p, ',');
    if (p) p++;
  }
  size_t n = p ? strcspn(p, ",") : 0;
  snprintf(buf, cap, "%.*s", (int)n, p ? p : "");
  return buf;
}

/* The session layout in words, with PILOT's B<base> Inc<increment> name (B0: the first session
 * is as large as the others): "10 sessions of 10 classes each (B0 Inc10), 100 classes in all",
 * "6 sessions of 20 classes after a first of 50 (B50 Inc20), ...", "6 sessions, one per domain
 * (real, ...), each with all 345 classes". */
const char *trial_sessions_text(const trial_state *st, char *buf, size_t cap) {
  const int T = st->n_sessions;
  const int64_t *b = st->plan->start, nc = st->plan->n_classes;
  if (st->dil) {
    snprintf(buf, cap, "%d session%s, one per domain (%s), each with all %lld classes", T,
             T == 1 ? "" : "s", st->cfg->domains, (long long)nc);
    return buf;
  }
  if (T == 1) {
    snprintf(buf, cap, "1 session of all %lld classes", (long long)nc);
    return buf;
  }
  int64_t first = b[1] - b[0], inc = b[2] - b[1], last = b[T] - b[T - 1];
  int o = first == inc
              ? snprintf(buf, cap, "%d sessions of %lld classes each (B0 Inc%lld)", T,
                         (long long)inc, (long long)inc)
              : snprintf(buf, cap,
                         "%d sessions: a first of %lld classes, then %lld per session "
                         "(B%lld Inc%lld)",
                         T, (long long)first, (long long)inc, (long long)first, (long long)inc);
  if (last != inc && o >= 0 && (size_t)o < cap)
    o += snprintf(buf + o, cap - (size_t)o, ", %lld in the last", (long long)last);
  if (o >= 0 && (size_t)o < cap)
    snprintf(buf + o, cap - (size_t)o, ", %lld classes in all", (long long)nc);
  return buf;
}

/* The classes a session introduces: its slice of the class order, or all classes (DIL). */
void trial_session_classes(const trial_state *st, int t, int64_t *lo, int64_t *hi) {
  *lo = st->dil ? 0 : st->plan->start[t];
  *hi = st->dil ? st->plan->n_classes : st->plan->start[t + 1];
}

/* Keeps the selected samples of `ds` whose domain is `domain` (in place). */
void trial_keep_domain(const data_dataset *ds, int domain, int64_t *idx, int32_t *labels,
                       int64_t *n) {
  int64_t k = 0;
  for (int64_t i = 0; i < *n; i++) {
    if (data_dataset_domain(ds, idx[i]) != domain) continue;
    idx[k] = idx[i];
    labels[k++] = labels[i];
  }
  *n = k;
}
