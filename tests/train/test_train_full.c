/* test_train_full.c: full fine-tuning (PET_FULL, docs/pet.md) on a tiny ViT (width 32, depth 2,
 * heads 2, image 32, patch 16, so N = 5 tokens), beside the PyTorch parity of every tensor in
 * test_full_parity.py:
 *
 *   fd           central differences (Richardson) of L = sum(dcls * cls) for a sample of 8
 *                entries of every backbone tensor of the copy, against vit_trainer_backward
 *   determinism  two forward+backward runs at the same thread count give bit-identical features
 *                and gradients (1 and 2 threads differ by float reassociation only: the chunk
 *                sums differ, so they are compared with a tolerance); an inference between
 *                forward and backward leaves the gradient bit-identical; a second backward
 *                adds the same gradient again (+=)
 *   copy         pet_params_copy_backbone gives the frozen model's features; pet_params_init
 *                leaves the copy alone; every tensor is backbone.<timm name> at the model's
 *                offset in its parameter block, the region is the block's padded size (ViT-B/16:
 *                its 85,798,656 parameters); the planner's FLOPs count the weight gradients
 *   refusals     full with another kind, a copy between different ViT shapes (the field is
 *                named), a copy into a block without full, a block of another kind or none on a
 *                full-tuning trainer, the kind name full (printed, never parsed)
 * Exit status: number of failures (capped). */
#include <stdint.h>

#include "safecl/pet.h"
#include "safecl/vit.h"
#include "common/nn_harness.h"

#define B_TEST 3
#define FD_EPS 2e-2
#define FD_TOL 5e-3 /* truncation and the float gradient's rounding (test_train_model.c) */
#define FD_SAMPLES 8

typedef struct rig {
  vit_model *m;
  vit_trainer *t;
  pet_params *p;
  float *images, *cls, *dcls;
} rig;

static void die(scl_err err) {
  if (err) {
    scl_log_error_traceback();
    exit(2);
  }
}

static vit_config tiny(void) {
  vit_config c = {"tiny-test", 32, 16, 3, 32, 2, 2, 128, 1e-6f};
  return c;
}

static const pet_config full_config = {.kinds = PET_FULL};

/* The copy away from the model: matrices 4 times larger (timm-scale weights are nearly linear
 * at this size), LayerNorm weights 1 +- 0.2 and biases +- 0.1, so that no path is hidden by a
 * zero or a one, and the model's own weights differ from the copy everywhere. */
static void randomise_copy(pet_params *p) {
  scl_rng rng;
  scl_rng_init(&rng, 9, SCL_STREAM_SYNTHETIC, 3, 0);
  for (int i = 0; i < p->n_tensors; i++) {
    const pet_tensor *t = &p->tensors[i];
    float *x = p->param + t->offset;
    const int norm_w = strstr(t->name, "norm") && strstr(t->name, ".weight");
    const int bias = strstr(t->name, ".bias") != NULL;
    for (int64_t k = 0; k < t->numel; k++) {
      const float u = scl_rng_uniformf(&rng) - 0.5f;
      if (norm_w)
        x[k] = 1.0f + 0.4f * u;
      else if (bias)
        x[k] = 0.2f * u;
      else
        x[k] = 4.0f * x[k] + 0.02f * u;
    }
  }
}

static void rig_create(rig *r, int threads) {
  vit_config c = tiny();
  *r = (rig){0};
  die(vit_model_create(&c, B_TEST, threads, &r->m));
  vit_model_init_random(r->m, 3);
  die(pet_params_create(&c, &full_config, &r->p));
  die(pet_params_copy_backbone(r->p, r->m));
  randomise_copy(r->p);
  die(vit_trainer_create(r->m, &full_config, B_TEST, threads, &r->t));
  r->images = rand_buf(B_TEST * 3 * 32 * 32, 0, 1, 70);
  r->cls = buf(B_TEST * 32);
  r->dcls = rand_buf(B_TEST * 32, -1, 1, 71);
}

static void rig_destroy(rig *r) {
  vit_trainer_destroy(&r->t);
  pet_params_destroy(&r->p);
  vit_model_destroy(&r->m);
}

static double model_loss(void *ctx) {
  rig *r = ctx;
  die(vit_trainer_forward(r->t, r->p, r->images, B_TEST, NULL, r->cls));
  return weighted_sum(r->dcls, r->cls, B_TEST * 32);
}

/* forward + backward into a zeroed gradient */
static void step(rig *r) {
  pet_params_zero_grad(r->p);
  die(vit_trainer_forward(r->t, r->p, r->images, B_TEST, NULL, r->cls));
  die(vit_trainer_backward(r->t, r->p, r->dcls, B_TEST));
}

