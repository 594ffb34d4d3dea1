/* prompt_variant_driver.c: runs a variant of DualPrompt (method.dualprompt_variant, G- and
 * E-prompts of different lengths) or of L2P (method.l2p_variant) through the method interface on
 * a small ViT, for
 * prompt_variant_ref.py to compare with its PyTorch re-implementation, and checks the test
 * network's invariance to the order and batching of the test images.
 *
 * usage: prompt_variant_driver --method dualprompt|l2p --variant V --width D --depth L
 *        --heads H --img S --patch P --mlp F --weights w.safetensors --images img.bin
 *        --labels lab.bin --batches idx.bin --test-images timg.bin --n-test NT --sessions T
 *        --classes C --batch B --steps K --pool M --length L --g-length Lg --g-layers G
 *        --e-layers E --topk k --lr lr --pull w --out DIR
 * img.bin: N images (3, S, S) float32, lab.bin N int64 labels, idx.bin the int64 image indices
 * of every batch (T x K x B); every step is one epoch (epochs = K, so a schedule over epochs
 * moves at every step). Session t holds classes [t C / T, (t + 1) C / T). Writes to DIR (raw
 * little-endian):
 *   params.bin   float32, the flat trainable array at create, then after train_begin and after
 *                the last step of every session (1 + 2T arrays)
 *   losses.bin   float64, 3 terms per step
 *   logits.bin   float32, after every session the test network's logits of the NT test images
 *                in one call (NT x C)
 *   invariance.bin float64, after the last session, for chunk sizes 1, 7, 64 of a reversed test
 *                list: the largest |logit difference| and the number of changed argmaxes
 * With --sessions beyond --pool and variant coda the create must refuse the configuration: the
 * driver then prints the message and exits 3. */
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
  const char *method, *variant, *weights, *images, *labels, *batches, *test_images, *out;
  int64_t NT, T, C, B, K, M, L, Lg, G, E, k;
  double lr, pull;
} args;

static int parse(int argc, char **argv, args *a) {
  memset(a, 0, sizeof *a);
  driver_vit_defaults(&a->vc);
  const char *sk[] = {"--method", "--variant", "--weights",     "--images",
                      "--labels", "--batches", "--test-images", "--out"};
  const char **sv[] = {&a->method, &a->variant, &a->weights,     &a->images,
                       &a->labels, &a->batches, &a->test_images, &a->out};
  const char *ik[] = {"--n-test", "--sessions", "--classes",  "--batch",    "--steps", "--pool",
                      "--length", "--g-length", "--g-layers", "--e-layers", "--topk"};
  int64_t *iv[] = {&a->NT, &a->T, &a->C, &a->B, &a->K, &a->M, &a->L, &a->Lg, &a->G, &a->E, &a->k};
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *key = argv[i], *v = argv[i + 1];
    int done = driver_vit_option(&a->vc, key, v);
    for (size_t j = 0; !done && j < sizeof sk / sizeof sk[0]; j++)
      if (!strcmp(key, sk[j])) *sv[j] = v, done = 1;
    for (size_t j = 0; !done && j < sizeof ik / sizeof ik[0]; j++)
      if (!strcmp(key, ik[j])) *iv[j] = atol(v), done = 1;
    if (!done && !strcmp(key, "--lr")) a->lr = atof(v), done = 1;
    if (!done && !strcmp(key, "--pull")) a->pull = atof(v), done = 1;
    if (!done) return 0;
  }
  return argc % 2 == 1 && a->method && a->variant && a->weights && a->images && a->labels &&
         a->batches && a->test_images && a->out && a->T > 0 && a->C >= a->T && a->B > 0 &&
         a->K > 0 && a->NT > 0;
}

static scl_err write_array(FILE *f, const void *p, size_t size, size_t n) {
  SCL_CHECK(fwrite(p, size, n, f) == n, SCL_ERR_IO, "short write of %zu items", n);
  return SCL_OK;
}

