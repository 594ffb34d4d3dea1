/* vit_forward.c: the ViT forward pass, threaded over a fixed team, and its reference twin.
 *
 * Parallel plan. The B*N token rows are split into one contiguous range per thread; every
 * phase but attention is row-local (LayerNorm, the qkv / proj / fc1 / fc2 GEMMs, GELU, the
 * residual adds), so a thread runs them on its own rows with single-threaded OpenBLAS, which
 * here reaches ~175 GFLOP/s per core at M ~ 800 rows against ~168 per core for OpenBLAS's own
 * 2-thread split, and needs no synchronisation between them. Attention is handed out as
 * (image, head) pairs: each pair's two small products and softmax run on one core with the
 * scores in cache, instead of 197 x 197 x 64 GEMMs threaded inside BLAS (50-70 GFLOP/s here).
 * When the thread count divides the batch, each thread's rows are whole images and it takes
 * those images' heads, so a forward needs no barrier at all; otherwise one barrier after the
 * embedding and two per block (around attention) order the phases. The team sleeps between
 * forwards and nothing spins, so no core is stolen from the GEMMs. Single-threaded OpenBLAS is
 * safe to call from several threads at once (its buffer pool is locked or per-thread);
 * test_vit_model checks that repeated threaded forwards agree bit for bit.
 *
 * Only the class token leaves the model, so by default the last block computes keys and values
 * for every token but queries, projection and MLP for the class token alone (about 6% of a
 * ViT-B forward); m->full_last_block turns that off for like-for-like benchmarks. */
#include <cblas.h>
#include <string.h>

#include "safecl/nn.h"
#include "safecl/vit.h"
#include "vit_pool.h"

typedef struct fwd_job {
  vit_model *m;
  const float *images;
  int64_t B;
  float *cls_out;
  int aligned; /* thread count divides B: threads own whole images */
} fwd_job;

typedef struct thread_range {
  int tid, T;
  int64_t b0, b1; /* images [b0, b1) */
  int64_t r0, r1; /* token rows [r0, r1) of the (B*N) matrix */
} thread_range;

static void phase_barrier(const fwd_job *job) {
  if (!job->aligned) vit_pool_barrier(job->m->pool);
}

/* x[b] = [cls; patches] + pos for this thread's images. */
static void embed(const fwd_job *job, const thread_range *tr) {
  const vit_model *m = job->m;
  const vit_config *c = &m->cfg;
  const int64_t N = m->tokens, D = c->width;
  const nn_patch_dims dims = {c->in_chans, c->img_size, c->img_size, c->patch_size, D};
  float *cols = m->acts.scratch + tr->tid * m->acts.scratch_stride;
  const int64_t img = c->in_chans * c->img_size * c->img_size;
  for (int64_t b = tr->b0; b < tr->b1; b++) {
    float *x = m->acts.x + b * N * D;
    nn_patch_embed_forward(x + D, cols, job->images + b * img, m->p.patch_w, m->p.patch_b, 1, dims,
                           (N - 1) * D);
    memcpy(x, m->p.cls_token, (size_t)D * sizeof(float));
    nn_residual_forward(x, x, m->p.pos_embed, N * D);
  }
}

/* Attention for this thread's (image, head) pairs, nq query rows per image: the heads of its
 * own images when threads own whole images, an even share of all pairs otherwise. */
static void attention(const fwd_job *job, const thread_range *tr, int64_t nq) {
  const vit_model *m = job->m;
  const int64_t N = m->tokens, D = m->cfg.width, H = m->cfg.heads, Dh = D / H;
  float *scores = m->acts.scratch + tr->tid * m->acts.scratch_stride;
  int64_t t0 = tr->b0 * H, t1 = tr->b1 * H;
  if (!job->aligned) {
    t0 = job->B * H * tr->tid / tr->T;
    t1 = job->B * H * (tr->tid + 1) / tr->T;
  }
  for (int64_t t = t0; t < t1; t++) {
    const int64_t b = t / H, h = t % H;
    nn_attention_head_forward(m->acts.ctx + b * N * D, scores, m->acts.qkv + b * N * 3 * D, NULL,
                              NULL, 0, nq, N, H, Dh, h);
  }
}

