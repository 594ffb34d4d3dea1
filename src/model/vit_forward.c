/* vit_forward.c: the frozen ViT's forward entry point and its reference twin.
 *
 * vit_model_forward is the one ViT forward (vit_trainer_forward.c) run without PET in inference
 * mode on the model's own engine: threads own whole images when their count divides the batch
 * (no barrier at all), and otherwise split the token rows of the row-local phases and the
 * (image, head) pairs of attention, with one barrier after the embedding and two per block.
 * Only the class token leaves the model, so by default the last block computes keys and values
 * for every token but queries, projection and MLP for the class token alone (about 6% of a
 * ViT-B forward); m->full_last_block turns that off for like-for-like benchmarks, and
 * m->per_image runs every image alone (no row mode), so an image's output is bit-identical
 * whatever batch it comes in.
 *
 * vit_model_forward_ref runs the `_ref` kernels single-threaded on every token, for tests; it
 * allocates its activations per call, so the model carries no memory for it. */
#include <string.h>

#include "safecl/nn.h"
#include "safecl/vit.h"
#include "vit_trainer_internal.h"

static scl_err check_batch(const vit_model *m, const float *images, int64_t B, const float *out) {
  SCL_CHECK(m && images && out, SCL_ERR_ARG, "ViT forward: NULL model, images or output");
  SCL_CHECK(B >= 1 && B <= m->max_batch, SCL_ERR_ARG,
            "ViT '%s' forward: batch %lld is outside [1, %lld]", m->cfg.name, (long long)B,
            (long long)m->max_batch);
  return SCL_OK;
}

scl_err vit_model_forward(vit_model *m, const float *images, int64_t B, float *cls_out) {
  SCL_CALL(check_batch(m, images, B, cls_out));
  tr_engine_forward(m->engine, images, B, cls_out);
  return SCL_OK;
}

/* The reference forward's activations, (B, N, *) each, and the (H, N, N) probabilities. */
typedef struct ref_acts {
  float *x, *ln, *qkv, *ctx, *hidden, *probs;
} ref_acts;

/* One block through the reference kernels, every token. */
static void block_ref(const vit_model *m, const ref_acts *a, const vit_block_params *bp,
                      int64_t B) {
  const vit_config *c = &m->cfg;
  const int64_t N = m->tokens, D = c->width, F = c->mlp_hidden, BN = B * N;
  nn_layernorm_forward_ref(a->ln, NULL, NULL, a->x, bp->norm1_w, bp->norm1_b, BN, D, c->ln_eps);
  nn_linear_forward_ref(a->qkv, a->ln, bp->qkv_w, bp->qkv_b, BN, D, 3 * D);
  for (int64_t b = 0; b < B; b++)
    nn_attention_forward_ref(a->ctx + b * N * D, a->probs, a->qkv + b * N * 3 * D, NULL, NULL, 0, 1,
                             N, c->heads, D / c->heads);
  nn_linear_add_forward_ref(a->x, a->ctx, bp->proj_w, bp->proj_b, BN, D, D);
  nn_layernorm_forward_ref(a->ln, NULL, NULL, a->x, bp->norm2_w, bp->norm2_b, BN, D, c->ln_eps);
  nn_linear_forward_ref(a->hidden, a->ln, bp->fc1_w, bp->fc1_b, BN, D, F);
  nn_gelu_forward_ref(a->hidden, a->hidden, BN * F);
  nn_linear_add_forward_ref(a->x, a->hidden, bp->fc2_w, bp->fc2_b, BN, F, D);
}

scl_err vit_model_forward_ref(vit_model *m, const float *images, int64_t B, float *cls_out) {
  SCL_CALL(check_batch(m, images, B, cls_out));
  const vit_config *c = &m->cfg;
  const int64_t N = m->tokens, D = c->width, BN = B * N;
  const nn_patch_dims dims = {c->in_chans, c->img_size, c->img_size, c->patch_size, D};
  const int64_t sizes[6] = {BN * D,          BN * D, BN * 3 * D, BN * D, BN * c->mlp_hidden,
                            c->heads * N * N};
  float *block = NULL;
  int64_t total = 0;
  for (int i = 0; i < 6; i++) total += sizes[i];
  SCL_CALL(scl_calloc((size_t)total * sizeof(float), "reference ViT activations", (void **)&block));
  ref_acts a;
  float **views[6] = {&a.x, &a.ln, &a.qkv, &a.ctx, &a.hidden, &a.probs};
  int64_t off = 0;
  for (int i = 0; i < 6; i++) {
    *views[i] = block + off;
    off += sizes[i];
  }
  nn_patch_embed_forward_ref(a.x + D, images, m->p.patch_w, m->p.patch_b, B, dims, N * D);
  for (int64_t b = 0; b < B; b++) {
    float *x = a.x + b * N * D;
    memcpy(x, m->p.cls_token, (size_t)D * sizeof(float));
    nn_residual_forward_ref(x, x, m->p.pos_embed, N * D);
  }
  for (int64_t l = 0; l < c->depth; l++) block_ref(m, &a, &m->p.blocks[l], B);
  for (int64_t b = 0; b < B; b++)
    nn_layernorm_forward_ref(cls_out + b * D, NULL, NULL, a.x + b * N * D, m->p.norm_w, m->p.norm_b,
                             1, D, c->ln_eps);
  scl_free(block);
  return SCL_OK;
}
