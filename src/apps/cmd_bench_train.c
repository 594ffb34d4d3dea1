/* cmd_bench_train.c: `safecl bench train`: throughput and memory of one PET training step;
 * with --method, of a registered method's step instead (cmd_bench_method.c).
 *
 * The step is SAFE's per-batch work minus its optional second pass: vit_trainer_forward (keyed,
 * so adapter dropout draws its masks), the cosine head and cross-entropy, the head's backward,
 * vit_trainer_backward, and an SGD step (momentum 0.9, weight decay 5e-4) on PET and head, all
 * on random weights, images and labels from fixed seeds. Everything is allocated before the
 * timed steps; a few warm-up steps settle caches and OpenBLAS's buffers, then `iters` steps are
 * timed one by one. gflop_per_s counts the matrix products the step executes
 * (vit_trainer_flops_per_image); peak_rss_mb is the process high-water mark, which includes the
 * frozen weights (343 MB for ViT-B/16). The backbone is created for one image: the trainer
 * keeps its own activations, and this benchmark never runs the frozen model alone.
 *
 * Under `mpirun -np G` the G ranks run the data-parallel step of a trial's group (tuning.h):
 * each rank forwards and backpropagates its shard of the --batch images, the features are
 * gathered for the head and loss over the whole batch, and the PET gradient is summed with one
 * allreduce; rank 0 prints the group's throughput (global batch / step time) and how much of
 * the step the gathers and the allreduce took (comm_s), for the scaling model in the README. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "safecl/bench_args.h"
#include "safecl/bench_train.h"
#include "safecl/config.h"
#include "safecl/core.h"
#include "safecl/dist_mpi.h"
#include "safecl/learn.h"
#include "safecl/method.h"
#include "safecl/pet.h"
#include "safecl/run_group.h"
#include "safecl/tuning.h"
#include "safecl/vit.h"

typedef struct train_args {
  const char *arch, *pet, *method, *config;
  long batch, iters, warmup, threads, seed, classes, session_classes, eval_batch;
  int n_overrides;
  char **overrides; /* --method: key=value trial keys, pointers into argv */
} train_args;

static void usage(FILE *f) {
  fprintf(f,
          "usage: safecl bench train --arch A --pet KIND --batch B [--iters N] [--warmup W]\n"
          "                          [--threads T] [--seed S] [--classes K]\n"
          "       safecl bench train --arch A --method NAME [--batch B] [--config FILE]\n"
          "                          [--session-classes K0] [--eval-batch E] [--iters N]\n"
          "                          [--warmup W] [--threads T] [--seed S] [--classes K]\n"
          "                          [key=value ...]\n\n"
          "  --arch A      ViT preset: %s\n"
          "  --pet KIND    adapter (AdaptFormer, 64, dropout 0.1), ssf, vpt (deep, 5 prompts),\n"
          "                vpt_shallow, prefix (length 5 on every block)\n"
          "  --method NAME a registered method's training step in session 1: %s\n"
          "  --batch B     images per step (>= 1; --method: default 16, sets train.batch)\n"
          "  --iters N     timed steps (default 5)\n"
          "  --warmup W    untimed steps first (default 1)\n"
          "  --threads T   threads (default: OpenBLAS's count; never more than the cores)\n"
          "  --seed S      seed of weights, images and labels (default 0)\n"
          "  --classes K   classes (default 100; --pet: of the cosine head)\n"
          "  --config FILE --method: trial config with method.* and train.* keys (default:\n"
          "                configs/methods/NAME.cfg if readable here, else the key defaults)\n"
          "  --session-classes K0  --method: session 1 holds classes [0, K0) (default 10)\n"
          "  --eval-batch E --method: images the backbone is created for (default: the batch\n"
          "                shard of one rank; a trial uses eval.batch)\n"
          "  key=value     --method: trial keys applied after the config file\n",
          vit_config_preset_names(), learn_method_names());
}

/* 0 ok, 1 help printed, 2 usage error. */
static int train_option(void *ctx, const char *key, const char *val, int *takes_value, int *ok) {
  train_args *a = ctx;
  const char **strings[] = {&a->pet, &a->method, &a->config};
  const char *string_keys[] = {"--pet", "--method", "--config"};
  for (int i = 0; i < 3; i++)
    if (!strcmp(key, string_keys[i]) && val) {
      *strings[i] = val;
      return 1;
    }
  if (cfg_is_override(key)) {
    a->overrides[a->n_overrides++] = (char *)key;
    *takes_value = 0;
    return 1;
  }
  if (!strcmp(key, "--classes"))
    *ok = bench_parse_long("train", key, val, 2, &a->classes);
  else if (!strcmp(key, "--session-classes"))
    *ok = bench_parse_long("train", key, val, 1, &a->session_classes);
  else if (!strcmp(key, "--eval-batch"))
    *ok = bench_parse_long("train", key, val, 1, &a->eval_batch);
  else
    return 0;
  return 1;
}

