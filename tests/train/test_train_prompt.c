/* test_train_prompt.c: the trainer's per-image prompt inputs (pet.h vit_prompt_io) on a tiny ViT
 * (width 32, depth 3, heads 2, image 32, patch 16: N = 5 tokens): input tokens after the class
 * token (PET_INPUT_PROMPT, pooled as L2P's output or not) and per-image key/value prefixes
 * (PET_SAMPLE_PREFIX), alone and combined with learner tensors.
 *
 *   fd          every element of tokens, pk, pv (and of the learner's tensors in the combined
 *               cases), L = sum(dout * out), against vit_trainer_backward_io; central differences
 *               of a float forward accumulated in double, with Richardson extrapolation and the
 *               forward's rounding noise allowed (nn_harness.h fd_check_ex)
 *   independent an image's inference output is bit-identical alone, in a batch of 7 and in a
 *               permuted batch, at 1 and 2 threads; in training (multi-image GEMMs) its output and
 *               rows of dtokens / dpk / dpv agree with it alone within float reassociation
 *   infer       vit_trainer_infer_io of more images than max_batch (chunks offset the io rows)
 *               equals the forward one image at a time
 *   lend work   the model's forward in a prompt trainer's working set (vit_trainer_create_lending)
 *               gives the same bits, between the trainer's steps and after it is destroyed
 *   refusals    io missing or given where it does not apply, missing per-block prefixes, bad
 *               combinations and sizes at create
 * Exit status: number of failures (capped). */
#include "safecl/pet.h"
#include "safecl/vit.h"
#include "common/nn_harness.h"

#define D_ 32
#define DEPTH 3
#define IMG (3 * 32 * 32)
#define NMAX 7
#define FD_EPS 5e-2
#define FD_TOL 5e-3 /* truncation and the float gradient's rounding, as test_train_model.c */

static void die(scl_err err) {
  if (err) {
    scl_log_error_traceback();
    exit(2);
  }
}

static vit_config tiny(void) {
  vit_config c = {"tiny-test", 32, 16, 3, D_, DEPTH, 2, 128, 1e-6f};
  return c;
}

/* Per-image inputs of NMAX images: tokens (NMAX, Tin, D), prefixes (NMAX, L, D) at each
 * prefixed block, gradients likewise. */
typedef struct rig {
  vit_model *m;
  vit_trainer *t;
  pet_params *p; /* NULL when the config has only per-image kinds */
  pet_config pc;
  int64_t B;
  float *images, *out, *dout;
  vit_prompt_io io;
} rig;

/* Four times timm's scale, so that attention and MLP are not nearly linear (test_train_model.c). */
static void scale_matrices(vit_model *m) {
  for (int i = 0; i < m->n_tensors; i++) {
    vit_tensor *t = &m->tensors[i];
    if (t->ndim >= 2 && !strstr(t->name, "pos_embed") && !strstr(t->name, "cls_token"))
      for (int64_t k = 0; k < t->numel; k++) t->data[k] *= 4.0f;
  }
}

