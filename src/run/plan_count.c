/* plan_count.c: the counting half of a trial's plan (plan.h): the dataset facts (images per class
 * and per domain of both splits, read once per dataset) and, from them, each session's training
 * and test images and epochs under the same session layout the runner trains (trial_layout.c).
 * Arithmetic only: no image is read and nothing is timed; pricing the counts is plan.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trial_phases.h"

void run_plan_dataset_key(const run_trial_cfg *cfg, char *buf, size_t cap) {
  snprintf(buf, cap, "%s|%s|%s|%lld|%lld|%lld|%lld|%lld|%lld|%.17g|%lld", cfg->format, cfg->root,
           cfg->domains, (long long)cfg->classes, (long long)cfg->syn_classes,
           (long long)cfg->syn_train_per_class, (long long)cfg->syn_test_per_class,
           (long long)cfg->syn_size, (long long)cfg->syn_seed, cfg->syn_difficulty,
           (long long)cfg->limit);
}

void run_plan_facts_free(run_plan_facts *f) {
  free(f->train_per_class);
  free(f->test_per_class);
  free(f->train_per_domain);
  memset(f, 0, sizeof *f);
}

/* Images per class of ds into per (nc entries), per domain into dom (nd entries, or NULL). */
static scl_err count_split(const run_trial_cfg *cfg, const char *split, const data_dataset *ds,
                           int64_t nc, int64_t *per, int nd, int64_t *dom) {
  for (int64_t i = 0; i < data_dataset_count(ds); i++) {
    int64_t y = data_dataset_label(ds, i);
    SCL_CHECK(y >= 0 && y < nc, SCL_ERR_FORMAT,
              "%s: %s sample %lld has label %lld, not a class in [0, %lld)",
              cfg->root[0] ? cfg->root : cfg->format, split, (long long)i, (long long)y,
              (long long)nc);
    per[y]++;
    if (!dom) continue;
    int d = data_dataset_domain(ds, i);
    SCL_CHECK(d >= 0 && d < nd, SCL_ERR_FORMAT, "%s: %s sample %lld is of domain %d of %d",
              cfg->root, split, (long long)i, d, nd);
    dom[d]++;
  }
  return SCL_OK;
}

scl_err run_plan_facts_count(const run_trial_cfg *cfg, const data_dataset *train,
                             const data_dataset *test, run_plan_facts *f) {
  memset(f, 0, sizeof *f);
  scl_err err = SCL_OK;
  int64_t nc = data_dataset_num_classes(train);
  SCL_CHECK_GOTO(err, done, data_dataset_num_classes(test) == nc, SCL_ERR_FORMAT,
                 "%s: train split has %lld classes but test split has %lld", cfg->root,
                 (long long)nc, (long long)data_dataset_num_classes(test));
  f->n_classes = nc;
  if (!strcmp(cfg->format, "domainnet")) {
    f->n_domains = 1;
    for (const char *c = cfg->domains; *c; c++) f->n_domains += *c == ',';
  }
  f->train_per_class = calloc((size_t)(nc > 0 ? nc : 1), sizeof(int64_t));
  f->test_per_class = calloc((size_t)(nc > 0 ? nc : 1), sizeof(int64_t));
  f->train_per_domain = calloc((size_t)f->n_domains + 1, sizeof(int64_t));
  SCL_CHECK_GOTO(err, done, f->train_per_class && f->test_per_class && f->train_per_domain,
                 SCL_ERR_NOMEM, "dataset facts of %lld classes", (long long)nc);
  SCL_CALL_GOTO(err,
                count_split(cfg, "train", train, nc, f->train_per_class, f->n_domains,
                            f->n_domains ? f->train_per_domain : NULL),
                done);
  SCL_CALL_GOTO(err, count_split(cfg, "test", test, nc, f->test_per_class, 0, NULL), done);
  f->n_test = data_dataset_count(test);
  f->uniform = 1;
  for (int64_t c = 1; c < nc; c++)
    f->uniform &= f->train_per_class[c] == f->train_per_class[0] &&
                  f->test_per_class[c] == f->test_per_class[0];
done:
  if (err) run_plan_facts_free(f);
  return err;
}

scl_err run_plan_facts_read(const run_trial_cfg *cfg, run_plan_facts *f) {
  memset(f, 0, sizeof *f);
  data_dataset *train = NULL, *test = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, trial_open_split(cfg, "train", &train), done);
  SCL_CALL_GOTO(err, trial_open_split(cfg, "test", &test), done);
  SCL_CALL_GOTO(err, run_plan_facts_count(cfg, train, test, f), done);
done:
  data_dataset_close(&train);
  data_dataset_close(&test);
  return err;
}

scl_err run_plan_count(const run_trial_cfg *cfg, const run_plan_facts *f,
                       const run_plan_rates *rates, run_plan *plan) {
  memset(plan, 0, sizeof *plan);
  plan->rates = *rates;
  vit_config vc;
  data_sessions *layout = NULL;
  int n_sessions = 0, dil = 0;
  const learn_method_ops *ops = learn_method_find(cfg->method.name);
  SCL_CHECK(ops, SCL_ERR_ARG, "method.name = \"%s\" is not one of %s", cfg->method.name,
            learn_method_names());
  SCL_CALL(vit_config_preset(cfg->arch, &vc));
  run_trial_cfg unshuffled = *cfg; /* a shallow copy, only read */
  unshuffled.shuffle = 0;          /* the order changes no count: skip drawing it */
  SCL_CALL(trial_sessions_layout(f->uniform ? &unshuffled : cfg, f->n_classes, &layout, &n_sessions,
                                 &dil));
  scl_err err = SCL_OK;
  SCL_CHECK_GOTO(err, done, n_sessions <= (int)(sizeof plan->s / sizeof plan->s[0]), SCL_ERR_ARG,
                 "plan: %d sessions (at most 64)", n_sessions);
  SCL_CHECK_GOTO(err, done, !dil || n_sessions == f->n_domains, SCL_ERR_ARG,
                 "plan: %d sessions but the dataset facts hold %d domains", n_sessions,
                 f->n_domains);
  plan->n_sessions = n_sessions;
  int64_t n_test = 0;
  for (int t = 0; t < n_sessions; t++) {
    int64_t n = 0;
    if (dil) {
      n = f->train_per_domain[t];
      n_test = f->n_test;
    } else { /* session t trains on mapped labels [start_t, end_t), tests on all below end_t */
      for (int64_t k = layout->start[t]; k < layout->start[t + 1]; k++) {
        n += f->train_per_class[layout->order[k]];
        n_test += f->test_per_class[layout->order[k]];
      }
    }
    plan->s[t].n_train = n;
    plan->s[t].n_test = n_test;
    plan->s[t].epochs = t == 0 ? cfg->method.epochs_first : cfg->method.epochs_later;
  }
  run_plan_price(cfg, plan, ops, &vc, f->n_classes);
done:
  data_sessions_destroy(&layout);
  return err;
}
