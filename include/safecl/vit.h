/* vit.h: the frozen Vision Transformer backbone (timm's VisionTransformer, forward only).
 *
 * Architecture (docs/methods.md b.1): patch embedding (Conv2d P x P, stride P), a class token and
 * learned position embeddings, `depth` pre-norm blocks
 *     x += proj(attn(LN1(x)));  x += fc2(GELU(fc1(LN2(x))))
 * with a fused qkv linear with bias, exact erf GELU and LayerNorm eps 1e-6, then a final
 * LayerNorm; the feature is the class token after that LayerNorm (B, D).
 *
 * Memory (docs/conventions.md 6-7): all frozen parameters live in ONE 64-byte aligned block, viewed
 * through `vit_params` and through a table of named tensors (timm names); all activations are sized
 * at create time for max_batch and reused, so vit_model_forward never allocates. Trainable PET
 * parameters live in blocks of their own (pet_params, pet.h), one per learner.
 *
 * One forward: vit_model_forward is the training forward of pet.h (src/model/
 * vit_trainer_forward.c) run without PET and without keeping activations, on an engine the
 * model owns. Threads: that engine has a small thread team (default: OpenBLAS's thread count)
 * whose members own whole images when their count divides the batch, and otherwise split every
 * GEMM by rows and the attention by (image, head); OpenBLAS is switched to one thread for the
 * duration of a forward and restored afterwards. A model is used by one thread at a time. */
#ifndef SAFECL_VIT_H
#define SAFECL_VIT_H

#include <stdint.h>

#include "safecl/core.h"

/* ---------------------------------------------------------------------------------------- */
/* Configuration                                                                             */

typedef struct vit_config {
  char name[64];      /* preset name, or anything for a custom shape */
  int64_t img_size;   /* square input side in pixels (224) */
  int64_t patch_size; /* P (16); img_size must be a multiple */
  int64_t in_chans;   /* C (3) */
  int64_t width;      /* D */
  int64_t depth;      /* number of blocks */
  int64_t heads;      /* H; D must be a multiple */
  int64_t mlp_hidden; /* F = mlp_ratio * D (ratio 4 in every preset) */
  float ln_eps;       /* 1e-6 as timm's ViTs */
} vit_config;

/* Fills cfg with a timm preset: vit_tiny_patch16_224, vit_small_patch16_224,
 * vit_base_patch16_224, vit_large_patch16_224. An unknown name is SCL_ERR_ARG with a message
 * naming it and listing the valid ones. */
SCL_NODISCARD scl_err vit_config_preset(const char *name, vit_config *cfg);
/* Comma-separated list of preset names (static string). */
const char *vit_config_preset_names(void);
/* Checks that the shape is consistent (positive sizes, divisibility); names the bad field. */
SCL_NODISCARD scl_err vit_config_validate(const vit_config *cfg);
/* N = (img/P)^2 + 1 tokens including the class token. */
int64_t vit_config_tokens(const vit_config *cfg);
/* Frozen parameters without a head (85,798,656 for vit_base_patch16_224). */
int64_t vit_config_param_count(const vit_config *cfg);
/* 2 x multiply-adds of every matrix product of one image's full forward (patch embedding, qkv,
 * q k^T, attention x v, projection, fc1, fc2); element-wise work is not counted. 35.1e9 for
 * vit_base_patch16_224. */
double vit_config_flops_per_image(const vit_config *cfg);

/* ---------------------------------------------------------------------------------------- */
/* Parameters                                                                                */

/* One block's parameters: views into the model's parameter block. W stored (out, in). */
typedef struct vit_block_params {
  float *norm1_w, *norm1_b; /* (D), (D) */
  float *qkv_w, *qkv_b;     /* (3D, D), (3D): rows [0,D) q, [D,2D) k, [2D,3D) v */
  float *proj_w, *proj_b;   /* (D, D), (D) */
  float *norm2_w, *norm2_b; /* (D), (D) */
  float *fc1_w, *fc1_b;     /* (F, D), (F) */
  float *fc2_w, *fc2_b;     /* (D, F), (D) */
} vit_block_params;

typedef struct vit_params {
  float *patch_w, *patch_b; /* (D, C, P, P), (D) */
  float *cls_token;         /* (1, 1, D) */
  float *pos_embed;         /* (1, N, D) */
  vit_block_params *blocks; /* depth entries */
  float *norm_w, *norm_b;   /* (D), (D) */
} vit_params;

#define VIT_MAX_DIMS 4

