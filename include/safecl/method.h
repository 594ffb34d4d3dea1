/* method.h: the interface every continual-learning method implements, and the method registry.
 *
 * The trial runner (run/) owns data, sessions, feature extraction and metrics; a method owns
 * its networks, training and classifier. Per session the runner calls, in order:
 *   train(session)            - tune the method's trainable parts (a no-op for SimpleCIL)
 *   networks(...)             - which feature extractors the classifier and predictions need
 *   fit(session, features)    - update the classifier from features of the session's training
 *                               images (test transforms), one matrix per network
 *   predict(features)         - predicted mapped labels of a batch of test images, for each of
 *                               the method's predictors (index 0 is THE prediction; others, such
 *                               as SAFE's slow and fast learners, are stored as diagnostics)
 * Predictions never see test labels (docs/architecture.md section 4). */
#ifndef SAFECL_METHOD_H
#define SAFECL_METHOD_H

#include <stdint.h>

#include "safecl/core.h"
#include "safecl/dist.h"
#include "safecl/vit.h"

#define LEARN_MAX_NETWORKS 4
#define LEARN_MAX_PREDICTORS 4

/* A feature extractor: images (B, 3, S, S) in [0, 1] -> features (B, dim). */
typedef struct learn_network {
  const char *name; /* "ptm", "adapted", "slow", "fast" */
  int64_t dim;
  int frozen; /* 1: its features never change during the trial (the runner caches them) */
  scl_err (*forward)(void *ctx, const float *images, int64_t B, float *out);
  void *ctx;
  /* 1: only predict reads it; the runner does not extract it for fit (its slot in fit's
   * features is NULL). The prompt methods' networks output logits and fit nothing. */
  int predict_only;
  /* > 0: a diagnostic network whose output for an image depends on the other images of its call
   * (PILOT's batch-wise test evaluation, docs/methods.md f.6). On a test list the runner calls it
   * on the list sorted by label (stable), cut into consecutive batches of exactly this many
   * images (the last one shorter), and hands predict each image's row at its own list position.
   * 0: the output of an image depends on that image alone (every honest network). */
  int64_t test_batch;
} learn_network;

/* The rank group a trial runs on is a dist_comm (dist.h, free of MPI headers): methods call its
 * collectives (dist_allgather_rows_*, dist_allreduce_*) for batch-wide terms and gradient sums,
 * every rank in the same order; dist_comm_self() is the group of this process alone. Row shards
 * follow learn_shard: rank r holds rows [lo_r, hi_r) of n, contiguous, in rank order. */
#define LEARN_MAX_GROUP 4096 /* ranks in one trial's group */

/* Rows [*lo, *hi) of n that rank `rank` of `size` holds: floor(n r / size) .. floor(n (r+1) /
 * size), so shards differ by at most one row and concatenate in rank order. */
static inline void learn_shard(int64_t n, int size, int rank, int64_t *lo, int64_t *hi) {
  *lo = n * rank / size;
  *hi = n * (rank + 1) / size;
}
/* counts[r] = rows of n that rank r of `size` holds (the counts of a gather of shards). */
static inline void learn_shard_counts(int64_t n, int size, int64_t *counts) {
  for (int r = 0; r < size; r++) counts[r] = n * (r + 1) / size - n * r / size;
}

/* One training batch as the runner hands it to a method. On a group of G ranks every rank gets
 * its shard (learn_shard of B_global) of the images, and the labels and indices of the whole
 * global batch, so that batch-wide loss terms can be formed from gathered features. */
typedef struct learn_batch {
  const float *images;       /* (B, 3, S, S), training transforms applied: this rank's rows */
  const int64_t *labels;     /* mapped labels of this rank's rows */
  const int64_t *index;      /* global sample indices of this rank's rows: the keys of
                                per-sample randomness (augmentation, dropout) */
  const int64_t *labels_all; /* (B_global) labels of the whole global batch */
  const int64_t *index_all;  /* (B_global) sample indices of the whole global batch */
  int64_t B;                 /* images here (this rank's shard of the global batch) */
  int64_t B_global;          /* images in the global batch */
  int64_t offset;            /* this rank's first row within the global batch */
  int64_t epoch;             /* epoch within the session */
  int64_t step;              /* optimizer step within the session */
} learn_batch;

