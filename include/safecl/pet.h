/* pet.h: parameter-efficient tuning (PET) modules on the frozen ViT, and the trainable
 * forward/backward through all blocks (docs/methods.md b.2-b.4; docs/conventions.md 6-8).
 *
 * Every learner shares ONE frozen backbone (vit_model); what distinguishes the pre-trained
 * model, SAFE's slow learner and its fast learner is only their pet_params block (and heads,
 * which live in learn/). A pet_params block holds all trainable floats of one learner in one
 * aligned array, with the gradient in a second array of the same layout, so the optimizer is one
 * flat loop and the data-parallel gradient sync is one allreduce. The model reads its tensors
 * through a typed layout (pet_layout), never by name; docs/pet.md describes the layout rule and
 * where the next methods plug in.
 *
 * Modules (as the released code has them):
 *   adapter  AdaptFormer, parallel to the MLP, input = the residual stream after the attention
 *            add (no LayerNorm): a = s * (W_up Dropout_p(ReLU(W_down x + b_down)) + b_up),
 *            x <- x + MLP(LN2(x)) + a; bottleneck 64, s = 0.1 fixed, p = 0.1 (training only);
 *            init W_down ~ U(-1/sqrt(D), 1/sqrt(D)) (kaiming-uniform a = sqrt 5), b_down = W_up =
 *            b_up = 0. Tensors blocks.{i}.adapter.{down,up}.{weight,bias}.
 *   ssf      y = x * gamma + beta at: after patch embedding (D); in every block after LN1 (D),
 *            after qkv (3D), after the attention projection (D), after LN2 (D), after fc1 BEFORE
 *            GELU (F), after fc2 (D); after the final LayerNorm (D, on all tokens). Init gamma ~
 *            N(1, 0.02), beta ~ N(0, 0.02). Tensors ssf.patch.{scale,shift},
 *            blocks.{i}.ssf.{ln1,qkv,proj,ln2,fc1,fc2}.{scale,shift}, ssf.norm.{scale,shift}.
 *   vpt      deep: before block i, prompts P[i] (n_tokens x D) are APPENDED after the patch
 *            tokens (sequence: CLS, patches, prompts) and dropped after the block; shallow: only
 *            before block 0, kept through all blocks. Init zeros (released) or, as the VPT
 *            paper's code, U(+-sqrt(6 / (C P P + D))).
 *            Tensor vpt.prompts (depth or 1, n_tokens, D).
 *   prefix   prefix tuning of attention keys and values: for each listed layer, learned K and V
 *            prefixes (prefix_len x D each), shared by every image, are prepended to the keys and
 *            values of that layer (queries unchanged). Tensor prefix.{layer}.{key,value}.
 *   input_prompt, sample_prefix
 *            the prompt-based methods' per-image inputs (docs/methods.md f.5): tensors that
 *            differ per image, which the method composes from its own pools for every batch and
 *            passes with each call (vit_prompt_io below); they hold no tensors in pet_params.
 *            input_prompt: input_tokens tokens per image inserted after the class token with the
 *            class token's position embedding, travelling through every block (L2P; sequence
 *            [CLS, tokens, patches]); with pool_input_tokens the output is the mean of those
 *            tokens after the final LayerNorm instead of the class token. sample_prefix: per-image
 *            key and value prefixes (sample_prefix_len each) at the blocks in
 *            sample_prefix_layers (DualPrompt's G- and E-prompts, CODA-Prompt's composed prompts).
 *   full     full fine-tuning (SLCA, docs/methods.md k.1): the block holds a copy of every backbone
 *            tensor (pet_params_copy_backbone), the trainer reads every weight from it instead of
 *            the shared frozen model and the backward writes a gradient for each of them (patch
 *            embedding, class token, position embedding, every block, final LayerNorm). The copy
 *            is vit_model's param_block byte for byte (same tensor order and padding), so the
 *            weight gradient is one contiguous array for the data-parallel allreduce.
 * The prefix kind has LAE's options (docs/methods.md l.2): prefix_after_cls inserts the prefix
 * after the class token's key (order k_0, prefix, k_1..), prefix_compensate renormalises the
 * prefix columns of every softmax row by their sum, prefix_scales multiplies keys and values by
 * learnable scalars (tensors prefix.{layer}.{key,value}_scale, initialised to 1), and
 * prefix_uniform draws the keys and values from LAE's U(0, 0.01) instead of N(0, 0.02).
 * Several kinds may be combined where the code needs it (kinds is a bit set).
 *
 * Frozen parameters never get gradients; only pet_params.grad is written, by accumulation (+=).
 */
#ifndef SAFECL_PET_H
#define SAFECL_PET_H

#include <stddef.h>
#include <stdint.h>

#include "safecl/core.h"
#include "safecl/vit.h"

