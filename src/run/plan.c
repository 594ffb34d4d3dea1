/* plan.c: the cost model of a trial (plan.h): rates (measured here and by linalg_calibrate,
 * nominal, or from a saved calibration), the price of the counts plan_count.c makes, the inputs'
 * check, and the printed plan. */
#include "safecl/plan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "safecl/linalg_calibrate.h"
#include "safecl/publish.h"
#include "safecl/safetensors.h"
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

/* dgemm's rate and a 512 x 512 dsyevd's seconds, the classifier fit's kernels (linalg/). */
static scl_err measure_linalg(run_plan_rates *r) {
  linalg_rates lr;
  SCL_CALL(linalg_calibrate(512, &lr));
  r->dgemm_gflop_per_s = lr.dgemm_gflop_per_s;
  r->eig_seconds_512 = lr.eig_seconds;
  return SCL_OK;
}

scl_err run_plan_measure(const run_trial_cfg *cfg, run_plan_rates *rates) {
  memset(rates, 0, sizeof *rates);
  SCL_CALL(measure_forward(cfg, rates));
  SCL_CALL(measure_linalg(rates));
  return SCL_OK;
}

/* Forward images per second of cfg's architecture at `gflops` (0 when the preset is unknown). */
static double images_per_s(const run_trial_cfg *cfg, double gflops) {
  vit_config vc;
  if (vit_config_preset(cfg->arch, &vc) != SCL_OK) {
    scl_error_take(NULL, 0); /* an unknown arch is refused where the plan is counted */
    return 0.0;
  }
  return gflops * 1e9 / vit_config_flops_per_image(&vc);
}

void run_plan_rates_nominal(const run_trial_cfg *cfg, double gflops, run_plan_rates *rates) {
  memset(rates, 0, sizeof *rates);
  rates->forward_gflop_per_s = rates->dgemm_gflop_per_s = gflops;
  rates->forward_img_per_s = images_per_s(cfg, gflops);
  rates->eig_seconds_512 = 9.0 * 512.0 * 512.0 * 512.0 / (gflops * 1e9);
  snprintf(rates->source, sizeof rates->source, "nominal %g GFLOP/s per rank (--gflops)", gflops);
}

void run_plan_calibration_path(char *buf, size_t cap) {
  const char *env = getenv("SAFECL_CALIBRATION"), *xdg = getenv("XDG_CACHE_HOME");
  const char *home = getenv("HOME");
  if (env && env[0])
    snprintf(buf, cap, "%s", env);
  else if (xdg && xdg[0])
    snprintf(buf, cap, "%s/safecl/calibration", xdg);
  else
    snprintf(buf, cap, "%s/.cache/safecl/calibration", home && home[0] ? home : ".");
}

static const char *const rate_keys[] = {"forward_gflop_per_s", "dgemm_gflop_per_s",
                                        "eig_seconds_512"};

scl_err run_plan_rates_save(const char *path, const run_trial_cfg *cfg,
                            const run_plan_rates *rates) {
  char dir[4096], host[256] = "?", stamp[32] = "?", text[2048];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = '\0';
    SCL_CALL(io_mkdirs(dir));
  }
  gethostname(host, sizeof host);
  host[sizeof host - 1] = '\0';
  time_t now = time(NULL);
  struct tm tm;
  if (gmtime_r(&now, &tm)) strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
  int n = snprintf(text, sizeof text,
                   "# safecl plan --calibrate: this machine's sustained rates per rank\n"
                   "host = %s\nmeasured = %s\narch = %s\nthreads = %lld\n"
                   "forward_gflop_per_s = %.17g\ndgemm_gflop_per_s = %.17g\n"
                   "eig_seconds_512 = %.17g\n",
                   host, stamp, cfg->arch, (long long)cfg->threads, rates->forward_gflop_per_s,
                   rates->dgemm_gflop_per_s, rates->eig_seconds_512);
  SCL_CHECK(n > 0 && (size_t)n < sizeof text, SCL_ERR_ARG, "%s: calibration text too long", path);
  SCL_CALL(io_write_file_atomic(path, text, (size_t)n));
  return SCL_OK;
}

/* The value of `key = value` in text (copied into out); 0 when absent. */
static int text_value(const char *text, const char *key, char *out, size_t cap) {
  size_t k = strlen(key);
  for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
    if (strncmp(l, key, k) || (l[k] != ' ' && l[k] != '=')) continue;
    const char *v = strchr(l, '=');
    if (!v) return 0;
    v++;
    while (*v == ' ') v++;
    size_t n = strcspn(v, "\r\n");
    snprintf(out, cap, "%.*s", (int)n, v);
    return 1;
  }
  return 0;
}