#define LEARN_MAX_LOSS_TERMS 6

typedef struct learn_train_plan {
  int64_t epochs; /* 0: no training in this session */
  int64_t batch;  /* global batch size */
  int n_terms;    /* loss terms reported per step (term 0 is the total) */
  const char *term_names[LEARN_MAX_LOSS_TERMS];
} learn_train_plan;

/* What a session consists of, in mapped label space. */
typedef struct learn_session {
  int t; /* 0-based session index */
  int n_sessions;
  int64_t class_lo, class_hi; /* the session's new classes [lo, hi) */
  int64_t n_classes;          /* classes of the whole benchmark */
  int64_t n_train;
  const int32_t *train_labels;
} learn_session;

/* The method part of a trial's configuration (method.* and train.* keys; the table is in
 * run/trial_config.c). */
typedef struct learn_method_cfg {
  char *name;
  /* PET of the learner(s): "none", "adapter", "ssf", "vpt_deep", "vpt_shallow" */
  char *pet;
  int64_t adapter_dim;
  double adapter_scale, adapter_dropout;
  int64_t vpt_tokens;
  int vpt_xavier;
  /* training (SGD as torch.optim.SGD; cosine schedule stepped per epoch with its own T_max) */
  int64_t epochs_first, epochs_later, batch;
  char *optimizer; /* "sgd", "adam", "adamw" */
  double lr, momentum, weight_decay, min_lr;
  int64_t t_max;
  double head_sigma0; /* initial scale of cosine heads (SAFE code: 10; RanPAC, APER code: 1) */
  /* SAFE (docs/methods.md c) */
  double slow_diag, slow_rdn, fast_disf, fast_cc, gamma;
  int merge_result, shared_stats, authors_protocol;
  int keep_sigma;        /* 0: both heads' sigma back to head_sigma0 at the RP setup (b.5) */
  int64_t fast_forwards; /* training forwards of the fast learner per step: 2 released, 1 (c.3) */
  int64_t rp_dim;        /* M of the random projection (10000) */
  int64_t ridge_lo_exp;  /* ridge candidates 10^lo .. 10^hi (SAFE 3..8, RanPAC -8..8) */
  int64_t ridge_hi_exp;
  double ridge_fit_fraction; /* rows of the session that fit; the rest validate (0.8) */
  char *ridge_precision;     /* "double" or "float32" (the released code's search; one rank) */
  int drop_last;             /* train.drop_last: skip an epoch's last, incomplete batch (CODA) */
  /* prompt-based methods (docs/methods.md f-i) */
  char *prompt_protocol;   /* "honest", or "pilot_diag": also PILOT's batch-wise test protocol
                                as the diagnostic predictor "pilot_diag" (f.6) */
  int64_t prompt_pool;     /* L2P prompt pool, DualPrompt E-pool, CODA components */
  int64_t prompt_length;   /* tokens per pool entry (L2P 5, DualPrompt E 5, CODA 8) */
  int64_t prompt_top_k;    /* selected entries per image (L2P 5, DualPrompt 1) */
  int64_t prompt_g_length; /* DualPrompt G-prompt length */
  int64_t prompt_g_layers; /* blocks [0, g_layers) carry G-prompts (DualPrompt 2, CODA 0) */
  int64_t prompt_e_layers; /* the next e_layers blocks carry E-prompts (DualPrompt 3, CODA 5) */
  double prompt_pull;      /* weight of the key pull term (L2P, DualPrompt 0.1) */
  int prompt_vote_train;   /* L2P: batch-wise vote of the selection during training */
  double coda_ortho;       /* CODA-Prompt orthogonality penalty mu (released 0) */
  char *coda_init;         /* "gs" (per-session Gram-Schmidt, released) or "ortho" (paper) */
  char *dp_variant;        /* DualPrompt: "pilot" (PILOT), "coda" (CODA's code, h.1) */
  char *l2p_variant;       /* L2P: "pilot" (PILOT), "plusplus" (CODA's L2P++, g.1) */
  /* EASE (docs/methods.md j) */
  double ease_alpha;     /* weight alpha of the other subspaces' cosines, as alpha / t (j.5) */
  double ease_beta;      /* weight of the pre-trained model's subspace with use_init_ptm */
  int ease_use_init_ptm; /* 1: the plain pre-trained model is subspace -1 (j.1) */
  int ease_reweight;     /* 1: the reweighted logits of j.5; 0: plain cosine on the concatenation */
  int ease_moni_adam;    /* 1: the OmniBenchmark special case (j.6): one adapter, plain cosine */
  /* SLCA (docs/methods.md k) */
  double slca_bcb_lrscale; /* backbone learning rate = train.lr x this (1/100) */
  int64_t slca_milestone;  /* epoch after which both learning rates drop by 10 (0: never) */
  int64_t slca_ca_epochs;  /* classifier-alignment epochs (authors 5, PILOT 3) */
  double slca_ca_lr;       /* classifier-alignment learning rate (0.01) */
  int64_t slca_ca_samples; /* Gaussian samples per class and alignment epoch (256) */
  double slca_logit_tau;   /* logit-normalisation temperature (0.1; 0: no normalisation) */
  int slca_fresh_norm;     /* 1: a fresh final LayerNorm (gamma 1, beta 0) as the authors' code;
                              0: the pre-trained one as PILOT */
  /* LAE (docs/methods.md l) */
  int64_t lae_length;        /* prefix tokens per block (10) */
  int64_t lae_layers;        /* blocks [0, layers) carry prefixes (5) */
  double lae_ema_decay;      /* offline expert <- decay x offline + (1 - decay) x online (0.9999) */
  char *lae_ema_init;        /* "authors": offline = trained online at session 1; "pilot": from
                               the untrained online at creation, updated from session 0 */
  int64_t lae_freeze_epochs; /* head-only epochs at the start of a session (3) */
  int lae_freeze_first;      /* 1: also in session 0 (PILOT); 0: sessions >= 1 only (authors) */
  char *lae_head_init;       /* "authors": N(0, 0.001^2) weights; "pilot": kaiming-uniform */
} learn_method_cfg;