/* A named parameter tensor: timm name and shape, data inside the model's parameter block. */
typedef struct vit_tensor {
  char name[48];
  int ndim;
  int64_t shape[VIT_MAX_DIMS];
  int64_t numel;
  float *data;
} vit_tensor;

/* ---------------------------------------------------------------------------------------- */
/* Model                                                                                     */

struct vit_trainer;

typedef struct vit_model {
  vit_config cfg;
  int64_t max_batch;
  int64_t tokens;     /* N */
  float *param_block; /* owned; param_count floats */
  int64_t param_count;
  vit_params p;
  vit_tensor *tensors; /* owned; n_tensors entries in timm order */
  int n_tensors;
  int threads;
  struct vit_trainer *engine; /* owned: the forward (pet.h's trainer without PET, inference) */
  int full_last_block;        /* 0 (default): prune the last block to the class token; 1: compute
                          every token, as the PyTorch model does (for benchmark comparisons) */
  int per_image; /* 0 (default): threads run GEMMs over all their images' rows; 1: every image is
                    computed alone, so that its output does not depend on the other images of the
                    call (OpenBLAS's result for a row depends on the other rows of a GEMM): the
                    prompt methods' test-time query (docs/pet.md) */
} vit_model;

/* Allocates parameters (zero) and activations for max_batch images, touching every page once
 * so that the first forward does not pay for fresh memory. threads = 0 means OpenBLAS's thread
 * count (OPENBLAS_NUM_THREADS or the core count). The caller owns *out. */
SCL_NODISCARD scl_err vit_model_create(const vit_config *cfg, int64_t max_batch, int threads,
                                       vit_model **out);
/* Accepts NULL; sets *m to NULL. */
void vit_model_destroy(vit_model **m);

/* Deterministic random weights for benchmarks and tests without a file: weights and embeddings
 * uniform with std 0.02 (timm's init scale), biases zero, LayerNorms (1, 0). */
void vit_model_init_random(vit_model *m, uint64_t seed);

/* The parameter tensor with this timm name, or NULL. */
const vit_tensor *vit_model_find(const vit_model *m, const char *name);

enum {
  VIT_LOAD_IGNORE_UNEXPECTED = 1u << 0 /* skip tensors the model has no use for */
};

/* Reads every parameter from a .safetensors file in timm naming (`blocks.0.attn.qkv.weight`)
 * or Hugging Face google/vit-* naming (`[vit.]encoder.layer.0.attention.attention.query.weight`,
 * q, k and v concatenated into qkv), detected from the file. Classifier tensors (timm head.*,
 * pre_logits.*; HF pooler.*, classifier.*) are skipped silently. A missing tensor, a tensor of
 * the wrong shape, or (unless VIT_LOAD_IGNORE_UNEXPECTED) any other tensor is an error naming
 * the file, the tensor and the shapes, and is found before any parameter is written. A NaN or
 * infinite value is SCL_ERR_FORMAT naming the file, the tensor and its first such index, found
 * while copying (the model then holds part of the file and should be destroyed). */
SCL_NODISCARD scl_err vit_model_load(vit_model *m, const char *path, unsigned flags);

/* The backbone of a run in one call: preset `arch` (SCL_ERR_ARG naming `crop_key` unless it
 * takes crop x crop images), created for max_batch images and `threads` as vit_model_create,
 * then loaded from `weights` with `load_flags`, or given random weights from `seed` when
 * weights is "". On error *out is NULL. */
SCL_NODISCARD scl_err vit_model_open(const char *arch, int64_t crop, const char *crop_key,
                                     const char *weights, unsigned load_flags, uint64_t seed,
                                     int64_t max_batch, int threads, vit_model **out);

/* images (B, C, img, img) fp32 NCHW, RGB in [0, 1] and fed as is (the reference code does no
 * mean/std normalisation, docs/methods.md a.3); cls_out (B, D) receives the class token after the
 * final LayerNorm. 1 <= B <= max_batch. Unless m->full_last_block is set, only the class
 * token's path through the last block is computed, since no other token of it reaches the
 * output (the keys and values of all tokens still are). */
SCL_NODISCARD scl_err vit_model_forward(vit_model *m, const float *images, int64_t B,
                                        float *cls_out);
/* The same forward through the `_ref` kernels, single-threaded and slow, for tests; computes
 * every token of every block. */
SCL_NODISCARD scl_err vit_model_forward_ref(vit_model *m, const float *images, int64_t B,
                                            float *cls_out);

#endif /* SAFECL_VIT_H */
