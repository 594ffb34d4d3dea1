/* vit_trainer_backward.c: the trainer's backward, one chunk of images at a time, from the
 * class-token gradient down to the lowest PET tensor, accumulating into that chunk's gradient
 * copy (chunk 0's is the learner's own gradient; the others are added in chunk order).
 *
 * With a frozen backbone every linear layer costs one GEMM (its input gradient) and the
 * walk stops as soon as nothing below trains (tr_level): an adapter-only learner never
 * differentiates the first block's attention, prefixes stop at their lowest block's q, k, v.
 * What the forward did not keep is rebuilt here from what it did: LayerNorm outputs from the
 * stored statistics, GELU inputs (and SSF'd qkv) from the stored linear outputs, attention
 * probabilities per (image, head). The residual stream's gradient lives in w_x and the block
 * walks it down in place: every path into the stream (identity, adapter, MLP, attention)
 * accumulates into it. The last block's tail runs on the packed output rows (nq per image), as
 * in the forward, and its gradient is scattered back to token rows before LayerNorm 1.
 *
 * Under full fine-tuning (PET_FULL) the walk goes through every block and also writes the weight
 * gradient of every backbone tensor into the chunk's copy of the backbone region
 * (tr_block_grads; NULL views elsewhere, which the kernels skip): a second GEMM per linear layer
 * whose input is rebuilt where it was not kept (LayerNorm outputs from their statistics, GELU(h)
 * from h, the attention context from qkv), then the embedding's gradients from the stream
 * gradient at block 0's input and the kept images.
 *
 * Per-image prompt inputs (job->io): the gradient of image b's prefix rows goes straight into
 * row b of dpk[l] / dpv[l], and that of its input tokens into row b of dtokens, from the stream
 * gradient at block 0's input; images belong to one chunk each, so no copies are needed. */
#include <string.h>

#include "safecl/nn.h"
#include "vit_trainer_internal.h"

typedef struct bwd_ctx {
  const tr_bwd_job *job;
  const vit_trainer *t;
  float *grad; /* this chunk's gradient block */
  int64_t b0, n, R0;
  float *scratch;
} bwd_ctx;

/* Block l's caches and working buffers, offset to this chunk's rows. */
typedef struct bwd_io {
  const float *x0, *mean1, *rstd1, *qkv, *x1, *mean2, *rstd2, *h, *po, *m, *a_pre;
  const float *ctx; /* the kept attention context (full fine-tuning), else NULL */
  const uint8_t *mask;
  float *dx, *t1, *t2; /* (rows, D): stream gradient and two temporaries */
  float *dqkv, *qkv2, *dh, *ad;
} bwd_io;

static void zero(float *p, int64_t n) { memset(p, 0, (size_t)n * sizeof(float)); }

static const float *off(const float *p, int64_t o) { return p ? p + o : NULL; }

static bwd_io bind(const bwd_ctx *c, int64_t l) {
  const vit_trainer *t = c->t;
  const tr_layer *y = &t->layers[l];
  const int64_t D = t->D, R0 = c->R0, Tc = l == t->vc.depth - 1 ? c->b0 * t->nq : R0;
  bwd_io io;
  io.x0 = off(y->x0, R0 * D);
  io.mean1 = off(y->mean1, R0);
  io.rstd1 = off(y->rstd1, R0);
  io.qkv = off(y->qkv, R0 * 3 * D);
  io.x1 = y->rebuild_x1 ? t->w_y + R0 * D : off(y->x1, Tc * D);
  io.ctx = off(y->ctx, Tc * D);
  io.mean2 = off(y->mean2, Tc);
  io.rstd2 = off(y->rstd2, Tc);
  io.h = off(y->h, Tc * t->F);
  io.po = off(y->po, Tc * D);
  io.m = off(y->m, Tc * D);
  io.a_pre = off(y->a_pre, Tc * t->r);
  io.mask = y->mask && t->fwd_masked ? y->mask + Tc * t->r : NULL;
  io.dx = t->w_x + R0 * D;
  io.t1 = t->w_a + R0 * D;
  io.t2 = t->w_b + R0 * D;
  io.dqkv = t->w_qkv + R0 * 3 * D;
  io.qkv2 = t->w_qkv2 ? t->w_qkv2 + R0 * 3 * D : NULL;
  io.dh = t->w_h + R0 * t->F;
  io.ad = t->w_ad ? t->w_ad + R0 * 2 * t->r : NULL;
  return io;
}

