/* prompt_driver.c: runs L2P or DualPrompt through the method interface on a small ViT, for
 * prompt_ref.py to compare with its PyTorch re-implementation, and checks the honest test
 * network's invariance to the order and batching of the test images.
 *
 * usage: prompt_driver --method l2p|dualprompt --width D --depth L --heads H --img S --patch P
 *        --mlp F --weights w.safetensors --images img.bin --labels lab.bin --batches idx.bin
 *        --test-images timg.bin --n-test NT --sessions T --classes C --batch B --steps K
 *        --pool M --length Lp --topk k --g-layers G --e-layers E --lr lr --out DIR
 * img.bin: N images (3, S, S) float32, lab.bin N int64 labels, idx.bin the int64 image indices
 * of every batch (T x K x B; one epoch per session); timg.bin NT test images. Session t holds
 * classes [t C / T, (t + 1) C / T). Writes to DIR (raw little-endian):
 *   params.bin   float32, the flat trainable array at create, then after train_begin and after
 *                the last step of every session (1 + 2T arrays)
 *   losses.bin   float64, 3 terms per step
 *   ids.bin      int64, per step the ids the method selects for its batch (B x k; L2P with the
 *                training vote, DualPrompt top-1 over all keys before any session rule),
 *                recomputed with prompt.h from the step's keys
 *   logits.bin   float32, after every session: the honest network's logits of the NT test
 *                images in one call (NT x C), then the pilot_diag network's, called on
 *                consecutive batches of B
 *   invariance.bin float64, after the last session, for chunk sizes 1, 7, 64 of a reversed test
 *                list: the largest |logit difference| and the number of changed argmaxes */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/core.h"
#include "safecl/method.h"
#include "safecl/prompt.h"
#include "safecl/vit.h"
#include "../common/driver_io.h"
#include "prompt_logits.h"

typedef struct args {
  vit_config vc;
  const char *method, *weights, *images, *labels, *batches, *test_images, *out;
  int64_t NT, T, C, B, K, M, Lp, k, G, E;
  double lr;
} args;

static int parse(int argc, char **argv, args *a) {
  memset(a, 0, sizeof *a);
  driver_vit_defaults(&a->vc);
  const char *sk[] = {"--method",  "--weights",     "--images", "--labels",
                      "--batches", "--test-images", "--out"};
  const char **sv[] = {&a->method,  &a->weights,     &a->images, &a->labels,
                       &a->batches, &a->test_images, &a->out};
  const char *ik[] = {"--n-test", "--sessions", "--classes", "--batch",    "--steps",
                      "--pool",   "--length",   "--topk",    "--g-layers", "--e-layers"};
  int64_t *iv[] = {&a->NT, &a->T, &a->C, &a->B, &a->K, &a->M, &a->Lp, &a->k, &a->G, &a->E};
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *key = argv[i], *v = argv[i + 1];
    int done = driver_vit_option(&a->vc, key, v);
    for (size_t j = 0; !done && j < sizeof sk / sizeof sk[0]; j++)
      if (!strcmp(key, sk[j])) *sv[j] = v, done = 1;
    for (size_t j = 0; !done && j < sizeof ik / sizeof ik[0]; j++)
      if (!strcmp(key, ik[j])) *iv[j] = atol(v), done = 1;
    if (!done && !strcmp(key, "--lr")) a->lr = atof(v), done = 1;
    if (!done) return 0;
  }
  return argc % 2 == 1 && a->method && a->weights && a->images && a->labels && a->batches &&
         a->test_images && a->out && a->T > 0 && a->C >= a->T && a->B > 0 && a->K > 0 && a->NT > 0;
}

typedef struct outputs {
  FILE *params, *losses, *ids, *logits;
} outputs;

static scl_err open_out(const args *a, const char *name, FILE **f) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", a->out, name);
  *f = fopen(path, "wb");
  SCL_CHECK(*f, SCL_ERR_IO, "%s: cannot create", path);
  return SCL_OK;
}

