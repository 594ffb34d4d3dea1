/* coda_driver.c: runs CODA-Prompt's training over several sessions through the method interface
 * on a small ViT, for coda_ref.py to compare with its PyTorch re-implementation.
 *
 * usage: coda_driver --width D --depth L --heads H --img S --patch P --mlp F
 *        --weights w.safetensors --images img.bin --labels lab.bin --batches idx.bin
 *        --sessions T --classes C --batch B --epochs E --steps K --pool M --length Lp
 *        --g-layers g --e-layers e --lr lr --ortho mu --init gs|ortho --eval n --out DIR
 * img.bin: N images (3, S, S) float32; lab.bin: N int64 labels; idx.bin: int64 image indices of
 * every batch, session by session, epoch by epoch (T x E x K x B). Session t holds classes
 * [t C / T, (t + 1) C / T). Writes to DIR: layout.bin (int64: head_w, head_b, P, K, A offsets and
 * the float count of the flat array), and per session t: begin_t.bin (the flat array after
 * train_begin), grad_t.bin (the gradient of the session's first step, read from Adam's first
 * moment m = (1 - beta1) g), end_t.bin (the flat array after the last step), logits_t.bin (the
 * predict network's logits (n, C) of images 0 .. n - 1 at the end of the session);
 * losses.bin (float64, 3 terms per step). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/core.h"
#include "safecl/method.h"
#include "safecl/prompt.h"
#include "safecl/vit.h"
#include "../common/driver_io.h"

typedef struct args {
  vit_config vc;
  const char *weights, *images, *labels, *batches, *out, *init;
  int64_t T, C, B, E, K, M, Lp, g, e, n_eval;
  double lr, mu;
} args;

static int parse(int argc, char **argv, args *a) {
  memset(a, 0, sizeof *a);
  driver_vit_defaults(&a->vc);
  const char *const skeys[] = {"--weights", "--images", "--labels", "--batches", "--out", "--init"};
  const char **sv[] = {&a->weights, &a->images, &a->labels, &a->batches, &a->out, &a->init};
  const char *const ikeys[] = {"--sessions", "--classes", "--batch",    "--epochs",   "--steps",
                               "--pool",     "--length",  "--g-layers", "--e-layers", "--eval"};
  int64_t *iv[] = {&a->T, &a->C, &a->B, &a->E, &a->K, &a->M, &a->Lp, &a->g, &a->e, &a->n_eval};
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    int hit = driver_vit_option(&a->vc, k, v);
    for (int j = 0; j < 6 && !hit; j++)
      if (!strcmp(k, skeys[j])) *sv[j] = v, hit = 1;
    for (int j = 0; j < 10 && !hit; j++)
      if (!strcmp(k, ikeys[j])) *iv[j] = atol(v), hit = 1;
    if (!hit && !strcmp(k, "--lr")) a->lr = atof(v), hit = 1;
    if (!hit && !strcmp(k, "--ortho")) a->mu = atof(v), hit = 1;
    if (!hit) return 0;
  }
  return argc % 2 == 1 && a->weights && a->images && a->labels && a->batches && a->out && a->init &&
         a->T > 0 && a->C >= a->T && a->B > 0 && a->E > 0 && a->K > 0 && a->M > 0 && a->Lp > 0;
}

static const learn_state_entry *find_state(const learn_state_entry *st, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (!strcmp(st[i].name, name)) return &st[i];
  return NULL;
}

static scl_err dump(const args *a, const char *what, int t, const float *x, int64_t n) {
  char name[64];
  snprintf(name, sizeof name, "%s_%d.bin", what, t);
  return driver_write(a->out, name, x, (size_t)n * sizeof(float));
}

/* The flat array's layout as the method lays it out: the same call with the same tensor sizes
 * (P (e, M, Lp D), K and A (e, M, D)). */
static scl_err write_layout(const args *a) {
  const int64_t D = a->vc.width;
  const int64_t numel[3] = {a->e * a->M * a->Lp * D, a->e * a->M * D, a->e * a->M * D};
  int64_t off[3], lay[6];
  learn_prompt_params p = {0};
  SCL_CALL(learn_prompt_params_create(&p, a->C, D, 3, numel, off));
  lay[0] = p.head_w, lay[1] = p.head_b, lay[2] = off[0], lay[3] = off[1], lay[4] = off[2];
  lay[5] = p.count;
  learn_prompt_params_free(&p);
  return driver_write(a->out, "layout.bin", lay, sizeof lay);
}

