/* vit_trainer_forward.c: the one ViT forward, with or without PET modules, one chunk of images
 * at a time, in two modes: keeping the caches the backward needs (training) or keeping nothing
 * (inference: a learner's features, and vit_model_forward, which runs it without PET).
 *
 * Both modes run the same code over a table of pointers (fwd_io) that says, for each tensor a
 * block produces, where it goes: into the block's cache when the backward needs it, into the
 * working set otherwise. In inference everything is working memory and the residual stream
 * alternates between two buffers, so a kept forward survives any number of inferences. A thread
 * that takes a chunk (vit_trainer_internal.h) runs embedding, every block and the final
 * LayerNorm for its images without waiting for the others; OpenBLAS is single-threaded inside.
 * The last block computes keys and values for every token but its tail (projection, MLP,
 * adapter) for the output rows only, packed nq rows per image: the class token, and with pooled
 * input prompts (L2P) the input tokens too (rows 0..Tin), whose mean after the final LayerNorm is
 * the output; nothing else reaches it.
 *
 * Per-image prompt inputs (job->io, pet.h vit_prompt_io) enter in two places: input tokens are
 * written by embed() at rows [1, 1 + Tin) of each image, with the class token's position
 * embedding (the patches follow at rows 1 + Tin.., with position rows 1..N-1); per-image key and
 * value prefixes are passed to the attention kernel per image in attention_phase(). Everything an
 * image computes depends on that image's rows alone, and with these inputs (tr per_image) an
 * inference chunk runs image by image, so that every GEMM has one image's rows: OpenBLAS's result
 * for a row depends on the other rows of the call (its blocking), and an image's test-time output
 * must not depend on the batch it comes in (training keeps the chunk's GEMMs).
 * Under full fine-tuning (PET_FULL) every weight is read from the learner's copy of the backbone
 * (tr_weights) instead of the shared model, and a kept forward keeps its images for the patch
 * embedding's weight gradient.
 * Dropout masks are drawn per sample (vit_trainer_dropout.c). Inference without PET on a batch
 * the thread count does not divide runs in row mode instead (forward_rows), so that a batch of
 * one image still uses every core; an inference may also compute every token of the last block
 * (vit_model.full_last_block). */
#include <string.h>

#include "safecl/nn.h"
#include "vit_trainer_internal.h"

typedef struct fwd_ctx {
  const tr_fwd_job *job;
  vit_trainer *t;
  int64_t b0, n; /* images [b0, b0 + n) */
  int64_t R0;    /* their first token row */
  float *scratch;
} fwd_ctx;

/* Where block l reads and writes, offset to this chunk's rows. */
typedef struct fwd_io {
  float *x_in, *ln, *mean1, *rstd1, *qkv, *qkv_attn, *ctx;                     /* token rows */
  float *x_mid, *x_out, *ln2, *mean2, *rstd2, *po, *h, *g, *m, *a_pre, *a_hid; /* tail rows */
  uint8_t *mask;
} fwd_io;

/* The residual stream entering block l (l = depth: none, the last block writes elsewhere). */
static float *stream(const fwd_ctx *c, int64_t l) {
  const vit_trainer *t = c->t;
  if (c->job->keep && t->layers[l].x0) return t->layers[l].x0;
  return (l & 1) ? t->w_y : t->w_x;
}

/* Cache member if kept (at offset `off` rows of `width`), else the working buffer. */
static float *pick(float *cache, int64_t coff, float *work, int64_t woff, int64_t width) {
  return cache ? cache + coff * width : work + woff * width;
}

/* The last block runs its tail on the class tokens alone unless an inference asks for every
 * token (vit_model.full_last_block, for like-for-like benchmarks). */
static int pruned(const fwd_ctx *c, int64_t l) {
  return l == c->t->vc.depth - 1 && (c->job->keep || !c->t->m->full_last_block);
}