typedef struct linalg_group linalg_group;

/* Everything a method may need from the trial at creation. */
typedef struct learn_context {
  vit_model *backbone; /* the frozen pre-trained ViT, shared (not owned) */
  int64_t n_classes;
  uint64_t seed;          /* the trial seed (counter-based RNG key) */
  int domain_incremental; /* 1: every session holds all classes (DomainNet) */
  const learn_method_cfg *cfg;
  const dist_comm *comm; /* the trial's rank group (NULL is taken as dist_comm_self()) */
  linalg_group *linalg;  /* the group's ridge solver (linalg_group.h; shared, not owned) */
  int n_sessions; /* sessions of the trial, for storage that grows per session (EASE's adapter
                     bank); 0 = unknown: such a method holds one session and refuses a later one */
} learn_context;

/* One tensor of a method's state, for checkpoints: the runner writes `data` out and, on resume,
 * reads it back into the same memory (shape checked). Entries point into the method's own
 * storage, which is sized for the whole trial at create, so the list never changes shape.
 * Every dtype but LEARN_F64_GRAM is replicated: each rank holds the whole tensor. */
typedef enum {
  LEARN_F32 = 0,
  LEARN_F64,
  LEARN_I64,
  /* A ridge Gram matrix distributed over the group: shape {m, m}, `data` points to the
   * linalg_stats (linalg_group.h), not to the numbers; linalg_stats_gram_view(data) gives this
   * rank's block-cyclic piece (column-major, upper triangle meaningful), which the runner
   * writes and reads back as the m x m dataset (holds = 0: this rank has no piece). */
  LEARN_F64_GRAM
} learn_dtype;
#define LEARN_MAX_STATE 64
typedef struct learn_state_entry {
  const char *name;
  learn_dtype dtype;
  int ndim; /* 1 or 2 */
  int64_t shape[2];
  void *data;
} learn_state_entry;

/* Work of a session per image, in units of one frozen-backbone forward, for planning:
 * train_passes per training image per epoch (backward passes count as one forward each, a
 * slight overestimate for frozen weights), feature_nets networks through which every training
 * image (classifier statistics) and every test image are passed, frozen_nets of which are
 * frozen (their test features are computed once per trial), rp_learners ridge classifiers of
 * width M fitted per session, test_nets forwards through which every test image (and no
 * training image) passes each session (predict-only networks). */
