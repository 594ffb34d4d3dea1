/* test_slca_method.c: SLCA through the method interface on a tiny random ViT (docs/methods.md k,
 * o.6), two sessions of two classes:
 *   - the backbone copy at create is the model's block with the final LayerNorm (1, 0)
 *     (method.slca.fresh_norm) or the model's own (false);
 *   - the raw heads are bit-identical before and after the fit (which aligns) and the prediction:
 *     the heads are "restored after evaluation"; session 1's aligned heads are its raw heads,
 *     session 2's differ in every seen row;
 *   - session 2's training leaves session 1's head rows bit-identical (frozen, no decay);
 *   - predictions are the argmax of the aligned heads' logits;
 *   - refusals: an optimizer other than SGD, a domain-incremental benchmark;
 *   - the plan's method state (learn_method_ops.state_bytes) covers what the method holds. */
#include <math.h>
#include <string.h>

#include "learn_test.h"
#include "safecl/method.h"
#include "safecl/pet.h"
#include "safecl/slca.h"
#include "safecl/vit.h"

enum { C = 4, NI = 4 };

static vit_config tiny(void) {
  vit_config vc;
  memset(&vc, 0, sizeof vc);
  snprintf(vc.name, sizeof vc.name, "custom");
  vc.img_size = 32, vc.patch_size = 16, vc.in_chans = 3, vc.width = 16, vc.depth = 1;
  vc.heads = 2, vc.mlp_hidden = 32, vc.ln_eps = 1e-6f;
  return vc;
}

static learn_method_cfg slca_cfg(int fresh) {
  return (learn_method_cfg){.name = "slca",
                            .epochs_first = 1,
                            .epochs_later = 1,
                            .batch = NI,
                            .optimizer = "sgd",
                            .lr = 0.05,
                            .momentum = 0.9,
                            .weight_decay = 5e-4,
                            .slca_bcb_lrscale = 0.1,
                            .slca_ca_epochs = 2,
                            .slca_ca_lr = 0.01,
                            .slca_ca_samples = 8,
                            .slca_logit_tau = 0.1,
                            .slca_fresh_norm = fresh};
}

/* The copy at create: the model's block, with the final LayerNorm (1, 0) when fresh. */
static void check_copy(vit_model *m, const float *block, int fresh) {
  pet_config pc = {.kinds = PET_FULL};
  pet_layout lay;
  CHECK_OK(pet_layout_create(&m->cfg, &pc, &lay));
  const float *copy = block + lay.full;
  pet_layout_destroy(&lay);
  const int64_t nw = m->p.norm_w - m->param_block, nb = m->p.norm_b - m->param_block;
  const int64_t D = m->cfg.width;
  int64_t bad = 0;
  for (int64_t i = 0; i < m->param_count; i++) {
    float want = m->param_block[i];
    if (fresh && i >= nw && i < nw + D) want = 1.0f;
    if (fresh && i >= nb && i < nb + D) want = 0.0f;
    bad += copy[i] != want;
  }
  printf("  backbone copy, fresh_norm %d: %lld of %lld floats differ from the expected\n", fresh,
         (long long)bad, (long long)m->param_count);
  CHECK(bad == 0, "fresh_norm %d: the copy differs from the model's block in %lld floats", fresh,
        (long long)bad);
}