static fwd_io bind(const fwd_ctx *c, int64_t l) {
  const vit_trainer *t = c->t;
  const int keep = c->job->keep, last = pruned(c, l);
  const int ssf = (t->pc.kinds & PET_SSF) != 0;
  const int64_t D = t->D, R0 = c->R0, Rmax = t->max_batch * t->Nt;
  const tr_layer none = {0}, *y = keep ? &t->layers[l] : &none;
  const int64_t Tc = last ? c->b0 * t->nq : R0; /* tail rows: packed nq per image when last */
  fwd_io io;
  io.x_in = stream(c, l) + R0 * D;
  io.ln = t->w_a + R0 * D;
  io.mean1 = y->mean1 ? y->mean1 + R0 : NULL;
  io.rstd1 = y->rstd1 ? y->rstd1 + R0 : NULL;
  io.qkv = pick(y->qkv, R0, t->w_qkv, R0, 3 * D);
  io.qkv_attn = ssf ? t->w_qkv + R0 * 3 * D : io.qkv;
  io.ctx = y->ctx ? y->ctx + Tc * D : t->w_b + R0 * D;
  if (y->x1)
    io.x_mid = y->x1 + Tc * D;
  else if (last)
    io.x_mid = t->w_cls + Tc * D;
  else if (y->rebuild_x1) /* not kept, and x_in is the kept x0: the stream buffer x_in is not */
    io.x_mid = ((l & 1) ? t->w_x : t->w_y) + R0 * D;
  else
    io.x_mid = io.x_in;
  if (last && keep)
    io.x_out = t->xf + Tc * D;
  else if (last) /* inference: straight into the output, or pooled from the free stream buffer */
    io.x_out = t->nq == 1 ? c->job->cls_out + c->b0 * D : stream(c, l + 1) + R0 * D;
  else
    io.x_out = stream(c, l + 1) + R0 * D;
  io.ln2 = t->w_a + R0 * D;
  io.mean2 = y->mean2 ? y->mean2 + Tc : NULL;
  io.rstd2 = y->rstd2 ? y->rstd2 + Tc : NULL;
  io.po = ssf ? pick(y->po, Tc, t->w_a, R0, D) : NULL;
  io.h = pick(y->h, Tc, t->w_h, R0, t->F);
  io.g = y->h ? t->w_h + R0 * t->F : io.h;
  io.m = ssf ? pick(y->m, Tc, t->w_b, R0, D) : NULL;
  io.a_pre = t->r ? pick(y->a_pre, Tc, t->w_ad, R0, t->r) : NULL;
  io.a_hid = t->r ? t->w_ad + (Rmax + R0) * t->r : NULL;
  io.mask = c->job->key && y->mask ? y->mask + Tc * t->r : NULL;
  return io;
}

/* x[b] = [cls; tokens; SSF(patches)] + [pos_0; pos_0 x Tin; pos_1..] for this chunk's images
 * (VPT prompts come with block 0; input tokens only with PET_INPUT_PROMPT). */
static void embed(const fwd_ctx *c, const float *param, float *x) {
  const vit_trainer *t = c->t;
  const vit_config *v = &t->vc;
  const vit_params w = tr_weights(t, param);
  const int64_t D = t->D, Np = t->N - 1, img = v->in_chans * v->img_size * v->img_size;
  const int64_t Tin = t->Tin;
  const nn_patch_dims dims = {v->in_chans, v->img_size, v->img_size, v->patch_size, D};
  const float *gs = pet_at_const(param, t->lay.ssf_patch.scale);
  const float *gb = pet_at_const(param, t->lay.ssf_patch.shift);
  for (int64_t i = 0; i < c->n; i++) {
    const int64_t b = c->b0 + i;
    float *xi = x + i * t->Nt * D;
    float *xp = xi + (1 + Tin) * D; /* the patch rows */
    float *patch = gs && c->job->keep ? t->patch + b * Np * D : xp;
    nn_patch_embed_forward(patch, c->scratch, c->job->images + b * img, w.patch_w, w.patch_b, 1,
                           dims, Np * D);
    if (t->images && c->job->keep) /* full fine-tuning: the patch weights' gradient reads them */
      memcpy(t->images + b * img, c->job->images + b * img, (size_t)img * sizeof(float));
    if (gs) nn_ssf_forward(xp, patch, gs, gb, Np, D);
    nn_residual_forward(xp, xp, w.pos_embed + D, Np * D);
    nn_residual_forward(xi, w.cls_token, w.pos_embed, D);
    for (int64_t j = 0; j < Tin; j++)
      nn_residual_forward(xi + (1 + j) * D, c->job->io->tokens + (b * Tin + j) * D, w.pos_embed, D);
  }
}

