/* safe_driver.c: runs SAFE's training over three sessions, or RanPAC's phase 1, through the
 * method interface on a small ViT, for safe_ref.py to compare with its PyTorch re-implementation.
 *
 * usage: safe_driver --method safe|ranpac --width D --depth L --heads H --img S --patch P
 *        --mlp F --weights w.safetensors --images img.bin --labels lab.bin --batches idx.bin
 *        --sessions T --classes C --batch B --epochs E --steps K --dropout p --sigma0 s
 *        --keep-sigma 0|1 --fast-forwards 1|2 --out DIR
 * img.bin: N images (3, S, S) float32; lab.bin: N int64 labels; idx.bin: int64 image indices of
 * every batch, session by session, epoch by epoch (T x E x K x B). Session t holds classes
 * [t C / T, (t + 1) C / T). Writes to DIR: init.safetensors (the PET and the head as
 * train_begin of session 1 leaves them: "pet.<tensor>", "head"), losses.bin (float64, one row of
 * 4 terms per step), sigmas.bin (float64, per session: slow and fast head sigma after
 * train_begin, then after the last step, before train_end) and masks.bin (uint8: the adapter dropout masks of every
 * step, pass 0 and 1, block, batch row: tokens x adapter width each). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/core.h"
#include "safecl/method.h"
#include "safecl/pet.h"
#include "safecl/safetensors.h"
#include "safecl/vit.h"
#include "../common/driver_io.h"

typedef struct args {
  vit_config vc;
  const char *method, *weights, *images, *labels, *batches, *out;
  int64_t T, C, B, E, K;
  double dropout, sigma0;
  int keep_sigma, fast_forwards;
} args;

static int parse(int argc, char **argv, args *a) {
  memset(a, 0, sizeof *a);
  driver_vit_defaults(&a->vc);
  a->fast_forwards = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--method"))
      a->method = v;
    else if (driver_vit_option(&a->vc, k, v))
      continue;
    else if (!strcmp(k, "--weights"))
      a->weights = v;
    else if (!strcmp(k, "--images"))
      a->images = v;
    else if (!strcmp(k, "--labels"))
      a->labels = v;
    else if (!strcmp(k, "--batches"))
      a->batches = v;
    else if (!strcmp(k, "--out"))
      a->out = v;
    else if (!strcmp(k, "--sessions"))
      a->T = atol(v);
    else if (!strcmp(k, "--classes"))
      a->C = atol(v);
    else if (!strcmp(k, "--batch"))
      a->B = atol(v);
    else if (!strcmp(k, "--epochs"))
      a->E = atol(v);
    else if (!strcmp(k, "--steps"))
      a->K = atol(v);
    else if (!strcmp(k, "--dropout"))
      a->dropout = atof(v);
    else if (!strcmp(k, "--sigma0"))
      a->sigma0 = atof(v);
    else if (!strcmp(k, "--keep-sigma"))
      a->keep_sigma = atoi(v);
    else if (!strcmp(k, "--fast-forwards"))
      a->fast_forwards = atoi(v);
    else
      return 0;
  }
  return argc % 2 == 1 && a->method && a->weights && a->images && a->labels && a->batches &&
         a->out && a->T > 0 && a->C >= a->T && a->B > 0 && a->E > 0 && a->K > 0;
}

static const learn_state_entry *find_state(const learn_state_entry *st, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (!strcmp(st[i].name, name)) return &st[i];
  return NULL;
}

/* The PET as the method's state holds it ("pet_slow" or "tuner_pet"), laid out as pet_params. */
static scl_err write_init(const args *a, const pet_config *pc, const float *pet, const float *head,
                          int64_t head_n) {
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
  snprintf(path, sizeof path, "%s/init.safetensors", a->out);
  err = io_safetensors_write(path, e, p->n_tensors + 1, NULL, NULL, 0);
done:
  free(e), free(names);
  pet_params_destroy(&p);
  return err;
}

