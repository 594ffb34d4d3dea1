/* vit_trainer_internal.h: the trainer's state, shared by vit_trainer.c (memory, public entry
 * points), vit_trainer_forward.c, vit_trainer_backward.c and vit_trainer_dropout.c (private to
 * src/model).
 *
 * Memory. Everything is sized at create for max_batch images of Nt = N + Tin + T tokens (Tin
 * per-image input tokens after the class token, T VPT prompts after the patches) and
 * R = max_batch * Nt rows:
 *   - per block, a cache of what its backward needs, no more (tr_layer; which tensors a block
 *     keeps depends on how deep the backward must go through it, tr_level);
 *   - one working set (R rows of x, y, a, b, qkv, hidden...) that serves as the forward's
 *     transient activations, as inference's whole activation memory, and as the backward's
 *     gradient buffers: the three never run at the same time, and inference between a forward
 *     and its backward only touches the working set, so the caches survive it;
 *   - per thread, attention scratch; per chunk of images, a copy of the PET gradient (added in
 *     chunk order after the backward, so the sum does not depend on which thread ran what).
 * Work is handed out in chunks of whole images from a shared counter (one per thread by
 * default, TR_CHUNKS_PER_THREAD): a thread that takes a chunk runs it through every phase of
 * every block (forward or backward), so no phase needs a barrier, and its GEMMs have all the
 * chunk's rows (1576 for 8 ViT-B images). Chunk boundaries depend only on B and the thread
 * count, never on timing, so results are reproducible. */
#ifndef SAFECL_MODEL_VIT_TRAINER_INTERNAL_H
#define SAFECL_MODEL_VIT_TRAINER_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include "safecl/nn.h"
#include "safecl/pet.h"
#include "vit_pool.h"

/* How far the backward goes through a block (top to bottom), from the trainable tensors in and
 * below it: nothing; the adapter's weights only; down to the attention's q, k, v (prefixes);
 * down to the block input (anything trainable below, prompts, SSF). */
typedef enum { TR_SKIP, TR_ADAPTER, TR_ATTN, TR_FULL } tr_level;

/* Block l's pet_layout fields resolved against one learner's param array: NULL = absent. */
typedef struct tr_pet {
  const float *ssf_s[PET_SSF_SITES], *ssf_b[PET_SSF_SITES];
  const float *ad_dw, *ad_db, *ad_uw, *ad_ub;
  const float *pk, *pv;   /* (L, D) prefix keys and values */
  const float *pks, *pvs; /* (1) their scales (prefix_scales), else NULL */
  const float *prompts;   /* (T, D) prompts written before this block */
} tr_pet;

/* The same against a gradient array (the learner's or a chunk's copy), writable. */
typedef struct tr_grad {
  float *ssf_s[PET_SSF_SITES], *ssf_b[PET_SSF_SITES];
  float *ad_dw, *ad_db, *ad_uw, *ad_ub;
  float *pk, *pv;
  float *pks, *pvs;
  float *prompts;
} tr_grad;

/* A block's cache; NULL members are not kept at this block's level. "tail" rows are R for
 * every block but the last, whose tail (after attention) runs on the first nq rows of each image
 * alone (the class token, and the input tokens when they are pooled), packed nq rows per image. */
typedef struct tr_layer {
  tr_level level;
  int64_t L;            /* prefix length at this block (0: none) */
  int sample;           /* the prefix is per image (vit_prompt_io.pk/pv), else pet_params' */
  float *x0;            /* (R, D) block input, prompts included */
  float *mean1, *rstd1; /* (R) LayerNorm 1 statistics */
  float *qkv;           /* (R, 3D) qkv linear output (before SSF) */
  float *x1;            /* (tail, D) after the attention residual; NULL when rebuild_x1 */
  float *ctx;           /* (tail, D) full fine-tuning: the attention context, the projection's
                           input (its weight gradient reads it; kept instead of recomputed) */
  int rebuild_x1;       /* x1 is not kept: the backward rebuilds it from x0 and qkv (a TR_FULL block
                     below the last without adapter or SSF; saves R x D floats per block) */
  float *mean2, *rstd2; /* (tail) */
  float *h;             /* (tail, F) fc1 output (before SSF and GELU) */
  float *po, *m;        /* (tail, D) SSF only: projection and fc2 outputs before their SSF */
  float *a_pre;         /* (tail, r) adapter pre-activation */
  uint8_t *mask;        /* (tail, r) adapter dropout mask of the last keyed forward */
} tr_layer;