/* LayerNorm 1 and qkv (with their SSF) on `rows` token rows. */
static void qkv_phase(const fwd_ctx *c, const fwd_io *io, const tr_pet *pp,
                      const vit_block_params *bp, int64_t rows) {
  const vit_trainer *t = c->t;
  const int64_t D = t->D;
  nn_layernorm_forward(io->ln, io->mean1, io->rstd1, io->x_in, bp->norm1_w, bp->norm1_b, rows, D,
                       t->vc.ln_eps);
  if (pp->ssf_s[PET_SSF_LN1])
    nn_ssf_forward(io->ln, io->ln, pp->ssf_s[PET_SSF_LN1], pp->ssf_b[PET_SSF_LN1], rows, D);
  nn_linear_forward(io->qkv, io->ln, bp->qkv_w, bp->qkv_b, rows, D, 3 * D);
  if (pp->ssf_s[PET_SSF_QKV])
    nn_ssf_forward(io->qkv_attn, io->qkv, pp->ssf_s[PET_SSF_QKV], pp->ssf_b[PET_SSF_QKV], rows,
                   3 * D);
}

/* Block l's prefix keys and values for image b of the job: the learner's shared (L, D) prefix,
 * or row b of the per-image (B, L, D) prefix. */
static void prefix_of(const fwd_ctx *c, const tr_pet *pp, int64_t l, int64_t b, const float **pk,
                      const float **pv) {
  const tr_layer *y = &c->t->layers[l];
  if (!y->sample) {
    *pk = pp->pk, *pv = pp->pv;
    return;
  }
  const int64_t o = b * y->L * c->t->D;
  *pk = c->job->io->pk[l] + o, *pv = c->job->io->pv[l] + o;
}

/* Input prompts, LayerNorm 1, qkv, attention of this chunk's images at block l; nq query rows
 * per image (all Nt, or the last block's output rows, whose context rows are then packed nq per
 * image). */
static void attention_phase(const fwd_ctx *c, const fwd_io *io, const tr_pet *pp,
                            const vit_block_params *bp, int64_t l, int64_t nq) {
  const vit_trainer *t = c->t;
  const int64_t D = t->D, Nt = t->Nt, L = t->layers[l].L;
  if (pp->prompts) nn_vpt_forward(io->x_in, pp->prompts, c->n, t->N + t->Tin, t->T, D);
  const nn_prefix_mode mode = tr_prefix_mode(t, pp, l);
  qkv_phase(c, io, pp, bp, c->n * Nt);
  for (int64_t i = 0; i < c->n; i++) {
    const float *pk, *pv;
    prefix_of(c, pp, l, c->b0 + i, &pk, &pv);
    for (int64_t h = 0; h < t->H; h++)
      nn_attention_head_forward_mode(io->ctx + i * nq * D, c->scratch,
                                     io->qkv_attn + i * Nt * 3 * D, pk, pv, L, &mode, nq, Nt, t->H,
                                     D / t->H, h);
  }
}

