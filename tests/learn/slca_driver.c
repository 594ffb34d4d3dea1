/* slca_driver.c: runs SLCA through the method interface on a small ViT, for slca_ref.py to
 * compare with its PyTorch re-implementation.
 *
 * usage: slca_driver --width D --depth L --heads H --img S --patch P --mlp F --weights w.st
 *        --images img.bin --labels lab.bin --batches idx.bin --test-images timg.bin --n-test NT
 *        --n-images N --sessions T --classes C --batch B --epochs E --steps K --lr lr
 *        --bcb-lrscale s --milestone M --ca-epochs CE --ca-samples n --tau tau --out DIR
 * img.bin: N images (3, S, S) float32, lab.bin N int64 labels, idx.bin the int64 image indices
 * of every batch (T x E x K x B), timg.bin NT test images. Session t holds classes
 * [t C / T, (t + 1) C / T); its training images (for the statistics) are the N images with
 * those labels, in index order. Writes to DIR (raw little-endian):
 *   tensors.txt        "name offset numel" of every tensor of the backbone copy
 *   init.bin           float32: the backbone copy, then the heads, at create
 *   losses.bin         float64: the CE of every step
 *   s<t>_trained.bin   float32: backbone copy and raw heads after session t's training
 *   s<t>_feat.bin      float32: the network's features of the session's training images
 *   s<t>_stats.bin     float32: class means (C, D) then covariances (C, D, D) after the fit
 *   s<t>_samples.bin   float32 and s<t>_perm.bin int64: every alignment epoch's samples
 *                      (K_seen n, D) and shuffle (K_seen n), recomputed with slca.h (t >= 1)
 *   s<t>_aligned.bin   float32: the aligned heads after the fit
 *   s<t>_raw_after.bin float32: the raw heads after the fit and the prediction
 *   s<t>_test.bin      float32: the network's features of the test images (NT, D), then the
 *                      aligned heads' logits of the seen classes (NT, K_seen)
 *   s<t>_pred.bin      int32: the method's predictions of the test images */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/core.h"
#include "safecl/method.h"
#include "safecl/pet.h"
#include "safecl/prompt.h"
#include "safecl/slca.h"
#include "safecl/vit.h"
#include "../common/driver_io.h"

typedef struct args {
  vit_config vc;
  const char *weights, *images, *labels, *batches, *test_images, *out;
  int64_t NT, N, T, C, B, E, K, M, CE, n;
  double lr, bcb, tau;
} args;

static int parse(int argc, char **argv, args *a) {
  memset(a, 0, sizeof *a);
  driver_vit_defaults(&a->vc);
  const char *sk[] = {"--weights", "--images", "--labels", "--batches", "--test-images", "--out"};
  const char **sv[] = {&a->weights, &a->images, &a->labels, &a->batches, &a->test_images, &a->out};
  const char *ik[] = {"--n-test", "--n-images", "--sessions",  "--classes",   "--batch",
                      "--epochs", "--steps",    "--milestone", "--ca-epochs", "--ca-samples"};
  int64_t *iv[] = {&a->NT, &a->N, &a->T, &a->C, &a->B, &a->E, &a->K, &a->M, &a->CE, &a->n};
  const char *dk[] = {"--lr", "--bcb-lrscale", "--tau"};
  double *dv[] = {&a->lr, &a->bcb, &a->tau};
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *key = argv[i], *v = argv[i + 1];
    int done = driver_vit_option(&a->vc, key, v);
    for (size_t j = 0; !done && j < sizeof sk / sizeof sk[0]; j++)
      if (!strcmp(key, sk[j])) *sv[j] = v, done = 1;
    for (size_t j = 0; !done && j < sizeof ik / sizeof ik[0]; j++)
      if (!strcmp(key, ik[j])) *iv[j] = atol(v), done = 1;
    for (size_t j = 0; !done && j < sizeof dk / sizeof dk[0]; j++)
      if (!strcmp(key, dk[j])) *dv[j] = atof(v), done = 1;
    if (!done) return 0;
  }
  return argc % 2 == 1 && a->weights && a->images && a->labels && a->batches && a->test_images &&
         a->out && a->T > 0 && a->C >= a->T && a->B > 0 && a->E > 0 && a->K > 0 && a->NT > 0 &&
         a->N > 0 && a->n > 0;
}

