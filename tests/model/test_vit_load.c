/* test_vit_load.c: vit_model_load on small files written here: a Hugging Face file (q, k and v
 * as three tensors under the "vit." prefix) round-trips every parameter bit for bit, which runs
 * the name mapping over dotless names such as cls_token (undefined behaviour there shows under
 * UBSan as clang builds it: SAFECL_SANITIZE with CC=clang); and a NaN or an infinity anywhere in a tensor is refused with a
 * message naming the file, the tensor and the first bad index. Exits non-zero on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safecl/core.h"
#include "safecl/safetensors.h"
#include "safecl/vit.h"

static int failures = 0;

static void expect(int ok, const char *what, const char *detail) {
  printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", what, detail ? ": " : "", detail ? detail : "");
  if (!ok) failures++;
}

/* One block, so the table below spells every Hugging Face name out. */
static const vit_config small = {"small", 16, 8, 3, 12, 1, 3, 24, 1e-6f};

static const struct {
  const char *timm, *hf;
} names[] = {
    {"cls_token", "vit.embeddings.cls_token"},
    {"pos_embed", "vit.embeddings.position_embeddings"},
    {"patch_embed.proj.weight", "vit.embeddings.patch_embeddings.projection.weight"},
    {"patch_embed.proj.bias", "vit.embeddings.patch_embeddings.projection.bias"},
    {"norm.weight", "vit.layernorm.weight"},
    {"norm.bias", "vit.layernorm.bias"},
    {"blocks.0.norm1.weight", "vit.encoder.layer.0.layernorm_before.weight"},
    {"blocks.0.norm1.bias", "vit.encoder.layer.0.layernorm_before.bias"},
    {"blocks.0.attn.qkv.weight", "vit.encoder.layer.0.attention.attention.%s.weight"},
    {"blocks.0.attn.qkv.bias", "vit.encoder.layer.0.attention.attention.%s.bias"},
    {"blocks.0.attn.proj.weight", "vit.encoder.layer.0.attention.output.dense.weight"},
    {"blocks.0.attn.proj.bias", "vit.encoder.layer.0.attention.output.dense.bias"},
    {"blocks.0.norm2.weight", "vit.encoder.layer.0.layernorm_after.weight"},
    {"blocks.0.norm2.bias", "vit.encoder.layer.0.layernorm_after.bias"},
    {"blocks.0.mlp.fc1.weight", "vit.encoder.layer.0.intermediate.dense.weight"},
    {"blocks.0.mlp.fc1.bias", "vit.encoder.layer.0.intermediate.dense.bias"},
    {"blocks.0.mlp.fc2.weight", "vit.encoder.layer.0.output.dense.weight"},
    {"blocks.0.mlp.fc2.bias", "vit.encoder.layer.0.output.dense.bias"},
};
/* q, k and v: two more file entries for each qkv tensor. */
enum { N_NAMES = sizeof names / sizeof names[0], MAX_ENTRIES = N_NAMES + 4 };

static const char *hf_of(const char *timm) {
  for (int i = 0; i < N_NAMES; i++)
    if (strcmp(names[i].timm, timm) == 0) return names[i].hf;
  return NULL;
}

/* Writes m's parameters to path in Hugging Face naming; returns 0 on success. */
static int write_hf(const vit_model *m, const char *path) {
  static const char *qkv[3] = {"query", "key", "value"};
  static char hf[MAX_ENTRIES][96];
  io_st_entry e[MAX_ENTRIES];
  int n = 0;
  for (int i = 0; i < m->n_tensors; i++) {
    const vit_tensor *t = &m->tensors[i];
    const char *fmt = hf_of(t->name);
    if (!fmt) {
      expect(0, "the test's name table covers the model", t->name);
      return 1;
    }
    const int parts = strstr(t->name, ".attn.qkv.") ? 3 : 1;
    for (int p = 0; p < parts; p++) {
      snprintf(hf[n], sizeof hf[n], fmt, qkv[p]);
      e[n] = (io_st_entry){.name = hf[n], .ndim = t->ndim, .data = t->data + p * t->numel / parts};
      memcpy(e[n].shape, t->shape, sizeof t->shape);
      e[n].shape[0] /= parts;
      n++;
    }
  }
  if (io_safetensors_write(path, e, n, NULL, NULL, 0)) {
    expect(0, "write the Hugging Face file", scl_error_message());
    return 1;
  }
  return 0;
}