/* The ids the method selects for a batch, recomputed with prompt.h from the current keys. */
static scl_err batch_ids(const args *a, vit_model *m, const float *keys, const float *img,
                         int64_t *ids) {
  const int64_t D = a->vc.width, B = a->B, M = a->M, k = !strcmp(a->method, "l2p") ? a->k : 1;
  float *q = calloc((size_t)(B * D), 4), *qn = calloc((size_t)(B * D), 4);
  float *kn = calloc((size_t)(M * D), 4), *sq = calloc((size_t)(B + M), 4);
  float *s = calloc((size_t)(B * M), 4);
  int64_t *counts = calloc((size_t)M, 8);
  scl_err err = SCL_OK;
  if (!q || !qn || !kn || !sq || !s || !counts)
    SCL_ERROR_GOTO(err, done, SCL_ERR_NOMEM, "id buffers");
  SCL_CALL_GOTO(err, learn_prompt_query(m, img, B, q), done);
  learn_prompt_l2norm_forward(qn, sq, q, B, D);
  learn_prompt_l2norm_forward(kn, sq, keys, M, D);
  learn_prompt_similarity(s, qn, kn, B, M, D);
  learn_prompt_topk(ids, s, B, M, k);
  if (k > 1)
    SCL_CALL_GOTO(err, learn_prompt_vote_group(dist_comm_self(), ids, B, k, M, counts), done);
done:
  free(q), free(qn), free(kn), free(sq), free(s), free(counts);
  return err;
}