static void rig_create(rig *r, pet_config pc, int threads, int64_t B) {
  memset(r, 0, sizeof *r);
  vit_config c = tiny();
  r->pc = pc;
  r->B = B;
  die(vit_model_create(&c, B, threads, &r->m));
  vit_model_init_random(r->m, 3);
  scale_matrices(r->m);
  if (pc.kinds & ~(unsigned)(PET_INPUT_PROMPT | PET_SAMPLE_PREFIX)) {
    die(pet_params_create(&c, &pc, &r->p));
    for (int64_t k = 0; k < r->p->count; k++) /* away from the init */
      r->p->param[k] = 0.3f * (float)((k * 7919) % 101 - 50) / 50.0f;
    /* No adapter ReLU input within a finite-difference step of its kink (where the estimate
     * has no error bound): down biases +-1.5 and down weights ten times smaller, as in
     * test_train_model.c (the kernel test covers the kink's both sides). */
    for (int i = 0; i < r->p->n_tensors; i++) {
      const pet_tensor *t = &r->p->tensors[i];
      for (int64_t k = 0; k < t->numel; k++) {
        if (strstr(t->name, "down.bias")) r->p->param[t->offset + k] = k % 2 ? -1.5f : 1.5f;
        if (strstr(t->name, "down.weight")) r->p->param[t->offset + k] *= 0.1f;
      }
    }
  }
  die(vit_trainer_create(r->m, &pc, B, threads, &r->t));
  r->images = rand_buf(NMAX * IMG, 0, 1, 70);
  r->out = buf(NMAX * D_);
  r->dout = rand_buf(NMAX * D_, -1, 1, 71);
  if (pc.kinds & PET_INPUT_PROMPT) {
    r->io.tokens = rand_buf(NMAX * pc.input_tokens * D_, -1, 1, 72);
    r->io.dtokens = buf(NMAX * pc.input_tokens * D_);
  }
  for (int l = 0; l < DEPTH; l++)
    if ((pc.kinds & PET_SAMPLE_PREFIX) && (pc.sample_prefix_layers >> l & 1u)) {
      const int64_t n = NMAX * pc.sample_prefix_len * D_;
      r->io.pk[l] = rand_buf(n, -1, 1, 80 + (uint32_t)l);
      r->io.pv[l] = rand_buf(n, -1, 1, 90 + (uint32_t)l);
      r->io.dpk[l] = buf(n);
      r->io.dpv[l] = buf(n);
    }
}

static void rig_destroy(rig *r) {
  vit_trainer_destroy(&r->t);
  pet_params_destroy(&r->p);
  vit_model_destroy(&r->m);
}

static void zero_grads(rig *r) {
  const pet_config *pc = &r->pc;
  if (r->p) pet_params_zero_grad(r->p);
  if (r->io.dtokens) memset(r->io.dtokens, 0, (size_t)(NMAX * pc->input_tokens * D_) * 4);
  for (int l = 0; l < DEPTH; l++)
    if (r->io.dpk[l]) {
      memset(r->io.dpk[l], 0, (size_t)(NMAX * pc->sample_prefix_len * D_) * 4);
      memset(r->io.dpv[l], 0, (size_t)(NMAX * pc->sample_prefix_len * D_) * 4);
    }
}

static double loss(void *ctx) {
  rig *r = ctx;
  die(vit_trainer_forward_io(r->t, r->p, r->images, r->B, NULL, &r->io, r->out));
  return weighted_sum(r->dout, r->out, r->B * D_);
}

static void fd_case(const char *label, pet_config pc) {
  rig r;
  rig_create(&r, pc, 2, 3);
  zero_grads(&r);
  loss(&r);
  die(vit_trainer_backward_io(r.t, r.p, r.dout, r.B, &r.io));
  char what[96];
  if (r.io.tokens) {
    snprintf(what, sizeof what, "fd %s tokens", label);
    fd_check_ex(what, (float *)r.io.tokens, r.io.dtokens, r.B * pc.input_tokens * D_, loss, &r,
                FD_EPS, FD_TOL, 1);
  }
  for (int l = 0; l < DEPTH; l++)
    if (r.io.pk[l]) {
      const int64_t n = r.B * pc.sample_prefix_len * D_;
      snprintf(what, sizeof what, "fd %s pk[%d]", label, l);
      fd_check_ex(what, (float *)r.io.pk[l], r.io.dpk[l], n, loss, &r, FD_EPS, FD_TOL, 1);
      snprintf(what, sizeof what, "fd %s pv[%d]", label, l);
      fd_check_ex(what, (float *)r.io.pv[l], r.io.dpv[l], n, loss, &r, FD_EPS, FD_TOL, 1);
    }
  for (int i = 0; r.p && i < r.p->n_tensors; i++) {
    const pet_tensor *t = &r.p->tensors[i];
    snprintf(what, sizeof what, "fd %s %s", label, t->name);
    fd_check_ex(what, r.p->param + t->offset, r.p->grad + t->offset, t->numel, loss, &r, FD_EPS,
                FD_TOL, 1);
  }
  rig_destroy(&r);
}