enum {
  PET_ADAPTER = 1u << 0,
  PET_SSF = 1u << 1,
  PET_VPT_DEEP = 1u << 2,
  PET_VPT_SHALLOW = 1u << 3,
  PET_PREFIX = 1u << 4,
  PET_INPUT_PROMPT = 1u << 5,
  PET_SAMPLE_PREFIX = 1u << 6,
  PET_FULL = 1u << 7
};

/* Blocks a layer bit set can name (prefix_layers, sample_prefix_layers). */
#define PET_MAX_LAYERS 32

typedef struct pet_config {
  unsigned kinds;            /* bit set of PET_*; 0 = no PET (the pre-trained model) */
  int64_t adapter_dim;       /* 64 */
  float adapter_scale;       /* 0.1 */
  float adapter_dropout;     /* 0.1 */
  int64_t vpt_tokens;        /* 5 */
  int vpt_xavier;            /* 0: zeros as released; 1: the VPT paper code's Xavier-uniform */
  int64_t prefix_len;        /* prefix tokens per layer */
  uint32_t prefix_layers;    /* bit i set: prefixes at block i */
  int64_t input_tokens;      /* PET_INPUT_PROMPT: tokens per image (L2P: top_k x length = 25) */
  int pool_input_tokens;     /* PET_INPUT_PROMPT: 1 = output the mean of the tokens (L2P) */
  int64_t sample_prefix_len; /* PET_SAMPLE_PREFIX: prefix keys (and values) per image and block */
  uint32_t sample_prefix_layers; /* PET_SAMPLE_PREFIX: bit i set: per-image prefixes at block i */
  int prefix_after_cls;          /* PET_PREFIX: 1 = prefix after the class token's key (LAE) */
  int prefix_compensate;         /* PET_PREFIX: 1 = renormalise the prefix columns (LAE) */
  int prefix_scales;             /* PET_PREFIX: 1 = learnable key and value scalars (LAE) */
  int prefix_uniform; /* PET_PREFIX: 1 = keys and values ~ U(0, 0.01) (LAE); 0 = N(0, 0.02) */
} pet_config;

/* Parser and printer of PET kind names, the one table every caller uses: "none", or a
 * comma-separated list of adapter, ssf, vpt_deep (alias vpt), vpt_shallow, prefix. An unknown
 * name is SCL_ERR_ARG naming it and listing the valid ones. */
SCL_NODISCARD scl_err pet_kinds_parse(const char *names, unsigned *kinds);
/* "adapter,ssf" or "none" into buf (always terminated); returns buf. */
const char *pet_kinds_format(unsigned kinds, char *buf, size_t size);
/* The valid names, for help texts: "none|adapter|ssf|vpt_deep|vpt_shallow|prefix". */
const char *pet_kind_names(void);

/* Tokens per image of a run with this PET config: the backbone's N (197 for ViT-B/16) plus its
 * input prompt tokens (VPT: vpt_tokens, appended after the patches). Every buffer of a trainer
 * is sized once for this count. */
int64_t pet_config_tokens(const vit_config *vit, const pet_config *cfg);

/* ---------------------------------------------------------------------------------------- */
/* Typed layout of a learner's block                                                         */

/* Every field below is an offset in floats from the start of a learner's param array (and, in
 * the same layout, of its grad array and of any gradient copy); -1 = the tensor is absent.
 * pet_at(base, offset) turns one into a pointer (NULL when absent). */
static inline float *pet_at(float *base, int64_t offset) { return offset >= 0 ? base + offset : 0; }
static inline const float *pet_at_const(const float *base, int64_t offset) {
  return offset >= 0 ? base + offset : 0;
}

/* SSF insertion points inside a block, in layout order. */
enum {
  PET_SSF_LN1,
  PET_SSF_QKV,
  PET_SSF_PROJ,
  PET_SSF_LN2,
  PET_SSF_FC1,
  PET_SSF_FC2,
  PET_SSF_SITES
};

typedef struct pet_ssf {
  int64_t scale, shift; /* (n), (n): y = x * scale + shift */
} pet_ssf;

typedef struct pet_adapter_block {
  int64_t down_w, down_b; /* (r, D), (r) */
  int64_t up_w, up_b;     /* (D, r), (D) */
} pet_adapter_block;

typedef struct pet_prefix_block {
  int64_t key, value;             /* (L, D) each, shared by every image */
  int64_t key_scale, value_scale; /* (1) each with prefix_scales */
} pet_prefix_block;

/* The tensors one block reads. */
typedef struct pet_block {
  pet_ssf ssf[PET_SSF_SITES]; /* widths D, 3D, D, D, F, D */
  pet_adapter_block adapter;
  pet_prefix_block prefix;
  int64_t prompts; /* (T, D) input prompts written into the sequence before this block */
} pet_block;

