/* augment_tool.c: a thin command-line driver over the training transform, so that
 * test_augment_parity.py can run torchvision's own code on the same generator words.
 *
 * Raw images are "<uint32 w><uint32 h>" (little-endian) + h*w*3 bytes HWC; tensors are float32
 * CHW with no header. PARAMS is "S0 S1 R0 R1 P" (scale, ratio, flip probability).
 *   geom W H SEED E0 NE I0 NI PARAMS   one line per key (epoch e, index i), epochs outer:
 *        "e i  i j h w flip attempts words  w0 .. w23" (the first 24 words of the stream)
 *   logratio PARAMS                    logf of the ratio bounds as C99 hex floats
 *   uniform A B OUT.f32                data_train_uniform(k, A, B) for k = 0 .. 2^24-1
 *   aspect PARAMS OUT.f32              data_train_expf(data_train_uniform(k, logf R0, logf R1))
 *   transform IN.raw SEED E I0 NI PARAMS OUT.f32 [m0 m1 m2 s0 s1 s2]
 *        data_train_transform of indices I0 .. I0+NI-1 (tensors concatenated); prints the
 *        geometry lines as geom does (without words)
 *   apply IN.raw I J H W FLIP OUT.f32  data_train_apply with the default params
 * Exits 0 on success, 1 with the error's traceback on stderr otherwise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/augment.h"
#include "raw_image.h"

#define N_WORDS 24
#define N_TABLE (1u << 24)

static scl_err write_all(FILE *f, const char *path, const void *data, size_t len) {
  if (fwrite(data, 1, len, f) != len) return SCL_ERROR(SCL_ERR_IO, "%s: write failed", path);
  return SCL_OK;
}

static void params_parse(char **argv, data_train_params *p) {
  p->scale[0] = strtod(argv[0], NULL);
  p->scale[1] = strtod(argv[1], NULL);
  p->ratio[0] = strtod(argv[2], NULL);
  p->ratio[1] = strtod(argv[3], NULL);
  p->flip_p = strtod(argv[4], NULL);
}

static void geom_print(uint32_t e, uint32_t i, const data_train_geom *g) {
  printf("%u %u  %d %d %d %d %d %d %d", e, i, g->i, g->j, g->h, g->w, g->flip, g->attempts,
         g->words);
}

static scl_err cmd_geom(char **argv) {
  int w = atoi(argv[0]), h = atoi(argv[1]);
  uint64_t seed = strtoull(argv[2], NULL, 10);
  uint32_t e0 = (uint32_t)strtoul(argv[3], NULL, 10), ne = (uint32_t)strtoul(argv[4], NULL, 10);
  uint32_t i0 = (uint32_t)strtoul(argv[5], NULL, 10), ni = (uint32_t)strtoul(argv[6], NULL, 10);
  data_train_params p = DATA_TRAIN_PARAMS_DEFAULT;
  params_parse(argv + 7, &p);
  for (uint32_t e = e0; e < e0 + ne; e++)
    for (uint32_t i = i0; i < i0 + ni; i++) {
      data_train_geom g;
      SCL_CALL(data_train_geometry(w, h, &p, seed, e, i, &g));
      geom_print(e, i, &g);
      scl_rng r;
      scl_rng_init(&r, seed, SCL_STREAM_AUGMENT, e, i);
      printf(" ");
      for (int k = 0; k < N_WORDS; k++) printf(" %u", scl_rng_u32(&r));
      printf("\n");
    }
  return SCL_OK;
}

/* The 2^24 values of f(k) into OUT.f32; kind 0 = uniform(a, b), 1 = expf(uniform(a, b)). */
static scl_err table_write(const char *path, int kind, float a, float b) {
  FILE *f = fopen(path, "wb");
  if (!f) return SCL_ERROR(SCL_ERR_IO, "%s: cannot create", path);
  static float buf[1 << 16];
  scl_err err = SCL_OK;
  for (uint32_t k0 = 0; k0 < N_TABLE && !err; k0 += 1u << 16) {
    for (uint32_t k = 0; k < 1u << 16; k++) {
      float u = data_train_uniform(k0 + k, a, b);
      buf[k] = kind ? data_train_expf(u) : u;
    }
    err = write_all(f, path, buf, sizeof buf);
  }
  if (fclose(f) != 0 && !err) err = SCL_ERROR(SCL_ERR_IO, "%s: close failed", path);
  return err;
}