/* The masks the trainer draws at optimizer step `step` of session t (SAFE's key: (t << 20) +
 * step; the tuner's: step), both passes, through the public mask function. */
static void fill_masks(const args *a, int64_t tokens, int64_t r, uint32_t step, const int64_t *idx,
                       uint8_t *out) {
  const int64_t n = tokens * r;
  for (uint32_t pass = 0; pass < 2; pass++)
    for (int64_t l = 0; l < a->vc.depth; l++)
      for (int64_t b = 0; b < a->B; b++, out += n)
        vit_trainer_dropout_mask(out, n, (float)a->dropout, 7, step, pass, idx[b], l);
}

static scl_err run(const args *a) {
  const int safe = !strcmp(a->method, "safe");
  const int64_t S = a->vc.img_size, img_n = 3 * S * S, steps = a->T * a->E * a->K;
  const int64_t N = steps * a->B; /* an upper bound on the images: every batch distinct */
  learn_method_cfg cfg = {.name = (char *)a->method,
                          .pet = "adapter",
                          .adapter_dim = 8,
                          .adapter_scale = 1.0,
                          .adapter_dropout = a->dropout,
                          .epochs_first = a->E,
                          .epochs_later = a->E,
                          .batch = a->B,
                          .optimizer = "sgd",
                          .lr = 0.05,
                          .momentum = 0.9,
                          .weight_decay = 5e-4,
                          .min_lr = 0.0,
                          .t_max = a->E + 1,
                          .head_sigma0 = a->sigma0,
                          .slow_diag = 0.01,
                          .slow_rdn = 10.0,
                          .fast_disf = 0.5,
                          .fast_cc = 1.0,
                          .gamma = 1.0,
                          .merge_result = 1,
                          .shared_stats = 1,
                          .keep_sigma = a->keep_sigma,
                          .fast_forwards = a->fast_forwards,
                          .rp_dim = 16,
                          .ridge_lo_exp = -8,
                          .ridge_hi_exp = 8,
                          .ridge_fit_fraction = 0.8};
  pet_config pc = {.kinds = PET_ADAPTER,
                   .adapter_dim = 8,
                   .adapter_scale = 1.0f,
                   .adapter_dropout = (float)a->dropout,
                   .vpt_tokens = 5};
  const int64_t tokens = pet_config_tokens(&a->vc, &pc), r = pc.adapter_dim;
  const size_t mask_step = (size_t)(2 * a->vc.depth * a->B * tokens * r);
  vit_model *m = NULL;
  learn_method *lm = NULL;
  float *img = malloc((size_t)(N * img_n) * sizeof(float)), *batch_img = NULL;
  int64_t *labels = malloc((size_t)N * sizeof(int64_t)), *idx = malloc((size_t)steps * a->B * 8);
  int64_t *lab_b = malloc((size_t)a->B * sizeof(int64_t));
  int32_t *train_labels = calloc((size_t)N, sizeof(int32_t));
  double *losses = calloc((size_t)steps * 4, sizeof(double)), sigmas[64] = {0};
  uint8_t *masks = calloc(mask_step * (size_t)steps, 1);
  batch_img = malloc((size_t)(a->B * img_n) * sizeof(float));
  scl_err err = SCL_OK;
  if (!img || !labels || !idx || !lab_b || !train_labels || !losses || !masks || !batch_img)
    SCL_ERROR_GOTO(err, done, SCL_ERR_NOMEM, "driver buffers");
  SCL_CALL_GOTO(err, driver_read(a->images, img, sizeof(float), (size_t)(N * img_n)), done);
  SCL_CALL_GOTO(err, driver_read(a->labels, labels, sizeof(int64_t), (size_t)N), done);
  SCL_CALL_GOTO(err, driver_read(a->batches, idx, sizeof(int64_t), (size_t)(steps * a->B)), done);
  SCL_CALL_GOTO(err, vit_model_create(&a->vc, a->B, 1, &m), done);
  SCL_CALL_GOTO(err, vit_model_load(m, a->weights, 0), done);
  learn_context ctx = {m, a->C, 7, 0, &cfg, NULL, NULL, (int)a->T};
  SCL_CALL_GOTO(err, learn_method_find(a->method)->create(&ctx, &lm), done);
  learn_state_entry st[LEARN_MAX_STATE];
  const int ns = lm->ops->state(lm, st);
  const learn_state_entry *hs = find_state(st, ns, safe ? "head_slow" : "tuner_head");
  const learn_state_entry *hf = find_state(st, ns, safe ? "head_fast" : "tuner_head");
  const learn_state_entry *pet = find_state(st, ns, safe ? "pet_slow" : "tuner_pet");
  if (!hs || !hf || !pet) SCL_ERROR_GOTO(err, done, SCL_ERR_INTERNAL, "method state names");
  const int64_t hn = hs->shape[0];
  int64_t row = 0;
  const int64_t T = safe ? a->T : 1;
  for (int t = 0; t < T; t++) {
    learn_session s = {t, (int)a->T, t * a->C / a->T, (t + 1) * a->C / a->T, a->C, N, train_labels};
    learn_train_plan plan = lm->ops->train_plan(lm, &s);
    SCL_CHECK_GOTO(err, done, plan.epochs == a->E, SCL_ERR_INTERNAL, "session %d: %lld epochs", t,
                   (long long)plan.epochs);
    SCL_CALL_GOTO(err, lm->ops->train_begin(lm, &s, a->K), done);
    if (t == 0) SCL_CALL_GOTO(err, write_init(a, &pc, pet->data, hs->data, hn), done);
    sigmas[4 * t] = ((float *)hs->data)[hn - 1];
    sigmas[4 * t + 1] = ((float *)hf->data)[hn - 1];
    for (int64_t e = 0; e < a->E; e++)
      for (int64_t k = 0; k < a->K; k++, row++) {
        const int64_t *bi = idx + row * a->B;
        for (int64_t b = 0; b < a->B; b++) {
          memcpy(batch_img + b * img_n, img + bi[b] * img_n, (size_t)img_n * sizeof(float));
          lab_b[b] = labels[bi[b]];
        }
        learn_batch batch = {batch_img, lab_b, bi, lab_b, bi, a->B, a->B, 0, e, e * a->K + k};
        double l[LEARN_MAX_LOSS_TERMS] = {0};
        SCL_CALL_GOTO(err, lm->ops->train_step(lm, &s, &batch, l), done);
        for (int j = 0; j < 4; j++) losses[row * 4 + j] = l[j];
        uint32_t key_step =
            safe ? ((uint32_t)t << 20) + (uint32_t)batch.step : (uint32_t)batch.step;
        fill_masks(a, tokens, r, key_step, bi, masks + mask_step * (size_t)row);
      }
    sigmas[4 * t + 2] = ((float *)hs->data)[hn - 1];
    sigmas[4 * t + 3] = ((float *)hf->data)[hn - 1];
    SCL_CALL_GOTO(err, lm->ops->train_end(lm, &s), done);
  }
  SCL_CALL_GOTO(err, driver_write(a->out, "losses.bin", losses, (size_t)(row * 4) * sizeof(double)),
                done);
  SCL_CALL_GOTO(err, driver_write(a->out, "sigmas.bin", sigmas, (size_t)(4 * T) * sizeof(double)),
                done);
  SCL_CALL_GOTO(err, driver_write(a->out, "masks.bin", masks, mask_step * (size_t)row), done);
done:
  if (lm) lm->ops->destroy(&lm);
  vit_model_destroy(&m);
  free(img), free(batch_img), free(labels), free(idx), free(lab_b), free(train_labels);
  free(losses), free(masks);
  return err;
}

int main(int argc, char **argv) {
  args a;
  if (!parse(argc, argv, &a)) {
    fprintf(stderr, "usage: see the header of safe_driver.c\n");
    return 2;
  }
  return driver_exit(run(&a));
}