/* dst (rows, D) = rows of src + b1 + s2 * b2 (b1, b2 may be NULL); dst may be src. src is read
 * in groups of g consecutive rows, group k starting at src + k * ld (g = 1, ld = D: contiguous;
 * g = nq, ld = Nt D: the first nq rows of each image). Seeding a residual stream with the block
 * input and the biases in one pass lets the GEMMs that follow accumulate straight into it. */
static void seed_rows(float *dst, const float *src, int64_t g, int64_t ld, const float *b1,
                      const float *b2, float s2, int64_t rows, int64_t D) {
  for (int64_t i = 0; i < rows; i++) {
    float *d = dst + i * D;
    const float *x = src + (i / g) * ld + (i % g) * D;
    if (b1 && b2)
      for (int64_t j = 0; j < D; j++) d[j] = x[j] + b1[j] + s2 * b2[j];
    else if (b1 || b2)
      for (int64_t j = 0; j < D; j++) d[j] = x[j] + (b1 ? b1[j] : s2 * b2[j]);
    else if (d != x)
      memcpy(d, x, (size_t)D * sizeof(float));
  }
}

/* Projection, adapter and MLP on `rows` tail rows, reading the block input from x_src in groups
 * of g rows ld apart (seed_rows: 1 and D, or nq and Nt * D for the output rows of the last
 * block). */
static void tail_phase(const fwd_ctx *c, const fwd_io *io, const tr_pet *pp,
                       const vit_block_params *bp, const float *x_src, int64_t g, int64_t ld,
                       int64_t rows) {
  const vit_trainer *t = c->t;
  const int64_t D = t->D, F = t->F;
  const float s = t->pc.adapter_scale;
  if (pp->ssf_s[PET_SSF_PROJ]) {
    seed_rows(io->x_mid, x_src, g, ld, NULL, NULL, 0.0f, rows, D);
    nn_linear_forward(io->po, io->ctx, bp->proj_w, bp->proj_b, rows, D, D);
    nn_ssf_add_forward(io->x_mid, io->po, pp->ssf_s[PET_SSF_PROJ], pp->ssf_b[PET_SSF_PROJ], rows,
                       D);
  } else {
    seed_rows(io->x_mid, x_src, g, ld, bp->proj_b, NULL, 0.0f, rows, D);
    nn_linear_add_forward(io->x_mid, io->ctx, bp->proj_w, NULL, rows, D, D);
  }
  const int ssf2 = pp->ssf_s[PET_SSF_FC2] != NULL;
  seed_rows(io->x_out, io->x_mid, 1, D, ssf2 ? NULL : bp->fc2_b, pp->ad_ub, s, rows, D);
  if (pp->ad_dw)
    nn_adapter_forward(io->x_out, io->a_pre, io->a_hid, io->x_mid, io->mask, pp->ad_dw, pp->ad_db,
                       pp->ad_uw, NULL, s, t->pc.adapter_dropout, rows, D, t->r);
  nn_layernorm_forward(io->ln2, io->mean2, io->rstd2, io->x_mid, bp->norm2_w, bp->norm2_b, rows, D,
                       t->vc.ln_eps);
  if (pp->ssf_s[PET_SSF_LN2])
    nn_ssf_forward(io->ln2, io->ln2, pp->ssf_s[PET_SSF_LN2], pp->ssf_b[PET_SSF_LN2], rows, D);
  nn_linear_forward(io->h, io->ln2, bp->fc1_w, bp->fc1_b, rows, D, F);
  if (pp->ssf_s[PET_SSF_FC1]) {
    nn_ssf_forward(io->g, io->h, pp->ssf_s[PET_SSF_FC1], pp->ssf_b[PET_SSF_FC1], rows, F);
    nn_gelu_forward(io->g, io->g, rows * F);
  } else {
    nn_gelu_forward(io->g, io->h, rows * F);
  }
  if (ssf2) {
    nn_linear_forward(io->m, io->g, bp->fc2_w, bp->fc2_b, rows, F, D);
    nn_ssf_add_forward(io->x_out, io->m, pp->ssf_s[PET_SSF_FC2], pp->ssf_b[PET_SSF_FC2], rows, D);
  } else {
    nn_linear_add_forward(io->x_out, io->g, bp->fc2_w, NULL, rows, F, D);
  }
}