typedef struct pet_layout {
  pet_ssf ssf_patch, ssf_norm; /* (D) after the patch embedding, after the final LayerNorm */
  int64_t vpt;                 /* (depth or 1, T, D) all prompts; blocks[l].prompts point in */
  pet_block *blocks;           /* depth entries, owned */
  int64_t full;  /* PET_FULL: the backbone copy, vit_model.param_block's layout (its padded size) */
  int64_t count; /* floats in the block, every tensor 64-byte aligned */
} pet_layout;

/* The layout of cfg on this backbone shape, pet_params.c's one definition of the order. */
SCL_NODISCARD scl_err pet_layout_create(const vit_config *vit, const pet_config *cfg,
                                        pet_layout *out);
void pet_layout_destroy(pet_layout *lay);

/* Name and shape of one tensor of the block, in layout order: metadata for checkpoints,
 * .safetensors export and tests. The model reads tensors through pet_layout, never by name. */
typedef struct pet_tensor {
  char name[48];
  int ndim;
  int64_t shape[4];      /* 4 dimensions: the full-tuning copy's patch embedding (D, C, P, P) */
  int64_t offset, numel; /* into param / grad */
} pet_tensor;

typedef struct pet_params {
  pet_config cfg;
  vit_config vit;
  pet_layout layout;
  int64_t count;       /* floats in param (and in grad) = layout.count */
  float *param;        /* owned, 64-byte aligned */
  float *grad;         /* owned, same layout; accumulated by vit_trainer_backward */
  pet_tensor *tensors; /* owned; n_tensors entries in layout order */
  int n_tensors;
  int *init_kinds; /* private to pet_params.c: how each tensor is initialised */
} pet_params;

/* Sizes and lays out the block for this backbone shape; values zero. *out owned by the caller. */
SCL_NODISCARD scl_err pet_params_create(const vit_config *vit, const pet_config *cfg,
                                        pet_params **out);
void pet_params_destroy(pet_params **p);
/* The released initialisation above, every draw from the counter RNG keyed by (seed,
 * SCL_STREAM_INIT, tag, tensor index), so it is the same on every rank. The full-tuning copy is
 * left as it is (pet_params_copy_backbone fills it). */
void pet_params_init(pet_params *p, uint64_t seed, uint32_t tag);
/* dst <- src (same config): the fast learner starts as a copy of the slow one. */
SCL_NODISCARD scl_err pet_params_copy(pet_params *dst, const pet_params *src);
/* PET_FULL: the full-tuning copy <- the backbone's weights (p's vit config must equal m's; a
 * mismatch is named). The copy's tensors are named "backbone.<timm name>". */
SCL_NODISCARD scl_err pet_params_copy_backbone(pet_params *p, const vit_model *m);
/* The tensor of this name (metadata lookup for tests and export), or NULL. */
const pet_tensor *pet_params_find(const pet_params *p, const char *name);
void pet_params_zero_grad(pet_params *p);

/* ---------------------------------------------------------------------------------------- */
/* Training forward/backward                                                                 */

typedef struct vit_trainer vit_trainer;

/* Activations of one forward pass of up to max_batch images through backbone + PET of this
 * config, kept for the backward pass; allocated (and touched) once here, the hot path never
 * allocates. Only what the backward needs is kept (LayerNorm outputs, GELU outputs and
 * attention probabilities are recomputed): ViT-B/16 with adapters at max_batch 16 takes about
 * 1.0 GB besides the backbone's 343 MB, full fine-tuning 1.35 GB at 2 threads (docs/pet.md). The backbone is shared and must outlive the trainer.
 * threads: 0 = OpenBLAS's count, as vit_model_create; never more than the online cores. The
 * trainer has its own thread team; a trainer is used by one thread at a time. */
SCL_NODISCARD scl_err vit_trainer_create(const vit_model *backbone, const pet_config *cfg,
                                         int64_t max_batch, int threads, vit_trainer **out);
void vit_trainer_destroy(vit_trainer **t);

/* Where the dropout masks of a training forward come from: the mask of sample index[b] in this
 * pass is a function of (seed, step, index[b], pass, layer) only (learn_dropout_* in learn.h). */
typedef struct vit_dropout_key {
  uint64_t seed;
  uint32_t step;        /* global optimizer step */
  uint32_t pass;        /* distinguishes two forwards of the same step (SAFE session 1) */
  const int64_t *index; /* B global sample indices */
} vit_dropout_key;

