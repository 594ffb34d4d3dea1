/* vit_forward_driver.c: runs the C ViT forward for tests/model/test_vit_parity.py.
 *
 *   vit_forward_driver --arch A --weights FILE --images FILE --batch B --out FILE
 *                      [--threads T] [--ignore-unexpected] [--full-last-block] [--ref]
 *
 * Images and output are raw little-endian float32: (B, 3, img, img) in, (B, D) class-token
 * features out. Exit status 0 on success, 1 with the error and its traceback on stderr (the
 * Python side checks that refusals name the tensor), 2 on a usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/core.h"
#include "safecl/vit.h"
#include "../common/driver_io.h"

typedef struct driver_args {
  const char *arch, *weights, *images, *out;
  long batch, threads;
  int ignore_unexpected, full_last_block, ref;
} driver_args;

static int parse(int argc, char **argv, driver_args *a) {
  memset(a, 0, sizeof *a);
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(k, "--ignore-unexpected"))
      a->ignore_unexpected = 1;
    else if (!strcmp(k, "--full-last-block"))
      a->full_last_block = 1;
    else if (!strcmp(k, "--ref"))
      a->ref = 1;
    else if (!v)
      return 0;
    else if (!strcmp(k, "--arch"))
      a->arch = argv[++i];
    else if (!strcmp(k, "--weights"))
      a->weights = argv[++i];
    else if (!strcmp(k, "--images"))
      a->images = argv[++i];
    else if (!strcmp(k, "--out"))
      a->out = argv[++i];
    else if (!strcmp(k, "--batch"))
      a->batch = atol(argv[++i]);
    else if (!strcmp(k, "--threads"))
      a->threads = atol(argv[++i]);
    else
      return 0;
  }
  return a->arch && a->weights && a->images && a->out && a->batch > 0;
}

static scl_err run(const driver_args *a, vit_model **m, float **images, float **out) {
  vit_config cfg;
  SCL_CALL(vit_config_preset(a->arch, &cfg));
  SCL_CALL(vit_model_create(&cfg, a->batch, (int)a->threads, m));
  (*m)->full_last_block = a->full_last_block;
  SCL_CALL(vit_model_load(*m, a->weights, a->ignore_unexpected ? VIT_LOAD_IGNORE_UNEXPECTED : 0));
  const size_t n_img = (size_t)a->batch * (size_t)(cfg.in_chans * cfg.img_size * cfg.img_size);
  const size_t n_out = (size_t)a->batch * (size_t)cfg.width;
  SCL_CALL(scl_alloc(n_img * sizeof(float), "images", (void **)images));
  SCL_CALL(scl_alloc(n_out * sizeof(float), "features", (void **)out));
  SCL_CALL(driver_read(a->images, *images, sizeof(float), n_img));
  if (a->ref)
    SCL_CALL(vit_model_forward_ref(*m, *images, a->batch, *out));
  else
    SCL_CALL(vit_model_forward(*m, *images, a->batch, *out));
  SCL_CALL(driver_write(NULL, a->out, *out, n_out * sizeof(float)));
  return SCL_OK;
}

int main(int argc, char **argv) {
  driver_args a;
  if (!parse(argc, argv, &a)) {
    fprintf(stderr,
            "usage: %s --arch A --weights FILE --images FILE --batch B --out FILE "
            "[--threads T] [--ignore-unexpected] [--full-last-block] [--ref]\n",
            argv[0]);
    return 2;
  }
  vit_model *m = NULL;
  float *images = NULL, *out = NULL;
  scl_err err = run(&a, &m, &images, &out);
  const int status = driver_exit(err);
  scl_free(out);
  scl_free(images);
  vit_model_destroy(&m);
  return status;
}
