/* cmd_bench_train.c: `safecl bench train`: throughput and memory of one PET training step.
 *
 * The step is SAFE's per-batch work minus its optional second pass: vit_trainer_forward (keyed,
 * so adapter dropout draws its masks), the cosine head and cross-entropy, the head's backward,
 * vit_trainer_backward, and an SGD step (momentum 0.9, weight decay 5e-4) on PET and head, all
 * on random weights, images and labels from fixed seeds. Everything is allocated before the
 * timed steps; a few warm-up steps settle caches and OpenBLAS's buffers, then `iters` steps are
 * timed one by one. gflop_per_s counts the matrix products the step executes
 * (vit_trainer_flops_per_image); peak_rss_mb is the process high-water mark, which includes the
 * frozen weights (343 MB for ViT-B/16). The backbone is created for one image: the trainer
 * keeps its own activations, and this benchmark never runs the frozen model alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "safecl/bench_args.h"
#include "safecl/bench_train.h"
#include "safecl/core.h"
#include "safecl/learn.h"
#include "safecl/pet.h"
#include "safecl/vit.h"

typedef struct train_args {
  const char *arch, *pet;
  long batch, iters, warmup, threads, seed, classes;
} train_args;

static void usage(FILE *f) {
  fprintf(f,
          "usage: safecl bench train --arch A --pet KIND --batch B [--iters N] [--warmup W]\n"
          "                          [--threads T] [--seed S] [--classes K]\n\n"
          "  --arch A      ViT preset: %s\n"
          "  --pet KIND    adapter (AdaptFormer, 64, dropout 0.1), ssf, vpt (deep, 5 prompts),\n"
          "                vpt_shallow, prefix (length 5 on every block)\n"
          "  --batch B     images per step (>= 1)\n"
          "  --iters N     timed steps (default 5)\n"
          "  --warmup W    untimed steps first (default 1)\n"
          "  --threads T   threads (default: OpenBLAS's count; never more than the cores)\n"
          "  --seed S      seed of weights, images and labels (default 0)\n"
          "  --classes K   cosine-head classes (default 100)\n",
          vit_config_preset_names());
}

/* 0 ok, 1 help printed, 2 usage error. */
static int parse_args(int argc, char **argv, train_args *a) {
  *a = (train_args){NULL, NULL, 0, 5, 1, 0, 0, 100};
  const bench_common_opts common = {&a->arch,   &a->batch,   &a->iters,
                                    &a->warmup, &a->threads, &a->seed};
  for (int i = 2; i < argc; i++) {
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int ok = 1;
    if (!strcmp(k, "--help") || !strcmp(k, "-h")) {
      usage(stdout);
      return 1;
    } else if (!strcmp(k, "--pet") && v) {
      a->pet = v;
    } else if (!strcmp(k, "--classes")) {
      ok = bench_parse_long("train", k, v, 2, &a->classes);
    } else if (bench_common_option("train", k, v, &common, &ok)) {
    } else {
      fprintf(stderr, "safecl bench train: unknown or incomplete argument '%s'\n\n", k);
      usage(stderr);
      return 2;
    }
    if (!ok) return 2;
    i++;
  }
  if (!a->arch || !a->pet || a->batch < 1) {
    fprintf(stderr, "safecl bench train: --arch, --pet and --batch are required\n\n");
    usage(stderr);
    return 2;
  }
  return 0;
}

static scl_err pet_config_of(const char *name, pet_config *pc) {
  *pc = (pet_config){0, 64, 0.1f, 0.1f, 5, 0, 5, 0xffffffffu};
  if (!strcmp(name, "adapter"))
    pc->kinds = PET_ADAPTER;
  else if (!strcmp(name, "ssf"))
    pc->kinds = PET_SSF;
  else if (!strcmp(name, "vpt") || !strcmp(name, "vpt_deep"))
    pc->kinds = PET_VPT_DEEP;
  else if (!strcmp(name, "vpt_shallow"))
    pc->kinds = PET_VPT_SHALLOW;
  else if (!strcmp(name, "prefix"))
    pc->kinds = PET_PREFIX;
  else
    return SCL_ERROR(SCL_ERR_ARG, "--pet '%s': expected adapter, ssf, vpt, vpt_shallow or prefix",
                     name);
  return SCL_OK;
}

