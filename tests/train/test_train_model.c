/* test_train_model.c: the trainer as a whole on a tiny ViT (width 32, depth 2, heads 2, image
 * 32, patch 16, so N = 5 tokens): finite differences of every PET tensor for each PET type,
 * dropout masks, and the contract pet.h states.
 *
 *   fd        every element of every PET tensor, L = sum(dcls * cls) of a keyed forward (dropout
 *             on: the mask is a fixed function of the key), against vit_trainer_backward
 *   masks     vit_trainer_dropout_mask == learn_dropout_mask(site = pass * 1000 + layer), and a
 *             sample gets the same mask, features and gradient whichever batch position it takes
 *   infer     inference between forward and backward leaves the gradient bit-identical; its
 *             features equal an unkeyed training forward's
 *   released  adapters at their released init (W_up = 0) give the frozen model's features
 *   threads   1 and 2 threads agree
 *   refusals  backward without a matching forward, a PET block of another kind
 *   layout    ViT-B/16 parameter counts of docs/methods.md b.2-b.4 and the released initial values;
 *             every typed pet_layout field is the offset of the tensor its name says, every
 *             tensor is reached by exactly one field, and pet_layout_create agrees
 *   names     pet_kinds_parse / pet_kinds_format round trip, the vpt alias, unknown names refused
 * Exit status: number of failures (capped). */
#include "safecl/learn.h"
#include "safecl/pet.h"
#include "safecl/vit.h"
#include "common/nn_harness.h"

#define B_TEST 3
#define FD_EPS 5e-2
/* FD_TOL: the Richardson estimate's truncation error, O(FD_EPS^4), and the float gradient's own
 * rounding (sums of at most 128 terms, ~1e-5 relative); the forward's rounding noise is
 * measured and allowed on top (nn_harness.h fd_check_ex) */
#define FD_TOL 5e-3

