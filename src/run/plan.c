/* plan.c: the cost model of a trial (plan.h): counts, measured rates, and the printed plan. */
#include "safecl/plan.h"

#include <cblas.h>
#include <string.h>

#include "../linalg/lapack.h"
#include "safecl/vit.h"

static scl_err measure_forward(const run_trial_cfg *cfg, run_plan_rates *r) {
  vit_config vc;
  SCL_CALL(vit_config_preset(cfg->arch, &vc));
  int64_t B = cfg->eval_batch < 8 ? cfg->eval_batch : 8;
  vit_model *m = NULL;
  float *img = NULL, *out = NULL;
  scl_err err = SCL_OK;
  size_t per = (size_t)(3 * vc.img_size * vc.img_size);
  SCL_CALL_GOTO(err, vit_model_create(&vc, B, (int)cfg->threads, &m), done);
  SCL_CALL_GOTO(err, scl_calloc((size_t)B * per * sizeof(float), "plan images", (void **)&img),
                done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)(B * vc.width) * sizeof(float), "plan out", (void **)&out),
                done);
  vit_model_init_random(m, 1);
  SCL_CALL_GOTO(err, vit_model_forward(m, img, B, out), done); /* warm-up */
  double t0 = scl_now();
  SCL_CALL_GOTO(err, vit_model_forward(m, img, B, out), done);
  double dt = scl_now() - t0;
  r->forward_img_per_s = (double)B / dt;
  r->forward_gflop_per_s = r->forward_img_per_s * vit_config_flops_per_image(&vc) / 1e9;
done:
  vit_model_destroy(&m);
  scl_free(img);
  scl_free(out);
  return err;
}

static scl_err measure_linalg(run_plan_rates *r) {
  const int n = 512;
  double *a = NULL, *b = NULL, *c = NULL, *w = NULL, *work = NULL;
  int *iwork = NULL, info = 0, lwork = 1 + 6 * n + 2 * n * n, liwork = 3 + 5 * n;
  scl_err err = SCL_OK;
  size_t nn = (size_t)n * n * sizeof(double);
  SCL_CALL_GOTO(err, scl_alloc(nn, "plan a", (void **)&a), done);
  SCL_CALL_GOTO(err, scl_alloc(nn, "plan b", (void **)&b), done);
  SCL_CALL_GOTO(err, scl_alloc(nn, "plan c", (void **)&c), done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)n * sizeof(double), "plan w", (void **)&w), done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)lwork * sizeof(double), "plan work", (void **)&work), done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)liwork * sizeof(int), "plan iwork", (void **)&iwork), done);
  for (int i = 0; i < n * n; i++) a[i] = b[i] = (double)((i * 7919) % 1000) / 1000.0;
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0, a, n, b, n, 0.0, c, n);
  double t0 = scl_now();
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0, a, n, b, n, 0.0, c, n);
  r->dgemm_gflop_per_s = 2.0 * n * (double)n * n / (scl_now() - t0) / 1e9;
  t0 = scl_now();
  dsyevd_("V", "L", &n, c, &n, w, work, &lwork, iwork, &liwork, &info, 1, 1);
  r->eig_seconds_512 = scl_now() - t0;
  if (info) err = SCL_ERROR(SCL_ERR_LAPACK, "plan calibration: dsyevd info=%d", info);
done:; /* a declaration follows: C11 needs a statement after a label */
  double *all[] = {a, b, c, w, work};
  for (int i = 0; i < 5; i++) scl_free(all[i]);
  scl_free(iwork);
  return err;
}

scl_err run_plan_measure(const run_trial_cfg *cfg, run_plan_rates *rates) {
  memset(rates, 0, sizeof *rates);
  SCL_CALL(measure_forward(cfg, rates));
  SCL_CALL(measure_linalg(rates));
  return SCL_OK;
}

/* GFLOP of one ridge classifier's session: projection, Gram, search, solve. */
static double classifier_gflop(double n, double D, double M, double C) {
  double project = 2.0 * n * D * M, gram = n * M * M, search_gram = 0.8 * n * M * M;
  double search = 2.0 * 0.2 * n * M * M + 2.0 * M * M * C, solve = M * M * M / 3.0 + 2 * M * M * C;
  return (project * 2.0 + gram + search_gram + search + solve) / 1e9;
}

