/* ease_driver.c: runs EASE over T sessions through the method interface on a small ViT, for
 * ease_ref.py to compare with its PyTorch re-implementation (docs/methods.md j).
 *
 * usage: ease_driver --width D --depth L --heads H --img S --patch P --mlp F
 *        --weights w.safetensors --images img.bin --labels lab.bin --batches idx.bin
 *        --fit fit.bin --nfit NF --sessions T --classes C --batch B --epochs E --steps K
 *        --dropout p --rank r --ptm 0|1 --reweight 0|1 --moni 0|1 --alpha a --beta b --out DIR
 * img.bin: N images (3, S, S) float32; lab.bin: N int64 labels; idx.bin: int64 image indices of
 * every training batch, session by session (T x E x K x B); fit.bin: int64 image indices of every
 * session's classifier list (T x NF). Session t holds classes [t C / T, (t + 1) C / T); its test
 * list is the fit lists of sessions 0 .. t. Writes to DIR, for every session t that trains:
 * init_t.safetensors and final_t.safetensors (the training set as "pet.<tensor>" and the proxy
 * head "head", after train_begin and after the last step), and for every session:
 * set_t.bin and bank_t.bin (the training set before train_end and its bank slot after it, raw), fit_t.bin (the network's features of
 * the fit list), protos_t.bin (the prototype matrix after fit), logits_t.bin and pred_t.bin (the
 * test list's logits of learn_ease_logits and predict's labels); losses.bin (float64 per step)
 * and masks.bin (uint8: the adapter dropout masks of every step, block, batch row: tokens x r). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/core.h"
#include "safecl/method.h"
#include "safecl/pet.h"
#include "safecl/safetensors.h"
#include "safecl/vit.h"
#include "../../src/learn/ease_internal.h"
#include "../common/driver_io.h"

typedef struct args {
  vit_config vc;
  const char *weights, *images, *labels, *batches, *fit, *out;
  int64_t T, C, B, E, K, NF, R;
  double dropout, alpha, beta;
  int ptm, reweight, moni;
} args;

static int parse(int argc, char **argv, args *a) {
  memset(a, 0, sizeof *a);
  driver_vit_defaults(&a->vc);
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    const char **sv[] = {&a->weights, &a->images, &a->labels, &a->batches, &a->fit, &a->out};
    const char *sk[] = {"--weights", "--images", "--labels", "--batches", "--fit", "--out"};
    int64_t *iv[] = {&a->T, &a->C, &a->B, &a->E, &a->K, &a->NF, &a->R};
    const char *ik[] = {"--sessions", "--classes", "--batch", "--epochs",
                        "--steps",    "--nfit",    "--rank"};
    int *bv[] = {&a->ptm, &a->reweight, &a->moni};
    const char *bk[] = {"--ptm", "--reweight", "--moni"};
    int done = driver_vit_option(&a->vc, k, v);
    for (int j = 0; j < 6 && !done; j++)
      if (!strcmp(k, sk[j])) *sv[j] = v, done = 1;
    for (int j = 0; j < 7 && !done; j++)
      if (!strcmp(k, ik[j])) *iv[j] = atol(v), done = 1;
    for (int j = 0; j < 3 && !done; j++)
      if (!strcmp(k, bk[j])) *bv[j] = atoi(v), done = 1;
    if (!done && !strcmp(k, "--dropout")) a->dropout = atof(v), done = 1;
    if (!done && !strcmp(k, "--alpha")) a->alpha = atof(v), done = 1;
    if (!done && !strcmp(k, "--beta")) a->beta = atof(v), done = 1;
    if (!done) return 0;
  }
  return argc % 2 == 1 && a->weights && a->images && a->labels && a->batches && a->fit && a->out &&
         a->T > 0 && a->C >= a->T && a->B > 0 && a->E > 0 && a->K > 0 && a->NF > 0 && a->R > 0;
}

static const learn_state_entry *find_state(const learn_state_entry *st, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (!strcmp(st[i].name, name)) return &st[i];
  return NULL;
}

/* The training set (laid out as pet_params of pc) and the proxy head to DIR/name. */
static scl_err write_set(const args *a, const pet_config *pc, const char *name, const float *pet,
                         const float *head, int64_t head_n) {
  pet_params *p = NULL;
  SCL_CALL(pet_params_create(&a->vc, pc, &p));
  io_st_entry *e = calloc((size_t)p->n_tensors + 1, sizeof *e);
  char(*names)[80] = calloc((size_t)p->n_tensors, sizeof *names);
  scl_err err = SCL_OK;
  if (!e || !names) SCL_ERROR_GOTO(err, done, SCL_ERR_NOMEM, "driver output table");
  for (int i = 0; i < p->n_tensors; i++) {
    const pet_tensor *t = &p->tensors[i];
    snprintf(names[i], sizeof names[i], "pet.%s", t->name);
    e[i] =
        (io_st_entry){names[i], t->ndim, {t->shape[0], t->shape[1], t->shape[2]}, pet + t->offset};
  }
  e[p->n_tensors] = (io_st_entry){"head", 1, {head_n}, head};
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", a->out, name);
  err = io_safetensors_write(path, e, p->n_tensors + 1, NULL, NULL, 0);
done:
  free(e), free(names);
  pet_params_destroy(&p);
  return err;
}