scl_err run_plan_rates_load(const char *path, const run_trial_cfg *cfg, run_plan_rates *rates) {
  char text[4096], value[600], host[256] = "?", stamp[64] = "?", arch[64] = "";
  FILE *f = NULL;
  memset(rates, 0, sizeof *rates);
  SCL_CALL(scl_fopen_regular(path, "calibration file", &f));
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  double *dst[] = {&rates->forward_gflop_per_s, &rates->dgemm_gflop_per_s, &rates->eig_seconds_512};
  for (int k = 0; k < 3; k++) {
    SCL_CHECK(text_value(text, rate_keys[k], value, sizeof value), SCL_ERR_FORMAT,
              "%s: no '%s' line: not a calibration file (write one with safecl plan --calibrate)",
              path, rate_keys[k]);
    char *end = NULL;
    *dst[k] = strtod(value, &end);
    SCL_CHECK(end != value && !*end && isfinite(*dst[k]) && *dst[k] > 0, SCL_ERR_FORMAT,
              "%s: %s = '%s' is not a positive number", path, rate_keys[k], value);
  }
  rates->forward_img_per_s = images_per_s(cfg, rates->forward_gflop_per_s);
  text_value(text, "host", host, sizeof host);
  text_value(text, "measured", stamp, sizeof stamp);
  if (text_value(text, "arch", arch, sizeof arch) && strcmp(arch, cfg->arch))
    SCL_WARN(
        "%s was calibrated with %s, not %s: its forward GFLOP/s is applied to %s as it is "
        "(small models run at a lower rate); calibrate with backbone.arch=%s for a closer "
        "estimate",
        path, arch, cfg->arch, cfg->arch, cfg->arch);
  snprintf(rates->source, sizeof rates->source, "calibration %s (host %s, %s)", path, host, stamp);
  return SCL_OK;
}

void run_plan_spread(run_plan *p, int ranks) {
  if (ranks < 1) ranks = 1;
  p->ranks = ranks;
  p->total_seconds = 0.0;
  for (int t = 0; t < p->n_sessions; t++)
    for (int k = 0; k < 4; k++) {
      p->s[t].seconds[k] /= ranks;
      p->total_seconds += p->s[t].seconds[k];
    }
}

scl_err run_plan_check_inputs(const run_trial_cfg *cfg, run_plan_facts *facts) {
  char msg[SCL_ERROR_MESSAGE_MAX];
  if (!cfg->weights[0]) {
    SCL_WARN(
        "RANDOM WEIGHTS: backbone.weights is not set: this trial would run on a randomly "
        "initialised %s (accuracies meaningless)",
        cfg->arch);
  } else {
    io_safetensors *st = NULL;
    if (io_safetensors_open(cfg->weights, &st) != SCL_OK) {
      scl_error_take(msg, sizeof msg);
      return SCL_ERROR(SCL_ERR_IO, "backbone.weights = \"%s\" cannot be read: %s", cfg->weights,
                       msg);
    }
    io_safetensors_close(&st);
  }
  if (run_plan_facts_read(cfg, facts) != SCL_OK) {
    scl_err code = scl_error_take(msg, sizeof msg);
    return SCL_ERROR(code, "dataset.root = \"%s\" (dataset.format = \"%s\") cannot be read: %s",
                     cfg->root, cfg->format, msg);
  }
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
  fprintf(f, "%s: forward %.2f img/s (%.1f GFLOP/s), dgemm %.1f GFLOP/s, dsyevd(512) %.3f s\n",
          p->rates.source[0] ? "rates" : "measured", p->rates.forward_img_per_s,
          p->rates.forward_gflop_per_s, p->rates.dgemm_gflop_per_s, p->rates.eig_seconds_512);
  fprintf(f, "%7s %8s %7s %6s %11s %11s %11s %11s %10s\n", "session", "train", "test", "epochs",
          "train_s", "features_s", "eval_s", "classif_s", "TFLOP");
  for (int t = 0; t < p->n_sessions; t++) {
    const run_plan_session *s = &p->s[t];
    double tf = (s->gflop[0] + s->gflop[1] + s->gflop[2] + s->gflop[3]) / 1e3;
    fprintf(f, "%7d %8lld %7lld %6lld %11.1f %11.1f %11.1f %11.1f %10.2f\n", t + 1,
            (long long)s->n_train, (long long)s->n_test, (long long)s->epochs, s->seconds[0],
            s->seconds[1], s->seconds[2], s->seconds[3], tf);
  }
  if (p->rates.source[0]) fprintf(f, "rates from: %s\n", p->rates.source);
  char where[64];
  if (p->ranks > 1)
    snprintf(where, sizeof where, "on %d ranks (ideal scaling)", p->ranks);
  else
    snprintf(where, sizeof where, "%s", p->rates.source[0] ? "on one rank" : "on this machine");
  fprintf(f,
          "total: %.2f TFLOP, estimated %.0f s (%.2f h) %s; classifier "
          "matrices %.2f GB",
          p->total_gflop / 1e3, p->total_seconds, p->total_seconds / 3600.0, where,
          p->classifier_bytes / 1e9);
  if (p->method_bytes > 0.0) fprintf(f, "; method state %.3f GB", p->method_bytes / 1e9);
  fputc('\n', f);
}