static void fd_full(void) {
  rig r;
  rig_create(&r, 2);
  step(&r);
  /* the forward's rounding noise, sampled once over every parameter (nn_harness.h fd_noise):
   * each Richardson estimate below is within 3 delta / FD_EPS of its exact value */
  const double noise =
      3.0 * fd_noise(r.p->param, r.p->grad, r.p->count, model_loss, &r, FD_EPS) / FD_EPS;
  scl_rng rng;
  scl_rng_init(&rng, 9, SCL_STREAM_SYNTHETIC, 4, 0);
  for (int i = 0; i < r.p->n_tensors; i++) {
    const pet_tensor *t = &r.p->tensors[i];
    const int64_t n = t->numel < FD_SAMPLES ? t->numel : FD_SAMPLES;
    float got[FD_SAMPLES];
    double fd[FD_SAMPLES];
    for (int64_t k = 0; k < n; k++) { /* one entry in each of n equal slices of the tensor */
      const int64_t lo = t->numel * k / n, hi = t->numel * (k + 1) / n;
      const int64_t j = lo + (int64_t)(scl_rng_uniform(&rng) * (double)(hi - lo));
      float *x = r.p->param + t->offset + j;
      double full, half;
      fd_grad(&full, x, 1, model_loss, &r, FD_EPS);
      fd_grad(&half, x, 1, model_loss, &r, FD_EPS / 2);
      fd[k] = (4.0 * half - full) / 3.0;
      got[k] = r.p->grad[t->offset + j];
    }
    char what[96];
    snprintf(what, sizeof what, "fd %s", t->name);
    check_rel_noise(what, got, fd, n, FD_TOL, noise);
  }
  rig_destroy(&r);
}

static void same_bits(const char *what, const float *a, const float *b, int64_t n) {
  const int same = memcmp(a, b, (size_t)n * sizeof(float)) == 0;
  printf("%s %s: %lld floats %s\n", same ? "PASS" : "FAIL", what, (long long)n,
         same ? "bit-identical" : "differ");
  failures += !same;
}

static void determinism(void) {
  rig a, b, one;
  rig_create(&a, 2);
  rig_create(&b, 2);
  rig_create(&one, 1);
  step(&a);
  step(&b);
  same_bits("2 threads, two trainers: features", a.cls, b.cls, B_TEST * 32);
  same_bits("2 threads, two trainers: gradient", a.p->grad, b.p->grad, a.p->count);
  float *g1 = copy_buf(a.p->grad, a.p->count), *other = buf(B_TEST * 32);
  step(&a);
  same_bits("2 threads, the same trainer again: gradient", a.p->grad, g1, a.p->count);
  pet_params_zero_grad(a.p);
  die(vit_trainer_forward(a.t, a.p, a.images, B_TEST, NULL, a.cls));
  die(vit_trainer_infer(a.t, a.p, b.images + 3 * 32 * 32, 2, other));
  die(vit_trainer_infer(a.t, NULL, a.images, B_TEST, other));
  die(vit_trainer_backward(a.t, a.p, a.dcls, B_TEST));
  same_bits("inference between forward and backward: gradient", a.p->grad, g1, a.p->count);
  step(&one);
  check("1 vs 2 threads: features", one.cls, a.cls, B_TEST * 32, 1e-6, 1e-5);
  double *ref = malloc((size_t)a.p->count * sizeof(double));
  if (!ref) exit(2);
  for (int64_t k = 0; k < a.p->count; k++) ref[k] = a.p->grad[k];
  for (int i = 0; i < a.p->n_tensors; i++) { /* float reassociation: 1e-4 as test_train_model.c */
    const pet_tensor *t = &a.p->tensors[i];
    char what[96];
    snprintf(what, sizeof what, "1 vs 2 threads: %s", t->name);
    check_rel(what, one.p->grad + t->offset, ref + t->offset, t->numel, 1e-4);
  }
  free(ref);
  /* A second backward adds the gradient again: 2 g1 up to the rounding of sums that start at
   * g1 instead of 0, a few ulps of the tensor's largest element (1e-5 relative). */
  die(vit_trainer_backward(a.t, a.p, a.dcls, B_TEST));
  double *twice = malloc((size_t)a.p->count * sizeof(double));
  if (!twice) exit(2);
  for (int64_t k = 0; k < a.p->count; k++) twice[k] = 2.0 * g1[k];
  check_rel("a second backward adds the gradient again", a.p->grad, twice, a.p->count, 1e-5);
  free(twice);
  rig_destroy(&a), rig_destroy(&b), rig_destroy(&one);
}

static void expect(const char *what, int ok) {
  printf("%s %s\n", ok ? "PASS" : "FAIL", what);
  failures += !ok;
}

static void expect_error(const char *what, scl_err err, const char *needle) {
  const int ok = err && (!needle || strstr(scl_error_message(), needle));
  printf("%s refused: %s (%s)\n", ok ? "PASS" : "FAIL", what,
         err ? scl_error_message() : "accepted");
  failures += !ok;
  scl_error_clear();
}