/* Everything one step touches. */
typedef struct rig {
  vit_model *m;
  vit_trainer *t;
  pet_params *p;
  int64_t B, K, D;
  float *mem; /* one block: images, head, head grad/buf, pet buf, activations of the head */
  float *images, *head, *head_grad, *head_buf, *pet_buf, *phi, *dphi, *logits, *dlogits, *cache_mem,
      *scratch;
  int64_t *labels, *index;
} rig;

static scl_err rig_alloc(rig *r, const vit_config *c) {
  const int64_t B = r->B, K = r->K, D = r->D, P = learn_cosine_params(K, D);
  const int64_t img = c->in_chans * c->img_size * c->img_size;
  const int64_t sizes[] = {B * img,
                           P,
                           P,
                           P,
                           r->p->count,
                           B * D,
                           B * D,
                           B * K,
                           B * K,
                           (int64_t)learn_cosine_cache_floats(B, K, D),
                           (int64_t)learn_cosine_backward_scratch(B, K, D)};
  float **views[] = {&r->images, &r->head,   &r->head_grad, &r->head_buf,  &r->pet_buf, &r->phi,
                     &r->dphi,   &r->logits, &r->dlogits,   &r->cache_mem, &r->scratch};
  const int n = (int)(sizeof sizes / sizeof sizes[0]);
  int64_t total = 0;
  for (int i = 0; i < n; i++) total += (sizes[i] + 15) / 16 * 16;
  SCL_CALL(scl_calloc((size_t)total * sizeof(float), "bench buffers", (void **)&r->mem));
  int64_t off = 0;
  for (int i = 0; i < n; i++) {
    *views[i] = r->mem + off;
    off += (sizes[i] + 15) / 16 * 16;
  }
  SCL_CALL(scl_calloc((size_t)(2 * B) * sizeof(int64_t), "bench labels", (void **)&r->labels));
  r->index = r->labels + B;
  return SCL_OK;
}

static scl_err rig_create(rig *r, const train_args *a) {
  vit_config cfg;
  pet_config pc;
  SCL_CALL(vit_config_preset(a->arch, &cfg));
  SCL_CALL(pet_config_of(a->pet, &pc));
  SCL_CALL(vit_model_create(&cfg, 1, (int)a->threads, &r->m));
  vit_model_init_random(r->m, (uint64_t)a->seed);
  SCL_CALL(pet_params_create(&cfg, &pc, &r->p));
  pet_params_init(r->p, (uint64_t)a->seed, 1);
  SCL_CALL(vit_trainer_create(r->m, &pc, a->batch, (int)a->threads, &r->t));
  r->B = a->batch, r->K = a->classes, r->D = cfg.width;
  SCL_CALL(rig_alloc(r, &cfg));
  learn_cosine_init(r->head, r->head + r->K * r->D, r->K, r->D, (uint64_t)a->seed, 1, 10.0f);
  scl_rng rng;
  scl_rng_init(&rng, (uint64_t)a->seed, SCL_STREAM_SYNTHETIC, 0, 0);
  const int64_t n_img = r->B * cfg.in_chans * cfg.img_size * cfg.img_size;
  for (int64_t i = 0; i < n_img; i++) r->images[i] = scl_rng_uniformf(&rng);
  for (int64_t b = 0; b < r->B; b++) r->labels[b] = (int64_t)scl_rng_below(&rng, (uint32_t)r->K);
  return SCL_OK;
}

static void rig_destroy(rig *r) {
  vit_trainer_destroy(&r->t);
  pet_params_destroy(&r->p);
  vit_model_destroy(&r->m);
  scl_free(r->mem);
  scl_free(r->labels);
}

