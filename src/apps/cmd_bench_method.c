/* cmd_bench_method.c: `safecl bench train --method NAME`: throughput and memory of a registered
 * method's training step, driven through its learn_method_ops as a trial's training loop drives
 * it (src/run/train_loop.c).
 *
 * The method is created with a learn_context like a trial's: a frozen backbone of --arch with
 * random weights, --classes classes in ceil(--classes / --session-classes) sessions (what sizes
 * storage kept per session, such as EASE's adapter bank), the trial seed, the group's dist_comm
 * and ridge solver. Its learn_method_cfg is the trial key table's defaults, then the --config
 * file (or, without one, configs/methods/NAME.cfg when the working directory has it), then the
 * key=value overrides, with method.name = NAME and train.batch = --batch last. Session 0 owns
 * classes [0, K0) of K (--session-classes, --classes); train_begin is called once for an epoch
 * of warmup + iters steps, then every step is a train_step on random images (uniform in [0, 1],
 * image b of step s drawn from (seed, s * B + b), so the same on whichever rank holds it) and
 * random labels in [0, K0). Everything the method allocates at create and train_begin is outside
 * the timed steps. The backbone is created for the largest shard a rank trains (what the
 * methods' frozen forwards of a training batch need); --eval-batch sizes it as a trial's
 * eval.batch does.
 *
 * Under `mpirun -np G` each rank holds its learn_shard of the batch's images and the labels and
 * indices of the whole batch, as the training loop hands them; rank 0 prints the group's
 * throughput (global batch / slowest rank's step time). cpu_s_per_iter is the CPU time (user +
 * system, every thread, summed over the ranks) of a timed step: on a shared machine other
 * processes inflate the wall time of a step far more than its CPU time. plan_gflop_per_image is
 * the method's own cost model (learn_method_ops.cost: frozen-forward units per training image
 * and epoch) times one forward's GFLOP, so gflop_per_s is an estimate, not a count. peak_rss_mb
 * is the process's peak resident set (getrusage ru_maxrss; the largest over the ranks):
 * everything the method, the backbone and the bench hold at any time, as the PyTorch peers
 * (tests/bench/prompt_peer.py, methods_peer.py) report theirs: whole processes compared. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "safecl/bench_train.h"
#include "safecl/core.h"
#include "safecl/dist_mpi.h"
#include "safecl/linalg_group.h"
#include "safecl/method.h"
#include "safecl/run_group.h"
#include "safecl/trial.h"
#include "safecl/vit.h"

#define BENCH_MAX_OVERRIDES 64

/* Everything the timed steps touch. */
typedef struct method_rig {
  run_trial_cfg cfg;
  int cfg_loaded;
  char config_path[512];
  run_group g;
  vit_model *backbone;
  linalg_group *linalg;
  const learn_method_ops *ops;
  learn_method *method;
  learn_session session;
  learn_train_plan plan;
  int64_t B, lo, hi, img;
  float *images;
  int64_t *labels, *index;
  int32_t *train_labels;
} method_rig;

