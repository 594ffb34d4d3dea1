/* test_vit_model.c: the ViT model object without PyTorch: presets and their counts, argument
 * errors, the tensor table, and the threaded forward against the reference forward (`_ref`
 * kernels, every token) on a small odd-sized configuration at several batch sizes and thread
 * counts, aligned (threads divide the batch) and not, with the last block pruned and not.
 * Prints the worst element of each comparison; exits non-zero on any failure. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "safecl/core.h"
#include "safecl/vit.h"

static int failures = 0;

static void expect(int ok, const char *what, const char *detail) {
  printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", what, detail ? ": " : "", detail ? detail : "");
  if (!ok) failures++;
}

static void test_presets(void) {
  static const struct {
    const char *name;
    int64_t params;
  } want[] = {{"vit_tiny_patch16_224", 5524416},
              {"vit_small_patch16_224", 21665664},
              {"vit_base_patch16_224", 85798656},
              {"vit_large_patch16_224", 303301632}};
  char msg[160];
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    vit_config c;
    scl_err err = vit_config_preset(want[i].name, &c);
    snprintf(msg, sizeof msg, "%s: %lld parameters (want %lld), %lld tokens", want[i].name,
             (long long)vit_config_param_count(&c), (long long)want[i].params,
             (long long)vit_config_tokens(&c));
    expect(!err && vit_config_param_count(&c) == want[i].params && vit_config_tokens(&c) == 197 &&
               c.mlp_hidden == 4 * c.width && c.ln_eps == 1e-6f,
           "preset", msg);
  }
  vit_config c;
  if (vit_config_preset("vit_base_patch16_224", &c)) return;
  double gf = vit_config_flops_per_image(&c) * 1e-9;
  snprintf(msg, sizeof msg, "%.3f GFLOP per image (35.1 expected)", gf);
  expect(fabs(gf - 35.1) < 0.05, "base FLOPs", msg);

  scl_error_clear();
  scl_err err = vit_config_preset("vit_huge_patch14_224", &c);
  const char *m = scl_error_message();
  expect(err == SCL_ERR_ARG && strstr(m, "vit_huge_patch14_224") &&
             strstr(m, "vit_base_patch16_224") && strstr(m, "vit_tiny_patch16_224"),
         "unknown preset names itself and the valid ones", m);
  scl_error_clear();
}

static void test_errors(void) {
  vit_config c;
  vit_model *m = NULL;
  if (vit_config_preset("vit_tiny_patch16_224", &c)) return;
  c.heads = 5; /* 192 is not a multiple of 5 */
  scl_error_clear();
  expect(
      vit_model_create(&c, 1, 1, &m) == SCL_ERR_ARG && !m && strstr(scl_error_message(), "heads"),
      "width not a multiple of heads is refused", scl_error_message());
  c.heads = 3;
  scl_error_clear();
  expect(vit_model_create(&c, 0, 1, &m) == SCL_ERR_ARG && !m, "max_batch 0 is refused",
         scl_error_message());
  scl_error_clear();
  if (vit_model_create(&c, 2, 1, &m)) {
    expect(0, "create tiny", scl_error_message());
    return;
  }
  const vit_tensor *t = vit_model_find(m, "blocks.11.attn.qkv.weight");
  expect(t && t->ndim == 2 && t->shape[0] == 576 && t->shape[1] == 192 &&
             t->data == m->p.blocks[11].qkv_w,
         "find blocks.11.attn.qkv.weight (576, 192) = the block view", NULL);
  t = vit_model_find(m, "pos_embed");
  expect(t && t->ndim == 3 && t->shape[1] == 197 && ((uintptr_t)t->data % 64) == 0,
         "find pos_embed (1, 197, 192), 64-byte aligned", NULL);
  expect(vit_model_find(m, "head.weight") == NULL, "no head tensor", NULL);
  float img[1], out[1];
  expect(vit_model_forward(m, img, 3, out) == SCL_ERR_ARG, "batch above max_batch is refused",
         scl_error_message());
  scl_error_clear();
  vit_model_destroy(&m);
  vit_model_destroy(&m); /* NULL-safe */
  expect(m == NULL, "destroy sets NULL", NULL);
}

/* Random weights with non-trivial LayerNorms and biases, the same for every call. */
static void init_weights(vit_model *m) {
  vit_model_init_random(m, 11);
  scl_rng rng;
  scl_rng_init(&rng, 5, SCL_STREAM_SYNTHETIC, 0, 0);
  for (int i = 0; i < m->n_tensors; i++) {
    vit_tensor *t = &m->tensors[i];
    int is_bias = strstr(t->name, "bias") != NULL;
    int is_norm = strstr(t->name, "norm") != NULL;
    if (!is_bias && !is_norm && strcmp(t->name, "cls_token") && strcmp(t->name, "pos_embed"))
      continue;
    for (int64_t j = 0; j < t->numel; j++) {
      float u = 2.0f * scl_rng_uniformf(&rng) - 1.0f;
      t->data[j] = (is_norm && !is_bias) ? 1.0f + 0.3f * u : 0.3f * u;
    }
  }
}

