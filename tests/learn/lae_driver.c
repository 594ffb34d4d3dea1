/* lae_driver.c: runs LAE through the method interface on a small ViT, for lae_ref.py to compare
 * with its PyTorch re-implementation.
 *
 * usage: lae_driver --width D --depth L --heads H --img S --patch P --mlp F --weights w.safetensors
 *        --images img.bin --labels lab.bin --batches idx.bin --test-images timg.bin --n-test NT
 *        --sessions T --classes C --batch B --epochs E --steps K --freeze Z --length Lp
 *        --layers Lb --lr lr --ema-decay d --ema-init authors|pilot --freeze-first 0|1
 *        --head-init authors|pilot --out DIR
 * img.bin: N images (3, S, S) float32, lab.bin N int64 labels, idx.bin the int64 image indices of
 * every batch (T x E x K x B); timg.bin NT test images. Session t holds classes
 * [t C / T, (t + 1) C / T). Writes to DIR (raw little-endian):
 *   tensors.txt  the prefix block's tensors: name offset numel per line (pet_params layout)
 *   head.bin     float32, the head array (prompt.h layout) at create, then after every session
 *   online.bin, offline.bin  float32, the two experts' prefix blocks at the same points
 *   losses.bin   float64, the CE of every step
 *   nets.bin     int64, the network count after every session
 *   logits.bin   float32, after every session: the online network's logits of the NT test
 *                images, then the offline one's (zeros without an offline expert)
 *   preds.bin    int32, after every session: the three predictors' labels (3 x NT) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/core.h"
#include "safecl/method.h"
#include "safecl/pet.h"
#include "safecl/vit.h"
#include "../common/driver_io.h"

typedef struct args {
  vit_config vc;
  const char *weights, *images, *labels, *batches, *test_images, *out;
  const char *ema_init, *head_init;
  int64_t NT, T, C, B, E, K, Z, Lp, Lb, freeze_first;
  double lr, decay;
} args;

static int parse(int argc, char **argv, args *a) {
  memset(a, 0, sizeof *a);
  driver_vit_defaults(&a->vc);
  const char *sk[] = {"--weights", "--images",   "--labels",    "--batches",
                      "--out",     "--ema-init", "--head-init", "--test-images"};
  const char **sv[] = {&a->weights, &a->images,   &a->labels,    &a->batches,
                       &a->out,     &a->ema_init, &a->head_init, &a->test_images};
  const char *ik[] = {"--n-test", "--sessions", "--classes", "--batch",  "--epochs",
                      "--steps",  "--freeze",   "--length",  "--layers", "--freeze-first"};
  int64_t *iv[] = {&a->NT, &a->T, &a->C,  &a->B,  &a->E,
                   &a->K,  &a->Z, &a->Lp, &a->Lb, &a->freeze_first};
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *key = argv[i], *v = argv[i + 1];
    int done = driver_vit_option(&a->vc, key, v);
    for (size_t j = 0; !done && j < sizeof sk / sizeof sk[0]; j++)
      if (!strcmp(key, sk[j])) *sv[j] = v, done = 1;
    for (size_t j = 0; !done && j < sizeof ik / sizeof ik[0]; j++)
      if (!strcmp(key, ik[j])) *iv[j] = atol(v), done = 1;
    if (!done && !strcmp(key, "--lr")) a->lr = atof(v), done = 1;
    if (!done && !strcmp(key, "--ema-decay")) a->decay = atof(v), done = 1;
    if (!done) return 0;
  }
  return argc % 2 == 1 && a->weights && a->images && a->labels && a->batches && a->test_images &&
         a->out && a->ema_init && a->head_init && a->T > 0 && a->C >= a->T && a->B > 0 &&
         a->E > 0 && a->K > 0 && a->NT > 0;
}

/* The prefix block's tensor table, from a pet_params of LAE's prefix configuration. */
static scl_err write_tensors(const args *a) {
  pet_config pc = {.kinds = PET_PREFIX,
                   .prefix_len = a->Lp,
                   .prefix_layers = (1u << a->Lb) - 1u,
                   .prefix_after_cls = 1,
                   .prefix_compensate = 1,
                   .prefix_scales = 1,
                   .prefix_uniform = 1};
  pet_params *p = NULL;
  SCL_CALL(pet_params_create(&a->vc, &pc, &p));
  char path[1024];
  snprintf(path, sizeof path, "%s/tensors.txt", a->out);
  FILE *f = fopen(path, "w");
  scl_err err = SCL_OK;
  if (!f)
    err = SCL_ERROR(SCL_ERR_IO, "%s: cannot create", path);
  else {
    for (int i = 0; i < p->n_tensors; i++)
      fprintf(f, "%s %lld %lld\n", p->tensors[i].name, (long long)p->tensors[i].offset,
              (long long)p->tensors[i].numel);
    fclose(f);
  }
  pet_params_destroy(&p);
  return err;
}