/* The io rows of images perm[0..n) of src, gathered into the rows of dst's buffers (which are
 * src's shape). */
static void gather_io(vit_prompt_io *dst, const vit_prompt_io *src, const pet_config *pc,
                      const int *perm, int n) {
  const int64_t tk = pc->input_tokens * D_, pf = pc->sample_prefix_len * D_;
  for (int i = 0; i < n; i++) {
    if (src->tokens)
      memcpy((float *)dst->tokens + i * tk, src->tokens + perm[i] * tk, (size_t)tk * 4);
    for (int l = 0; l < DEPTH; l++)
      if (src->pk[l]) {
        memcpy((float *)dst->pk[l] + i * pf, src->pk[l] + perm[i] * pf, (size_t)pf * 4);
        memcpy((float *)dst->pv[l] + i * pf, src->pv[l] + perm[i] * pf, (size_t)pf * 4);
      }
  }
}

/* Runs images perm[0..n) (with their io rows and upstream gradients) through forward and
 * backward on r (max_batch >= n); out rows and gradient rows in perm order into the outputs. */
static void run_subset(rig *r, const rig *src, const int *perm, int n, float *out, float *dtok,
                       float **dpk, float **dpv) {
  for (int i = 0; i < n; i++) {
    memcpy(r->images + i * IMG, src->images + perm[i] * IMG, IMG * sizeof(float));
    memcpy(r->dout + i * D_, src->dout + perm[i] * D_, D_ * sizeof(float));
  }
  gather_io(&r->io, &src->io, &src->pc, perm, n);
  zero_grads(r);
  die(vit_trainer_forward_io(r->t, r->p, r->images, n, NULL, &r->io, out));
  die(vit_trainer_backward_io(r->t, r->p, r->dout, n, &r->io));
  const int64_t tk = src->pc.input_tokens * D_, pf = src->pc.sample_prefix_len * D_;
  if (dtok) memcpy(dtok, r->io.dtokens, (size_t)(n * tk) * 4);
  for (int l = 0; l < DEPTH; l++)
    if (dpk[l]) {
      memcpy(dpk[l], r->io.dpk[l], (size_t)(n * pf) * 4);
      memcpy(dpv[l], r->io.dpv[l], (size_t)(n * pf) * 4);
    }
}

/* Bitwise equality of image perm[i]'s rows (width w) of got against row perm[i] of ref. */
static int same_rows(const float *got, const float *ref, const int *perm, int n, int64_t w) {
  int same = 1;
  for (int i = 0; i < n; i++) same &= !memcmp(got + i * w, ref + perm[i] * w, (size_t)w * 4);
  return same;
}

/* Rows perm[i] of ref against rows i of got (width w) within tol times the largest |ref|: a batch
 * of images sums in another order than one image alone (OpenBLAS blocks GEMMs by the rows of a
 * call). Bound: each output is a chain of at most depth x 3 reductions of at most F = 128 float
 * terms, relative error <= 3 x 3 x 128 x 2^-24 = 6.9e-5 of the magnitudes involved; tol = 2e-4. */
static int close_rows(const float *got, const float *ref, const int *perm, int n, int64_t w) {
  double scale = 0.0, worst = 0.0;
  for (int i = 0; i < n; i++)
    for (int64_t j = 0; j < w; j++) {
      const double r = ref[perm[i] * w + j], d = fabs((double)got[i * w + j] - r);
      scale = fabs(r) > scale ? fabs(r) : scale;
      worst = d > worst || d != d ? d : worst;
    }
  return worst <= 2e-4 * scale;
}

/* Each image alone (1 thread, max_batch 1) is the reference; batches of 7 in order and permuted,
 * at 1 and 2 threads, must reproduce its inference output bit for bit and its training output
 * and gradient rows within close_rows' bound. */