/* Dropout masks of this chunk's samples at block l (tokens rows per sample). */
static void draw_masks(const fwd_ctx *c, uint8_t *mask, int64_t l, int64_t tokens) {
  const vit_trainer *t = c->t;
  for (int64_t i = 0; i < c->n; i++)
    tr_dropout_mask(mask + i * tokens * t->r, tokens * t->r, t->pc.adapter_dropout, c->job->key,
                    c->b0 + i, l);
}

static void block(const fwd_ctx *c, int64_t l) {
  const vit_trainer *t = c->t;
  const int64_t D = t->D, Nt = t->Nt, nq = t->nq;
  const int last = pruned(c, l);
  const tr_pet pp = tr_pet_at(t, c->job->param, l);
  const vit_block_params bw = tr_block_weights(t, c->job->param, l), *bp = &bw;
  const fwd_io io = bind(c, l);
  attention_phase(c, &io, &pp, bp, l, last ? nq : Nt);
  if (io.mask) draw_masks(c, io.mask, l, last ? nq : Nt);
  if (last)
    tail_phase(c, &io, &pp, bp, io.x_in, nq, Nt * D, c->n * nq);
  else
    tail_phase(c, &io, &pp, bp, io.x_in, 1, D, c->n * Nt);
}

/* out[i] = mean of rows 1..nq-1 of image i's nq LayerNorm'd rows y (the pooled input tokens),
 * summed in token order. */
static void pool_tokens(float *out, const float *y, int64_t n, int64_t nq, int64_t D) {
  const float inv = 1.0f / (float)(nq - 1);
  for (int64_t i = 0; i < n; i++) {
    float *o = out + i * D;
    const float *r = y + i * nq * D;
    memcpy(o, r + D, (size_t)D * sizeof(float));
    for (int64_t j = 2; j < nq; j++)
      for (int64_t d = 0; d < D; d++) o[d] += r[j * D + d];
    for (int64_t d = 0; d < D; d++) o[d] *= inv;
  }
}

/* Final LayerNorm (statistics kept when training) and SSF of the output rows; with pooled
 * input tokens (nq > 1) their mean, through the chunk's rows of w_a. */
static void final_norm(const fwd_ctx *c) {
  const vit_trainer *t = c->t;
  const int64_t D = t->D, b0 = c->b0, nq = t->nq, rows = c->n * nq;
  const float *param = c->job->param;
  const vit_params w = tr_weights(t, param);
  float *out = c->job->cls_out + b0 * D;
  if (!pruned(c, t->vc.depth - 1)) /* every token computed: gather the class rows first */
    for (int64_t i = 0; i < c->n; i++)
      memcpy(out + i * D, stream(c, t->vc.depth) + (c->R0 + i * t->Nt) * D,
             (size_t)D * sizeof(float));
  float *y = nq == 1 ? out : t->w_a + c->R0 * D;
  if (c->job->keep)
    nn_layernorm_forward(y, t->meanf + b0 * nq, t->rstdf + b0 * nq, t->xf + b0 * nq * D, w.norm_w,
                         w.norm_b, rows, D, t->vc.ln_eps);
  else
    nn_layernorm_forward(y, NULL, NULL, nq == 1 ? out : stream(c, t->vc.depth) + c->R0 * D,
                         w.norm_w, w.norm_b, rows, D, t->vc.ln_eps);
  if (t->lay.ssf_norm.scale >= 0)
    nn_ssf_forward(y, y, param + t->lay.ssf_norm.scale, param + t->lay.ssf_norm.shift, rows, D);
  if (nq > 1) pool_tokens(out, y, c->n, nq, D);
}