/* Appends n items of size bytes to DIR/name. */
static scl_err put(const args *a, const char *name, const void *data, size_t size, size_t n) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", a->out, name);
  FILE *f = fopen(path, "ab");
  SCL_CHECK(f, SCL_ERR_IO, "%s: cannot open", path);
  size_t w = fwrite(data, size, n, f);
  int c = fclose(f);
  SCL_CHECK(w == n && c == 0, SCL_ERR_IO, "%s: short write", path);
  return SCL_OK;
}

static scl_err put_s(const args *a, int t, const char *what, const void *data, size_t size,
                     size_t n) {
  char name[64];
  snprintf(name, sizeof name, "s%d_%s.bin", t, what);
  return put(a, name, data, size, n);
}

static scl_err write_tensors(const args *a) {
  pet_config pc = {.kinds = PET_FULL};
  pet_params *p = NULL;
  SCL_CALL(pet_params_create(&a->vc, &pc, &p));
  char path[1024];
  snprintf(path, sizeof path, "%s/tensors.txt", a->out);
  FILE *f = fopen(path, "w");
  scl_err err = f ? SCL_OK : SCL_ERROR(SCL_ERR_IO, "%s: cannot create", path);
  for (int i = 0; f && i < p->n_tensors; i++)
    fprintf(f, "%s %lld %lld\n", p->tensors[i].name, (long long)p->tensors[i].offset,
            (long long)p->tensors[i].numel);
  if (f) fclose(f);
  pet_params_destroy(&p);
  return err;
}

/* The network's features of n images (in chunks of 3: odd on purpose). */
static scl_err features(const learn_network *net, const float *img, int64_t n, int64_t per,
                        float *out) {
  for (int64_t i = 0; i < n; i += 3) {
    const int64_t c = n - i < 3 ? n - i : 3;
    SCL_CALL(net->forward(net->ctx, img + i * per, c, out + i * net->dim));
  }
  return SCL_OK;
}

/* The alignment's samples of session t, recomputed from the method's statistics. */
static scl_err samples(const args *a, int t, learn_state_entry *st, int64_t K) {
  const int64_t D = a->vc.width;
  learn_slca_stats s = {a->C, D, st[5].data, st[6].data, st[7].data};
  float *x = malloc((size_t)(K * a->n * D) * sizeof(float));
  int64_t *perm = malloc((size_t)(K * a->n) * sizeof(int64_t));
  double *work = malloc((size_t)learn_slca_sample_work(a->n, D) * sizeof(double));
  scl_err err = x && perm && work ? SCL_OK : SCL_ERROR(SCL_ERR_NOMEM, "sample buffers");
  for (int64_t e = 0; e < a->CE && !err; e++) {
    err = learn_slca_epoch_samples(x, perm, work, &s, K, a->n, t, e, 7, dist_comm_self());
    if (!err) err = put_s(a, t, "samples", x, 4, (size_t)(K * a->n * D));
    if (!err) err = put_s(a, t, "perm", perm, 8, (size_t)(K * a->n));
  }
  free(x), free(perm), free(work);
  return err;
}

typedef struct data {
  float *img, *timg, *bimg, *feat, *tfeat, *logits;
  int64_t *labels, *idx, *lab_b, *sel;
  int32_t *lab32, *pred;
} data;

static void data_free(data *d) {
  free(d->img), free(d->timg), free(d->bimg), free(d->feat), free(d->tfeat), free(d->logits);
  free(d->labels), free(d->idx), free(d->lab_b), free(d->sel), free(d->lab32), free(d->pred);
}

