/* prompt_grad_driver.c: the trainer's forward and backward with per-image prompt inputs, for
 * tests/train/test_prompt_parity.py.
 *
 *   prompt_grad_driver --width D --depth L --heads H --img S --patch P --mlp F --batch B
 *                      [--input-tokens T --pool 0|1] [--sample-len L --sample-layers MASK]
 *                      [--threads N] --weights FILE --dir DIR
 *
 * Reads from DIR (raw float32): images.bin (B, 3, S, S), dout.bin (B, D), tokens.bin
 * (B, T, D) with input tokens, pk<l>.bin and pv<l>.bin (B, L, D) at every block l of MASK.
 * Runs vit_trainer_forward_io then vit_trainer_backward_io (no PET block: the config has only
 * per-image kinds) and writes out.bin (B, D), dtokens.bin, dpk<l>.bin, dpv<l>.bin into DIR.
 * Exit 0 ok, 1 error, 2 usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/core.h"
#include "safecl/pet.h"
#include "safecl/vit.h"
#include "../common/driver_io.h"

typedef struct args {
  vit_config vc;
  pet_config pc;
  const char *weights, *dir;
  long batch, threads;
} args;

static int parse(int argc, char **argv, args *a) {
  memset(a, 0, sizeof *a);
  driver_vit_defaults(&a->vc);
  a->threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (driver_vit_option(&a->vc, k, v)) continue;
    if (!strcmp(k, "--input-tokens"))
      a->pc.kinds |= PET_INPUT_PROMPT, a->pc.input_tokens = atol(v);
    else if (!strcmp(k, "--pool"))
      a->pc.pool_input_tokens = atoi(v);
    else if (!strcmp(k, "--sample-len"))
      a->pc.kinds |= PET_SAMPLE_PREFIX, a->pc.sample_prefix_len = atol(v);
    else if (!strcmp(k, "--sample-layers"))
      a->pc.sample_prefix_layers = (uint32_t)strtoul(v, NULL, 0);
    else if (!strcmp(k, "--weights"))
      a->weights = v;
    else if (!strcmp(k, "--dir"))
      a->dir = v;
    else if (!strcmp(k, "--batch"))
      a->batch = atol(v);
    else if (!strcmp(k, "--threads"))
      a->threads = atol(v);
    else
      return 0;
  }
  return argc % 2 == 1 && a->weights && a->dir && a->batch > 0 && a->vc.depth <= PET_MAX_LAYERS;
}

static scl_err run(const args *a) {
  vit_model *m = NULL;
  vit_trainer *t = NULL;
  const int64_t B = a->batch, D = a->vc.width, S = a->vc.img_size;
  const int64_t nt = B * a->pc.input_tokens * D, np = B * a->pc.sample_prefix_len * D;
  float *img = malloc((size_t)(B * 3 * S * S) * sizeof(float));
  float *io_buf = calloc((size_t)(2 * B * D + 2 * nt + 4 * np * a->vc.depth + 1), sizeof(float));
  vit_prompt_io io = {0};
  scl_err err = SCL_OK;
  if (!img || !io_buf) SCL_ERROR_GOTO(err, done, SCL_ERR_NOMEM, "driver buffers");
  float *out = io_buf, *dout = io_buf + B * D, *next = io_buf + 2 * B * D;
  SCL_CALL_GOTO(err, vit_model_create(&a->vc, B, (int)a->threads, &m), done);
  SCL_CALL_GOTO(err, vit_model_load(m, a->weights, 0), done);
  SCL_CALL_GOTO(err, vit_trainer_create(m, &a->pc, B, (int)a->threads, &t), done);
  SCL_CALL_GOTO(err, driver_read_in(a->dir, "images.bin", img, (size_t)(B * 3 * S * S) * 4), done);
  SCL_CALL_GOTO(err, driver_read_in(a->dir, "dout.bin", dout, (size_t)(B * D) * 4), done);
  if (nt) {
    io.tokens = next, io.dtokens = next + nt, next += 2 * nt;
    SCL_CALL_GOTO(err, driver_read_in(a->dir, "tokens.bin", (float *)io.tokens, (size_t)nt * 4),
                  done);
  }
  for (int l = 0; l < a->vc.depth; l++)
    if ((a->pc.kinds & PET_SAMPLE_PREFIX) && (a->pc.sample_prefix_layers >> l & 1u)) {
      char name[32];
      io.pk[l] = next, io.pv[l] = next + np, io.dpk[l] = next + 2 * np, io.dpv[l] = next + 3 * np;
      next += 4 * np;
      snprintf(name, sizeof name, "pk%d.bin", l);
      SCL_CALL_GOTO(err, driver_read_in(a->dir, name, (float *)io.pk[l], (size_t)np * 4), done);
      snprintf(name, sizeof name, "pv%d.bin", l);
      SCL_CALL_GOTO(err, driver_read_in(a->dir, name, (float *)io.pv[l], (size_t)np * 4), done);
    }
  SCL_CALL_GOTO(err, vit_trainer_forward_io(t, NULL, img, B, NULL, &io, out), done);
  SCL_CALL_GOTO(err, vit_trainer_backward_io(t, NULL, dout, B, &io), done);
  SCL_CALL_GOTO(err, driver_write(a->dir, "out.bin", out, (size_t)(B * D) * 4), done);
  if (nt) SCL_CALL_GOTO(err, driver_write(a->dir, "dtokens.bin", io.dtokens, (size_t)nt * 4), done);
  for (int l = 0; l < a->vc.depth; l++)
    if (io.dpk[l]) {
      char name[32];
      snprintf(name, sizeof name, "dpk%d.bin", l);
      SCL_CALL_GOTO(err, driver_write(a->dir, name, io.dpk[l], (size_t)np * 4), done);
      snprintf(name, sizeof name, "dpv%d.bin", l);
      SCL_CALL_GOTO(err, driver_write(a->dir, name, io.dpv[l], (size_t)np * 4), done);
    }
done:
  vit_trainer_destroy(&t);
  vit_model_destroy(&m);
  free(img), free(io_buf);
  return err;
}

int main(int argc, char **argv) {
  args a;
  if (!parse(argc, argv, &a)) {
    fprintf(stderr, "usage: see the header of prompt_grad_driver.c\n");
    return 2;
  }
  return driver_exit(run(&a));
}