static void adapter_backward(const bwd_ctx *c, const bwd_io *io, const tr_pet *pp, tr_grad *g,
                             float *dx, int64_t rows) {
  const vit_trainer *t = c->t;
  nn_adapter_backward(dx, g->ad_dw, g->ad_db, g->ad_uw, g->ad_ub, io->ad, io->dx, io->x1, io->a_pre,
                      io->mask, pp->ad_dw, pp->ad_uw, t->pc.adapter_scale, t->pc.adapter_dropout,
                      rows, t->D, t->r);
}

/* dh <- dh * GELU'(SSF_fc1(h)), SSF_fc1's gradients; row by row through a one-row scratch so
 * that the SSF'd pre-activation is never stored. */
static void gelu_backward(const bwd_ctx *c, const bwd_io *io, const tr_pet *pp, tr_grad *g,
                          int64_t rows) {
  const int64_t F = c->t->F;
  const float *s = pp->ssf_s[PET_SSF_FC1], *b = pp->ssf_b[PET_SSF_FC1];
  if (!s) {
    nn_gelu_backward_inplace(io->dh, io->h, rows * F);
    return;
  }
  for (int64_t i = 0; i < rows; i++) {
    nn_ssf_forward(c->scratch, io->h + i * F, s, b, 1, F);
    nn_gelu_backward_inplace(io->dh + i * F, c->scratch, F);
    nn_ssf_backward_inplace(io->dh + i * F, g->ssf_s[PET_SSF_FC1], g->ssf_b[PET_SSF_FC1],
                            io->h + i * F, s, 1, F);
  }
}

/* Tail rows: dx holds dL/dx_out on entry and dL/dx_mid on exit; t2 receives dL/dctx. With
 * weight gradients (gw: full fine-tuning, which has no PET module beside it) each linear layer's
 * input is rebuilt just before its dW GEMM in the buffer its input gradient then overwrites:
 * GELU(h) in dh, LN2(x1) in t1; the attention context is the kept one (tr_layer.ctx) or in t2 on
 * entry (rebuild_x1, context). */