static scl_err data_load(const args *a, data *d) {
  const int64_t S = a->vc.img_size, per = 3 * S * S, D = a->vc.width;
  const int64_t nb = a->T * a->E * a->K * a->B;
  d->img = malloc((size_t)(a->N * per) * 4);
  d->timg = malloc((size_t)(a->NT * per) * 4);
  d->bimg = malloc((size_t)(a->B * per) * 4);
  d->feat = malloc((size_t)(a->N * D) * 4);
  d->tfeat = malloc((size_t)(a->NT * D) * 4);
  d->logits = malloc((size_t)(a->NT * a->C) * 4);
  d->labels = malloc((size_t)a->N * 8);
  d->idx = malloc((size_t)nb * 8);
  d->lab_b = malloc((size_t)a->B * 8);
  d->sel = malloc((size_t)a->N * 8);
  d->lab32 = malloc((size_t)a->N * 4);
  d->pred = malloc((size_t)a->NT * 4);
  SCL_CHECK(d->img && d->timg && d->bimg && d->feat && d->tfeat && d->logits && d->labels &&
                d->idx && d->lab_b && d->sel && d->lab32 && d->pred,
            SCL_ERR_NOMEM, "driver buffers");
  SCL_CALL(driver_read(a->images, d->img, 4, (size_t)(a->N * per)));
  SCL_CALL(driver_read(a->test_images, d->timg, 4, (size_t)(a->NT * per)));
  SCL_CALL(driver_read(a->labels, d->labels, 8, (size_t)a->N));
  SCL_CALL(driver_read(a->batches, d->idx, 8, (size_t)nb));
  return SCL_OK;
}

/* Session t: training, fit, prediction, and every output of it. */
static scl_err session(const args *a, learn_method *lm, data *d, int t) {
  const int64_t S = a->vc.img_size, per = 3 * S * S, D = a->vc.width;
  const int64_t lo = t * a->C / a->T, hi = (t + 1) * a->C / a->T;
  learn_state_entry st[LEARN_MAX_STATE];
  lm->ops->state(lm, st);
  const int64_t P = st[0].shape[0], H = st[2].shape[0];
  learn_session s = {t, (int)a->T, lo, hi, a->C, a->N, NULL};
  SCL_CALL(lm->ops->train_begin(lm, &s, a->K));
  for (int64_t e = 0; e < a->E; e++)
    for (int64_t k = 0; k < a->K; k++) {
      const int64_t *bi = d->idx + ((t * a->E + e) * a->K + k) * a->B;
      for (int64_t b = 0; b < a->B; b++) {
        memcpy(d->bimg + b * per, d->img + bi[b] * per, (size_t)per * 4);
        d->lab_b[b] = d->labels[bi[b]];
      }
      learn_batch batch = {d->bimg, d->lab_b, bi, d->lab_b, bi, a->B, a->B, 0, e, e * a->K + k};
      double l[LEARN_MAX_LOSS_TERMS] = {0};
      SCL_CALL(lm->ops->train_step(lm, &s, &batch, l));
      SCL_CALL(put(a, "losses.bin", l, 8, 1));
    }
  SCL_CALL(lm->ops->train_end(lm, &s));
  SCL_CALL(put_s(a, t, "trained", st[0].data, 4, (size_t)P));
  SCL_CALL(put_s(a, t, "trained", st[2].data, 4, (size_t)H));
  learn_network net;
  SCL_CHECK(lm->ops->networks(lm, &s, &net) == 1, SCL_ERR_INTERNAL, "SLCA has one network");
  int64_t n = 0; /* the session's training images, in index order */
  for (int64_t i = 0; i < a->N; i++)
    if (d->labels[i] >= lo && d->labels[i] < hi) {
      d->sel[n] = i;
      d->lab32[n++] = (int32_t)d->labels[i];
    }
  for (int64_t j = 0; j < n; j++)
    SCL_CALL(net.forward(net.ctx, d->img + d->sel[j] * per, 1, d->feat + j * D));
  SCL_CALL(put_s(a, t, "feat", d->feat, 4, (size_t)(n * D)));
  const float *fp = d->feat;
  int64_t *pos = malloc((size_t)n * 8);
  SCL_CHECK(pos, SCL_ERR_NOMEM, "positions");
  for (int64_t j = 0; j < n; j++) pos[j] = j;
  scl_err err = lm->ops->fit(lm, &s, &fp, d->lab32, pos, n);
  free(pos);
  SCL_CALL(err);
  SCL_CALL(put_s(a, t, "stats", st[5].data, 4, (size_t)(a->C * D)));
  SCL_CALL(put_s(a, t, "stats", st[6].data, 4, (size_t)(a->C * D * D)));
  if (t > 0) SCL_CALL(samples(a, t, st, hi));
  SCL_CALL(put_s(a, t, "aligned", st[4].data, 4, (size_t)H));
  SCL_CALL(features(&net, d->timg, a->NT, per, d->tfeat));
  const float *tp = d->tfeat;
  SCL_CALL(lm->ops->predict(lm, &s, &tp, a->NT, d->pred));
  SCL_CALL(put_s(a, t, "raw_after", st[2].data, 4, (size_t)H));
  learn_prompt_params view;
  memset(&view, 0, sizeof view);
  view.C = a->C, view.D = D, view.head_b = learn_slca_head_b(a->C, D), view.param = st[4].data;
  learn_prompt_logits(d->logits, &view, d->tfeat, a->NT, 0, hi);
  SCL_CALL(put_s(a, t, "test", d->tfeat, 4, (size_t)(a->NT * D)));
  SCL_CALL(put_s(a, t, "test", d->logits, 4, (size_t)(a->NT * hi)));
  SCL_CALL(put_s(a, t, "pred", d->pred, 4, (size_t)a->NT));
  return SCL_OK;
}