/* Row mode (inference without PET, batch not a multiple of the team; tr_fwd_job.rows): thread tid owns token rows
 * [B Nt tid / T, B Nt (tid + 1) / T) for the row-local phases, an even share of the (image, head)
 * pairs for attention and images [B tid / T, B (tid + 1) / T) for the embedding, the pruned
 * last block's tail and the final LayerNorm; one barrier after the embedding and two per block
 * (around attention) order the phases. A batch of 1 thus still uses every core. */
static void forward_rows(tr_fwd_job *job, int tid, int T) {
  vit_trainer *t = job->t;
  vit_pool *pool = t->pool;
  const int64_t B = job->B, Nt = t->Nt, D = t->D, H = t->H, depth = t->vc.depth;
  float *scratch = t->scratch + tid * t->scratch_stride;
  fwd_ctx img = {job, t, B * tid / T, B * (tid + 1) / T - B * tid / T, 0, scratch};
  fwd_ctx row = {job, t, 0, 0, B * Nt * tid / T, scratch};
  const int64_t rows = B * Nt * (tid + 1) / T - row.R0;
  img.R0 = img.b0 * Nt;
  embed(&img, job->param, stream(&img, 0) + img.R0 * D);
  vit_pool_barrier(pool);
  for (int64_t l = 0; l < depth; l++) {
    const tr_pet pp = tr_pet_at(t, job->param, l);
    const vit_block_params *bp = &t->m->p.blocks[l];
    const int last = pruned(&row, l);
    const fwd_io io = bind(&row, l);
    qkv_phase(&row, &io, &pp, bp, rows);
    vit_pool_barrier(pool);
    for (int64_t k = B * H * tid / T; k < B * H * (tid + 1) / T; k++) {
      const int64_t b = k / H, h = k % H;
      nn_attention_head_forward(t->w_b + b * Nt * D, scratch, t->w_qkv + b * Nt * 3 * D, NULL, NULL,
                                0, last ? 1 : Nt, Nt, H, D / H, h);
    }
    vit_pool_barrier(pool);
    if (!last) {
      tail_phase(&row, &io, &pp, bp, io.x_in, 1, D, rows);
      continue;
    }
    if (!img.n) continue;
    for (int64_t i = 0; i < img.n; i++) /* class contexts packed one row per image */
      memmove(t->w_b + (img.R0 + i) * D, t->w_b + (img.b0 + i) * Nt * D, (size_t)D * sizeof(float));
    const fwd_io last_io = bind(&img, l);
    tail_phase(&img, &last_io, &pp, bp, last_io.x_in, 1, Nt * D, img.n);
  }
  if (!pruned(&row, depth - 1)) vit_pool_barrier(pool);
  if (img.n) final_norm(&img);
}

void tr_forward_thread(void *arg, int tid, int nthreads) {
  tr_fwd_job *job = arg;
  vit_trainer *t = job->t;
  if (job->rows) {
    forward_rows(job, tid, nthreads);
    return;
  }
  for (int64_t k; (k = atomic_fetch_add(&job->next, 1)) < job->n_chunks;) {
    fwd_ctx c = {job, t, 0, 0, 0, t->scratch + tid * t->scratch_stride};
    int64_t b1;
    tr_chunk(job->B, job->n_chunks, k, &c.b0, &b1);
    /* inference with per-image inputs: GEMMs of one image's rows (training needs no invariance
     * and keeps the chunk's GEMMs, 5-10% faster on ViT-B) */
    const int64_t step = t->per_image && !job->keep ? 1 : b1 - c.b0;
    for (; c.b0 < b1; c.b0 += step) {
      c.n = step;
      c.R0 = c.b0 * t->Nt;
      embed(&c, job->param, stream(&c, 0) + c.R0 * t->D);
      for (int64_t l = 0; l < t->vc.depth; l++) block(&c, l);
      final_norm(&c);
    }
  }
}