typedef struct outputs {
  FILE *head, *online, *offline, *losses, *nets, *logits, *preds;
} outputs;

static scl_err open_all(const args *a, outputs *o) {
  const char *names[] = {"head.bin", "online.bin", "offline.bin", "losses.bin",
                         "nets.bin", "logits.bin", "preds.bin"};
  FILE **f[] = {&o->head, &o->online, &o->offline, &o->losses, &o->nets, &o->logits, &o->preds};
  for (int i = 0; i < 7; i++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", a->out, names[i]);
    *f[i] = fopen(path, "wb");
    SCL_CHECK(*f[i], SCL_ERR_IO, "%s: cannot create", path);
  }
  return SCL_OK;
}

static void close_all(outputs *o) {
  FILE *f[] = {o->head, o->online, o->offline, o->losses, o->nets, o->logits, o->preds};
  for (int i = 0; i < 7; i++)
    if (f[i]) fclose(f[i]);
}

/* head, online and offline arrays from the method's state entries. */
static void dump_state(learn_method *lm, const outputs *o) {
  learn_state_entry st[LEARN_MAX_STATE];
  const int n = lm->ops->state(lm, st);
  for (int i = 0; i < n; i++) {
    FILE *f = !strcmp(st[i].name, "prompt_params") ? o->head
              : !strcmp(st[i].name, "lae_online")  ? o->online
              : !strcmp(st[i].name, "lae_offline") ? o->offline
                                                   : NULL;
    if (f) fwrite(st[i].data, 4, (size_t)st[i].shape[0], f);
  }
}