static void tail_backward(const bwd_ctx *c, const bwd_io *io, const tr_pet *pp, tr_grad *g,
                          const vit_block_params *bp, const vit_block_params *gw, int64_t rows) {
  const vit_trainer *t = c->t;
  const int64_t D = t->D, F = t->F;
  const float *dm = io->dx;
  if (pp->ssf_s[PET_SSF_FC2]) {
    zero(io->t1, rows * D);
    nn_ssf_backward(io->t1, g->ssf_s[PET_SSF_FC2], g->ssf_b[PET_SSF_FC2], io->dx, io->m,
                    pp->ssf_s[PET_SSF_FC2], rows, D);
    dm = io->t1;
  }
  if (gw->fc2_w) {
    nn_gelu_forward(io->dh, io->h, rows * F);
    nn_linear_backward(NULL, gw->fc2_w, gw->fc2_b, dm, io->dh, NULL, rows, F, D);
  }
  zero(io->dh, rows * F);
  nn_linear_backward(io->dh, NULL, NULL, dm, NULL, bp->fc2_w, rows, F, D);
  if (pp->ad_dw) adapter_backward(c, io, pp, g, io->dx, rows); /* last read of dL/dx_out */
  gelu_backward(c, io, pp, g, rows);
  if (gw->fc1_w) {
    nn_layernorm_recompute(io->t1, io->x1, io->mean2, io->rstd2, bp->norm2_w, bp->norm2_b, rows, D);
    nn_linear_backward(NULL, gw->fc1_w, gw->fc1_b, io->dh, io->t1, NULL, rows, D, F);
  }
  zero(io->t1, rows * D);
  nn_linear_backward(io->t1, NULL, NULL, io->dh, NULL, bp->fc1_w, rows, D, F);
  if (pp->ssf_s[PET_SSF_LN2]) {
    nn_layernorm_recompute(io->t2, io->x1, io->mean2, io->rstd2, bp->norm2_w, bp->norm2_b, rows, D);
    nn_ssf_backward_inplace(io->t1, g->ssf_s[PET_SSF_LN2], g->ssf_b[PET_SSF_LN2], io->t2,
                            pp->ssf_s[PET_SSF_LN2], rows, D);
  }
  nn_layernorm_backward(io->dx, gw->norm2_w, gw->norm2_b, io->t1, io->x1, bp->norm2_w, io->mean2,
                        io->rstd2, rows, D);
  const float *dpo = io->dx;
  if (pp->ssf_s[PET_SSF_PROJ]) {
    zero(io->t1, rows * D);
    nn_ssf_backward(io->t1, g->ssf_s[PET_SSF_PROJ], g->ssf_b[PET_SSF_PROJ], io->dx, io->po,
                    pp->ssf_s[PET_SSF_PROJ], rows, D);
    dpo = io->t1;
  }
  if (gw->proj_w)
    nn_linear_backward(NULL, gw->proj_w, gw->proj_b, dpo, io->ctx ? io->ctx : io->t2, NULL, rows, D,
                       D);
  zero(io->t2, rows * D);
  nn_linear_backward(io->t2, NULL, NULL, dpo, NULL, bp->proj_w, rows, D, D);
}

/* The attention context of the first nq query rows of each image (packed nq rows per image)
 * into t2, recomputed from the kept qkv with the forward's own operations, so bit-identical to
 * the forward's. */
static void context(const bwd_ctx *c, const bwd_io *io, const tr_pet *pp, int64_t l, int64_t nq) {
  const vit_trainer *t = c->t;
  const int64_t D = t->D, Nt = t->Nt, L = t->layers[l].L;
  const vit_prompt_io *pio = c->job->io;
  const nn_prefix_mode mode = tr_prefix_mode(t, pp, l);
  for (int64_t i = 0; i < c->n; i++) {
    const float *pk = pp->pk, *pv = pp->pv;
    if (t->layers[l].sample) {
      const int64_t o = (c->b0 + i) * L * D;
      pk = pio->pk[l] + o, pv = pio->pv[l] + o;
    }
    for (int64_t h = 0; h < t->H; h++)
      nn_attention_head_forward_mode(io->t2 + i * nq * D, c->scratch, io->qkv + i * Nt * 3 * D, pk,
                                     pv, L, &mode, nq, Nt, t->H, D / t->H, h);
  }
}

/* x1 = x0 + proj_b + ctx proj_w^T of a block that did not keep it (tr_layer.rebuild_x1), into
 * io->x1 (w_y), with ctx recomputed into t2 (where it stays for the projection's weight
 * gradient): the forward's own operations on the same rows of the same chunk, so bit-identical
 * to the x1 the forward had. Costs the block's attention forward and projection again (about 4%
 * of an L2P step). */
static void rebuild_x1(const bwd_ctx *c, const bwd_io *io, const tr_pet *pp,
                       const vit_block_params *bp, int64_t l) {
  const vit_trainer *t = c->t;
  const int64_t D = t->D, Nt = t->Nt, rows = c->n * Nt;
  context(c, io, pp, l, Nt);
  float *x1 = (float *)io->x1;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < D; j++) x1[r * D + j] = io->x0[r * D + j] + bp->proj_b[j];
  nn_linear_add_forward(x1, io->t2, bp->proj_w, NULL, rows, D, D);
}