static void independence(const char *label, pet_config pc) {
  rig alone;
  rig_create(&alone, pc, 1, 1);
  const int64_t tk = pc.input_tokens * D_, pf = pc.sample_prefix_len * D_;
  float *out = buf(NMAX * D_), *dtok = buf(NMAX * tk + 1), *dpk[PET_MAX_LAYERS] = {0},
        *dpv[PET_MAX_LAYERS] = {0};
  float *out2 = buf(NMAX * D_), *dtok2 = buf(NMAX * tk + 1), *dpk2[PET_MAX_LAYERS] = {0},
        *dpv2[PET_MAX_LAYERS] = {0};
  for (int l = 0; l < DEPTH; l++)
    if (alone.io.pk[l])
      dpk[l] = buf(NMAX * pf), dpv[l] = buf(NMAX * pf), dpk2[l] = buf(NMAX * pf),
      dpv2[l] = buf(NMAX * pf);
  rig ref;
  rig_create(&ref, pc, 1, NMAX); /* holds the original inputs; its trainer is not used */
  for (int b = 0; b < NMAX; b++) {
    float *pk1[PET_MAX_LAYERS] = {0}, *pv1[PET_MAX_LAYERS] = {0};
    for (int l = 0; l < DEPTH; l++)
      if (dpk[l]) pk1[l] = dpk[l] + b * pf, pv1[l] = dpv[l] + b * pf;
    run_subset(&alone, &ref, &b, 1, out + b * D_, alone.io.tokens ? dtok + b * tk : NULL, pk1, pv1);
  }
  const int order[NMAX] = {0, 1, 2, 3, 4, 5, 6}, shuffled[NMAX] = {4, 0, 6, 2, 5, 1, 3};
  for (int threads = 1; threads <= 2; threads++)
    for (int s = 0; s < 2; s++) {
      const int *perm = s ? shuffled : order;
      rig batch;
      rig_create(&batch, pc, threads, NMAX);
      run_subset(&batch, &ref, perm, NMAX, out2, alone.io.tokens ? dtok2 : NULL, dpk2, dpv2);
      int close = close_rows(out2, out, perm, NMAX, D_);
      if (alone.io.tokens) close &= close_rows(dtok2, dtok, perm, NMAX, tk);
      for (int l = 0; l < DEPTH; l++)
        if (dpk[l])
          close &= close_rows(dpk2[l], dpk[l], perm, NMAX, pf) &&
                   close_rows(dpv2[l], dpv[l], perm, NMAX, pf);
      die(vit_trainer_infer_io(batch.t, batch.p, batch.images, NMAX, &batch.io, out2));
      const int same = same_rows(out2, out, perm, NMAX, D_);
      printf(
          "%s %s: inference outputs of a batch of 7 (%s) at %d thread(s) are bit-identical to "
          "each image alone\n",
          same ? "PASS" : "FAIL", label, s ? "permuted" : "in order", threads);
      printf(
          "%s %s: training outputs and per-image gradients of that batch agree with each image "
          "alone within float reassociation\n",
          close ? "PASS" : "FAIL", label);
      failures += !same + !close;
      rig_destroy(&batch);
    }
  rig_destroy(&ref);
  rig_destroy(&alone);
}

/* 2 max_batch + 1 images in one inference call (io rows offset per chunk) = one forward each. */
static void infer_chunks(const char *label, pet_config pc) {
  rig r;
  rig_create(&r, pc, 2, 3);
  float *all = buf(NMAX * D_), *one = buf(NMAX * D_);
  die(vit_trainer_infer_io(r.t, r.p, r.images, NMAX, &r.io, all));
  rig s;
  rig_create(&s, pc, 2, 3);
  for (int b = 0; b < NMAX; b++) {
    gather_io(&s.io, &r.io, &pc, &b, 1);
    die(vit_trainer_forward_io(s.t, s.p ? r.p : NULL, r.images + b * IMG, 1, NULL, &s.io,
                               one + b * D_));
  }
  char what[96];
  snprintf(what, sizeof what, "%s: infer_io of 7 images (max_batch 3) = one by one", label);
  check(what, all, one, NMAX * D_, 0, 0);
  rig_destroy(&s);
  rig_destroy(&r);
}

