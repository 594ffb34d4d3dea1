/* full_tuning.c: what a data-parallel full fine-tuning step (PET_FULL, docs/pet.md) costs on top of
 * its compute: the wall time of one allreduce of the whole gradient (the backbone copy's padded
 * parameter block, 85.8 M floats on ViT-B/16) over the ranks of the job, against the time of a
 * forward + backward of `batch` images on one rank, and the memory the full-tuning trainer adds
 * (tests/bench/FULL_TUNING.md).
 *
 *   mpiexec -n P bench_full_tuning [--arch vit_base_patch16_224] [--batch 16] [--threads 2]
 *                                  [--iters 2] [--reduce-iters 5] [--step 0|1]
 * --step 1 (default with one rank) times the step on rank 0 alone, the other ranks waiting
 * asleep, so that the ranks of an oversubscribed node do not share its cores while it runs;
 * --step 0 only reduces. Prints one line per measurement: the slowest rank's mean seconds of the
 * allreduce after one warm-up, and rank 0's step with the trainer's resident memory. Random
 * weights and synthetic images: the numbers measure the engine, not the data. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/dist_mpi.h"
#include "safecl/pet.h"
#include "safecl/vit.h"
#include "../common/rss.h"

typedef struct opts {
  const char *arch;
  int64_t batch;
  int threads, iters, reduce_iters, step;
} opts;

/* Forward + backward of o->batch synthetic images through the full-tuning trainer. */
static scl_err step(const opts *o, const vit_config *c) {
  vit_model *m = NULL;
  vit_trainer *t = NULL;
  pet_params *p = NULL;
  const pet_config full = {.kinds = PET_FULL};
  const int64_t B = o->batch, D = c->width, img = c->in_chans * c->img_size * c->img_size;
  float *images = malloc((size_t)(B * img) * sizeof(float));
  float *io = malloc((size_t)(2 * B * D) * sizeof(float));
  scl_err err = SCL_OK;
  if (!images || !io) SCL_ERROR_GOTO(err, done, SCL_ERR_NOMEM, "bench buffers");
  for (int64_t i = 0; i < B * img; i++) images[i] = (float)(i % 255) / 255.0f;
  for (int64_t i = 0; i < B * D; i++) io[B * D + i] = 1e-3f * (float)(i % 7);
  SCL_CALL_GOTO(err, vit_model_create(c, B, o->threads, &m), done);
  vit_model_init_random(m, 1);
  const double r0 = rss_mb();
  SCL_CALL_GOTO(err, pet_params_create(c, &full, &p), done);
  SCL_CALL_GOTO(err, pet_params_copy_backbone(p, m), done);
  const double r1 = rss_mb();
  SCL_CALL_GOTO(err, vit_trainer_create(m, &full, B, o->threads, &t), done);
  const double r2 = rss_mb();
  double tf = 0.0, tb = 0.0;
  for (int it = 0; it <= o->iters; it++) { /* iteration 0 warms up */
    const double t0 = scl_now();
    SCL_CALL_GOTO(err, vit_trainer_forward(t, p, images, B, NULL, io), done);
    const double t1 = scl_now();
    SCL_CALL_GOTO(err, vit_trainer_backward(t, p, io + B * D, B), done);
    const double t2 = scl_now();
    if (it) tf += t1 - t0, tb += t2 - t1;
  }
  printf(
      "step %s batch %lld threads %d: forward %.2f s, backward %.2f s, step %.2f s (%.2f img/s, "
      "%.0f GFLOP/s at the planner's %.1f GFLOP/img); memory: params+grad %.0f MB, trainer %.0f "
      "MB, process %.0f MB\n",
      c->name, (long long)B, o->threads, tf / o->iters, tb / o->iters, (tf + tb) / o->iters,
      (double)B * o->iters / (tf + tb),
      vit_trainer_flops_per_image(t) * (double)B * o->iters / (tf + tb) / 1e9,
      vit_trainer_flops_per_image(t) / 1e9, r1 - r0, r2 - r1, rss_mb());
  fflush(stdout);
done:
  vit_trainer_destroy(&t);
  pet_params_destroy(&p);
  vit_model_destroy(&m);
  free(images), free(io);
  return err;
}

/* o->reduce_iters allreduces (sum) of a gradient the size of the full-tuning block. */
static scl_err reduce(const opts *o, const dist_comm *w, const vit_config *c) {
  pet_params *p = NULL;
  const pet_config full = {.kinds = PET_FULL};
  SCL_CALL(pet_params_create(c, &full, &p));
  for (int64_t i = 0; i < p->count; i++) p->grad[i] = 1e-6f * (float)(i % 1000);
  scl_err err = SCL_OK;
  double total = 0.0;
  for (int it = 0; it <= o->reduce_iters && !err; it++) { /* iteration 0 warms up */
    err = dist_barrier(w);
    const double t0 = scl_now();
    if (!err) err = dist_allreduce_f32(w, p->grad, p->count, DIST_SUM);
    double dt = scl_now() - t0;
    if (!err) err = dist_allreduce_f64(w, &dt, 1, DIST_MAX);
    if (it) total += dt;
  }
  if (!err && dist_comm_rank(w) == 0)
    printf("allreduce %s ranks %d: %lld floats (%.0f MB), %.3f s (slowest rank, mean of %d)\n",
           c->name, dist_comm_size(w), (long long)p->count, (double)p->count * 4.0 / 1e6,
           total / o->reduce_iters, o->reduce_iters);
  pet_params_destroy(&p);
  return err;
}

static int parse(int argc, char **argv, opts *o) {
  *o = (opts){"vit_base_patch16_224", 16, 2, 2, 5, -1};
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--arch"))
      o->arch = v;
    else if (!strcmp(k, "--batch"))
      o->batch = atol(v);
    else if (!strcmp(k, "--threads"))
      o->threads = atoi(v);
    else if (!strcmp(k, "--iters"))
      o->iters = atoi(v);
    else if (!strcmp(k, "--reduce-iters"))
      o->reduce_iters = atoi(v);
    else if (!strcmp(k, "--step"))
      o->step = atoi(v);
    else
      return 0;
  }
  return argc % 2 == 1 && o->batch >= 1 && o->iters >= 1 && o->reduce_iters >= 1;
}

int main(int argc, char **argv) {
  opts o;
  if (dist_init(&argc, &argv) != SCL_OK) return 1;
  dist_comm *w = NULL;
  vit_config c;
  scl_err err = SCL_OK;
  if (!parse(argc, argv, &o)) {
    fprintf(stderr, "usage: see the header of tests/bench/full_tuning.c\n");
    err = SCL_ERROR(SCL_ERR_ARG, "bench_full_tuning usage");
  }
  if (!err) err = dist_comm_create(MPI_COMM_WORLD, &w);
  if (!err) err = vit_config_preset(o.arch, &c);
  if (!err && o.step < 0) o.step = dist_comm_size(w) == 1;
  if (!err && o.step && dist_comm_rank(w) == 0) err = step(&o, &c);
  if (w && o.step) {
    scl_err e = dist_barrier_sleep(w, 1);
    if (!err) err = e;
  }
  if (!err && dist_comm_size(w) > 1) err = reduce(&o, w, &c);
  if (err) scl_log_error_traceback();
  dist_comm_destroy(&w);
  if (dist_finalize() != SCL_OK) return 1;
  return err ? 1 : 0;
}