/* The adapter dropout mask the trainer draws for sample `index` at block `layer` of forward
 * pass `pass`: n bytes (tokens x adapter_dim, row-major), 1 = kept with probability 1 - p. It is
 * learn_dropout_mask(mask, n, p, seed, step, index, site = pass * 1000 + layer) (learn.h), drawn
 * here again because model/ does not depend on learn/; the block's mask is the first
 * tokens x adapter_dim bytes of the sample's stream, so the last block, which runs the class
 * token alone, uses the class token's row of the full mask. */
void vit_trainer_dropout_mask(uint8_t *mask, int64_t n, float p, uint64_t seed, uint32_t step,
                              uint32_t pass, int64_t index, int64_t layer);

/* Forward of B images (B, 3, S, S) through backbone + p, keeping what the backward needs;
 * cls_out (B, D) = class token after the final LayerNorm (and SSF). key NULL: evaluation mode
 * (no dropout). */
SCL_NODISCARD scl_err vit_trainer_forward(vit_trainer *t, const pet_params *p, const float *images,
                                          int64_t B, const vit_dropout_key *key, float *cls_out);
/* Backward of the last forward: dcls (B, D) -> p->grad += dL/dparam. B must be the last
 * forward's batch; the kept activations are not consumed, so a second backward would add the
 * same gradient again. A forward with key NULL may be followed by a backward too (no dropout). */
SCL_NODISCARD scl_err vit_trainer_backward(vit_trainer *t, pet_params *p, const float *dcls,
                                           int64_t B);
/* The per-image prompt inputs of one call (PET_INPUT_PROMPT, PET_SAMPLE_PREFIX), row b for image
 * b of the call, and where the backward puts their gradients (accumulated, +=; NULL: not
 * wanted). The same io (same memory, unchanged) must be passed to the backward of a forward.
 *   tokens  (B, input_tokens, D)       dtokens likewise
 *   pk[l], pv[l] (B, sample_prefix_len, D) at every block l of sample_prefix_layers, NULL
 *           elsewhere; dpk[l], dpv[l] likewise */
typedef struct vit_prompt_io {
  const float *tokens;
  float *dtokens;
  const float *pk[PET_MAX_LAYERS], *pv[PET_MAX_LAYERS];
  float *dpk[PET_MAX_LAYERS], *dpv[PET_MAX_LAYERS];
} vit_prompt_io;

/* vit_trainer_forward / _backward / _infer with per-image prompt inputs: io is required when the
 * trainer's config has PET_INPUT_PROMPT or PET_SAMPLE_PREFIX and must be NULL otherwise; p may be
 * NULL when the config has no kinds with tensors. out (B, D) is the class token, or the mean of
 * the input tokens with pool_input_tokens. */
SCL_NODISCARD scl_err vit_trainer_forward_io(vit_trainer *t, const pet_params *p,
                                             const float *images, int64_t B,
                                             const vit_dropout_key *key, const vit_prompt_io *io,
                                             float *out);
SCL_NODISCARD scl_err vit_trainer_backward_io(vit_trainer *t, pet_params *p, const float *dout,
                                              int64_t B, const vit_prompt_io *io);
SCL_NODISCARD scl_err vit_trainer_infer_io(vit_trainer *t, const pet_params *p, const float *images,
                                           int64_t B, const vit_prompt_io *io, float *out);

/* Inference through backbone + p (no dropout): the feature extractor of a learner; any B >= 1,
 * run in chunks of max_batch. p NULL is the pre-trained model (vit_model_forward on the
 * backbone, in chunks of its max_batch). It leaves the activations kept by the
 * last vit_trainer_forward intact, so that a method can run forward (keep) -> infer another
 * learner -> backward, as SAFE's fast learner does with the slow one. */
SCL_NODISCARD scl_err vit_trainer_infer(vit_trainer *t, const pet_params *p, const float *images,
                                        int64_t B, float *cls_out);
/* vit_trainer_create, and the backbone's own forward (vit_model_forward, on its engine) then runs
 * in the new trainer's working set: the engine's is freed BEFORE the trainer allocates, so the
 * two are never resident together. For a learner whose trainer never holds transient data while
 * the model's forward runs (the prompt methods: the query forward comes before the prompted
 * forward and after its backward) it saves the engine's working set (about 100 MB per 16 images
 * on ViT-B/16). backbone->max_batch becomes the largest batch whose working set fits (callers
 * chunk by it); when not even one image fits, or the create fails, the engine gets a set of its
 * own again. The model's forward and the trainer's calls must never overlap; the trainer must be
 * destroyed before the model, and its destruction gives the engine a set of its own again. One
 * lender per model. */
SCL_NODISCARD scl_err vit_trainer_create_lending(vit_model *backbone, const pet_config *cfg,
                                                 int64_t max_batch, int threads, vit_trainer **out);

/* FLOPs of one training step per image (forward + backward, PET included), for the planner. */
double vit_trainer_flops_per_image(const vit_trainer *t);

#endif /* SAFECL_PET_H */