static scl_err run(const args *a) {
  const int64_t S = a->vc.img_size, img_n = 3 * S * S, steps = a->T * a->E * a->K;
  const int64_t N = steps * a->B;
  learn_method_cfg cfg = {.name = "coda_prompt",
                          .pet = "none",
                          .epochs_first = a->E,
                          .epochs_later = a->E,
                          .batch = a->B,
                          .optimizer = "adam",
                          .lr = a->lr,
                          .weight_decay = 0.0,
                          .prompt_protocol = "honest",
                          .prompt_pool = a->M,
                          .prompt_length = a->Lp,
                          .prompt_g_layers = a->g,
                          .prompt_e_layers = a->e,
                          .coda_ortho = a->mu,
                          .coda_init = (char *)a->init};
  vit_model *m = NULL;
  learn_method *lm = NULL;
  float *img = malloc((size_t)(N * img_n) * sizeof(float));
  float *batch_img = malloc((size_t)(a->B * img_n) * sizeof(float));
  float *logits = malloc((size_t)((a->n_eval ? a->n_eval : 1) * a->C) * sizeof(float));
  int64_t *labels = malloc((size_t)N * sizeof(int64_t)), *idx = malloc((size_t)N * 8);
  int64_t *lab_b = malloc((size_t)a->B * sizeof(int64_t));
  int32_t *train_labels = calloc((size_t)N, sizeof(int32_t));
  double *losses = calloc((size_t)steps * 3, sizeof(double));
  scl_err err = SCL_OK;
  if (!img || !batch_img || !logits || !labels || !idx || !lab_b || !train_labels || !losses)
    SCL_ERROR_GOTO(err, done, SCL_ERR_NOMEM, "driver buffers");
  SCL_CALL_GOTO(err, driver_read(a->images, img, sizeof(float), (size_t)(N * img_n)), done);
  SCL_CALL_GOTO(err, driver_read(a->labels, labels, sizeof(int64_t), (size_t)N), done);
  SCL_CALL_GOTO(err, driver_read(a->batches, idx, sizeof(int64_t), (size_t)N), done);
  SCL_CALL_GOTO(err, vit_model_create(&a->vc, a->B, 1, &m), done);
  SCL_CALL_GOTO(err, vit_model_load(m, a->weights, 0), done);
  SCL_CALL_GOTO(err, write_layout(a), done);
  learn_context ctx = {m, a->C, 7, 0, &cfg, NULL, NULL, (int)a->T};
  SCL_CALL_GOTO(err, learn_method_find("coda_prompt")->create(&ctx, &lm), done);
  learn_state_entry st[LEARN_MAX_STATE];
  const int ns = lm->ops->state(lm, st);
  const learn_state_entry *par = find_state(st, ns, "prompt_params");
  const learn_state_entry *mom = find_state(st, ns, "prompt_adam_m");
  if (!par || !mom) SCL_ERROR_GOTO(err, done, SCL_ERR_INTERNAL, "method state names");
  const int64_t count = par->shape[0];
  float *grad = malloc((size_t)count * sizeof(float));
  if (!grad) SCL_ERROR_GOTO(err, done, SCL_ERR_NOMEM, "gradient copy");
  int64_t row = 0;
  for (int t = 0; t < a->T && !err; t++) {
    learn_session s = {t, (int)a->T, t * a->C / a->T, (t + 1) * a->C / a->T, a->C, N, train_labels};
    SCL_CALL_GOTO(err, lm->ops->train_begin(lm, &s, a->K), session_done);
    SCL_CALL_GOTO(err, dump(a, "begin", t, par->data, count), session_done);
    for (int64_t e = 0; e < a->E; e++)
      for (int64_t k = 0; k < a->K; k++, row++) {
        const int64_t *bi = idx + row * a->B;
        for (int64_t b = 0; b < a->B; b++) {
          memcpy(batch_img + b * img_n, img + bi[b] * img_n, (size_t)img_n * sizeof(float));
          lab_b[b] = labels[bi[b]];
        }
        learn_batch batch = {batch_img, lab_b, bi, lab_b, bi, a->B, a->B, 0, e, e * a->K + k};
        double l[LEARN_MAX_LOSS_TERMS] = {0};
        SCL_CALL_GOTO(err, lm->ops->train_step(lm, &s, &batch, l), session_done);
        for (int j = 0; j < 3; j++) losses[row * 3 + j] = l[j];
        if (e == 0 && k == 0) { /* m = (1 - beta1) g after the first step of a fresh Adam */
          for (int64_t i = 0; i < count; i++) grad[i] = ((float *)mom->data)[i] / 0.1f;
          SCL_CALL_GOTO(err, dump(a, "grad", t, grad, count), session_done);
        }
      }
    SCL_CALL_GOTO(err, dump(a, "end", t, par->data, count), session_done);
    SCL_CALL_GOTO(err, lm->ops->train_end(lm, &s), session_done);
    learn_network net[LEARN_MAX_NETWORKS];
    lm->ops->networks(lm, &s, net);
    SCL_CALL_GOTO(err, net[0].forward(net[0].ctx, img, a->n_eval, logits), session_done);
    SCL_CALL_GOTO(err, dump(a, "logits", t, logits, a->n_eval * a->C), session_done);
  session_done:;
  }
  free(grad);
  if (!err) err = driver_write(a->out, "losses.bin", losses, (size_t)(row * 3) * sizeof(double));
done:
  if (lm) lm->ops->destroy(&lm);
  vit_model_destroy(&m);
  free(img), free(batch_img), free(logits), free(labels), free(idx), free(lab_b);
  free(train_labels), free(losses);
  return err;
}

int main(int argc, char **argv) {
  args a;
  if (!parse(argc, argv, &a)) {
    fprintf(stderr, "usage: see the header of coda_driver.c\n");
    return 2;
  }
  return driver_exit(run(&a));
}