static int parse_args(int argc, char **argv, train_args *a) {
  *a = (train_args){.iters = 5, .warmup = 1, .classes = 100, .session_classes = 10};
  a->overrides = calloc((size_t)argc, sizeof *a->overrides);
  if (!a->overrides) {
    fprintf(stderr, "safecl bench train: out of memory\n");
    return 2;
  }
  const bench_common_opts common = {&a->arch,   &a->batch,   &a->iters,
                                    &a->warmup, &a->threads, &a->seed};
  int status = bench_parse(argc, argv, "train", &common, train_option, a, usage);
  if (status) return status;
  if (a->method && !a->batch) a->batch = 16;
  const char *bad = !a->arch                ? "--arch is required"
                    : !a->pet == !a->method ? "give exactly one of --pet and --method"
                    : a->batch < 1          ? "--pet needs --batch"
                    : a->pet && (a->config || a->n_overrides || a->eval_batch)
                        ? "--config, --eval-batch and key=value go with --method only"
                        : NULL;
  if (bad) {
    fprintf(stderr, "safecl bench train: %s\n\n", bad);
    usage(stderr);
    return 2;
  }
  return 0;
}

static scl_err pet_config_of(const char *name, pet_config *pc) {
  *pc = (pet_config){.adapter_dim = 64,
                     .adapter_scale = 0.1f,
                     .adapter_dropout = 0.1f,
                     .vpt_tokens = 5,
                     .prefix_len = 5,
                     .prefix_layers = 0xffffffffu};
  SCL_CALL(pet_kinds_parse(name, &pc->kinds));
  return SCL_OK;
}

/* Everything one step touches. */
typedef struct rig {
  vit_model *m;
  vit_trainer *t;
  pet_params *p;
  run_group g;
  int64_t B, K, D, lo, hi; /* global batch; this rank's rows [lo, hi) */
  float *images, *pet_buf;
  learn_head head;
  learn_step_buffers w;
  int64_t *labels, *index;
} rig;

static scl_err rig_create(rig *r, const train_args *a, const dist_comm *world) {
  vit_config cfg;
  pet_config pc;
  run_group_init(&r->g, world);
  SCL_CALL(vit_config_preset(a->arch, &cfg));
  SCL_CALL(pet_config_of(a->pet, &pc));
  r->B = a->batch, r->K = a->classes, r->D = cfg.width;
  learn_shard(r->B, r->g.size, r->g.rank, &r->lo, &r->hi);
  const int64_t shard = r->hi - r->lo > 0 ? r->hi - r->lo : 1;
  SCL_CALL(vit_model_create(&cfg, 1, (int)a->threads, &r->m));
  vit_model_init_random(r->m, (uint64_t)a->seed);
  SCL_CALL(pet_params_create(&cfg, &pc, &r->p));
  pet_params_init(r->p, (uint64_t)a->seed, 1);
  SCL_CALL(vit_trainer_create(r->m, &pc, shard, (int)a->threads, &r->t));
  SCL_CALL(learn_head_create(&r->head, r->K, r->D));
  SCL_CALL(learn_step_buffers_create(&r->w, r->B, r->K, r->D));
  SCL_CALL(scl_calloc((size_t)(r->p->count ? r->p->count : 1) * sizeof(float), "PET momentum",
                      (void **)&r->pet_buf));
  const int64_t img = cfg.in_chans * cfg.img_size * cfg.img_size;
  SCL_CALL(scl_alloc((size_t)(shard * img) * sizeof(float), "bench images", (void **)&r->images));
  SCL_CALL(scl_calloc((size_t)(2 * r->B) * sizeof(int64_t), "bench labels", (void **)&r->labels));
  r->index = r->labels + r->B;
  learn_cosine_init(r->head.p, learn_head_sigma(&r->head), r->K, r->D, (uint64_t)a->seed, 1, 10.0f);
  scl_rng rng;
  scl_rng_init(&rng, (uint64_t)a->seed, SCL_STREAM_SYNTHETIC, 0, 0);
  for (int64_t b = 0; b < r->B; b++) r->labels[b] = (int64_t)scl_rng_below(&rng, (uint32_t)r->K);
  for (int64_t b = r->lo; b < r->hi; b++) { /* image b is the same whichever rank holds it */
    scl_rng_init(&rng, (uint64_t)a->seed, SCL_STREAM_SYNTHETIC, 1, (uint32_t)b);
    for (int64_t i = 0; i < img; i++) r->images[(b - r->lo) * img + i] = scl_rng_uniformf(&rng);
  }
  return SCL_OK;
}

static void rig_destroy(rig *r) {
  vit_trainer_destroy(&r->t);
  pet_params_destroy(&r->p);
  vit_model_destroy(&r->m);
  learn_head_free(&r->head);
  learn_step_buffers_free(&r->w);
  scl_free(r->pet_buf);
  scl_free(r->images);
  scl_free(r->labels);
}

/* One data-parallel training step; fwd, bwd and comm receive this rank's seconds of the
 * trainer's forward, its backward and the PET gradient allreduce. */
