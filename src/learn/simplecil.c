/* simplecil.c: SimpleCIL (Zhou et al.; PILOT models/simplecil.py): no training; each new class's
 * row of a cosine classifier is the mean frozen-PTM feature of its training images, and a test
 * image goes to the most cosine-similar prototype among the classes seen so far. */
#include <stdlib.h>

#include "safecl/method.h"
#include "safecl/prototypes.h"

typedef struct simplecil {
  learn_method base;
  vit_model *ptm;
  learn_prototypes *protos;
  const dist_comm *comm;
} simplecil;

static scl_err ptm_forward(void *ctx, const float *images, int64_t B, float *out) {
  return vit_model_forward((vit_model *)ctx, images, B, out);
}

static int simplecil_networks(learn_method *m, const learn_session *s, learn_network *out) {
  simplecil *sc = (simplecil *)m;
  (void)s;
  out[0] = (learn_network){.name = "ptm",
                           .dim = sc->ptm->cfg.width,
                           .frozen = 1,
                           .forward = ptm_forward,
                           .ctx = sc->ptm};
  return 1;
}

static scl_err simplecil_fit(learn_method *m, const learn_session *s, const float *const *features,
                             const int32_t *labels, const int64_t *pos, int64_t n) {
  simplecil *sc = (simplecil *)m;
  (void)pos; /* prototypes are sums: the order of the rows does not matter */
  SCL_CALL(
      learn_prototypes_fit(sc->protos, features[0], labels, n, s->class_lo, s->class_hi, sc->comm));
  return SCL_OK;
}

static scl_err simplecil_predict(learn_method *m, const learn_session *s,
                                 const float *const *features, int64_t n, int32_t *pred) {
  simplecil *sc = (simplecil *)m;
  SCL_CALL(learn_prototypes_predict(sc->protos, features[0], n, s->class_hi, pred));
  return SCL_OK;
}

static int simplecil_predictors(const learn_method *m, const char **names) {
  (void)m;
  names[0] = "simplecil";
  return 1;
}

static int simplecil_state(learn_method *m, learn_state_entry *out) {
  simplecil *sc = (simplecil *)m;
  const learn_prototypes *p = sc->protos;
  out[0] = (learn_state_entry){"prototype_sums", LEARN_F64, 2, {p->n_classes, p->dim}, p->sum};
  out[1] = (learn_state_entry){"prototype_counts", LEARN_I64, 1, {p->n_classes, 0}, p->count};
  out[2] = (learn_state_entry){"prototypes", LEARN_F32, 2, {p->n_classes, p->dim}, p->unit};
  return 3;
}

static void simplecil_destroy(learn_method **m) {
  if (!m || !*m) return;
  simplecil *sc = (simplecil *)*m;
  learn_prototypes_destroy(&sc->protos);
  free(sc);
  *m = NULL;
}

static learn_cost simplecil_cost(const learn_method_cfg *cfg, int t) {
  (void)cfg, (void)t;
  return (learn_cost){0.0, 1, 1, 0, 0};
}

static scl_err simplecil_create(const learn_context *ctx, learn_method **out);

const learn_method_ops learn_simplecil_ops = {
    .name = "simplecil",
    .label = "SimpleCIL",
    .category = "representation",
    .cost_factor = 1.0,
    .create = simplecil_create,
    .cost = simplecil_cost,
    .networks = simplecil_networks,
    .fit = simplecil_fit,
    .predict = simplecil_predict,
    .predictors = simplecil_predictors,
    .state = simplecil_state,
    .destroy = simplecil_destroy,
};

static scl_err simplecil_create(const learn_context *ctx, learn_method **out) {
  simplecil *sc = calloc(1, sizeof *sc);
  SCL_CHECK(sc, SCL_ERR_NOMEM, "simplecil");
  sc->base.ops = &learn_simplecil_ops;
  sc->ptm = ctx->backbone;
  sc->comm = ctx->comm ? ctx->comm : dist_comm_self();
  scl_err err = learn_prototypes_create(ctx->n_classes, ctx->backbone->cfg.width, &sc->protos);
  if (err) {
    free(sc);
    return SCL_TRACE(err);
  }
  *out = &sc->base;
  return SCL_OK;
}