typedef struct rig {
  vit_model *m;
  vit_trainer *t;
  pet_params *p;
  float *images, *cls, *dcls;
  vit_dropout_key key;
  int64_t index[8];
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

static pet_config pet_of(unsigned kinds) {
  pet_config pc = {.kinds = kinds,
                   .adapter_dim = 8,
                   .adapter_scale = 0.1f,
                   .adapter_dropout = 0.25f,
                   .vpt_tokens = 3,
                   .prefix_len = 2,
                   .prefix_layers = 0x3};
  return pc;
}

/* Random PET values away from the init, so that no path is hidden by a zero. The adapter's
 * down projection gets biases of +-1.5 and small weights, so that no ReLU input sits within a
 * finite-difference step of its kink (the kernel test covers the kink's both sides). */
static void randomise(pet_params *p, uint32_t seed) {
  scl_rng rng;
  scl_rng_init(&rng, 9, SCL_STREAM_SYNTHETIC, 2, seed);
  for (int i = 0; i < p->n_tensors; i++) {
    const pet_tensor *t = &p->tensors[i];
    const float base = strstr(t->name, ".scale") ? 1.0f : 0.0f;
    const int down_w = strstr(t->name, "down.weight") != NULL;
    const int down_b = strstr(t->name, "down.bias") != NULL;
    for (int64_t k = 0; k < t->numel; k++) {
      float v = base + 0.4f * (scl_rng_uniformf(&rng) - 0.5f);
      if (down_w) v *= 0.1f;
      if (down_b) v = (k % 2 ? -1.5f : 1.5f) + v;
      p->param[t->offset + k] = v;
    }
  }
}

/* timm-scale random weights are nearly linear at this size; four times larger ones make the
 * attention and the MLP non-trivial, so the prefix gradients are not lost in rounding noise. */
static void scale_matrices(vit_model *m) {
  for (int i = 0; i < m->n_tensors; i++) {
    vit_tensor *t = &m->tensors[i];
    if (t->ndim >= 2 && !strstr(t->name, "pos_embed") && !strstr(t->name, "cls_token"))
      for (int64_t k = 0; k < t->numel; k++) t->data[k] *= 4.0f;
  }
}

/* *out is filled in place: the key points at out->index. */
static void rig_create(rig *out, unsigned kinds, int threads, int64_t B) {
  rig r = {0};
  vit_config c = tiny();
  pet_config pc = pet_of(kinds);
  die(vit_model_create(&c, B, threads, &r.m));
  vit_model_init_random(r.m, 3);
  scale_matrices(r.m);
  die(pet_params_create(&c, &pc, &r.p));
  randomise(r.p, kinds);
  die(vit_trainer_create(r.m, &pc, B, threads, &r.t));
  r.images = rand_buf(B * 3 * 32 * 32, 0, 1, 70);
  r.cls = buf(B * 32);
  r.dcls = rand_buf(B * 32, -1, 1, 71);
  *out = r;
  for (int64_t b = 0; b < B; b++) out->index[b] = 100 + 11 * b;
  out->key = (vit_dropout_key){5, 17, 1, out->index};
}

static void rig_destroy(rig *r) {
  vit_trainer_destroy(&r->t);
  pet_params_destroy(&r->p);
  vit_model_destroy(&r->m);
}

static double model_loss(void *ctx) {
  rig *r = ctx;
  die(vit_trainer_forward(r->t, r->p, r->images, B_TEST, &r->key, r->cls));
  return weighted_sum(r->dcls, r->cls, B_TEST * 32);
}

static void fd_model(unsigned kinds, const char *label) {
  rig r;
  rig_create(&r, kinds, 2, B_TEST);
  pet_params_zero_grad(r.p);
  model_loss(&r);
  die(vit_trainer_backward(r.t, r.p, r.dcls, B_TEST));
  for (int i = 0; i < r.p->n_tensors; i++) {
    const pet_tensor *t = &r.p->tensors[i];
    char what[96];
    snprintf(what, sizeof what, "fd %s %s", label, t->name);
    fd_check_ex(what, r.p->param + t->offset, r.p->grad + t->offset, t->numel, model_loss, &r,
                FD_EPS, FD_TOL, 1);
  }
  rig_destroy(&r);
}

static void masks_match_learn(void) {
  const int64_t n = 5 * 64 + 3; /* not a whole number of Philox blocks */
  uint8_t a[5 * 64 + 3], b[5 * 64 + 3];
  int same = 1;
  for (uint32_t pass = 0; pass < 2; pass++)
    for (int64_t layer = 0; layer < 12; layer += 5)
      for (int64_t index = 0; index < 3000; index += 977) {
        vit_trainer_dropout_mask(a, n, 0.1f, 77, 1234, pass, index, layer);
        learn_dropout_mask(b, n, 0.1f, 77, 1234, (uint32_t)index, pass * 1000u + (uint32_t)layer);
        same &= !memcmp(a, b, (size_t)n);
      }
  printf("%s dropout mask == learn_dropout_mask(site = pass * 1000 + layer)\n",
         same ? "PASS" : "FAIL");
  failures += !same;
}

/* The batch reversed (indices with it): features and gradients follow the samples. */
static void mask_position_invariance(void) {
  rig r;
  rig_create(&r, PET_ADAPTER, 2, B_TEST);
  float *cls2 = buf(B_TEST * 32), *img2 = buf(B_TEST * 3 * 32 * 32), *dcls2 = buf(B_TEST * 32);
  const int64_t img = 3 * 32 * 32;
  int64_t idx2[B_TEST];
  for (int64_t b = 0; b < B_TEST; b++) {
    const int64_t s = B_TEST - 1 - b;
    memcpy(img2 + b * img, r.images + s * img, (size_t)img * sizeof(float));
    memcpy(dcls2 + b * 32, r.dcls + s * 32, 32 * sizeof(float));
    idx2[b] = r.index[s];
  }
  pet_params_zero_grad(r.p);
  die(vit_trainer_forward(r.t, r.p, r.images, B_TEST, &r.key, r.cls));
  die(vit_trainer_backward(r.t, r.p, r.dcls, B_TEST));
  float *g1 = copy_buf(r.p->grad, r.p->count);
  vit_dropout_key k2 = r.key;
  k2.index = idx2;
  pet_params_zero_grad(r.p);
  die(vit_trainer_forward(r.t, r.p, img2, B_TEST, &k2, cls2));
  die(vit_trainer_backward(r.t, r.p, dcls2, B_TEST));
  for (int64_t b = 0; b < B_TEST; b++)
    check("sample features independent of batch position", cls2 + b * 32,
          r.cls + (B_TEST - 1 - b) * 32, 32, 1e-6, 1e-5);
  check("gradient independent of batch positions", r.p->grad, g1, r.p->count, 1e-6, 1e-4);
  rig_destroy(&r);
}

/* forward -> backward, against forward -> infer(p) -> infer(NULL) -> backward. */
static void infer_keeps_activations(unsigned kinds, const char *label) {
  rig r;
  rig_create(&r, kinds, 2, B_TEST);
  float *other = buf(B_TEST * 32), *plain = buf(B_TEST * 32);
  pet_params_zero_grad(r.p);
  die(vit_trainer_forward(r.t, r.p, r.images, B_TEST, &r.key, r.cls));
  die(vit_trainer_backward(r.t, r.p, r.dcls, B_TEST));
  float *g1 = copy_buf(r.p->grad, r.p->count);
  pet_params_zero_grad(r.p);
  die(vit_trainer_forward(r.t, r.p, r.images, B_TEST, &r.key, r.cls));
  die(vit_trainer_infer(r.t, r.p, r.images, B_TEST, other));
  die(vit_trainer_infer(r.t, NULL, r.images, B_TEST, other));
  die(vit_trainer_backward(r.t, r.p, r.dcls, B_TEST));
  char what[96];
  snprintf(what, sizeof what, "%s: infer between forward and backward", label);
  check(what, r.p->grad, g1, r.p->count, 0, 0);
  die(vit_trainer_infer(r.t, r.p, r.images, B_TEST, other));
  die(vit_trainer_forward(r.t, r.p, r.images, B_TEST, NULL, plain));
  snprintf(what, sizeof what, "%s: infer = unkeyed forward", label);
  check(what, other, plain, B_TEST * 32, 0, 0);
  rig_destroy(&r);
}

/* Inference of more images than max_batch runs in chunks and equals the per-batch results. */
static void infer_beyond_max_batch(void) {
  rig r;
  rig_create(&r, PET_VPT_DEEP | PET_ADAPTER, 2, B_TEST);
  const int64_t n = 2 * B_TEST + 1, img = 3 * 32 * 32;
  float *images = rand_buf(n * img, 0, 1, 72), *all = buf(n * 32), *one = buf(n * 32);
  die(vit_trainer_infer(r.t, r.p, images, n, all));
  for (int64_t b = 0; b < n; b++)
    die(vit_trainer_infer(r.t, r.p, images + b * img, 1, one + b * 32));
  check("infer of 2 max_batch + 1 images = one by one", all, one, n * 32, 1e-6, 1e-5);
  rig_destroy(&r);
}

static void released_init_is_frozen_model(void) {
  rig r;
  rig_create(&r, PET_ADAPTER, 2, B_TEST);
  float *ref = buf(B_TEST * 32);
  pet_params_init(r.p, 1, 2); /* W_up = b_up = 0: the adapter adds nothing */
  die(vit_trainer_forward(r.t, r.p, r.images, B_TEST, &r.key, r.cls));
  die(vit_model_forward(r.m, r.images, B_TEST, ref));
  check("released adapter init = frozen model features", r.cls, ref, B_TEST * 32, 1e-5, 1e-5);
  rig_destroy(&r);
}

static void threads_agree(void) {
  const unsigned kinds = PET_ADAPTER | PET_SSF | PET_VPT_DEEP | PET_PREFIX;
  rig a;
  rig b;
  rig_create(&a, kinds, 1, B_TEST);
  rig_create(&b, kinds, 2, B_TEST);
  pet_params_zero_grad(a.p), pet_params_zero_grad(b.p);
  die(vit_trainer_forward(a.t, a.p, a.images, B_TEST, &a.key, a.cls));
  die(vit_trainer_backward(a.t, a.p, a.dcls, B_TEST));
  die(vit_trainer_forward(b.t, b.p, b.images, B_TEST, &b.key, b.cls));
  die(vit_trainer_backward(b.t, b.p, b.dcls, B_TEST));
  check("1 vs 2 threads: features", b.cls, a.cls, B_TEST * 32, 1e-6, 1e-5);
  check("1 vs 2 threads: gradient", b.p->grad, a.p->grad, a.p->count, 1e-6, 1e-4);
  rig_destroy(&a), rig_destroy(&b);
}

static void expect_error(const char *what, scl_err err) {
  printf("%s refused: %s (%s)\n", err ? "PASS" : "FAIL", what,
         err ? scl_error_message() : "accepted");
  failures += !err;
  scl_error_clear();
}

static void refusals(void) {
  rig r;
  rig_create(&r, PET_ADAPTER, 2, B_TEST);
  expect_error("backward before any forward", vit_trainer_backward(r.t, r.p, r.dcls, B_TEST));
  die(vit_trainer_forward(r.t, r.p, r.images, 2, &r.key, r.cls));
  expect_error("backward of another batch size", vit_trainer_backward(r.t, r.p, r.dcls, B_TEST));
  pet_params *q = NULL;
  vit_config c = tiny();
  pet_config pc = pet_of(PET_SSF);
  die(pet_params_create(&c, &pc, &q));
  expect_error("forward with an SSF block on an adapter trainer",
               vit_trainer_forward(r.t, q, r.images, 2, NULL, r.cls));
  expect_error("batch above max_batch",
               vit_trainer_forward(r.t, r.p, r.images, B_TEST + 1, NULL, r.cls));
  pet_params_destroy(&q);
  rig_destroy(&r);
}

static int64_t numel_total(const pet_params *p) {
  int64_t n = 0;
  for (int i = 0; i < p->n_tensors; i++) n += p->tensors[i].numel;
  return n;
}

/* Mean, standard deviation and largest magnitude of one tensor, in double. */
static void stats(const pet_params *p, const char *name, double *mean, double *sd, double *amax) {
  const pet_tensor *t = pet_params_find(p, name);
  double s = 0.0, s2 = 0.0, m = 0.0;
  for (int64_t k = 0; t && k < t->numel; k++) {
    const double v = p->param[t->offset + k];
    s += v, s2 += v * v, m = fabs(v) > m ? fabs(v) : m;
  }
  const double n = t ? (double)t->numel : 1.0;
  *mean = s / n, *sd = sqrt(s2 / n - (s / n) * (s / n)), *amax = m;
}

static void expect(const char *what, int ok, double got) {
  printf("%s %s (%.6g)\n", ok ? "PASS" : "FAIL", what, got);
  failures += !ok;
}

static void released_layout(void) {
  vit_config c;
  die(vit_config_preset("vit_base_patch16_224", &c));
  const unsigned kinds[3] = {PET_ADAPTER, PET_SSF, PET_VPT_DEEP};
  const int64_t want[3] = {1189632, 205824, 46080}; /* docs/methods.md b.2, b.3, b.4 */
  for (int k = 0; k < 3; k++) {
    pet_config pc = {.kinds = kinds[k],
                     .adapter_dim = 64,
                     .adapter_scale = 0.1f,
                     .adapter_dropout = 0.1f,
                     .vpt_tokens = 5};
    pet_params *p = NULL;
    die(pet_params_create(&c, &pc, &p));
    pet_params_init(p, 3, 4);
    char what[96];
    snprintf(what, sizeof what, "ViT-B/16 PET kinds 0x%x has %lld parameters", kinds[k],
             (long long)want[k]);
    expect(what, numel_total(p) == want[k], (double)numel_total(p));
    double mean, sd, amax;
    if (kinds[k] == PET_ADAPTER) {
      stats(p, "blocks.5.adapter.down.weight", &mean, &sd, &amax);
      expect("adapter down.weight ~ U(+-1/sqrt(768)): max |w| <= bound", amax <= 1.0 / sqrt(768.0),
             amax);
      expect("adapter down.weight: sd = bound / sqrt 3 within 2%",
             fabs(sd * sqrt(3.0 * 768.0) - 1.0) < 0.02, sd * sqrt(3.0 * 768.0));
      stats(p, "blocks.5.adapter.up.weight", &mean, &sd, &amax);
      expect("adapter up.weight = 0", amax == 0.0, amax);
      stats(p, "blocks.5.adapter.down.bias", &mean, &sd, &amax);
      expect("adapter down.bias = 0", amax == 0.0, amax);
    } else if (kinds[k] == PET_SSF) {
      stats(p, "blocks.3.ssf.fc1.scale", &mean, &sd, &amax);
      expect("ssf scale ~ N(1, 0.02): mean", fabs(mean - 1.0) < 0.002, mean);
      expect("ssf scale ~ N(1, 0.02): sd", fabs(sd - 0.02) < 0.002, sd);
      stats(p, "blocks.3.ssf.fc1.shift", &mean, &sd, &amax);
      expect("ssf shift ~ N(0, 0.02): sd", fabs(sd - 0.02) < 0.002 && fabs(mean) < 0.002, sd);
    } else {
      stats(p, "vpt.prompts", &mean, &sd, &amax);
      expect("vpt prompts = 0 (released)", amax == 0.0, amax);
    }
    pet_params_destroy(&p);
  }
}

/* Field offset == named tensor's offset; marks the tensor as reached. */
static void field_is(const pet_params *p, int64_t field, const char *name, int *reached) {
  const pet_tensor *t = pet_params_find(p, name);
  char what[128];
  snprintf(what, sizeof what, "layout field of %s", name);
  expect(what, t && field == t->offset, (double)field);
  if (t) reached[t - p->tensors]++;
}

static void typed_layout(void) {
  vit_config c = tiny();
  pet_config pc = pet_of(PET_ADAPTER | PET_SSF | PET_VPT_DEEP | PET_PREFIX);
  pet_params *p = NULL;
  die(pet_params_create(&c, &pc, &p));
  int *reached = calloc((size_t)p->n_tensors, sizeof *reached);
  static const char *const site[PET_SSF_SITES] = {"ln1", "qkv", "proj", "ln2", "fc1", "fc2"};
  const pet_layout *L = &p->layout;
  char n[96];
  field_is(p, L->ssf_patch.scale, "ssf.patch.scale", reached);
  field_is(p, L->ssf_patch.shift, "ssf.patch.shift", reached);
  field_is(p, L->ssf_norm.scale, "ssf.norm.scale", reached);
  field_is(p, L->ssf_norm.shift, "ssf.norm.shift", reached);
  field_is(p, L->vpt, "vpt.prompts", reached);
  for (int l = 0; l < (int)c.depth; l++) {
    const pet_block *b = &L->blocks[l];
    for (int k = 0; k < PET_SSF_SITES; k++) {
      snprintf(n, sizeof n, "blocks.%d.ssf.%s.scale", l, site[k]);
      field_is(p, b->ssf[k].scale, n, reached);
      snprintf(n, sizeof n, "blocks.%d.ssf.%s.shift", l, site[k]);
      field_is(p, b->ssf[k].shift, n, reached);
    }
    const int64_t *ad[4] = {&b->adapter.down_w, &b->adapter.down_b, &b->adapter.up_w,
                            &b->adapter.up_b};
    static const char *const ad_name[4] = {"down.weight", "down.bias", "up.weight", "up.bias"};
    for (int k = 0; k < 4; k++) {
      snprintf(n, sizeof n, "blocks.%d.adapter.%s", l, ad_name[k]);
      field_is(p, *ad[k], n, reached);
    }
    snprintf(n, sizeof n, "prefix.%d.key", l);
    field_is(p, b->prefix.key, n, reached);
    snprintf(n, sizeof n, "prefix.%d.value", l);
    field_is(p, b->prefix.value, n, reached);
    expect("deep prompts of block l at vpt + l T D", b->prompts == L->vpt + l * 3 * 32,
           (double)b->prompts);
  }
  int once = 1;
  for (int i = 0; i < p->n_tensors; i++) once &= reached[i] == 1;
  expect("every tensor reached by exactly one field", once, (double)p->n_tensors);
  pet_layout lay;
  die(pet_layout_create(&c, &pc, &lay));
  int same = lay.count == L->count && lay.vpt == L->vpt &&
             !memcmp(lay.blocks, L->blocks, (size_t)c.depth * sizeof *lay.blocks);
  expect("pet_layout_create = the layout of pet_params_create", same, (double)lay.count);
  pet_layout_destroy(&lay);
  pet_config shallow = pet_of(PET_VPT_SHALLOW);
  die(pet_layout_create(&c, &shallow, &lay));
  expect("shallow prompts enter before block 0 only",
         lay.blocks[0].prompts == lay.vpt && lay.blocks[1].prompts == -1, (double)lay.vpt);
  expect("tokens with 3 VPT prompts = N + 3", pet_config_tokens(&c, &shallow) == 5 + 3,
         (double)pet_config_tokens(&c, &shallow));
  pet_layout_destroy(&lay);
  free(reached);
  pet_params_destroy(&p);
}

static void kind_names(void) {
  unsigned k = 0;
  char buf[64];
  die(pet_kinds_parse("adapter,ssf,vpt_deep,prefix", &k));
  expect("parse a list", k == (PET_ADAPTER | PET_SSF | PET_VPT_DEEP | PET_PREFIX), k);
  expect("format a list",
         !strcmp(pet_kinds_format(k, buf, sizeof buf), "adapter,ssf,vpt_deep,prefix"), k);
  die(pet_kinds_parse("vpt", &k));
  expect("vpt is vpt_deep", k == PET_VPT_DEEP, k);
  die(pet_kinds_parse("none", &k));
  expect("none", k == 0 && !strcmp(pet_kinds_format(k, buf, sizeof buf), "none"), k);
  const char *all[] = {"adapter", "ssf", "vpt_deep", "vpt_shallow", "prefix"};
  for (int i = 0; i < 5; i++) {
    die(pet_kinds_parse(all[i], &k));
    expect(all[i], !strcmp(pet_kinds_format(k, buf, sizeof buf), all[i]), k);
  }
  expect_error("an unknown kind name", pet_kinds_parse("adaptor", &k));
  expect_error("an empty name in a list", pet_kinds_parse("ssf,", &k));
}

int main(void) {
  fd_model(PET_ADAPTER, "adapter");
  fd_model(PET_SSF, "ssf");
  fd_model(PET_VPT_DEEP, "vpt_deep");
  fd_model(PET_VPT_SHALLOW, "vpt_shallow");
  fd_model(PET_PREFIX, "prefix");
  fd_model(PET_ADAPTER | PET_SSF | PET_VPT_DEEP | PET_PREFIX, "all");
  masks_match_learn();
  mask_position_invariance();
  infer_keeps_activations(PET_ADAPTER, "adapter");
  infer_keeps_activations(PET_SSF | PET_VPT_SHALLOW, "ssf+vpt_shallow");
  infer_beyond_max_batch();
  released_init_is_frozen_model();
  threads_agree();
  refusals();
  released_layout();
  typed_layout();
  kind_names();
  release_buffers();
  printf("%s: %d failure(s)\n", failures ? "FAILED" : "all checks passed", failures);
  return failures > 100 ? 100 : failures;
}