static scl_err write_t(const args *a, const char *stem, int t, const void *src, size_t bytes) {
  char name[64];
  snprintf(name, sizeof name, "%s_%d.bin", stem, t);
  return driver_write(a->out, name, src, bytes);
}

typedef struct bufs {
  float *img, *batch_img, *list_img, *feat, *logits;
  int64_t *labels, *idx, *fit, *lab_b, *pos;
  int32_t *train_labels, *lab32, *pred;
  double *losses;
  uint8_t *masks;
} bufs;

/* One session's training steps through the method, with the dropout masks it drew. */
static scl_err train_session(const args *a, learn_method *lm, const learn_session *s, bufs *w,
                             int64_t *row, size_t mask_step, int64_t tokens) {
  const int64_t img_n = 3 * a->vc.img_size * a->vc.img_size;
  for (int64_t e = 0; e < a->E; e++)
    for (int64_t k = 0; k < a->K; k++, (*row)++) {
      const int64_t *bi = w->idx + *row * a->B;
      for (int64_t b = 0; b < a->B; b++) {
        memcpy(w->batch_img + b * img_n, w->img + bi[b] * img_n, (size_t)img_n * sizeof(float));
        w->lab_b[b] = w->labels[bi[b]];
      }
      learn_batch batch = {w->batch_img, w->lab_b, bi, w->lab_b, bi,
                           a->B,         a->B,     0,  e,        e * a->K + k};
      double l[LEARN_MAX_LOSS_TERMS] = {0};
      SCL_CALL(lm->ops->train_step(lm, s, &batch, l));
      w->losses[*row] = l[0];
      uint8_t *m = w->masks + mask_step * (size_t)*row;
      const uint32_t step = ((uint32_t)s->t << 20) + (uint32_t)batch.step;
      for (int64_t layer = 0; layer < a->vc.depth; layer++)
        for (int64_t b = 0; b < a->B; b++, m += tokens * a->R)
          vit_trainer_dropout_mask(m, tokens * a->R, (float)a->dropout, 7, step, 0, bi[b], layer);
    }
  return SCL_OK;
}

/* Features of n images of list `list` through the session's network into w->feat. */
static scl_err list_features(const args *a, learn_method *lm, const learn_session *s, bufs *w,
                             const int64_t *list, int64_t n, int64_t *dim) {
  const int64_t img_n = 3 * a->vc.img_size * a->vc.img_size;
  learn_network nets[LEARN_MAX_NETWORKS];
  SCL_CHECK(lm->ops->networks(lm, s, nets) == 1, SCL_ERR_INTERNAL, "EASE has one network");
  for (int64_t i = 0; i < n; i++) {
    memcpy(w->list_img + i * img_n, w->img + list[i] * img_n, (size_t)img_n * sizeof(float));
    w->lab32[i] = (int32_t)w->labels[list[i]];
  }
  *dim = nets[0].dim;
  SCL_CALL(nets[0].forward(nets[0].ctx, w->list_img, n, w->feat));
  return SCL_OK;
}