int main(void) {
  vit_config vc = tiny();
  vit_model *m = NULL;
  CHECK_OK(vit_model_create(&vc, 4, 1, &m));
  if (!m) return 1;
  vit_model_init_random(m, 3);
  for (int64_t i = 0; i < vc.width; i++) /* a pre-trained final LayerNorm that is not (1, 0) */
    m->p.norm_w[i] = 0.5f + 0.01f * (float)i, m->p.norm_b[i] = 0.1f - 0.01f * (float)i;
  const int64_t D = vc.width, per = 3 * vc.img_size * vc.img_size, H = learn_slca_head_count(C, D);
  const int64_t hb = learn_slca_head_b(C, D);
  learn_method_cfg cfg = slca_cfg(1);
  learn_context ctx = {.backbone = m, .n_classes = C, .seed = 5, .cfg = &cfg};
  const learn_method_ops *ops = learn_method_find("slca");
  learn_method *lm = NULL;
  printf("SLCA through the method interface\n");
  /* refusals first: neither allocates anything */
  scl_error_clear();
  learn_method_cfg adam = slca_cfg(1);
  adam.optimizer = "adam";
  learn_context bad = ctx;
  bad.cfg = &adam;
  CHECK(ops->create(&bad, &lm) == SCL_ERR_ARG && !lm, "train.optimizer adam was accepted");
  bad = ctx;
  bad.domain_incremental = 1;
  scl_error_clear();
  CHECK(ops->create(&bad, &lm) == SCL_ERR_ARG && !lm, "a domain-incremental run was accepted");
  scl_error_clear();
  learn_method_cfg kept = slca_cfg(0);
  bad = ctx;
  bad.cfg = &kept;
  CHECK_OK(ops->create(&bad, &lm));
  learn_state_entry st[LEARN_MAX_STATE];
  if (lm) {
    lm->ops->state(lm, st);
    check_copy(m, st[0].data, 0);
    lm->ops->destroy(&lm);
  }
  CHECK_OK(ops->create(&ctx, &lm));
  if (!lm) return 1;
  const int n_state = lm->ops->state(lm, st);
  check_copy(m, st[0].data, 1);
  /* safecl plan's figure (state_bytes) against the storage the method holds: its checkpointed
   * state plus the two gradient arrays it does not checkpoint (the copy's and the heads'). */
  double held = 0.0;
  for (int i = 0; i < n_state; i++)
    held += (double)st[i].shape[0] * (double)(st[i].ndim > 1 ? st[i].shape[1] : 1) *
            (st[i].dtype == LEARN_F32 ? 4.0 : 8.0);
  const vit_config tv = tiny();
  const double grads = 4.0 * ((double)vit_config_param_count(&tv) + (double)(C * (D + 1)));
  const double planned = ops->state_bytes(&cfg, &tv, C, 2);
  CHECK(planned >= held && planned <= held + grads + 1024.0,
        "plan's method state %.0f bytes against %.0f held + %.0f of gradients", planned, held,
        grads);
  printf("  plan's method state %.0f bytes: %.0f held in the state + %.0f of gradients\n", planned,
         held, grads);
  const float *raw = st[2].data, *aligned = st[4].data;
  float *img = talloc((size_t)(NI * per), sizeof(float)), *feat = talloc((size_t)(NI * D), 4);
  float *saved = talloc((size_t)H, sizeof(float));
  int64_t lab[NI], index[NI], pos[NI];
  int32_t lab32[NI], pred[NI];
  for (int t = 0; t < 2; t++) {
    const int64_t lo = 2 * t, hi = lo + 2;
    fill_uniform(img, NI * per, 9, (uint32_t)t, 0.0f, 1.0f);
    for (int64_t i = 0; i < NI; i++)
      lab[i] = lo + i % 2, lab32[i] = (int32_t)lab[i], index[i] = t * NI + i, pos[i] = i;
    learn_session s = {t, 2, lo, hi, C, NI, lab32};
    learn_batch b = {img, lab, index, lab, index, NI, NI, 0, 0, 0};
    double loss[LEARN_MAX_LOSS_TERMS] = {0};
    CHECK_OK(lm->ops->train_begin(lm, &s, 1));
    CHECK_OK(lm->ops->train_step(lm, &s, &b, loss));
    CHECK(isfinite(loss[0]) && loss[0] > 0.0, "session %d: CE %g", t + 1, loss[0]);
    if (t == 1)
      CHECK(!memcmp(raw, saved, (size_t)(lo * D) * sizeof(float)) &&
                !memcmp(raw + hb, saved + hb, (size_t)lo * sizeof(float)),
            "session 2's training moved session 1's head rows");
    CHECK_OK(lm->ops->train_end(lm, &s));
    learn_network net;
    CHECK(lm->ops->networks(lm, &s, &net) == 1 && net.dim == D && !net.frozen,
          "SLCA's one network: the fine-tuned backbone, width D, not frozen");
    CHECK_OK(net.forward(net.ctx, img, NI, feat));
    memcpy(saved, raw, (size_t)H * sizeof(float));
    const float *fp = feat;
    CHECK_OK(lm->ops->fit(lm, &s, &fp, lab32, pos, NI));
    CHECK_OK(lm->ops->predict(lm, &s, &fp, NI, pred));
    CHECK(!memcmp(raw, saved, (size_t)H * sizeof(float)),
          "session %d: the raw heads changed in the fit or the prediction", t + 1);
    if (t == 0)
      CHECK(!memcmp(aligned, raw, (size_t)H * sizeof(float)),
            "session 1: the aligned heads are not the raw heads");
    for (int64_t k = 0; t == 1 && k < hi; k++)
      CHECK(memcmp(aligned + k * D, raw + k * D, (size_t)D * sizeof(float)) != 0,
            "session 2: the alignment left row %lld alone", (long long)k);
    for (int64_t i = 0; i < NI; i++) {
      int64_t best = 0;
      double bv = -INFINITY;
      for (int64_t k = 0; k < hi; k++) {
        double v = aligned[hb + k];
        for (int64_t j = 0; j < D; j++) v += (double)aligned[k * D + j] * feat[i * D + j];
        if (v > bv) bv = v, best = k;
      }
      CHECK(pred[i] == best, "session %d image %lld: predicted %d, aligned argmax %lld", t + 1,
            (long long)i, (int)pred[i], (long long)best);
    }
    printf(
        "  session %d: CE %.4f, raw heads untouched by fit and prediction, predictions = "
        "aligned argmax\n",
        t + 1, loss[0]);
  }
  lm->ops->destroy(&lm);
  vit_model_destroy(&m);
  free(img), free(feat), free(saved);
  if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
  return failures ? 1 : 0;
}
