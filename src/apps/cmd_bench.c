/* cmd_bench.c: `safecl bench forward`: throughput of the frozen ViT forward.
 *
 * Weights and images are random (Philox, fixed seed), so no file is needed and two runs see the
 * same numbers. The model is created once (which also touches all of its memory), a few warm-up
 * forwards settle caches and OpenBLAS's buffers, then `iters` forwards are timed one by one;
 * the summary reports the mean and the best. gflop_per_s counts the full forward's matrix
 * products (vit_config_flops_per_image, 35.1 GFLOP per ViT-B/16 image) so it compares directly
 * with a framework computing every token; exec_gflop_per_s counts what was executed after the
 * last block is pruned to the class token. Peak RSS is the process high-water mark. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "safecl/bench.h"
#include "safecl/bench_args.h"
#include "safecl/bench_train.h"
#include "safecl/core.h"
#include "safecl/vit.h"

typedef struct bench_args {
  const char *arch;
  long batch, iters, warmup, threads, seed;
  int full_last_block;
} bench_args;

static void usage(FILE *f) {
  fprintf(f,
          "usage: safecl bench forward --arch A --batch B [--iters N] [--warmup W]\n"
          "                            [--threads T] [--seed S] [--full-last-block]\n\n"
          "  --arch A            ViT preset: %s\n"
          "  --batch B           images per forward (>= 1)\n"
          "  --iters N           timed forwards (default 10)\n"
          "  --warmup W          untimed forwards first (default 2)\n"
          "  --threads T         threads (default: OpenBLAS's count, OPENBLAS_NUM_THREADS)\n"
          "  --seed S            weights and images seed (default 0)\n"
          "  --full-last-block   compute every token of the last block, as PyTorch does\n",
          vit_config_preset_names());
}

static int forward_option(void *ctx, const char *key, const char *val, int *takes_value, int *ok) {
  (void)val, (void)ok;
  if (strcmp(key, "--full-last-block")) return 0;
  ((bench_args *)ctx)->full_last_block = 1;
  *takes_value = 0;
  return 1;
}

/* Returns 0 on success, 2 on a usage error, 1 when help was printed. */
static int parse_args(int argc, char **argv, bench_args *a) {
  *a = (bench_args){NULL, 0, 10, 2, 0, 0, 0};
  const bench_common_opts common = {&a->arch,   &a->batch,   &a->iters,
                                    &a->warmup, &a->threads, &a->seed};
  int status = bench_parse(argc, argv, "forward", &common, forward_option, a, usage);
  if (status) return status;
  if (!a->arch || a->batch < 1) {
    fprintf(stderr, "safecl bench forward: --arch and --batch are required\n\n");
    usage(stderr);
    return 2;
  }
  return 0;
}

/* FLOPs actually executed per image when the last block is pruned to the class token. */
static double executed_flops(const vit_model *m) {
  const vit_config *c = &m->cfg;
  const double D = (double)c->width, F = (double)c->mlp_hidden, N = (double)m->tokens;
  const double full_block = 2.0 * (N * D * 3.0 * D + 2.0 * N * N * D + N * D * D + 2.0 * N * D * F);
  const double last = 2.0 * (N * D * 3.0 * D + 2.0 * N * D + D * D + 2.0 * D * F);
  return vit_config_flops_per_image(c) - (m->full_last_block ? 0.0 : full_block - last);
}

static scl_err run_forward(const bench_args *a, vit_model **mp, float **images, float **out) {
  vit_config cfg;
  SCL_CALL(vit_config_preset(a->arch, &cfg));
  SCL_CALL(vit_model_create(&cfg, a->batch, (int)a->threads, mp));
  vit_model *m = *mp;
  m->full_last_block = a->full_last_block;
  vit_model_init_random(m, (uint64_t)a->seed);
  const int64_t img = cfg.in_chans * cfg.img_size * cfg.img_size;
  SCL_CALL(scl_alloc((size_t)(a->batch * img) * sizeof(float), "bench images", (void **)images));
  SCL_CALL(scl_alloc((size_t)(a->batch * cfg.width) * sizeof(float), "bench output", (void **)out));
  scl_rng rng;
  scl_rng_init(&rng, (uint64_t)a->seed, SCL_STREAM_SYNTHETIC, 0, 0);
  for (int64_t i = 0; i < a->batch * img; i++) (*images)[i] = scl_rng_uniformf(&rng);

  for (long w = 0; w < a->warmup; w++) SCL_CALL(vit_model_forward(m, *images, a->batch, *out));
  double total = 0.0, best = 1e300;
  for (long it = 0; it < a->iters; it++) {
    double t0 = scl_now();
    SCL_CALL(vit_model_forward(m, *images, a->batch, *out));
    double dt = scl_now() - t0;
    total += dt;
    if (dt < best) best = dt;
  }
  double checksum = 0.0;
  for (int64_t i = 0; i < a->batch * cfg.width; i++) checksum += (*out)[i];
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  const double mean = total / (double)a->iters, ips = (double)a->batch / mean;
  printf(
      "bench=forward arch=%s batch=%ld threads=%d iters=%ld full_last_block=%d "
      "s_per_iter=%.4f best_s_per_iter=%.4f img_per_s=%.3f best_img_per_s=%.3f "
      "gflop_per_s=%.1f exec_gflop_per_s=%.1f peak_rss_mb=%.1f checksum=%.6g isa=%s\n",
      cfg.name, a->batch, m->threads, a->iters, m->full_last_block, mean, best, ips,
      (double)a->batch / best, ips * vit_config_flops_per_image(&cfg) * 1e-9,
      ips * executed_flops(m) * 1e-9, (double)ru.ru_maxrss / 1024.0, checksum, scl_simd_isa());
  return SCL_OK;
}

int cmd_bench(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "train")) return cmd_bench_train(argc, argv);
  if (argc < 2 || strcmp(argv[1], "forward") != 0) {
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
      usage(stdout);
      return 0;
    }
    fprintf(stderr, "safecl bench: expected a benchmark name (forward, train)\n\n");
    usage(stderr);
    return 2;
  }
  bench_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc) return rc == 1 ? 0 : 2;
  vit_model *m = NULL;
  float *images = NULL, *out = NULL;
  scl_err err = run_forward(&a, &m, &images, &out);
  if (err) scl_log_error_traceback();
  scl_free(out);
  scl_free(images);
  vit_model_destroy(&m);
  return err ? 1 : 0;
}