/* The row-local rest of a block on `rows` packed rows: x += proj(ctx);
 * x += fc2(GELU(fc1(LN2(x)))), with ln and hidden as working rows. */
static void block_tail(const vit_model *m, const vit_block_params *bp, float *x, const float *ctx,
                       float *ln, float *hidden, int64_t rows) {
  const int64_t D = m->cfg.width, F = m->cfg.mlp_hidden;
  nn_linear_add_forward(x, ctx, bp->proj_w, bp->proj_b, rows, D, D);
  nn_layernorm_forward(ln, NULL, NULL, x, bp->norm2_w, bp->norm2_b, rows, D, m->cfg.ln_eps);
  nn_linear_gelu_forward(hidden, ln, bp->fc1_w, bp->fc1_b, rows, D, F);
  nn_linear_add_forward(x, hidden, bp->fc2_w, bp->fc2_b, rows, F, D);
}

/* The last block for class tokens only: gather this thread's images' class rows of x and ctx
 * into packed rows (inside the ln buffer, which is free by now), run the tail, final LN. */
static void last_block_cls(const fwd_job *job, const thread_range *tr, const vit_block_params *bp) {
  const vit_model *m = job->m;
  const int64_t N = m->tokens, D = m->cfg.width, n = tr->b1 - tr->b0;
  if (n <= 0) return;
  float *xc = m->acts.ln + tr->b0 * N * D, *cc = xc + n * D, *lc = cc + n * D;
  float *hc = m->acts.hidden + tr->b0 * N * m->cfg.mlp_hidden;
  for (int64_t i = 0; i < n; i++) {
    memcpy(xc + i * D, m->acts.x + (tr->b0 + i) * N * D, (size_t)D * sizeof(float));
    memcpy(cc + i * D, m->acts.ctx + (tr->b0 + i) * N * D, (size_t)D * sizeof(float));
  }
  block_tail(m, bp, xc, cc, lc, hc, n);
  nn_layernorm_forward(job->cls_out + tr->b0 * D, NULL, NULL, xc, m->p.norm_w, m->p.norm_b, n, D,
                       m->cfg.ln_eps);
}

static void forward_thread(void *arg, int tid, int T) {
  const fwd_job *job = arg;
  vit_model *m = job->m;
  const int64_t N = m->tokens, D = m->cfg.width, B = job->B, depth = m->cfg.depth;
  const thread_range tr = {
      tid, T, B * tid / T, B * (tid + 1) / T, B * N * tid / T, B * N * (tid + 1) / T};
  const int64_t rows = tr.r1 - tr.r0;
  const vit_acts *a = &m->acts;
  embed(job, &tr);
  phase_barrier(job);
  for (int64_t l = 0; l < depth; l++) {
    const vit_block_params *bp = &m->p.blocks[l];
    const int prune = l == depth - 1 && !m->full_last_block;
    nn_layernorm_forward(a->ln + tr.r0 * D, NULL, NULL, a->x + tr.r0 * D, bp->norm1_w, bp->norm1_b,
                         rows, D, m->cfg.ln_eps);
    nn_linear_forward(a->qkv + tr.r0 * 3 * D, a->ln + tr.r0 * D, bp->qkv_w, bp->qkv_b, rows, D,
                      3 * D);
    phase_barrier(job);
    attention(job, &tr, prune ? 1 : N);
    phase_barrier(job);
    if (prune) {
      last_block_cls(job, &tr, bp);
      return;
    }
    block_tail(m, bp, a->x + tr.r0 * D, a->ctx + tr.r0 * D, a->ln + tr.r0 * D,
               a->hidden + tr.r0 * m->cfg.mlp_hidden, rows);
  }
  /* Every token computed: the final LayerNorm of the class rows this thread owns. */
  for (int64_t b = 0; b < B; b++)
    if (b * N >= tr.r0 && b * N < tr.r1)
      nn_layernorm_forward(job->cls_out + b * D, NULL, NULL, a->x + b * N * D, m->p.norm_w,
                           m->p.norm_b, 1, D, m->cfg.ln_eps);
}