static scl_err run(const args *a) {
  const int64_t S = a->vc.img_size, img_n = 3 * S * S, N = a->T * a->E * a->K * a->B;
  learn_method_cfg cfg = {.name = "lae",
                          .pet = "none",
                          .epochs_first = a->E,
                          .epochs_later = a->E,
                          .batch = a->B,
                          .optimizer = "adam",
                          .lr = a->lr,
                          .lae_length = a->Lp,
                          .lae_layers = a->Lb,
                          .lae_ema_decay = a->decay,
                          .lae_ema_init = (char *)a->ema_init,
                          .lae_freeze_epochs = a->Z,
                          .lae_freeze_first = (int)a->freeze_first,
                          .lae_head_init = (char *)a->head_init};
  vit_model *m = NULL;
  learn_method *lm = NULL;
  outputs o = {0};
  float *img = malloc((size_t)(N * img_n) * 4), *timg = malloc((size_t)(a->NT * img_n) * 4);
  float *bimg = malloc((size_t)(a->B * img_n) * 4);
  float *logits = calloc((size_t)(2 * a->NT * a->C), 4);
  int64_t *labels = malloc((size_t)N * 8), *idx = malloc((size_t)N * 8);
  int64_t *lab_b = malloc((size_t)a->B * 8);
  int32_t *pred = malloc((size_t)(3 * a->NT) * 4);
  scl_err err = SCL_OK;
  if (!img || !timg || !bimg || !logits || !labels || !idx || !lab_b || !pred)
    SCL_ERROR_GOTO(err, done, SCL_ERR_NOMEM, "driver buffers");
  SCL_CALL_GOTO(err, driver_read(a->images, img, 4, (size_t)(N * img_n)), done);
  SCL_CALL_GOTO(err, driver_read(a->test_images, timg, 4, (size_t)(a->NT * img_n)), done);
  SCL_CALL_GOTO(err, driver_read(a->labels, labels, 8, (size_t)N), done);
  SCL_CALL_GOTO(err, driver_read(a->batches, idx, 8, (size_t)N), done);
  SCL_CALL_GOTO(err, vit_model_create(&a->vc, 3, 1, &m), done);
  SCL_CALL_GOTO(err, vit_model_load(m, a->weights, 0), done);
  learn_context ctx = {.backbone = m, .n_classes = a->C, .seed = 7, .cfg = &cfg};
  SCL_CALL_GOTO(err, learn_method_find("lae")->create(&ctx, &lm), done);
  SCL_CALL_GOTO(err, write_tensors(a), done);
  SCL_CALL_GOTO(err, open_all(a, &o), done);
  dump_state(lm, &o);
  for (int t = 0; t < a->T; t++) {
    learn_session s = {t, (int)a->T, t * a->C / a->T, (t + 1) * a->C / a->T, a->C, N, NULL};
    SCL_CALL_GOTO(err, lm->ops->train_begin(lm, &s, a->K), done);
    for (int64_t e = 0; e < a->E; e++) {
      for (int64_t k = 0; k < a->K; k++) {
        const int64_t *bi = idx + ((t * a->E + e) * a->K + k) * a->B;
        for (int64_t b = 0; b < a->B; b++) {
          memcpy(bimg + b * img_n, img + bi[b] * img_n, (size_t)img_n * 4);
          lab_b[b] = labels[bi[b]];
        }
        learn_batch batch = {bimg, lab_b, bi, lab_b, bi, a->B, a->B, 0, e, e * a->K + k};
        double l[LEARN_MAX_LOSS_TERMS] = {0};
        SCL_CALL_GOTO(err, lm->ops->train_step(lm, &s, &batch, l), done);
        fwrite(l, 8, 1, o.losses);
      }
      SCL_CALL_GOTO(err, lm->ops->train_epoch_end(lm, &s, e), done);
    }
    SCL_CALL_GOTO(err, lm->ops->train_end(lm, &s), done);
    dump_state(lm, &o);
    learn_network nets[LEARN_MAX_NETWORKS];
    const int64_t n_nets = lm->ops->networks(lm, &s, nets);
    fwrite(&n_nets, 8, 1, o.nets);
    memset(logits, 0, (size_t)(2 * a->NT * a->C) * 4);
    const float *feats[2] = {logits, logits + a->NT * a->C};
    for (int64_t k = 0; k < n_nets; k++)
      SCL_CALL_GOTO(err, nets[k].forward(nets[k].ctx, timg, a->NT, logits + k * a->NT * a->C),
                    done);
    fwrite(logits, 4, (size_t)(2 * a->NT * a->C), o.logits);
    SCL_CALL_GOTO(err, lm->ops->predict(lm, &s, feats, a->NT, pred), done);
    fwrite(pred, 4, (size_t)(3 * a->NT), o.preds);
  }
done:
  close_all(&o);
  if (lm) lm->ops->destroy(&lm);
  vit_model_destroy(&m);
  free(img), free(timg), free(bimg), free(logits), free(labels), free(idx), free(lab_b);
  free(pred);
  return err;
}

int main(int argc, char **argv) {
  args a;
  if (!parse(argc, argv, &a)) {
    fprintf(stderr, "usage: see the header of lae_driver.c\n");
    return 2;
  }
  return driver_exit(run(&a));
}