static scl_err run(const args *a) {
  const int64_t S = a->vc.img_size, img_n = 3 * S * S, steps = a->T * a->K;
  const int64_t N = steps * a->B, kk = !strcmp(a->method, "l2p") ? a->k : 1;
  learn_method_cfg cfg = {.name = (char *)a->method,
                          .pet = "none",
                          .epochs_first = 1,
                          .epochs_later = 1,
                          .batch = a->B,
                          .optimizer = "adam",
                          .lr = a->lr,
                          .prompt_protocol = "pilot_diag",
                          .prompt_pool = a->M,
                          .prompt_length = a->Lp,
                          .prompt_top_k = a->k,
                          .prompt_g_length = a->Lp,
                          .prompt_g_layers = a->G,
                          .prompt_e_layers = a->E,
                          .prompt_pull = 0.1,
                          .prompt_vote_train = 1};
  vit_model *m = NULL;
  learn_method *lm = NULL;
  outputs o = {0};
  FILE **files[] = {&o.params, &o.losses, &o.ids, &o.logits};
  float *img = malloc((size_t)(N * img_n) * 4), *timg = malloc((size_t)(a->NT * img_n) * 4);
  float *bimg = malloc((size_t)(a->B * img_n) * 4), *logits = malloc((size_t)(a->NT * a->C) * 4);
  int64_t *labels = malloc((size_t)N * 8), *idx = malloc((size_t)N * 8);
  int64_t *lab_b = malloc((size_t)a->B * 8), *ids = malloc((size_t)(a->B * kk) * 8);
  int64_t *order = malloc((size_t)a->NT * 8);
  scl_err err = SCL_OK;
  if (!img || !timg || !bimg || !logits || !labels || !idx || !lab_b || !ids || !order)
    SCL_ERROR_GOTO(err, done, SCL_ERR_NOMEM, "driver buffers");
  for (int64_t i = 0; i < a->NT; i++) order[i] = i;
  SCL_CALL_GOTO(err, driver_read(a->images, img, 4, (size_t)(N * img_n)), done);
  SCL_CALL_GOTO(err, driver_read(a->test_images, timg, 4, (size_t)(a->NT * img_n)), done);
  SCL_CALL_GOTO(err, driver_read(a->labels, labels, 8, (size_t)N), done);
  SCL_CALL_GOTO(err, driver_read(a->batches, idx, 8, (size_t)N), done);
  SCL_CALL_GOTO(err, vit_model_create(&a->vc, 3, 1, &m), done); /* chunks of 3: odd on purpose */
  SCL_CALL_GOTO(err, vit_model_load(m, a->weights, 0), done);
  learn_context ctx = {.backbone = m, .n_classes = a->C, .seed = 7, .cfg = &cfg};
  SCL_CALL_GOTO(err, learn_method_find(a->method)->create(&ctx, &lm), done);
  learn_state_entry st[LEARN_MAX_STATE];
  lm->ops->state(lm, st);
  const float *params = st[0].data;
  const int64_t count = st[0].shape[0];
  /* the key tensor's offset, by the same layout rule (prompt.h) */
  learn_prompt_params lay;
  int64_t numel[3], off[3];
  int nt = 0;
  if (kk > 1) {
    numel[nt++] = a->M * a->Lp * a->vc.width;
  } else {
    numel[nt++] = a->G * 2 * a->Lp * a->vc.width;
    numel[nt++] = a->E * 2 * a->M * a->Lp * a->vc.width;
  }
  numel[nt++] = a->M * a->vc.width;
  SCL_CALL_GOTO(err, learn_prompt_params_create(&lay, a->C, a->vc.width, nt, numel, off), done);
  learn_prompt_params_free(&lay);
  const float *keys = params + off[nt - 1];
  const char *names[] = {"params.bin", "losses.bin", "ids.bin", "logits.bin"};
  for (int i = 0; i < 4; i++) SCL_CALL_GOTO(err, open_out(a, names[i], files[i]), done);
  fwrite(params, 4, (size_t)count, o.params);
  for (int t = 0; t < a->T; t++) {
    learn_session s = {t, (int)a->T, t * a->C / a->T, (t + 1) * a->C / a->T, a->C, N, NULL};
    SCL_CALL_GOTO(err, lm->ops->train_begin(lm, &s, a->K), done);
    fwrite(params, 4, (size_t)count, o.params);
    for (int64_t k = 0; k < a->K; k++) {
      const int64_t *bi = idx + (t * a->K + k) * a->B;
      for (int64_t b = 0; b < a->B; b++) {
        memcpy(bimg + b * img_n, img + bi[b] * img_n, (size_t)img_n * 4);
        lab_b[b] = labels[bi[b]];
      }
      SCL_CALL_GOTO(err, batch_ids(a, m, keys, bimg, ids), done);
      fwrite(ids, 8, (size_t)(a->B * kk), o.ids);
      learn_batch batch = {bimg, lab_b, bi, lab_b, bi, a->B, a->B, 0, 0, k};
      double l[LEARN_MAX_LOSS_TERMS] = {0};
      SCL_CALL_GOTO(err, lm->ops->train_step(lm, &s, &batch, l), done);
      fwrite(l, 8, 3, o.losses);
    }
    SCL_CALL_GOTO(err, lm->ops->train_end(lm, &s), done);
    fwrite(params, 4, (size_t)count, o.params);
    learn_network nets[LEARN_MAX_NETWORKS];
    SCL_CHECK_GOTO(err, done, lm->ops->networks(lm, &s, nets) == 2, SCL_ERR_INTERNAL, "networks");
    SCL_CALL_GOTO(err, net_logits(a->vc.img_size, &nets[0], timg, order, a->NT, a->NT, logits),
                  done);
    fwrite(logits, 4, (size_t)(a->NT * a->C), o.logits);
    if (t == a->T - 1) {
      FILE *f = NULL;
      SCL_CALL_GOTO(err, open_out(a, "invariance.bin", &f), done);
      err = invariance(a->vc.img_size, a->NT, &nets[0], timg, logits, f);
      fclose(f);
      if (err) goto done;
    }
    SCL_CALL_GOTO(err, net_logits(a->vc.img_size, &nets[1], timg, order, a->NT, a->B, logits),
                  done);
    fwrite(logits, 4, (size_t)(a->NT * a->C), o.logits);
  }
done:
  for (int i = 0; i < 4; i++)
    if (*files[i]) fclose(*files[i]);
  if (lm) lm->ops->destroy(&lm);
  vit_model_destroy(&m);
  free(img), free(timg), free(bimg), free(logits), free(labels), free(idx), free(lab_b);
  free(ids), free(order);
  return err;
}

int main(int argc, char **argv) {
  args a;
  if (!parse(argc, argv, &a)) {
    fprintf(stderr, "usage: see the header of prompt_driver.c\n");
    return 2;
  }
  return driver_exit(run(&a));
}