static scl_err run(const args *a) {
  const int64_t S = a->vc.img_size, img_n = 3 * S * S, N = a->T * a->K * a->B;
  learn_method_cfg cfg = {.name = (char *)a->method,
                          .pet = "none",
                          .epochs_first = a->K,
                          .epochs_later = a->K,
                          .batch = a->B,
                          .optimizer = "adam",
                          .lr = a->lr,
                          .prompt_protocol = "honest",
                          .prompt_pool = a->M,
                          .prompt_length = a->L,
                          .prompt_top_k = a->k > 0 ? a->k : 1,
                          .prompt_g_length = a->Lg,
                          .prompt_g_layers = a->G,
                          .prompt_e_layers = a->E,
                          .prompt_pull = a->pull,
                          .prompt_vote_train = 1,
                          .dp_variant = (char *)a->variant,
                          .l2p_variant = (char *)a->variant};
  vit_model *m = NULL;
  learn_method *lm = NULL;
  FILE *fp = NULL, *fl = NULL, *fg = NULL;
  FILE **files[] = {&fp, &fl, &fg};
  float *img = malloc((size_t)(N * img_n) * 4), *timg = malloc((size_t)(a->NT * img_n) * 4);
  float *bimg = malloc((size_t)(a->B * img_n) * 4), *logits = malloc((size_t)(a->NT * a->C) * 4);
  int64_t *labels = malloc((size_t)N * 8), *idx = malloc((size_t)N * 8);
  int64_t *lab_b = malloc((size_t)a->B * 8), *order = malloc((size_t)a->NT * 8);
  scl_err err = SCL_OK;
  char path[1024];
  if (!img || !timg || !bimg || !logits || !labels || !idx || !lab_b || !order)
    SCL_ERROR_GOTO(err, done, SCL_ERR_NOMEM, "driver buffers");
  for (int64_t i = 0; i < a->NT; i++) order[i] = i;
  SCL_CALL_GOTO(err, vit_model_create(&a->vc, 3, 1, &m), done); /* chunks of 3: odd on purpose */
  SCL_CALL_GOTO(err, vit_model_load(m, a->weights, 0), done);
  learn_context ctx = {
      .backbone = m, .n_classes = a->C, .seed = 7, .cfg = &cfg, .n_sessions = (int)a->T};
  SCL_CALL_GOTO(err, learn_method_find(a->method)->create(&ctx, &lm), done);
  SCL_CALL_GOTO(err, driver_read(a->images, img, 4, (size_t)(N * img_n)), done);
  SCL_CALL_GOTO(err, driver_read(a->test_images, timg, 4, (size_t)(a->NT * img_n)), done);
  SCL_CALL_GOTO(err, driver_read(a->labels, labels, 8, (size_t)N), done);
  SCL_CALL_GOTO(err, driver_read(a->batches, idx, 8, (size_t)N), done);
  learn_state_entry st[LEARN_MAX_STATE];
  lm->ops->state(lm, st);
  const float *params = st[0].data;
  const size_t count = (size_t)st[0].shape[0];
  const char *names[] = {"params.bin", "losses.bin", "logits.bin"};
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/%s", a->out, names[i]);
    *files[i] = fopen(path, "wb");
    SCL_CHECK_GOTO(err, done, *files[i], SCL_ERR_IO, "%s: cannot create", path);
  }
  SCL_CALL_GOTO(err, write_array(fp, params, 4, count), done);
  for (int t = 0; t < a->T; t++) {
    learn_session s = {t, (int)a->T, t * a->C / a->T, (t + 1) * a->C / a->T, a->C, N, NULL};
    SCL_CALL_GOTO(err, lm->ops->train_begin(lm, &s, a->K), done);
    SCL_CALL_GOTO(err, write_array(fp, params, 4, count), done);
    for (int64_t k = 0; k < a->K; k++) {
      const int64_t *bi = idx + (t * a->K + k) * a->B;
      for (int64_t b = 0; b < a->B; b++) {
        memcpy(bimg + b * img_n, img + bi[b] * img_n, (size_t)img_n * 4);
        lab_b[b] = labels[bi[b]];
      }
      learn_batch batch = {bimg, lab_b, bi, lab_b, bi, a->B, a->B, 0, k, k};
      double l[LEARN_MAX_LOSS_TERMS] = {0};
      SCL_CALL_GOTO(err, lm->ops->train_step(lm, &s, &batch, l), done);
      SCL_CALL_GOTO(err, write_array(fl, l, 8, 3), done);
    }
    SCL_CALL_GOTO(err, lm->ops->train_end(lm, &s), done);
    SCL_CALL_GOTO(err, write_array(fp, params, 4, count), done);
    learn_network nets[LEARN_MAX_NETWORKS];
    SCL_CHECK_GOTO(err, done, lm->ops->networks(lm, &s, nets) == 1, SCL_ERR_INTERNAL,
                   "one network expected");
    SCL_CALL_GOTO(err, net_logits(a->vc.img_size, &nets[0], timg, order, a->NT, a->NT, logits),
                  done);
    SCL_CALL_GOTO(err, write_array(fg, logits, 4, (size_t)(a->NT * a->C)), done);
    if (t == a->T - 1) {
      snprintf(path, sizeof path, "%s/invariance.bin", a->out);
      FILE *f = fopen(path, "wb");
      SCL_CHECK_GOTO(err, done, f, SCL_ERR_IO, "%s: cannot create", path);
      err = invariance(a->vc.img_size, a->NT, &nets[0], timg, logits, f);
      fclose(f);
      if (err) goto done;
    }
  }
done:
  for (int i = 0; i < 3; i++)
    if (*files[i]) fclose(*files[i]);
  if (lm) lm->ops->destroy(&lm);
  vit_model_destroy(&m);
  free(img), free(timg), free(bimg), free(logits), free(labels), free(idx), free(lab_b);
  free(order);
  return err;
}

int main(int argc, char **argv) {
  args a;
  if (!parse(argc, argv, &a)) {
    fprintf(stderr, "usage: see the header of prompt_variant_driver.c\n");
    return 2;
  }
  scl_err err = run(&a);
  if (err == SCL_ERR_ARG) { /* a refused configuration: the message, exit 3 */
    char msg[1024];
    scl_error_take(msg, sizeof msg);
    fprintf(stderr, "refused: %s\n", msg);
    return 3;
  }
  return driver_exit(err);
}