static scl_err cmd_transform(int argc, char **argv, data_image *img) {
  SCL_CALL(raw_read(argv[0], img));
  uint64_t seed = strtoull(argv[1], NULL, 10);
  uint32_t e = (uint32_t)strtoul(argv[2], NULL, 10);
  uint32_t i0 = (uint32_t)strtoul(argv[3], NULL, 10), ni = (uint32_t)strtoul(argv[4], NULL, 10);
  data_train_params p = DATA_TRAIN_PARAMS_DEFAULT;
  params_parse(argv + 5, &p);
  float mean[3], std[3];
  if (argc >= 17) {
    for (int c = 0; c < 3; c++)
      mean[c] = strtof(argv[11 + c], NULL), std[c] = strtof(argv[14 + c], NULL);
    p.mean = mean, p.std = std;
  }
  size_t bytes = data_train_transform_scratch_bytes(img->w, img->h, &p);
  size_t n = (size_t)3 * p.size * p.size;
  void *scratch = NULL, *out = NULL;
  SCL_CALL(scl_alloc(bytes, "train scratch", &scratch));
  scl_err err = scl_alloc(n * sizeof(float), "tensor", &out);
  FILE *f = err ? NULL : fopen(argv[10], "wb");
  if (!err && !f) err = SCL_ERROR(SCL_ERR_IO, "%s: cannot create", argv[10]);
  for (uint32_t i = i0; !err && i < i0 + ni; i++) {
    data_train_geom g;
    err = data_train_geometry(img->w, img->h, &p, seed, e, i, &g);
    if (!err) err = data_train_transform(img, &p, seed, e, i, out, scratch, bytes);
    if (!err) err = write_all(f, argv[10], out, n * sizeof(float));
    if (!err) geom_print(e, i, &g), printf("\n");
  }
  if (f && fclose(f) != 0 && !err) err = SCL_ERROR(SCL_ERR_IO, "%s: close failed", argv[10]);
  scl_free(scratch);
  scl_free(out);
  SCL_CALL(err);
  return SCL_OK;
}

static scl_err cmd_apply(char **argv, data_image *img) {
  SCL_CALL(raw_read(argv[0], img));
  data_train_params p = DATA_TRAIN_PARAMS_DEFAULT;
  data_train_geom g = {.i = atoi(argv[1]),
                       .j = atoi(argv[2]),
                       .h = atoi(argv[3]),
                       .w = atoi(argv[4]),
                       .flip = atoi(argv[5])};
  size_t bytes = data_train_transform_scratch_bytes(img->w, img->h, &p);
  size_t n = (size_t)3 * p.size * p.size;
  void *scratch = NULL, *out = NULL;
  SCL_CALL(scl_alloc(bytes, "train scratch", &scratch));
  scl_err err = scl_alloc(n * sizeof(float), "tensor", &out);
  if (!err) err = data_train_apply(img, &g, &p, out, scratch, bytes);
  FILE *f = err ? NULL : fopen(argv[6], "wb");
  if (!err && !f) err = SCL_ERROR(SCL_ERR_IO, "%s: cannot create", argv[6]);
  if (!err) err = write_all(f, argv[6], out, n * sizeof(float));
  if (f && fclose(f) != 0 && !err) err = SCL_ERROR(SCL_ERR_IO, "%s: close failed", argv[6]);
  scl_free(scratch);
  scl_free(out);
  SCL_CALL(err);
  return SCL_OK;
}

static scl_err run(int argc, char **argv, data_image *img) {
  const char *cmd = argv[1];
  data_train_params p = DATA_TRAIN_PARAMS_DEFAULT;
  if (strcmp(cmd, "geom") == 0 && argc == 14) {
    SCL_CALL(cmd_geom(argv + 2));
  } else if (strcmp(cmd, "logratio") == 0 && argc == 7) {
    params_parse(argv + 2, &p);
    printf("%a %a\n", (double)logf((float)p.ratio[0]), (double)logf((float)p.ratio[1]));
  } else if (strcmp(cmd, "uniform") == 0 && argc == 5) {
    SCL_CALL(table_write(argv[4], 0, strtof(argv[2], NULL), strtof(argv[3], NULL)));
  } else if (strcmp(cmd, "aspect") == 0 && argc == 8) {
    params_parse(argv + 2, &p);
    SCL_CALL(table_write(argv[7], 1, logf((float)p.ratio[0]), logf((float)p.ratio[1])));
  } else if (strcmp(cmd, "transform") == 0 && (argc == 13 || argc == 19)) {
    SCL_CALL(cmd_transform(argc - 2, argv + 2, img));
  } else if (strcmp(cmd, "apply") == 0 && argc == 9) {
    SCL_CALL(cmd_apply(argv + 2, img));
  } else {
    return SCL_ERROR(SCL_ERR_ARG, "usage: see the comment atop tests/data/augment_tool.c");
  }
  return SCL_OK;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: augment_tool geom|logratio|uniform|aspect|transform|apply ...\n");
    return 1;
  }
  data_image img = {0};
  scl_err err = run(argc, argv, &img);
  io_image_free(&img);
  if (err) {
    fprintf(stderr, "error: %s\n%s", scl_error_message(), scl_error_traceback());
    return 1;
  }
  return 0;
}