static scl_err step(rig *r, int64_t s, double *fwd, double *bwd, double *comm, double *ce) {
  for (int64_t b = 0; b < r->B; b++) r->index[b] = s * r->B + b;
  const learn_batch batch = {.images = r->images,
                             .labels = r->labels + r->lo,
                             .index = r->index + r->lo,
                             .labels_all = r->labels,
                             .index_all = r->index,
                             .B = r->hi - r->lo,
                             .B_global = r->B,
                             .offset = r->lo};
  const vit_dropout_key key = {7, (uint32_t)s, 0, batch.index};
  const learn_sgd_cfg sgd = {0.9, 0.0, 0};
  const learn_param_group pet = {0, r->p->count, 1.0, 5e-4};
  const learn_param_group head[2] = {{0, r->K * r->D, 1.0, 5e-4}, {r->K * r->D, 1, 1.0, 5e-4}};
  pet_params_zero_grad(r->p);
  double t0 = scl_now();
  SCL_CALL(learn_tune_ce(&r->w, r->t, r->p, &r->head, &batch, r->K, &key, r->g.comm, ce));
  double t1 = scl_now();
  SCL_CALL(learn_tune_backward(r->t, r->p, r->w.dphi, r->D, &batch));
  double t2 = scl_now();
  SCL_CALL(learn_tune_sync(r->g.comm, r->p));
  double t3 = scl_now();
  learn_sgd_step(r->p->param, r->pet_buf, r->p->grad, s, 0.01, &sgd, &pet, 1);
  learn_sgd_step(r->head.p, r->head.buf, r->head.grad, s, 0.01, &sgd, head, 2);
  *fwd = t1 - t0;
  *bwd = t2 - t1;
  *comm = t3 - t2;
  return SCL_OK;
}

static scl_err run(const train_args *a, rig *r, const dist_comm *world) {
  SCL_CALL(rig_create(r, a, world));
  double fwd, bwd, comm, ce = 0.0, total = 0.0, best = 1e300, tf = 0.0, tb = 0.0, tc = 0.0;
  int64_t s = 0;
  for (; s < a->warmup; s++) SCL_CALL(step(r, s, &fwd, &bwd, &comm, &ce));
  SCL_CALL(dist_barrier(world));
  for (long it = 0; it < a->iters; it++, s++) {
    double t0 = scl_now();
    SCL_CALL(step(r, s, &fwd, &bwd, &comm, &ce));
    double dt = scl_now() - t0;
    total += dt, tf += fwd, tb += bwd, tc += comm;
    if (dt < best) best = dt;
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double rss = (double)ru.ru_maxrss / 1024.0, times[2] = {total, tc};
  SCL_CALL(dist_allreduce_f64(world, times, 2, DIST_MAX)); /* the slowest rank sets the pace */
  SCL_CALL(dist_allreduce_f64(world, &rss, 1, DIST_MAX));
  if (r->g.rank != 0) return SCL_OK;
  const double mean = times[0] / (double)a->iters, ips = (double)a->batch / mean;
  printf(
      "bench=train arch=%s pet=%s batch=%ld ranks=%d threads=%d iters=%ld s_per_iter=%.4f "
      "best_s_per_iter=%.4f img_per_s=%.3f best_img_per_s=%.3f fwd_s=%.4f bwd_s=%.4f "
      "allreduce_s=%.5f gflop_per_image=%.2f gflop_per_s=%.1f pet_params=%lld ce=%.4f "
      "peak_rss_mb=%.1f isa=%s\n",
      r->m->cfg.name, a->pet, a->batch, r->g.size, r->m->threads, a->iters, mean, best, ips,
      (double)a->batch / best, tf / (double)a->iters, tb / (double)a->iters,
      times[1] / (double)a->iters, vit_trainer_flops_per_image(r->t) * 1e-9,
      ips * vit_trainer_flops_per_image(r->t) * 1e-9, (long long)r->p->count, ce, rss,
      scl_simd_isa());
  return SCL_OK;
}

int cmd_bench_train(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "train") != 0) {
    fprintf(stderr, "safecl bench train: expected argv[1] = \"train\"\n\n");
    usage(stderr);
    return 2;
  }
  train_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc) {
    free(a.overrides);
    return rc == 1 ? 0 : 2;
  }
  if (a.method) {
    const bench_method_args m = {.arch = a.arch,
                                 .method = a.method,
                                 .config = a.config,
                                 .batch = a.batch,
                                 .iters = a.iters,
                                 .warmup = a.warmup,
                                 .threads = a.threads,
                                 .seed = a.seed,
                                 .classes = a.classes,
                                 .session_classes = a.session_classes,
                                 .eval_batch = a.eval_batch,
                                 .n_overrides = a.n_overrides,
                                 .overrides = a.overrides};
    rc = bench_train_method(&m);
    free(a.overrides);
    return rc;
  }
  free(a.overrides);
  rig r = {0};
  dist_comm *world = NULL;
  scl_err err = dist_comm_create(MPI_COMM_WORLD, &world);
  if (!err) err = run(&a, &r, world);
  if (err) scl_log_error_traceback();
  rig_destroy(&r);
  dist_comm_destroy(&world);
  return err ? 1 : 0;
}