/* The copy is the model's parameter block tensor for tensor, and gives the model's features. */
static void copy_and_layout(void) {
  rig r;
  rig_create(&r, 2);
  vit_model *m = r.m;
  pet_params *p = r.p;
  int names = p->n_tensors == m->n_tensors, offsets = names;
  for (int i = 0; names && i < m->n_tensors; i++) {
    const pet_tensor *t = &p->tensors[i];
    char want[64];
    snprintf(want, sizeof want, "backbone.%s", m->tensors[i].name);
    names &=
        !strcmp(t->name, want) && t->numel == m->tensors[i].numel && t->ndim == m->tensors[i].ndim;
    for (int d = 0; d < t->ndim; d++) names &= t->shape[d] == m->tensors[i].shape[d];
    offsets &= t->offset - p->layout.full == (int64_t)(m->tensors[i].data - m->param_block);
  }
  expect("every tensor is backbone.<timm name> with the model's shape", names);
  expect("every tensor sits at the model's offset in its parameter block", offsets);
  const vit_tensor *last = &m->tensors[m->n_tensors - 1];
  expect("the region is the model's padded parameter block",
         p->layout.full == 0 &&
             p->count == (int64_t)(last->data - m->param_block) + scl_pad_floats(last->numel));
  /* The planner's count: every GEMM with a weight three times (forward, input gradient, weight
   * gradient; the patch embedding twice: the image needs no gradient), attention's two products
   * 3.5 times (forward, backward, probabilities recomputed per head); the last block's tail and
   * attention queries on the class row alone. */
  const double N = 5, D = 32, F = 128, K = 3 * 16 * 16;
  double want = 2.0 * 2.0 * (N - 1) * K * D;
  for (int l = 0; l < 2; l++) {
    const double rows = l == 1 ? 1 : N;
    want += 3.0 * (2.0 * N * 3 * D * D) + 3.0 * (2.0 * rows * (D * D + 2 * D * F)) +
            3.5 * (4.0 * rows * N * D);
  }
  const double flops = vit_trainer_flops_per_image(r.t);
  printf("%s planner FLOPs per image %.0f, expected %.0f\n", flops == want ? "PASS" : "FAIL", flops,
         want);
  failures += flops != want;
  vit_config base;
  pet_layout lay;
  die(vit_config_preset("vit_base_patch16_224", &base));
  die(pet_layout_create(&base, &full_config, &lay));
  expect("ViT-B/16: the region is the 85,798,656 parameters (no padding at these shapes)",
         lay.full == 0 && lay.count == vit_config_param_count(&base) && lay.count == 85798656);
  pet_layout_destroy(&lay);
  expect("pet_params_find names a backbone tensor",
         pet_params_find(p, "backbone.blocks.1.attn.qkv.weight") == &p->tensors[4 + 12 + 2]);
  die(pet_params_copy_backbone(p, m));
  float *g0 = copy_buf(p->param, p->count), *ref = buf(B_TEST * 32);
  pet_params_init(p, 1, 2);
  same_bits("pet_params_init leaves the backbone copy alone", p->param, g0, p->count);
  die(vit_trainer_forward(r.t, p, r.images, B_TEST, NULL, r.cls));
  die(vit_model_forward(m, r.images, B_TEST, ref));
  check("copy of the backbone: the frozen model's features", r.cls, ref, B_TEST * 32, 1e-6, 1e-5);
  rig_destroy(&r);
}

static void refusals(void) {
  vit_config c = tiny(), deeper = tiny();
  deeper.depth = 3;
  pet_params *p = NULL, *q = NULL;
  vit_model *m = NULL;
  pet_config both = {.kinds = PET_FULL | PET_ADAPTER, .adapter_dim = 8};
  expect_error("full fine-tuning with an adapter", pet_params_create(&c, &both, &p),
               "cannot be combined");
  die(vit_model_create(&c, 1, 1, &m));
  die(pet_params_create(&deeper, &full_config, &p));
  expect_error("copy of a depth-2 backbone into a depth-3 block", pet_params_copy_backbone(p, m),
               "depth is 3");
  pet_config ad = {.kinds = PET_ADAPTER, .adapter_dim = 8};
  die(pet_params_create(&c, &ad, &q));
  expect_error("copy of the backbone into an adapter block", pet_params_copy_backbone(q, m), NULL);
  vit_trainer *t = NULL;
  die(vit_trainer_create(m, &full_config, 1, 1, &t));
  float *img = rand_buf(3 * 32 * 32, 0, 1, 73), *out = buf(32);
  expect_error("forward with an adapter block on a full-tuning trainer",
               vit_trainer_forward(t, q, img, 1, NULL, out), NULL);
  expect_error("forward without a block on a full-tuning trainer",
               vit_trainer_forward(t, NULL, img, 1, NULL, out), NULL);
  vit_trainer_destroy(&t);
  unsigned kinds = 0;
  char name[32];
  expect_error("the kind name full (set by the method, not parsed)",
               pet_kinds_parse("full", &kinds), "'full'");
  expect("PET_FULL prints as full", !strcmp(pet_kinds_format(PET_FULL, name, sizeof name), "full"));
  pet_params_destroy(&p), pet_params_destroy(&q);
  vit_model_destroy(&m);
}

int main(void) {
  fd_full();
  determinism();
  copy_and_layout();
  refusals();
  release_buffers();
  printf("%s: %d failure(s)\n", failures ? "FAILED" : "all checks passed", failures);
  return failures > 100 ? 100 : failures;
}