typedef struct learn_cost {
  double train_passes;
  int feature_nets, frozen_nets, rp_learners;
  int test_nets;
} learn_cost;

typedef struct learn_method learn_method;

/* A method: its names, and the functions the runner calls. Adding a method is one file in
 * src/learn/ that defines its learn_method_ops, and one row in the registry (method.c); the
 * config choices of method.name, the planner's rough guess and the report's names and
 * grouping are all read from these fields. */
typedef struct learn_method_ops {
  const char *name;     /* config name (method.name), e.g. "simplecil" */
  const char *label;    /* display name in reports, e.g. "SimpleCIL" */
  const char *category; /* family for report grouping: "prompt", "representation",
                           "mixture" (model mixture: EASE, LAE) or "safe" */
  /* Relative cost of a trial (SimpleCIL = 1) for the planner's rough guess, used only when the
   * cost model cannot price a trial (its dataset cannot be opened where the sweep is planned). */
  double cost_factor;
  SCL_NODISCARD scl_err (*create)(const learn_context *ctx, learn_method **out);
  /* Planning without an instance (see learn_cost); t = session index. */
  learn_cost (*cost)(const learn_method_cfg *cfg, int t);
  /* Bytes the method allocates for a whole trial of n_classes classes in n_sessions sessions on
   * this backbone shape, the parts that grow with classes or sessions included (SLCA's class
   * statistics, EASE's adapter bank and prototypes), for `safecl plan`; NULL: a few MB at most. */
  double (*state_bytes)(const learn_method_cfg *cfg, const vit_config *vc, int64_t n_classes,
                        int n_sessions);
  /* Training, driven by the runner's loop (run/train_loop.c); train_plan may be NULL (never
   * trains). The loop calls train_begin, then train_step for every batch of every epoch,
   * train_epoch_end after each epoch, and train_end. losses[k] receives term k of this step's
   * loss (a mean over the global batch). */
  learn_train_plan (*train_plan)(learn_method *m, const learn_session *s);
  SCL_NODISCARD scl_err (*train_begin)(learn_method *m, const learn_session *s,
                                       int64_t steps_per_epoch);
  SCL_NODISCARD scl_err (*train_step)(learn_method *m, const learn_session *s, const learn_batch *b,
                                      double *losses);
  SCL_NODISCARD scl_err (*train_epoch_end)(learn_method *m, const learn_session *s, int64_t epoch);
  SCL_NODISCARD scl_err (*train_end)(learn_method *m, const learn_session *s);
  int (*networks)(learn_method *m, const learn_session *s, learn_network *out);
  /* Collective over the group: each rank passes the features of its shard of the session's
   * training list, n rows at list positions pos[0..n) (ascending, in [0, s->n_train)); the
   * classifier is fitted on the union, the same on every rank. */
  SCL_NODISCARD scl_err (*fit)(learn_method *m, const learn_session *s,
                               const float *const *features, const int32_t *labels,
                               const int64_t *pos, int64_t n);
  /* Local (no communication): pred[p * n + i]: predictor p's mapped label for image i. */
  SCL_NODISCARD scl_err (*predict)(learn_method *m, const learn_session *s,
                                   const float *const *features, int64_t n, int32_t *pred);
  int (*predictors)(const learn_method *m, const char **names); /* count; names[0] primary */
  /* The method's complete state between sessions (at most LEARN_MAX_STATE entries). */
  int (*state)(learn_method *m, learn_state_entry *out);
  void (*destroy)(learn_method **m);
} learn_method_ops;

/* Every method starts with this header so that the runner can reach its ops. */
struct learn_method {
  const learn_method_ops *ops;
};

/* The registry: every method safecl runs, rows 0 .. learn_method_count() - 1, in display order
 * within each family. */
int learn_method_count(void);
const learn_method_ops *learn_method_at(int i);
/* The registered method called `name`, or NULL. */
const learn_method_ops *learn_method_find(const char *name);
/* The registry's names in row order, "simplecil|...", for config validation, --help and messages
 * (a static string, built on first use). */
const char *learn_method_names(void);

#endif /* SAFECL_METHOD_H */