/* The last block's packed output-row gradient (nq rows per image at dx) -> token rows (zero
 * elsewhere). */
static void scatter_class_rows(const bwd_ctx *c, float *dx) {
  const vit_trainer *t = c->t;
  const int64_t D = t->D, Nt = t->Nt, nq = t->nq;
  float *tmp = t->w_y + c->R0 * D;
  memcpy(tmp, dx, (size_t)(c->n * nq * D) * sizeof(float));
  zero(dx, c->n * Nt * D);
  for (int64_t i = 0; i < c->n; i++)
    memcpy(dx + i * Nt * D, tmp + i * nq * D, (size_t)(nq * D) * sizeof(float));
}

/* Attention down to dqkv (prefix gradients), then, at TR_FULL, to the block input. */
static void attention_backward(const bwd_ctx *c, const bwd_io *io, const tr_pet *pp, tr_grad *g,
                               const vit_block_params *bp, const vit_block_params *gw, int64_t l) {
  const vit_trainer *t = c->t;
  const int64_t D = t->D, Nt = t->Nt, rows = c->n * Nt, L = t->layers[l].L;
  const int last = l == t->vc.depth - 1;
  const int64_t nq = last ? t->nq : Nt;
  const vit_prompt_io *pio = c->job->io;
  const float *qkv = io->qkv;
  if (pp->ssf_s[PET_SSF_QKV]) {
    nn_ssf_forward(io->qkv2, io->qkv, pp->ssf_s[PET_SSF_QKV], pp->ssf_b[PET_SSF_QKV], rows, 3 * D);
    qkv = io->qkv2;
  }
  zero(io->dqkv, rows * 3 * D);
  const nn_prefix_mode mode = tr_prefix_mode(t, pp, l);
  for (int64_t i = 0; i < c->n; i++) {
    const float *pk = pp->pk, *pv = pp->pv;
    float *dpk = g->pk, *dpv = g->pv;
    if (t->layers[l].sample) { /* row b0 + i of the per-image prefixes and their gradients */
      const int64_t o = (c->b0 + i) * L * D;
      pk = pio->pk[l] + o, pv = pio->pv[l] + o;
      dpk = pio->dpk[l] ? pio->dpk[l] + o : NULL;
      dpv = pio->dpv[l] ? pio->dpv[l] + o : NULL;
    }
    for (int64_t h = 0; h < t->H; h++)
      nn_attention_head_backward_mode(io->dqkv + i * Nt * 3 * D, dpk, dpv, g->pks, g->pvs,
                                      c->scratch, io->t2 + i * nq * D, qkv + i * Nt * 3 * D, pk, pv,
                                      L, &mode, nq, Nt, t->H, D / t->H, h);
  }
  if (t->layers[l].level < TR_FULL) return;
  if (pp->ssf_s[PET_SSF_QKV])
    nn_ssf_backward_inplace(io->dqkv, g->ssf_s[PET_SSF_QKV], g->ssf_b[PET_SSF_QKV], io->qkv,
                            pp->ssf_s[PET_SSF_QKV], rows, 3 * D);
  zero(io->t1, rows * D);
  nn_linear_backward(io->t1, NULL, NULL, io->dqkv, NULL, bp->qkv_w, rows, D, 3 * D);
  if (gw->qkv_w) { /* every token row: the last block's keys and values have gradients too */
    nn_layernorm_recompute(io->t2, io->x0, io->mean1, io->rstd1, bp->norm1_w, bp->norm1_b, rows, D);
    nn_linear_backward(NULL, gw->qkv_w, gw->qkv_b, io->dqkv, io->t2, NULL, rows, D, 3 * D);
  }
  if (pp->ssf_s[PET_SSF_LN1]) {
    nn_layernorm_recompute(io->t2, io->x0, io->mean1, io->rstd1, bp->norm1_w, bp->norm1_b, rows, D);
    nn_ssf_backward_inplace(io->t1, g->ssf_s[PET_SSF_LN1], g->ssf_b[PET_SSF_LN1], io->t2,
                            pp->ssf_s[PET_SSF_LN1], rows, D);
  }
  if (last) scatter_class_rows(c, io->dx);
  nn_layernorm_backward(io->dx, gw->norm1_w, gw->norm1_b, io->t1, io->x0, bp->norm1_w, io->mean1,
                        io->rstd1, rows, D);
  if (pp->prompts) { /* appended before this block: their gradient stops here */
    nn_vpt_backward(g->prompts, io->dx, c->n, t->N + t->Tin, t->T, D);
    for (int64_t i = 0; i < c->n; i++) zero(io->dx + (i * Nt + t->N + t->Tin) * D, t->T * D);
  }
}