static scl_err run(const args *a, bufs *w) {
  const int64_t S = a->vc.img_size, img_n = 3 * S * S, steps = a->T * a->E * a->K;
  const int64_t N = steps * a->B + a->T * a->NF; /* an upper bound on the images */
  learn_method_cfg cfg = {.name = "ease",
                          .pet = "adapter",
                          .adapter_dim = a->R,
                          .adapter_scale = 1.0,
                          .adapter_dropout = a->dropout,
                          .epochs_first = a->E,
                          .epochs_later = a->E,
                          .batch = a->B,
                          .optimizer = "sgd",
                          .lr = 0.05,
                          .momentum = 0.9,
                          .weight_decay = 5e-3,
                          .min_lr = 0.0,
                          .t_max = 100,
                          .head_sigma0 = 10.0,
                          .ease_alpha = a->alpha,
                          .ease_beta = a->beta,
                          .ease_use_init_ptm = a->ptm,
                          .ease_reweight = a->reweight,
                          .ease_moni_adam = a->moni};
  pet_config pc = {.kinds = PET_ADAPTER,
                   .adapter_dim = a->R,
                   .adapter_scale = 1.0f,
                   .adapter_dropout = (float)a->dropout};
  const int64_t tokens = pet_config_tokens(&a->vc, &pc);
  const size_t mask_step = (size_t)(a->vc.depth * a->B * tokens * a->R);
  const int64_t ntest = a->T * a->NF, width = (a->T + 1) * a->vc.width;
  w->img = malloc((size_t)(N * img_n) * sizeof(float));
  w->batch_img = malloc((size_t)(a->B * img_n) * sizeof(float));
  w->list_img = malloc((size_t)(ntest * img_n) * sizeof(float));
  w->feat = malloc((size_t)(ntest * width) * sizeof(float));
  w->logits = malloc((size_t)(ntest * a->C) * sizeof(float));
  w->labels = malloc((size_t)N * sizeof(int64_t));
  w->idx = malloc((size_t)(steps * a->B) * sizeof(int64_t));
  w->fit = malloc((size_t)ntest * sizeof(int64_t));
  w->lab_b = malloc((size_t)a->B * sizeof(int64_t));
  w->pos = malloc((size_t)ntest * sizeof(int64_t));
  w->train_labels = calloc((size_t)N, sizeof(int32_t));
  w->lab32 = malloc((size_t)ntest * sizeof(int32_t));
  w->pred = malloc((size_t)ntest * sizeof(int32_t));
  w->losses = calloc((size_t)steps, sizeof(double));
  w->masks = calloc(mask_step * (size_t)steps, 1);
  vit_model *m = NULL;
  learn_method *lm = NULL;
  scl_err err = SCL_OK;
  if (!w->img || !w->batch_img || !w->list_img || !w->feat || !w->logits || !w->labels || !w->idx ||
      !w->fit || !w->lab_b || !w->pos || !w->train_labels || !w->lab32 || !w->pred || !w->losses ||
      !w->masks)
    SCL_ERROR_GOTO(err, done, SCL_ERR_NOMEM, "driver buffers");
  SCL_CALL_GOTO(err, driver_read(a->images, w->img, sizeof(float), (size_t)(N * img_n)), done);
  SCL_CALL_GOTO(err, driver_read(a->labels, w->labels, sizeof(int64_t), (size_t)N), done);
  SCL_CALL_GOTO(err, driver_read(a->batches, w->idx, 8, (size_t)(steps * a->B)), done);
  SCL_CALL_GOTO(err, driver_read(a->fit, w->fit, 8, (size_t)ntest), done);
  for (int64_t i = 0; i < ntest; i++) w->pos[i] = i;
  SCL_CALL_GOTO(err, vit_model_create(&a->vc, a->B, 1, &m), done);
  SCL_CALL_GOTO(err, vit_model_load(m, a->weights, 0), done);
  learn_context ctx = {
      .backbone = m, .n_classes = a->C, .seed = 7, .cfg = &cfg, .n_sessions = (int)a->T};
  SCL_CALL_GOTO(err, learn_method_find("ease")->create(&ctx, &lm), done);
  learn_state_entry st[LEARN_MAX_STATE];
  const int ns = lm->ops->state(lm, st);
  const learn_state_entry *set = find_state(st, ns, "ease_adapter");
  const learn_state_entry *head = find_state(st, ns, "ease_proxy_head");
  const learn_state_entry *bank = find_state(st, ns, "ease_bank");
  const learn_state_entry *W = find_state(st, ns, "ease_prototypes");
  const learn_state_entry *starts = find_state(st, ns, "ease_session_starts");
  if (!set || !head || !bank || !W || !starts)
    SCL_ERROR_GOTO(err, done, SCL_ERR_INTERNAL, "EASE state names");
  int64_t row = 0;
  for (int t = 0; t < a->T; t++) {
    learn_session s = {t,    (int)a->T, t * a->C / a->T, (t + 1) * a->C / a->T,
                       a->C, N,         w->train_labels};
    char name[64];
    if (lm->ops->train_plan(lm, &s).epochs > 0) {
      SCL_CALL_GOTO(err, lm->ops->train_begin(lm, &s, a->K), done);
      snprintf(name, sizeof name, "init_%d.safetensors", t);
      SCL_CALL_GOTO(err, write_set(a, &pc, name, set->data, head->data, head->shape[0]), done);
      SCL_CALL_GOTO(err, train_session(a, lm, &s, w, &row, mask_step, tokens), done);
      snprintf(name, sizeof name, "final_%d.safetensors", t);
      SCL_CALL_GOTO(err, write_set(a, &pc, name, set->data, head->data, head->shape[0]), done);
      SCL_CALL_GOTO(err, write_t(a, "set", t, set->data, (size_t)set->shape[0] * sizeof(float)),
                    done);
      SCL_CALL_GOTO(err, lm->ops->train_end(lm, &s), done);
      SCL_CALL_GOTO(err,
                    write_t(a, "bank", t, (float *)bank->data + t * bank->shape[1],
                            (size_t)bank->shape[1] * sizeof(float)),
                    done);
    } else {
      row += a->E * a->K; /* the session's batches are not trained on */
    }
    int64_t dim = 0;
    SCL_CALL_GOTO(err, list_features(a, lm, &s, w, w->fit + t * a->NF, a->NF, &dim), done);
    SCL_CALL_GOTO(err, write_t(a, "fit", t, w->feat, (size_t)(a->NF * dim) * sizeof(float)), done);
    const float *const feats[1] = {w->feat};
    SCL_CALL_GOTO(err, lm->ops->fit(lm, &s, feats, w->lab32, w->pos, a->NF), done);
    SCL_CALL_GOTO(
        err, write_t(a, "protos", t, W->data, (size_t)(W->shape[0] * W->shape[1]) * sizeof(float)),
        done);
    const int64_t nt = (t + 1) * a->NF, K = s.class_hi;
    SCL_CALL_GOTO(err, list_features(a, lm, &s, w, w->fit, nt, &dim), done);
    const int reweight = a->reweight && !a->moni;
    SCL_CALL_GOTO(err,
                  learn_ease_logits(w->logits, w->feat, nt, W->data, W->shape[1], starts->data, t,
                                    a->ptm || a->moni, dim / a->vc.width, a->vc.width, reweight,
                                    a->alpha, a->beta),
                  done);
    SCL_CALL_GOTO(err, lm->ops->predict(lm, &s, feats, nt, w->pred), done);
    SCL_CALL_GOTO(err, write_t(a, "logits", t, w->logits, (size_t)(nt * K) * sizeof(float)), done);
    SCL_CALL_GOTO(err, write_t(a, "pred", t, w->pred, (size_t)nt * sizeof(int32_t)), done);
  }
  SCL_CALL_GOTO(err, driver_write(a->out, "losses.bin", w->losses, (size_t)steps * sizeof(double)),
                done);
  SCL_CALL_GOTO(err, driver_write(a->out, "masks.bin", w->masks, mask_step * (size_t)steps), done);
done:
  if (lm) lm->ops->destroy(&lm);
  vit_model_destroy(&m);
  return err;
}

int main(int argc, char **argv) {
  args a;
  if (!parse(argc, argv, &a)) {
    fprintf(stderr, "usage: see the header of ease_driver.c\n");
    return 2;
  }
  bufs w = {0};
  int rc = driver_exit(run(&a, &w));
  free(w.img), free(w.batch_img), free(w.list_img), free(w.feat), free(w.logits);
  free(w.labels), free(w.idx), free(w.fit), free(w.lab_b), free(w.pos), free(w.train_labels);
  free(w.lab32), free(w.pred), free(w.losses), free(w.masks);
  return rc;
}