/* A timm file of m with the value at `index` of tensor `name` replaced by `bad`. */
static int write_timm_with(const vit_model *m, const char *path, const char *name, int64_t index,
                           float bad) {
  io_st_entry e[MAX_ENTRIES];
  const vit_tensor *target = vit_model_find(m, name);
  float saved = target->data[index];
  target->data[index] = bad;
  for (int i = 0; i < m->n_tensors; i++) {
    const vit_tensor *t = &m->tensors[i];
    e[i] = (io_st_entry){.name = t->name, .ndim = t->ndim, .data = t->data};
    memcpy(e[i].shape, t->shape, sizeof t->shape);
  }
  scl_err err = io_safetensors_write(path, e, m->n_tensors, NULL, NULL, 0);
  target->data[index] = saved;
  if (err) expect(0, "write the timm file", scl_error_message());
  return err != SCL_OK;
}

static void test_hf_roundtrip(vit_model *src, vit_model *dst, const char *path) {
  if (write_hf(src, path)) return;
  scl_err err = vit_model_load(dst, path, 0);
  expect(!err, "load the Hugging Face file", err ? scl_error_message() : NULL);
  int same = 1;
  for (int i = 0; i < src->n_tensors && !err; i++)
    same &= memcmp(src->tensors[i].data, dst->tensors[i].data,
                   (size_t)src->tensors[i].numel * sizeof(float)) == 0;
  expect(!err && same, "every parameter round-trips through Hugging Face naming", NULL);
  scl_error_clear();
}

static void test_non_finite(vit_model *src, vit_model *dst, const char *path) {
  static const struct {
    const char *tensor;
    int64_t index;
    float value;
    const char *index_text;
  } cases[] = {{"blocks.0.mlp.fc1.weight", 37, NAN, "index 37"},
               {"pos_embed", 0, INFINITY, "index 0"},
               {"norm.bias", 11, -INFINITY, "index 11"}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    if (write_timm_with(src, path, cases[k].tensor, cases[k].index, cases[k].value)) return;
    scl_error_clear();
    scl_err err = vit_model_load(dst, path, 0);
    const char *msg = scl_error_message();
    char what[128];
    snprintf(what, sizeof what, "%s in %s is refused naming file, tensor and index",
             cases[k].index_text, cases[k].tensor);
    expect(err == SCL_ERR_FORMAT && strstr(msg, path) && strstr(msg, cases[k].tensor) &&
               strstr(msg, cases[k].index_text),
           what, msg);
    scl_error_clear();
  }
  /* The same file with finite values loads. */
  if (write_timm_with(src, path, "norm.bias", 0, 1.5f)) return;
  scl_err err = vit_model_load(dst, path, 0);
  expect(!err, "a finite timm file loads", err ? scl_error_message() : NULL);
  scl_error_clear();
}

int main(void) {
  char path[64];
  snprintf(path, sizeof path, "test_vit_load.%ld.safetensors", (long)getpid());
  vit_model *src = NULL, *dst = NULL;
  if (vit_model_create(&small, 1, 1, &src) || vit_model_create(&small, 1, 1, &dst)) {
    expect(0, "create the small model", scl_error_message());
    return 1;
  }
  vit_model_init_random(src, 7);
  test_hf_roundtrip(src, dst, path);
  test_non_finite(src, dst, path);
  remove(path);
  vit_model_destroy(&src);
  vit_model_destroy(&dst);
  printf("%s: %d failure(s)\n", failures ? "FAIL" : "OK", failures);
  return failures ? 1 : 0;
}