/* Training images per epoch: all n, or with train.drop_last the complete batches only. */
static int64_t trained_images(const run_trial_cfg *cfg, int64_t n) {
  int64_t B = cfg->method.batch > 0 ? cfg->method.batch : 1;
  return cfg->method.drop_last ? n / B * B : n;
}

void run_plan_price(const run_trial_cfg *cfg, run_plan *p, const learn_method_ops *ops,
                    const vit_config *vc, int64_t n_classes) {
  const run_plan_rates *r = &p->rates;
  const double M = (double)cfg->method.rp_dim, D_feat = (double)vc->width;
  const double fwd_gflop = vit_config_flops_per_image(vc) / 1e9;
  double eig = r->eig_seconds_512 * (M / 512.0) * (M / 512.0) * (M / 512.0);
  int64_t tested = 0;
  p->total_gflop = p->total_seconds = 0.0;
  for (int t = 0; t < p->n_sessions; t++) {
    run_plan_session *s = &p->s[t];
    learn_cost c = ops->cost ? ops->cost(&cfg->method, t) : (learn_cost){0, 1, 1, 0, 0};
    if (c.train_passes == 0.0) s->epochs = 0;
    int64_t fresh = s->n_test - tested; /* frozen networks see each test image once */
    tested = s->n_test;
    s->gflop[0] = c.train_passes * (double)trained_images(cfg, s->n_train) * fwd_gflop;
    s->gflop[1] = (double)c.feature_nets * (double)s->n_train * fwd_gflop;
    s->gflop[2] = ((double)c.frozen_nets * (double)fresh +
                   (double)(c.feature_nets - c.frozen_nets + c.test_nets) * (double)s->n_test) *
                  fwd_gflop;
    s->gflop[3] =
        c.rp_learners * classifier_gflop((double)s->n_train, D_feat, M, (double)n_classes);
    for (int k = 0; k < 3; k++) s->seconds[k] = s->gflop[k] / r->forward_gflop_per_s;
    s->seconds[3] = c.rp_learners * eig + s->gflop[3] / r->dgemm_gflop_per_s;
    for (int k = 0; k < 4; k++) {
      p->total_gflop += s->gflop[k];
      p->total_seconds += s->seconds[k];
    }
  }
  p->classifier_bytes = ops->cost && ops->cost(&cfg->method, 0).rp_learners
                            ? (cfg->method.shared_stats ? 2.0 : 3.0) * 8.0 * M * M
                            : 0.0;
  p->method_bytes =
      ops->state_bytes ? ops->state_bytes(&cfg->method, vc, n_classes, p->n_sessions) : 0.0;
}

void run_plan_print(const run_trial_cfg *cfg, const run_plan *p, FILE *f) {
  fprintf(f, "plan: %s on %s (%s), %d sessions\n", cfg->method.name, cfg->dataset_name, cfg->arch,
          p->n_sessions);
  fprintf(f,
          "measured: forward %.2f img/s (%.1f GFLOP/s), dgemm %.1f GFLOP/s, dsyevd(512) %.3f s\n",
          p->rates.forward_img_per_s, p->rates.forward_gflop_per_s, p->rates.dgemm_gflop_per_s,
          p->rates.eig_seconds_512);
  fprintf(f, "%7s %8s %7s %6s %11s %11s %11s %11s %10s\n", "session", "train", "test", "epochs",
          "train_s", "features_s", "eval_s", "classif_s", "TFLOP");
  for (int t = 0; t < p->n_sessions; t++) {
    const run_plan_session *s = &p->s[t];
    double tf = (s->gflop[0] + s->gflop[1] + s->gflop[2] + s->gflop[3]) / 1e3;
    fprintf(f, "%7d %8lld %7lld %6lld %11.1f %11.1f %11.1f %11.1f %10.2f\n", t + 1,
            (long long)s->n_train, (long long)s->n_test, (long long)s->epochs, s->seconds[0],
            s->seconds[1], s->seconds[2], s->seconds[3], tf);
  }
  fprintf(f,
          "total: %.2f TFLOP, estimated %.0f s (%.2f h) on this machine; classifier "
          "matrices %.2f GB",
          p->total_gflop / 1e3, p->total_seconds, p->total_seconds / 3600.0,
          p->classifier_bytes / 1e9);
  if (p->method_bytes > 0.0) fprintf(f, "; method state %.3f GB", p->method_bytes / 1e9);
  fputc('\n', f);
}