/* dout -> (pooled tokens: dout / Tin on each token row, 0 on the class row) -> SSF_norm -> final
 * LayerNorm -> packed output rows (nq per image) of the stream gradient. */
static void final_backward(const bwd_ctx *c) {
  const vit_trainer *t = c->t;
  const int64_t D = t->D, b0 = c->b0, nq = t->nq, rows = c->n * nq;
  const float *dy = c->job->dcls + b0 * D;
  float *dx = t->w_x + c->R0 * D, *t1 = t->w_a + c->R0 * D, *t2 = t->w_b + c->R0 * D;
  const float *xf = t->xf + b0 * nq * D, *mean = t->meanf + b0 * nq, *rstd = t->rstdf + b0 * nq;
  if (nq > 1) { /* the mean's gradient: dout / Tin on every token row, 0 on the class row */
    const float inv = 1.0f / (float)(nq - 1);
    for (int64_t i = 0; i < c->n; i++) {
      zero(t1 + i * nq * D, D);
      for (int64_t j = 1; j < nq; j++)
        for (int64_t d = 0; d < D; d++) t1[(i * nq + j) * D + d] = dy[i * D + d] * inv;
    }
    dy = t1;
  }
  const vit_params w = tr_weights(t, c->job->param), gw = tr_weight_grads(t, c->grad);
  const pet_ssf *sn = &t->lay.ssf_norm;
  if (sn->scale >= 0) {
    const float *s = c->job->param + sn->scale;
    nn_layernorm_recompute(t2, xf, mean, rstd, w.norm_w, w.norm_b, rows, D);
    zero(dx, rows * D);
    nn_ssf_backward(dx, c->grad + sn->scale, c->grad + sn->shift, dy, t2, s, rows, D);
    memcpy(t1, dx, (size_t)(rows * D) * sizeof(float));
    dy = t1;
  }
  zero(dx, rows * D);
  nn_layernorm_backward(dx, gw.norm_w, gw.norm_b, dy, xf, w.norm_w, mean, rstd, rows, D);
}

/* Input tokens: dtokens rows of this chunk's images += the token rows of dL/dx_0 (the position
 * embedding is a constant). */
static void tokens_backward(const bwd_ctx *c) {
  const vit_trainer *t = c->t;
  const int64_t D = t->D, n = t->Tin * D;
  float *dt = c->job->io->dtokens;
  for (int64_t i = 0; i < c->n; i++) {
    const float *src = t->w_x + (c->R0 + i * t->Nt + 1) * D;
    float *dst = dt + (c->b0 + i) * n;
    for (int64_t k = 0; k < n; k++) dst[k] += src[k];
  }
}

/* SSF after the patch embedding: its gradients from the patch rows of dL/dx_0. */
static void embed_backward(const bwd_ctx *c) {
  const vit_trainer *t = c->t;
  const int64_t D = t->D, Np = t->N - 1;
  const pet_ssf *sp = &t->lay.ssf_patch;
  const float *s = c->job->param + sp->scale;
  for (int64_t i = 0; i < c->n; i++)
    nn_ssf_backward(NULL, c->grad + sp->scale, c->grad + sp->shift,
                    t->w_x + (c->R0 + i * t->Nt + 1 + t->Tin) * D, t->patch + (c->b0 + i) * Np * D,
                    s, Np, D);
}