/* Head forward, CE, head backward: dphi and the head gradient from phi. */
static double head_step(rig *r) {
  const int64_t B = r->B, K = r->K, D = r->D;
  learn_cosine_cache cache = learn_cosine_cache_bind(r->cache_mem, B, K, D);
  learn_cosine_forward(r->logits, &cache, r->phi, r->head, r->head + K * D, B, K, D);
  memset(r->dlogits, 0, (size_t)(B * K) * sizeof(float));
  const double ce = learn_ce_loss(r->dlogits, r->logits, r->labels, B, K, 1.0);
  memset(r->dphi, 0, (size_t)(B * D) * sizeof(float));
  memset(r->head_grad, 0, (size_t)(K * D + 1) * sizeof(float));
  learn_cosine_backward(r->dphi, r->head_grad, r->head_grad + K * D, r->scratch, r->dlogits, r->phi,
                        r->head, r->head + K * D, &cache, B, K, D);
  return ce;
}

/* One training step; fwd and bwd receive the trainer's forward and backward seconds. */
static scl_err step(rig *r, int64_t s, double *fwd, double *bwd, double *ce) {
  for (int64_t b = 0; b < r->B; b++) r->index[b] = s * r->B + b;
  const vit_dropout_key key = {7, (uint32_t)s, 0, r->index};
  const learn_sgd_cfg sgd = {0.9, 0.0, 0};
  const learn_param_group pet = {0, r->p->count, 1.0, 5e-4};
  const learn_param_group head[2] = {{0, r->K * r->D, 1.0, 5e-4}, {r->K * r->D, 1, 1.0, 5e-4}};
  double t0 = scl_now();
  SCL_CALL(vit_trainer_forward(r->t, r->p, r->images, r->B, &key, r->phi));
  double t1 = scl_now();
  *ce = head_step(r);
  pet_params_zero_grad(r->p);
  double t2 = scl_now();
  SCL_CALL(vit_trainer_backward(r->t, r->p, r->dphi, r->B));
  double t3 = scl_now();
  learn_sgd_step(r->p->param, r->pet_buf, r->p->grad, s, 0.01, &sgd, &pet, 1);
  learn_sgd_step(r->head, r->head_buf, r->head_grad, s, 0.01, &sgd, head, 2);
  *fwd = t1 - t0;
  *bwd = t3 - t2;
  return SCL_OK;
}

static scl_err run(const train_args *a, rig *r) {
  SCL_CALL(rig_create(r, a));
  double fwd, bwd, ce = 0.0, total = 0.0, best = 1e300, tf = 0.0, tb = 0.0;
  int64_t s = 0;
  for (; s < a->warmup; s++) SCL_CALL(step(r, s, &fwd, &bwd, &ce));
  for (long it = 0; it < a->iters; it++, s++) {
    double t0 = scl_now();
    SCL_CALL(step(r, s, &fwd, &bwd, &ce));
    double dt = scl_now() - t0;
    total += dt, tf += fwd, tb += bwd;
    if (dt < best) best = dt;
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  const double mean = total / (double)a->iters, ips = (double)a->batch / mean;
  printf(
      "bench=train arch=%s pet=%s batch=%ld threads=%d iters=%ld s_per_iter=%.4f "
      "best_s_per_iter=%.4f img_per_s=%.3f best_img_per_s=%.3f fwd_s=%.4f bwd_s=%.4f "
      "gflop_per_image=%.2f gflop_per_s=%.1f pet_params=%lld ce=%.4f peak_rss_mb=%.1f\n",
      r->m->cfg.name, a->pet, a->batch, r->m->threads, a->iters, mean, best, ips,
      (double)a->batch / best, tf / (double)a->iters, tb / (double)a->iters,
      vit_trainer_flops_per_image(r->t) * 1e-9, ips * vit_trainer_flops_per_image(r->t) * 1e-9,
      (long long)r->p->count, ce, (double)ru.ru_maxrss / 1024.0);
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
  if (rc) return rc == 1 ? 0 : 2;
  rig r = {0};
  scl_err err = run(&a, &r);
  if (err) scl_log_error_traceback();
  rig_destroy(&r);
  return err ? 1 : 0;
}