static scl_err run(const args *a) {
  learn_method_cfg cfg = {.name = "slca",
                          .epochs_first = a->E,
                          .epochs_later = a->E,
                          .batch = a->B,
                          .optimizer = "sgd",
                          .lr = a->lr,
                          .momentum = 0.9,
                          .weight_decay = 5e-4,
                          .slca_bcb_lrscale = a->bcb,
                          .slca_milestone = a->M,
                          .slca_ca_epochs = a->CE,
                          .slca_ca_lr = 0.01,
                          .slca_ca_samples = a->n,
                          .slca_logit_tau = a->tau,
                          .slca_fresh_norm = 1};
  vit_model *m = NULL;
  learn_method *lm = NULL;
  data d;
  memset(&d, 0, sizeof d);
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, data_load(a, &d), done);
  SCL_CALL_GOTO(err, write_tensors(a), done);
  SCL_CALL_GOTO(err, vit_model_create(&a->vc, 3, 1, &m), done);
  SCL_CALL_GOTO(err, vit_model_load(m, a->weights, 0), done);
  learn_context ctx = {.backbone = m, .n_classes = a->C, .seed = 7, .cfg = &cfg};
  SCL_CALL_GOTO(err, learn_method_find("slca")->create(&ctx, &lm), done);
  learn_state_entry st[LEARN_MAX_STATE];
  lm->ops->state(lm, st);
  SCL_CALL_GOTO(err, put(a, "init.bin", st[0].data, 4, (size_t)st[0].shape[0]), done);
  SCL_CALL_GOTO(err, put(a, "init.bin", st[2].data, 4, (size_t)st[2].shape[0]), done);
  for (int t = 0; t < a->T; t++) SCL_CALL_GOTO(err, session(a, lm, &d, t), done);
done:
  if (lm) lm->ops->destroy(&lm);
  vit_model_destroy(&m);
  data_free(&d);
  return err;
}

int main(int argc, char **argv) {
  args a;
  if (!parse(argc, argv, &a)) {
    fprintf(stderr, "usage: see the header of slca_driver.c\n");
    return 2;
  }
  return driver_exit(run(&a));
}