static void expect_error(const char *what, scl_err err) {
  printf("%s refused: %s (%s)\n", err ? "PASS" : "FAIL", what,
         err ? scl_error_message() : "accepted");
  failures += !err;
  scl_error_clear();
}

static void refused_create(const char *what, pet_config pc) {
  vit_config c = tiny();
  vit_model *m = NULL;
  vit_trainer *t = NULL;
  die(vit_model_create(&c, 2, 1, &m));
  expect_error(what, vit_trainer_create(m, &pc, 2, 1, &t));
  vit_trainer_destroy(&t);
  vit_model_destroy(&m);
}

static void refusals(pet_config l2p, pet_config dual) {
  rig r;
  rig_create(&r, l2p, 1, 2);
  expect_error("L2P forward without io", vit_trainer_forward(r.t, NULL, r.images, 2, NULL, r.out));
  expect_error("L2P inference without io",
               vit_trainer_infer_io(r.t, NULL, r.images, 2, NULL, r.out));
  vit_prompt_io no_tokens = r.io;
  no_tokens.tokens = NULL;
  expect_error("L2P forward with io but no tokens",
               vit_trainer_forward_io(r.t, NULL, r.images, 2, NULL, &no_tokens, r.out));
  vit_prompt_io stray = r.io;
  stray.pk[1] = r.io.tokens;
  expect_error("prefix rows on a trainer without per-image prefixes",
               vit_trainer_forward_io(r.t, NULL, r.images, 2, NULL, &stray, r.out));
  die(vit_trainer_forward_io(r.t, NULL, r.images, 2, NULL, &r.io, r.out));
  expect_error("L2P backward without io", vit_trainer_backward(r.t, NULL, r.dout, 2));
  rig_destroy(&r);
  rig d;
  rig_create(&d, dual, 1, 2);
  vit_prompt_io missing = d.io;
  for (int l = 0; l < DEPTH; l++)
    if (missing.pk[l]) {
      missing.pv[l] = NULL;
      break;
    }
  expect_error("per-image prefixes with a block's pv missing",
               vit_trainer_forward_io(d.t, NULL, d.images, 2, NULL, &missing, d.out));
  rig_destroy(&d);
  rig a;
  pet_config ad = {.kinds = PET_ADAPTER, .adapter_dim = 4, .adapter_scale = 0.1f};
  rig_create(&a, ad, 1, 2);
  vit_prompt_io io = {0};
  expect_error("io on an adapter-only trainer",
               vit_trainer_forward_io(a.t, a.p, a.images, 2, NULL, &io, a.out));
  rig_destroy(&a);
  pet_config bad = l2p;
  bad.kinds |= PET_VPT_DEEP, bad.vpt_tokens = 2;
  refused_create("input prompts with VPT", bad);
  bad = l2p, bad.kinds |= PET_SSF;
  refused_create("input prompts with SSF", bad);
  bad = l2p, bad.input_tokens = 0;
  refused_create("input prompts with 0 tokens", bad);
  bad = dual, bad.sample_prefix_layers = 1u << DEPTH;
  refused_create("per-image prefixes at a block >= depth", bad);
  bad = dual, bad.sample_prefix_len = 0;
  refused_create("per-image prefixes of length 0", bad);
  bad = dual, bad.kinds |= PET_PREFIX, bad.prefix_len = 2, bad.prefix_layers = 1;
  refused_create("shared and per-image prefixes on block 0", bad);
}

/* vit_trainer_create_lending: the model's forward (7 images, per image) gives the same bits before
 * lending, in the lent working set (in chunks of the shrunk max_batch), after a training forward
 * and backward of the lender, and after the lender is destroyed (a working set of its own again). */
