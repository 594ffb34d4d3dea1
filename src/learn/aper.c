/* aper.c: APER / ADaM (Zhou et al., "Revisiting class-incremental learning with pre-trained
 * models"; PILOT models/aper_{adapter,ssf,vpt}.py): tune a PET module in session 1 with CE through
 * a cosine head, freeze it, and classify every session with class-mean prototypes of the
 * concatenated [pre-trained feature, adapted feature] (2D wide) and cosine similarity. */
#include <stdlib.h>
#include <string.h>

#include "safecl/prototypes.h"
#include "safecl/tuning.h"

typedef struct aper {
  learn_method base;
  vit_model *ptm;
  learn_tuner *tuner;
  learn_prototypes *protos;
  int64_t D;
  const dist_comm *comm;
} aper;

static scl_err ptm_forward(void *ctx, const float *images, int64_t B, float *out) {
  return vit_model_forward((vit_model *)ctx, images, B, out);
}

static learn_train_plan aper_train_plan(learn_method *m, const learn_session *s) {
  return learn_tuner_plan(((aper *)m)->tuner, s);
}
static scl_err aper_train_begin(learn_method *m, const learn_session *s, int64_t steps) {
  (void)steps;
  return learn_tuner_begin(((aper *)m)->tuner, s);
}
static scl_err aper_train_step(learn_method *m, const learn_session *s, const learn_batch *b,
                               double *losses) {
  return learn_tuner_step(((aper *)m)->tuner, s, b, losses);
}
static scl_err aper_no_op(learn_method *m, const learn_session *s, int64_t epoch) {
  (void)m, (void)s, (void)epoch;
  return SCL_OK;
}
static scl_err aper_train_end(learn_method *m, const learn_session *s) {
  (void)m, (void)s;
  return SCL_OK;
}

static int aper_networks(learn_method *m, const learn_session *s, learn_network *out) {
  aper *a = (aper *)m;
  (void)s;
  out[0] = (learn_network){
      .name = "ptm", .dim = a->D, .frozen = 1, .forward = ptm_forward, .ctx = a->ptm};
  out[1] = learn_tuner_network(a->tuner);
  return 2;
}

/* [ptm | adapted] rows, 2D wide, into a fresh buffer. */
static scl_err concat(const float *const *f, int64_t n, int64_t D, float **out) {
  SCL_CALL(scl_alloc((size_t)((n ? n : 1) * 2 * D) * sizeof(float), "concatenated features",
                     (void **)out));
  for (int64_t i = 0; i < n; i++)
    for (int64_t k = 0; k < D; k++) {
      (*out)[i * 2 * D + k] = f[0][i * D + k];
      (*out)[i * 2 * D + D + k] = f[1][i * D + k];
    }
  return SCL_OK;
}

static scl_err aper_fit(learn_method *m, const learn_session *s, const float *const *features,
                        const int32_t *labels, const int64_t *pos, int64_t n) {
  aper *a = (aper *)m;
  float *x = NULL;
  SCL_CALL(concat(features, n, a->D, &x));
  (void)pos; /* prototypes are sums: the order of the rows does not matter */
  scl_err err = learn_prototypes_fit(a->protos, x, labels, n, s->class_lo, s->class_hi, a->comm);
  scl_free(x);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

static scl_err aper_predict(learn_method *m, const learn_session *s, const float *const *features,
                            int64_t n, int32_t *pred) {
  aper *a = (aper *)m;
  float *x = NULL;
  SCL_CALL(concat(features, n, a->D, &x));
  scl_err err = learn_prototypes_predict(a->protos, x, n, s->class_hi, pred);
  scl_free(x);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

static int aper_predictors(const learn_method *m, const char **names) {
  (void)m;
  names[0] = "aper";
  return 1;
}

static int aper_state(learn_method *m, learn_state_entry *out) {
  aper *a = (aper *)m;
  const learn_prototypes *p = a->protos;
  int n = learn_tuner_state(a->tuner, out);
  out[n++] = (learn_state_entry){"prototype_sums", LEARN_F64, 2, {p->n_classes, p->dim}, p->sum};
  out[n++] = (learn_state_entry){"prototype_counts", LEARN_I64, 1, {p->n_classes, 0}, p->count};
  out[n++] = (learn_state_entry){"prototypes", LEARN_F32, 2, {p->n_classes, p->dim}, p->unit};
  return n;
}

static void aper_destroy(learn_method **m) {
  if (!m || !*m) return;
  aper *a = (aper *)*m;
  learn_tuner_destroy(&a->tuner);
  learn_prototypes_destroy(&a->protos);
  free(a);
  *m = NULL;
}

static learn_cost aper_cost(const learn_method_cfg *cfg, int t) {
  int tune = t == 0 && strcmp(cfg->pet, "none") != 0;
  return (learn_cost){tune ? 2.0 * (double)cfg->epochs_first : 0.0, 2, 2, 0, 0};
}

static scl_err aper_create(const learn_context *ctx, learn_method **out);

const learn_method_ops learn_aper_ops = {
    .name = "aper",
    .label = "APER",
    .category = "representation",
    .cost_factor = 20.0,
    .create = aper_create,
    .cost = aper_cost,
    .train_plan = aper_train_plan,
    .train_begin = aper_train_begin,
    .train_step = aper_train_step,
    .train_epoch_end = aper_no_op,
    .train_end = aper_train_end,
    .networks = aper_networks,
    .fit = aper_fit,
    .predict = aper_predict,
    .predictors = aper_predictors,
    .state = aper_state,
    .destroy = aper_destroy,
};

static scl_err aper_create(const learn_context *ctx, learn_method **out) {
  aper *a = calloc(1, sizeof *a);
  SCL_CHECK(a, SCL_ERR_NOMEM, "aper");
  a->base.ops = &learn_aper_ops;
  a->ptm = ctx->backbone;
  a->comm = ctx->comm ? ctx->comm : dist_comm_self();
  a->D = ctx->backbone->cfg.width;
  learn_method *m = &a->base;
  scl_err err = learn_tuner_create(ctx, &a->tuner);
  if (!err) err = learn_prototypes_create(ctx->n_classes, 2 * a->D, &a->protos);
  if (err) {
    aper_destroy(&m);
    return SCL_TRACE(err);
  }
  *out = m;
  return SCL_OK;
}