struct vit_trainer {
  const vit_model *m; /* the shared frozen backbone */
  vit_config vc;
  pet_config pc;
  int64_t max_batch, N, T, Nt, D, F, H, r;
  int64_t Tin;   /* per-image input tokens at rows [1, 1 + Tin) (PET_INPUT_PROMPT), else 0 */
  int64_t nq;    /* rows per image the last block's tail computes: 1 + Tin when pooled, else 1 */
  int per_image; /* inference chunks run image by image (vit_trainer_forward.c): per-image inputs,
                    or the engine of a vit_model with per_image set */
  int threads;
  vit_pool *pool;
  pet_layout lay;    /* where each PET tensor sits in a matching pet_params */
  int64_t pet_count; /* floats of a matching pet_params (lay.count) */
  tr_layer *layers;
  float *xf, *meanf, *rstdf; /* (max_batch nq, D), (max_batch nq): final LayerNorm input, stats */
  float *patch;              /* SSF: (max_batch * (N - 1), D) patch embedding before its SSF */
  float *images; /* PET_FULL: (max_batch, C, S, S) the kept forward's images (patch weight grad) */
  float *cache_block;
  /* working set (R rows unless stated) */
  float *w_x, *w_y, *w_a, *w_b; /* (R, D) */
  float *w_qkv, *w_qkv2;        /* (R, 3D); w_qkv2 only with SSF */
  float *w_h;                   /* (R, F) */
  float *w_ad;                  /* (R, 2r) adapter pre-activation and hidden / backward scratch */
  float *w_cls;                 /* (max_batch nq, D) packed tail rows during inference */
  float *scratch;               /* threads x scratch_stride */
  int64_t scratch_stride;
  float *gpart; /* (chunks - 1) x pet_count: gradient copies of chunks 1.. */
  float *work_block;
  int work_lent;      /* engine: work_block is a lender trainer's (vit_trainer_create_lending) */
  vit_model *lent_to; /* lender: the model whose engine runs in this trainer's working set */
  /* the kept forward */
  int64_t fwd_B;  /* images of the last kept forward, 0 = none */
  int fwd_masked; /* its adapter dropout was on */
  double flops;   /* per image, forward + backward */
};

/* Chunks per thread. 2 would let a thread slowed by another process on its core take fewer
 * images, but every chunk packs every weight matrix again inside OpenBLAS (340 MB read per
 * pass of ViT-B): on an idle machine, 2 chunks per thread measured 2% slower at batch 16. */
#ifndef TR_CHUNKS_PER_THREAD
#define TR_CHUNKS_PER_THREAD 1
#endif

/* Chunks a batch of B images is cut into on T threads. */
static inline int64_t tr_chunks(int64_t B, int T) {
  const int64_t n = (int64_t)T * TR_CHUNKS_PER_THREAD;
  return n < B ? n : B;
}

/* Images [b0, b1) of chunk k out of n. */
static inline void tr_chunk(int64_t B, int64_t n, int64_t k, int64_t *b0, int64_t *b1) {
  *b0 = B * k / n;
  *b1 = B * (k + 1) / n;
}

tr_pet tr_pet_at(const vit_trainer *t, const float *param, int64_t l);
tr_grad tr_grad_at(const vit_trainer *t, float *grad, int64_t l);

/* The backbone weights a call reads: the frozen model's (vit_model.p), or under PET_FULL the
 * learner's copy, each tensor at param + lay.full + its offset in vit_model.param_block (the copy
 * has the block's layout, pet_params.c). blocks is left NULL: tr_block_weights gives block l. */
vit_params tr_weights(const vit_trainer *t, const float *param);
vit_block_params tr_block_weights(const vit_trainer *t, const float *param, int64_t l);
/* The same views against a gradient array (the learner's or a chunk's copy) under PET_FULL;
 * every pointer NULL otherwise (the backbone is frozen: the kernels skip NULL weight gradients). */
vit_params tr_weight_grads(const vit_trainer *t, float *grad);
vit_block_params tr_block_grads(const vit_trainer *t, float *grad, int64_t l);
/* The attention kernel's prefix mode of block l's shared prefix (pet_config's LAE options,
 * docs/methods.md l.2; the scales read from the learner's block pp); per-image prefixes are
 * plain. */
static inline nn_prefix_mode tr_prefix_mode(const vit_trainer *t, const tr_pet *pp, int64_t l) {
  nn_prefix_mode m = {0, 0, 1.0f, 1.0f};
  if (t->layers[l].sample || !pp->pk) return m;
  m.pos = t->pc.prefix_after_cls ? 1 : 0;
  m.compensate = t->pc.prefix_compensate;
  if (pp->pks) m.key_scale = *pp->pks, m.value_scale = *pp->pvs;
  return m;
}

/* Per-thread bodies run by the pool. keep = 0 is inference (no cache, no dropout). */
typedef struct tr_fwd_job {
  vit_trainer *t;
  const float *param;
  const float *images;
  int64_t B;
  const vit_dropout_key *key; /* NULL: no dropout */
  const vit_prompt_io *io;    /* per-image inputs, row 0 = image 0 of the job; NULL: none */
  int keep;
  float *cls_out;
  int64_t n_chunks;
  int rows;          /* row mode instead of chunks: only without PET, keep 0 (forward_rows) */
  atomic_llong next; /* next chunk to hand out */
} tr_fwd_job;

typedef struct tr_bwd_job {
  vit_trainer *t;
  const float *param;
  float *grad; /* chunk 0's target; chunks 1.. use t->gpart */
  const float *dcls;
  const vit_prompt_io *io;
  int64_t B;
  int64_t n_chunks;
  atomic_llong next;
} tr_bwd_job;

void tr_forward_thread(void *arg, int tid, int nthreads);

/* The frozen model's forward (vit_model_forward): a PET-less trainer of m's max_batch and exact
 * thread count, run in inference mode, in chunks of whole images when the thread count divides
 * B and in row mode otherwise. */
SCL_NODISCARD scl_err tr_engine_create(const vit_model *m, vit_trainer **out);
void tr_engine_forward(vit_trainer *t, const float *images, int64_t B, float *cls_out);
void tr_backward_thread(void *arg, int tid, int nthreads);

/* The adapter dropout mask of one sample at one block (n bytes, row-major (token, unit)). */
void tr_dropout_mask(uint8_t *mask, int64_t n, float p, const vit_dropout_key *key, int64_t b,
                     int64_t layer);

#endif /* SAFECL_MODEL_VIT_TRAINER_INTERNAL_H */