static void lend_work(void) {
  const pet_config dual = {
      .kinds = PET_SAMPLE_PREFIX, .sample_prefix_len = 3, .sample_prefix_layers = 0x3};
  rig r;
  rig_create(&r, dual, 2, 2); /* the trainer's working set holds 2 images; the model's 2 too */
  vit_model *m = NULL;
  vit_config c = tiny();
  die(vit_model_create(&c, NMAX, 2, &m)); /* 7 images: more than the lender's set holds */
  vit_model_init_random(m, 3);
  m->per_image = 1;
  float *ref = buf(NMAX * D_), *got = buf(NMAX * D_);
  die(vit_model_forward(m, r.images, NMAX, ref));
  vit_trainer *t = NULL;
  die(vit_trainer_create_lending(m, &dual, 2, 2, &t));
  const int shrunk = m->max_batch >= 1 && m->max_batch < NMAX;
  int same = 1;
  for (int round = 0; round < 2; round++) {
    for (int64_t b = 0; b < NMAX; b += m->max_batch) {
      const int64_t n = NMAX - b < m->max_batch ? NMAX - b : m->max_batch;
      die(vit_model_forward(m, r.images + b * IMG, n, got + b * D_));
    }
    same &= !memcmp(got, ref, (size_t)NMAX * D_ * sizeof(float));
    die(vit_trainer_forward_io(t, NULL, r.images, 2, NULL, &r.io, r.out)); /* the lender works */
    die(vit_trainer_backward_io(t, NULL, r.dout, 2, &r.io));
  }
  vit_trainer_destroy(&t);
  memset(got, 0, (size_t)NMAX * D_ * sizeof(float));
  for (int64_t b = 0; b < NMAX; b += m->max_batch) {
    const int64_t n = NMAX - b < m->max_batch ? NMAX - b : m->max_batch;
    die(vit_model_forward(m, r.images + b * IMG, n, got + b * D_));
  }
  same &= !memcmp(got, ref, (size_t)NMAX * D_ * sizeof(float));
  printf(
      "%s lend work: max_batch 7 -> %lld; the model's forward bit-identical in the lent working "
      "set, between the lender's steps and after the lender is gone\n",
      shrunk && same ? "PASS" : "FAIL", (long long)m->max_batch);
  failures += !(shrunk && same);
  vit_model_destroy(&m);
  rig_destroy(&r);
}

int main(void) {
  /* L2P's shape: 4 tokens after the class token, output their mean */
  const pet_config l2p = {.kinds = PET_INPUT_PROMPT, .input_tokens = 4, .pool_input_tokens = 1};
  /* the class token as output, with adapters that train beside the tokens */
  const pet_config cls_ad = {.kinds = PET_INPUT_PROMPT | PET_ADAPTER,
                             .input_tokens = 2,
                             .adapter_dim = 4,
                             .adapter_scale = 0.1f};
  /* DualPrompt / CODA's shape: per-image prefixes at blocks 0 and 1 */
  const pet_config dual = {
      .kinds = PET_SAMPLE_PREFIX, .sample_prefix_len = 3, .sample_prefix_layers = 0x3};
  /* per-image prefixes at block 2 above a shared prefix at block 0, and L2P tokens */
  const pet_config mixed = {.kinds = PET_SAMPLE_PREFIX | PET_PREFIX | PET_INPUT_PROMPT,
                            .sample_prefix_len = 2,
                            .sample_prefix_layers = 0x4,
                            .prefix_len = 3,
                            .prefix_layers = 0x1,
                            .input_tokens = 3,
                            .pool_input_tokens = 1};
  fd_case("l2p", l2p);
  fd_case("tokens+adapter", cls_ad);
  fd_case("sample_prefix", dual);
  fd_case("mixed", mixed);
  independence("l2p", l2p);
  independence("sample_prefix", dual);
  independence("mixed", mixed);
  lend_work();
  infer_chunks("l2p", l2p);
  infer_chunks("sample_prefix", dual);
  infer_chunks("mixed", mixed);
  refusals(l2p, dual);
  release_buffers();
  printf("%s: %d failure(s)\n", failures ? "FAILED" : "all checks passed", failures);
  return failures > 100 ? 100 : failures;
}