/* Full fine-tuning: the embedding's gradients from dL/dx_0 (w_x): the class token's from the
 * class rows, the position embedding's from every row, the patch embedding's weights and bias
 * from the patch rows and the kept images (vit_trainer.images), image by image in chunk order. */
static void embed_weights_backward(const bwd_ctx *c) {
  const vit_trainer *t = c->t;
  const vit_config *v = &t->vc;
  const int64_t D = t->D, Nt = t->Nt, img = v->in_chans * v->img_size * v->img_size;
  const vit_params gw = tr_weight_grads(t, c->grad);
  const nn_patch_dims dims = {v->in_chans, v->img_size, v->img_size, v->patch_size, D};
  const float *dx = t->w_x + c->R0 * D;
  for (int64_t i = 0; i < c->n; i++) {
    const float *di = dx + i * Nt * D;
    for (int64_t j = 0; j < D; j++) gw.cls_token[j] += di[j];
    for (int64_t j = 0; j < Nt * D; j++) gw.pos_embed[j] += di[j];
  }
  nn_patch_embed_backward(gw.patch_w, gw.patch_b, c->scratch, dx + D, t->images + c->b0 * img, c->n,
                          dims, Nt * D);
}

/* One chunk of images, top to bottom. */
static void backward_chunk(bwd_ctx *c) {
  const vit_trainer *t = c->t;
  final_backward(c);
  int64_t l = t->vc.depth - 1;
  for (; l >= 0 && t->layers[l].level != TR_SKIP; l--) {
    const tr_pet pp = tr_pet_at(t, c->job->param, l);
    tr_grad g = tr_grad_at(t, c->grad, l);
    const vit_block_params bw = tr_block_weights(t, c->job->param, l), *bp = &bw;
    const vit_block_params gw = tr_block_grads(t, c->grad, l);
    const bwd_io io = bind(c, l);
    const int64_t rows = l == t->vc.depth - 1 ? c->n * t->nq : c->n * t->Nt;
    if (t->layers[l].level == TR_ADAPTER) {
      adapter_backward(c, &io, &pp, &g, NULL, rows);
      continue;
    }
    if (t->layers[l].rebuild_x1)
      rebuild_x1(c, &io, &pp, bp, l);
    else if (gw.proj_w && !io.ctx) /* the projection's weight gradient reads the context */
      context(c, &io, &pp, l, rows / c->n);
    tail_backward(c, &io, &pp, &g, bp, &gw, rows);
    attention_backward(c, &io, &pp, &g, bp, &gw, l);
  }
  if (l < 0 && (t->pc.kinds & PET_FULL)) embed_weights_backward(c);
  if (l < 0 && t->lay.ssf_patch.scale >= 0) embed_backward(c);
  if (l < 0 && t->Tin > 0 && c->job->io->dtokens) tokens_backward(c);
}

void tr_backward_thread(void *arg, int tid, int nthreads) {
  tr_bwd_job *job = arg;
  const vit_trainer *t = job->t;
  const int64_t stride = scl_pad_floats(t->pet_count);
  (void)nthreads;
  for (int64_t k; (k = atomic_fetch_add(&job->next, 1)) < job->n_chunks;) {
    bwd_ctx c = {job,
                 t,
                 k == 0 ? job->grad : t->gpart + (k - 1) * stride,
                 0,
                 0,
                 0,
                 t->scratch + tid * t->scratch_stride};
    int64_t b1;
    tr_chunk(job->B, job->n_chunks, k, &c.b0, &b1);
    c.n = b1 - c.b0;
    c.R0 = c.b0 * t->Nt;
    if (k > 0) /* a fresh copy, zeroed by the thread that fills it */
      memset(c.grad, 0, (size_t)t->pet_count * sizeof(float));
    backward_chunk(&c);
  }
}