static scl_err check_batch(const vit_model *m, const float *images, int64_t B, const float *out) {
  if (!m || !images || !out)
    return SCL_ERROR(SCL_ERR_ARG, "ViT forward: NULL model, images or output");
  if (B < 1 || B > m->max_batch)
    return SCL_ERROR(SCL_ERR_ARG, "ViT '%s' forward: batch %lld is outside [1, %lld]", m->cfg.name,
                     (long long)B, (long long)m->max_batch);
  return SCL_OK;
}

scl_err vit_model_forward(vit_model *m, const float *images, int64_t B, float *cls_out) {
  SCL_CALL(check_batch(m, images, B, cls_out));
  const int T = vit_pool_size(m->pool);
  fwd_job job = {m, images, B, cls_out, B % T == 0};
  /* OpenBLAS runs single-threaded inside the team; its own threads sleep meanwhile. */
  const int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  vit_pool_run(m->pool, forward_thread, &job);
  openblas_set_num_threads(blas_threads);
  return SCL_OK;
}

/* One block through the reference kernels, every token. */
static void block_ref(vit_model *m, const vit_block_params *bp, int64_t B) {
  const vit_config *c = &m->cfg;
  const int64_t N = m->tokens, D = c->width, F = c->mlp_hidden, BN = B * N;
  const vit_acts *a = &m->acts;
  nn_layernorm_forward_ref(a->ln, NULL, NULL, a->x, bp->norm1_w, bp->norm1_b, BN, D, c->ln_eps);
  nn_linear_forward_ref(a->qkv, a->ln, bp->qkv_w, bp->qkv_b, BN, D, 3 * D);
  for (int64_t b = 0; b < B; b++)
    nn_attention_forward_ref(a->ctx + b * N * D, a->scratch, a->qkv + b * N * 3 * D, NULL, NULL, 0,
                             1, N, c->heads, D / c->heads);
  nn_linear_add_forward_ref(a->x, a->ctx, bp->proj_w, bp->proj_b, BN, D, D);
  nn_layernorm_forward_ref(a->ln, NULL, NULL, a->x, bp->norm2_w, bp->norm2_b, BN, D, c->ln_eps);
  nn_linear_forward_ref(a->hidden, a->ln, bp->fc1_w, bp->fc1_b, BN, D, F);
  nn_gelu_forward_ref(a->hidden, a->hidden, BN * F);
  nn_linear_add_forward_ref(a->x, a->hidden, bp->fc2_w, bp->fc2_b, BN, F, D);
}

scl_err vit_model_forward_ref(vit_model *m, const float *images, int64_t B, float *cls_out) {
  SCL_CALL(check_batch(m, images, B, cls_out));
  const vit_config *c = &m->cfg;
  const int64_t N = m->tokens, D = c->width;
  const nn_patch_dims dims = {c->in_chans, c->img_size, c->img_size, c->patch_size, D};
  nn_patch_embed_forward_ref(m->acts.x + D, images, m->p.patch_w, m->p.patch_b, B, dims, N * D);
  for (int64_t b = 0; b < B; b++) {
    float *x = m->acts.x + b * N * D;
    memcpy(x, m->p.cls_token, (size_t)D * sizeof(float));
    nn_residual_forward_ref(x, x, m->p.pos_embed, N * D);
  }
  for (int64_t l = 0; l < c->depth; l++) block_ref(m, &m->p.blocks[l], B);
  for (int64_t b = 0; b < B; b++)
    nn_layernorm_forward_ref(cls_out + b * D, NULL, NULL, m->acts.x + b * N * D, m->p.norm_w,
                             m->p.norm_b, 1, D, c->ln_eps);
  return SCL_OK;
}