/* User plus system CPU seconds of this process so far (every thread). */
static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         1e-6 * (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* The method's configuration: defaults, the config file, the overrides, then NAME and --batch. */
static scl_err load_config(const bench_method_args *a, method_rig *r) {
  const char *path = a->config;
  if (!path) {
    snprintf(r->config_path, sizeof r->config_path, "configs/methods/%s.cfg", a->method);
    if (access(r->config_path, R_OK) == 0) path = r->config_path;
  } else {
    snprintf(r->config_path, sizeof r->config_path, "%s", path);
  }
  if (!path) snprintf(r->config_path, sizeof r->config_path, "defaults");
  SCL_CHECK(a->n_overrides + 2 <= BENCH_MAX_OVERRIDES, SCL_ERR_ARG,
            "bench train: %d key=value overrides; at most %d", a->n_overrides,
            BENCH_MAX_OVERRIDES - 2);
  char name[160], batch[64], *ov[BENCH_MAX_OVERRIDES];
  snprintf(name, sizeof name, "method.name=%s", a->method);
  snprintf(batch, sizeof batch, "train.batch=%ld", a->batch);
  for (int i = 0; i < a->n_overrides; i++) ov[i] = a->overrides[i];
  ov[a->n_overrides] = name;
  ov[a->n_overrides + 1] = batch;
  r->cfg_loaded = 1;
  SCL_CALL(cfg_load(&run_trial_schema, path, a->n_overrides + 2, ov, &r->cfg));
  return SCL_OK;
}

static scl_err rig_create(const bench_method_args *a, method_rig *r, const dist_comm *world) {
  run_group_init(&r->g, world);
  if (a->threads > 0) openblas_set_num_threads((int)a->threads);
  r->ops = learn_method_find(a->method);
  SCL_CHECK(r->ops, SCL_ERR_ARG, "bench train: --method %s is not one of %s", a->method,
            learn_method_names());
  SCL_CALL(load_config(a, r));
  SCL_CHECK(a->session_classes <= a->classes, SCL_ERR_ARG,
            "bench train: --session-classes %ld exceeds --classes %ld", a->session_classes,
            a->classes);
  vit_config vc;
  SCL_CALL(vit_config_preset(a->arch, &vc));
  r->B = a->batch;
  learn_shard(r->B, r->g.size, r->g.rank, &r->lo, &r->hi);
  const int64_t shard = (r->B + r->g.size - 1) / r->g.size;
  SCL_CALL(vit_model_open(a->arch, vc.img_size, "--arch", "", 0, (uint64_t)a->seed,
                          a->eval_batch > 0 ? a->eval_batch : shard, (int)a->threads,
                          &r->backbone));
  SCL_CALL(linalg_group_create(r->g.comm, LINALG_SOLVER_AUTO, (int)a->threads, &r->linalg));
  /* The trial this session would open: ceil(K / K0) sessions, which sizes the storage a method
   * keeps per session (EASE's adapter bank) as a trial's does. */
  const int64_t K0 = a->session_classes;
  const int n_sessions = (int)((a->classes + K0 - 1) / K0);
  const learn_context ctx = {.backbone = r->backbone,
                             .n_classes = a->classes,
                             .seed = (uint64_t)a->seed,
                             .cfg = &r->cfg.method,
                             .comm = r->g.comm,
                             .linalg = r->linalg,
                             .n_sessions = n_sessions};
  SCL_CALL(r->ops->create(&ctx, &r->method));

  /* Session 0 and its training list: one epoch of warmup + iters steps. */
  const int64_t steps = a->warmup + a->iters, n = steps * r->B;
  r->img = (int64_t)vc.in_chans * vc.img_size * vc.img_size;
  SCL_CALL(
      scl_alloc((size_t)(shard * r->img) * sizeof(float), "bench images", (void **)&r->images));
  SCL_CALL(scl_calloc((size_t)(2 * r->B) * sizeof(int64_t), "bench labels", (void **)&r->labels));
  SCL_CALL(
      scl_alloc((size_t)n * sizeof(int32_t), "bench training labels", (void **)&r->train_labels));
  r->index = r->labels + r->B;
  scl_rng rng;
  scl_rng_init(&rng, (uint64_t)a->seed, SCL_STREAM_SYNTHETIC, 2, 0);
  for (int64_t i = 0; i < n; i++) r->train_labels[i] = (int32_t)scl_rng_below(&rng, (uint32_t)K0);
  r->session = (learn_session){.t = 0,
                               .n_sessions = n_sessions,
                               .class_lo = 0,
                               .class_hi = K0,
                               .n_classes = a->classes,
                               .n_train = n,
                               .train_labels = r->train_labels};
  SCL_CHECK(r->ops->train_plan, SCL_ERR_ARG, "bench train: method %s never trains", a->method);
  r->plan = r->ops->train_plan(r->method, &r->session);
  SCL_CHECK(r->plan.epochs > 0, SCL_ERR_ARG,
            "bench train: method %s has no training epochs in session 1 with config %s "
            "(method.pet = \"%s\", train.epochs_first = %lld)",
            a->method, r->config_path, r->cfg.method.pet, (long long)r->cfg.method.epochs_first);
  SCL_CHECK(r->plan.batch == r->B, SCL_ERR_ARG,
            "bench train: method %s trains with batch %lld, not --batch %lld", a->method,
            (long long)r->plan.batch, (long long)r->B);
  SCL_CALL(r->ops->train_begin(r->method, &r->session, steps));
  return SCL_OK;
}

static void rig_destroy(method_rig *r) {
  if (r->method) r->ops->destroy(&r->method);
  linalg_group_destroy(&r->linalg);
  vit_model_destroy(&r->backbone);
  scl_free(r->images);
  scl_free(r->labels);
  scl_free(r->train_labels);
  if (r->cfg_loaded) cfg_free(&run_trial_schema, &r->cfg);
}

/* The batch of step s: its labels and indices (whole batch), this rank's images. */
static void fill_batch(const bench_method_args *a, method_rig *r, int64_t s, learn_batch *out) {
  for (int64_t b = 0; b < r->B; b++) {
    r->labels[b] = r->train_labels[s * r->B + b];
    r->index[b] = s * r->B + b;
  }
  scl_rng rng;
  for (int64_t b = r->lo; b < r->hi; b++) {
    scl_rng_init(&rng, (uint64_t)a->seed, SCL_STREAM_SYNTHETIC, 3, (uint32_t)r->index[b]);
    float *x = r->images + (b - r->lo) * r->img;
    for (int64_t i = 0; i < r->img; i++) x[i] = scl_rng_uniformf(&rng);
  }
  *out = (learn_batch){.images = r->images,
                       .labels = r->labels + r->lo,
                       .index = r->index + r->lo,
                       .labels_all = r->labels,
                       .index_all = r->index,
                       .B = r->hi - r->lo,
                       .B_global = r->B,
                       .offset = r->lo,
                       .epoch = 0,
                       .step = s};
}

static scl_err run(const bench_method_args *a, method_rig *r, const dist_comm *world) {
  SCL_CALL(rig_create(a, r, world));
  double losses[LEARN_MAX_LOSS_TERMS] = {0}, total = 0.0, best = 1e300;
  learn_batch batch;
  int64_t s = 0;
  for (; s < a->warmup; s++) {
    fill_batch(a, r, s, &batch);
    SCL_CALL(r->ops->train_step(r->method, &r->session, &batch, losses));
  }
  SCL_CALL(dist_barrier(world));
  const double cpu0 = cpu_seconds();
  for (long it = 0; it < a->iters; it++, s++) {
    fill_batch(a, r, s, &batch); /* outside the timed step, as the loop's image reading */
    double t0 = scl_now();
    SCL_CALL(r->ops->train_step(r->method, &r->session, &batch, losses));
    double dt = scl_now() - t0;
    total += dt;
    if (dt < best) best = dt;
  }
  double cpu = cpu_seconds() - cpu0;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double rss = (double)ru.ru_maxrss / 1024.0, times[2] = {total, best};
  SCL_CALL(dist_allreduce_f64(world, times, 2, DIST_MAX)); /* the slowest rank sets the pace */
  SCL_CALL(dist_allreduce_f64(world, &cpu, 1, DIST_SUM));
  SCL_CALL(dist_allreduce_f64(world, &rss, 1, DIST_MAX));
  if (r->g.rank != 0) return SCL_OK;
  const learn_cost cost = r->ops->cost ? r->ops->cost(&r->cfg.method, 0) : (learn_cost){0};
  const double units = cost.train_passes / (double)r->plan.epochs;
  const double gflop = units * vit_config_flops_per_image(&r->backbone->cfg) * 1e-9;
  const double mean = times[0] / (double)a->iters, ips = (double)a->batch / mean;
  best = times[1];
  printf(
      "bench=train arch=%s method=%s batch=%ld ranks=%d threads=%d iters=%ld "
      "s_per_iter=%.4f best_s_per_iter=%.4f img_per_s=%.3f best_img_per_s=%.3f "
      "cpu_s_per_iter=%.4f plan_units_per_image=%.2f plan_gflop_per_image=%.2f "
      "gflop_per_s=%.1f loss=%.4f "
      "session_classes=%ld classes=%ld config=%s peak_rss_mb=%.1f isa=%s\n",
      r->backbone->cfg.name, a->method, a->batch, r->g.size, openblas_get_num_threads(), a->iters,
      mean, best, ips, (double)a->batch / best, cpu / (double)a->iters, units, gflop, ips * gflop,
      losses[0], a->session_classes, a->classes, r->config_path, rss, scl_simd_isa());
  return SCL_OK;
}

int bench_train_method(const bench_method_args *a) {
  method_rig r = {0};
  dist_comm *world = NULL;
  scl_err err = dist_comm_create(MPI_COMM_WORLD, &world);
  if (!err) err = run(a, &r, world);
  if (err) scl_log_error_traceback();
  rig_destroy(&r);
  dist_comm_destroy(&world);
  return err ? 1 : 0;
}