static void compare(const char *what, const float *got, const float *ref, int64_t n) {
  double max_abs = 0.0;
  int64_t imax = 0;
  int ok = 1;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - (double)ref[i]);
    if (!(d <= 1e-5 + 1e-5 * fabs((double)ref[i]))) ok = 0;
    if (d > max_abs || d != d) max_abs = d, imax = i;
  }
  char msg[160];
  snprintf(msg, sizeof msg, "max_abs_err=%.2e at %lld (got %.7f ref %.7f), tol 1e-5 + 1e-5*|ref|",
           max_abs, (long long)imax, got[imax], ref[imax]);
  expect(ok, what, msg);
}

static void test_forward_vs_ref(void) {
  const vit_config c = {"odd", 40, 8, 3, 36, 3, 3, 50, 1e-6f};
  enum { MAXB = 4 };
  const int64_t img = 3 * 40 * 40;
  static float images[MAXB * 3 * 40 * 40], ref[MAXB * 36], out[MAXB * 36];
  scl_rng rng;
  scl_rng_init(&rng, 3, SCL_STREAM_SYNTHETIC, 0, 0);
  for (int64_t i = 0; i < MAXB * img; i++) images[i] = scl_rng_uniformf(&rng);
  for (int T = 1; T <= 3; T++) {
    vit_model *m = NULL;
    if (vit_model_create(&c, MAXB, T, &m)) {
      expect(0, "create odd model", scl_error_message());
      return;
    }
    init_weights(m);
    for (int64_t B = 1; B <= MAXB; B++) {
      if (vit_model_forward_ref(m, images, B, ref)) expect(0, "reference forward", NULL);
      for (int full = 0; full <= 1; full++) {
        m->full_last_block = full;
        memset(out, 0, sizeof out);
        char what[96];
        snprintf(what, sizeof what, "forward threads %d batch %lld %s%s", T, (long long)B,
                 B % T ? "unaligned" : "aligned", full ? " full last block" : "");
        if (vit_model_forward(m, images, B, out)) expect(0, what, scl_error_message());
        compare(what, out, ref, B * c.width);
      }
    }
    vit_model_destroy(&m);
  }
}

/* Repeated forwards on the full tiny preset with 2 and 3 threads (each calling OpenBLAS
 * concurrently) must agree bit for bit: a race in the team or in OpenBLAS's buffers would not. */
static void test_repeatable(void) {
  vit_config c;
  if (vit_config_preset("vit_tiny_patch16_224", &c)) return;
  enum { B = 4, REPEATS = 4 };
  static float images[B * 3 * 224 * 224], first[B * 192], out[B * 192];
  scl_rng rng;
  scl_rng_init(&rng, 9, SCL_STREAM_SYNTHETIC, 0, 0);
  for (size_t i = 0; i < sizeof images / sizeof images[0]; i++) images[i] = scl_rng_uniformf(&rng);
  for (int T = 2; T <= 3; T++) {
    vit_model *m = NULL;
    if (vit_model_create(&c, B, T, &m)) {
      expect(0, "create tiny", scl_error_message());
      return;
    }
    init_weights(m);
    int same = !vit_model_forward(m, images, B, first);
    for (int r = 1; r < REPEATS && same; r++)
      same = !vit_model_forward(m, images, B, out) && memcmp(out, first, sizeof out) == 0;
    char what[64];
    snprintf(what, sizeof what, "tiny forward repeatable bit for bit, %d threads", T);
    expect(same, what, NULL);
    vit_model_destroy(&m);
  }
}

/* per_image: an image's output is bit-identical alone, at every position of a batch of 7 and
 * in a reversed batch, at 1, 2 and 3 threads (without it OpenBLAS's row blocking and the row
 * mode make it depend on the batch). */
static void test_per_image(void) {
  const vit_config c = {"odd", 40, 8, 3, 36, 3, 3, 50, 1e-6f};
  enum { NB = 7 };
  const int64_t img = 3 * 40 * 40, D = 36;
  static float images[NB * 3 * 40 * 40], rev[NB * 3 * 40 * 40], alone[NB * 36], out[NB * 36];
  scl_rng rng;
  scl_rng_init(&rng, 5, SCL_STREAM_SYNTHETIC, 0, 0);
  for (int64_t i = 0; i < NB * img; i++) images[i] = scl_rng_uniformf(&rng);
  for (int64_t b = 0; b < NB; b++)
    memcpy(rev + (NB - 1 - b) * img, images + b * img, (size_t)img * sizeof(float));
  for (int T = 1; T <= 3; T++) {
    vit_model *m = NULL;
    if (vit_model_create(&c, NB, T, &m)) {
      expect(0, "create per-image model", scl_error_message());
      return;
    }
    init_weights(m);
    m->per_image = 1;
    int ok = 1;
    for (int64_t b = 0; b < NB && ok; b++)
      ok = !vit_model_forward(m, images + b * img, 1, alone + b * D);
    ok = ok && !vit_model_forward(m, images, NB, out) && !memcmp(out, alone, sizeof out);
    ok = ok && !vit_model_forward(m, rev, NB, out);
    for (int64_t b = 0; b < NB && ok; b++)
      ok = !memcmp(out + (NB - 1 - b) * D, alone + b * D, (size_t)D * sizeof(float));
    char what[80];
    snprintf(what, sizeof what, "per-image forward independent of the batch, %d threads", T);
    expect(ok, what, NULL);
    vit_model_destroy(&m);
  }
}

int main(void) {
  scl_log_set_level(SCL_LOG_WARN);
  test_per_image();
  test_presets();
  test_errors();
  test_forward_vs_ref();
  test_repeatable();
  printf("%d failed\n", failures);
  return failures > 100 ? 100 : failures;
}
